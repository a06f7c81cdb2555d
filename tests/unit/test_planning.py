"""smart_redis.planning gives every operation the order pyinfra's own stack inspection gives it."""

from __future__ import annotations

import subprocess
import sys
from types import SimpleNamespace

import pyinfra
import pytest
from pyinfra.api import util

from smart_redis import planning

# A deploy file calls a step of a package, which calls a helper of pyinfra's (a file under pyinfra's
# folder, skipped by both), which asks for the order: the shape of a real deploy's stack.
DEPLOY = """
def step():
    for _ in range(2):
        pass
    return HELPER()
RESULT = step()
"""
PYINFRA_HELPER = """
def helper():
    return BOTH(STATE)
"""


def both(state):
    """pyinfra's order and ours, asked from the same line (each records its caller's line)."""
    return util.get_operation_order_from_stack(state), planning.operation_order(state)


def run_deploy(tmp_path, state) -> tuple[list[int], list[int]]:
    deploy_file = tmp_path / "deploy.py"
    deploy_file.write_text(DEPLOY)
    helper_globals = {"BOTH": both, "STATE": state}
    exec(compile(PYINFRA_HELPER, f"{util.PYINFRA_INSTALL_DIR}/operations/fake.py", "exec"), helper_globals)
    deploy_globals = {"HELPER": helper_globals["helper"]}
    exec(compile(DEPLOY, str(deploy_file), "exec"), deploy_globals)
    return deploy_globals["RESULT"]


@pytest.mark.parametrize("is_cli", [True, False])
@pytest.mark.parametrize("deploy_file", ["this run's", "another", None])
def test_the_order_is_pyinfras(tmp_path, monkeypatch, is_cli, deploy_file):
    monkeypatch.setattr(pyinfra, "is_cli", is_cli)
    current = {"this run's": str(tmp_path / "deploy.py"), "another": str(tmp_path / "other.py"), None: None}
    state = SimpleNamespace(current_deploy_filename=current[deploy_file], current_op_file_number=3)
    theirs, ours = run_deploy(tmp_path, state)
    assert ours == theirs
    if deploy_file == "this run's":  # the deploy file's two lines, not the helper in pyinfra's folder
        assert ours[-3:-1] == [6, 5]


def test_install_makes_pyinfras_operations_use_it(monkeypatch):
    operation = sys.modules["pyinfra.api.operation"]
    monkeypatch.setattr(operation, "get_operation_order_from_stack", util.get_operation_order_from_stack)
    planning.install()
    assert operation.get_operation_order_from_stack is planning.operation_order


def test_the_global_arguments_are_pyinfras_derived_once(monkeypatch):
    from pyinfra.api import arguments

    theirs = planning._pyinfra_global_arguments()
    assert planning.global_arguments() == theirs and len(theirs) > 10
    monkeypatch.setattr(arguments, "all_global_arguments", planning._pyinfra_global_arguments)
    planning.install()
    assert arguments.all_global_arguments is planning.global_arguments
    # what pyinfra does with them: an operation's global arguments, from its kwargs and defaults
    host = SimpleNamespace(current_deploy_kwargs=None, data=SimpleNamespace())
    state = SimpleNamespace(config=pyinfra.api.Config())
    popped, found = arguments.pop_global_arguments(state, host, {"_sudo": True, "path": "/x"})
    assert popped["_sudo"] is True and found == ["_sudo"] and set(popped) == {name for name, _ in theirs}


def test_install_leaves_a_pyinfra_it_does_not_know_alone(monkeypatch):
    operation = sys.modules["pyinfra.api.operation"]

    def elsewhere(state):
        return []

    def other_arguments():
        return []

    from pyinfra.api import arguments

    monkeypatch.setattr(operation, "get_operation_order_from_stack", elsewhere)
    monkeypatch.setattr(arguments, "all_global_arguments", other_arguments)
    planning.install()
    assert operation.get_operation_order_from_stack is elsewhere
    assert arguments.all_global_arguments is other_arguments


def test_the_deploy_installs_it_when_imported():
    """A deploy file's `from smart_redis import deploy_redis` is all it takes (a fresh interpreter:
    this one has imported smart_redis already)."""
    found = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, smart_redis; "
            "print(sys.modules['pyinfra.api.operation'].get_operation_order_from_stack.__qualname__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert found.stdout.strip() == "operation_order"
