"""Issue 15: the package as another team uses it: the built wheel in a fresh venv, no checkout.

The wheel is built from a copy of the sources (a build never leaves build/ in the checkout, nor
takes a stale file from it), installed into a new venv outside the checkout with its
dependencies from pip's index, and a three-line deploy file in another folder converges a
container with that venv's pyinfra, then converges it again with nothing to change.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, redis

DEPLOY = "from smart_redis import deploy_redis\n\ndeploy_redis()\n"


def _run(command: list[str], cwd: Path, env: dict[str, str], timeout: int = 600) -> subprocess.CompletedProcess:
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{command[:3]} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    return result


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """(venv, deploy folder, clean environment, seconds to build and install)."""
    started = time.monotonic()
    work = tmp_path_factory.mktemp("package")
    # Nothing of the checkout may reach the venv's Python but the wheel itself.
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")}
    source = work / "source"
    source.mkdir()
    shutil.copy2(ROOT / "pyproject.toml", source)
    shutil.copytree(ROOT / "smart_redis", source / "smart_redis", ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    _run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--quiet", "-w", str(work / "dist"), str(source)], work, env
    )
    (wheel,) = (work / "dist").glob("smart_redis-*.whl")
    venv = work / "venv"
    _run([sys.executable, "-m", "venv", str(venv)], work, env)
    _run([str(venv / "bin" / "pip"), "install", "--quiet", str(wheel)], work, env)
    site = work / "site"  # the other team's deploy: no group_data, no inventory, nothing of ours
    site.mkdir()
    (site / "deploy.py").write_text(DEPLOY)
    return venv, site, env, time.monotonic() - started


def test_the_installed_package_is_the_wheel_alone(installed):
    venv, site, env, _ = installed
    probe = "import smart_redis, sys; print(smart_redis.__file__); print(repr(sys.path))"
    where, path = _run([str(venv / "bin" / "python"), "-c", probe], site, env).stdout.splitlines()
    assert Path(where).is_relative_to(venv)
    assert str(ROOT) not in path
    # the package data that a wheel without it once lacked: templates (and defaults, in code)
    render = "from smart_redis import render, settings; print(render.redis_conf(settings.load({}), {'APP': 'a', 'ADMIN': 'b', 'EXPORTER': 'c'}))"
    assert "maxmemory 512mb" in _run([str(venv / "bin" / "python"), "-c", render], site, env).stdout


def test_a_three_line_deploy_converges_a_container_and_then_changes_nothing(installed, new_container, docker_testbed):
    venv, site, env, install_seconds = installed
    name = new_container("package", bare=True)  # a newcomer's first host: nothing on it yet
    command = [
        str(venv / "bin" / "pyinfra"),
        "-y",
        "--json",
        "--data",
        "pm2_ecosystem_file=None",
        f"@docker/{name}",
        "deploy.py",
    ]
    started = time.monotonic()
    first = _run(command, site, env)
    first_seconds = time.monotonic() - started
    assert redis(name, "ping") == "PONG"
    assert redis(name, "config", "get", "maxmemory").split() == ["maxmemory", "536870912"]  # the package's default
    started = time.monotonic()
    second = _run(command, site, env)
    second_seconds = time.monotonic() - started
    assert json.loads(second.stdout)["results"]["totals"]["success"] == 0, second.stderr[-3000:]
    assert json.loads(first.stdout)["results"]["totals"]["success"] > 0
    print(
        f"\nwheel built and installed in a fresh venv: {install_seconds:.0f} s; "
        f"first deploy {first_seconds:.0f} s; second {second_seconds:.0f} s"
    )
    docker_testbed.remove_container(name)
