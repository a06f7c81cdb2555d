"""The Run record: what this run knows and has done on each host, one record per pyinfra State.

Every step that remembers something across hosts or operations keeps it here, nowhere else:
a second run in the same process (the benchmark, a test) starts with a fresh record. It also
holds the one definition of the group (the inventory's groups, never what a server answers)
and the barrier that cross-host steps pass before they change a host.

    from smart_redis import run
    run.current().deferred[host.name] = ...
    run.barrier("accept the new passwords")   # inside an operation, at execution
"""

from __future__ import annotations

import shlex
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar
from weakref import WeakKeyDictionary

import gevent  # type: ignore[import-untyped]
from pyinfra import host, inventory, logger, state
from pyinfra.api import OperationError, StringCommand, operation
from pyinfra.api.command import FunctionCommand
from pyinfra.context import ctx_host, ctx_state

from .host.server import REDIS, Server

T = TypeVar("T")

# The inventory groups that make a Sentinel group: the one place that names them.
GROUPS = ("redis_primary", "redis_replicas", "redis_sentinels")
SERVER_GROUPS = ("redis_primary", "redis_replicas")


@dataclass
class Run:
    # operations.host_state: host name -> its last RedisHost answer (operations.Answer)
    answers: dict[str, Any] = field(default_factory=dict)
    # operations.expect_live: host name -> what its RedisHost answers also ask the running server (LiveProbe)
    live_probes: dict[str, Any] = field(default_factory=dict)
    # handover: host name -> its primary's restart waiting for the handover; whether one happened
    deferred: dict[str, Any] = field(default_factory=dict)
    handed_over: bool = False
    # rotation: hosts whose rotation this run ended; the new shared passwords of this run
    retired: set[str] = field(default_factory=set)
    renewed: dict[str, str] | None = None
    # pm2: host name -> (check arguments, early answer); host name -> what the check said
    pm2_early: dict[str, tuple[str, str | None]] = field(default_factory=dict)
    pm2_answers: dict[str, list[str]] = field(default_factory=dict)
    # auth: a Sentinel group's first passwords, made by this run for a shared file not written yet
    first_shared: dict[str, str] | None = None
    # What is made once per run and kept until written (once): the project's new CA, new certificates
    made: dict[str, Any] = field(default_factory=dict)
    # Files on the operator's machine that this run decided to write (path -> writer): written by
    # the first executing operation, so --dry and a declined prompt leave them alone.
    local_writes: dict[str, Callable[[], None]] = field(default_factory=dict)
    # deploy_redis: host name -> the server it runs (settings.server), for the steps without settings
    servers: dict[str, Any] = field(default_factory=dict)


# pyinfra's State -> its Run. Weak: the record goes with the run.
_runs: WeakKeyDictionary[Any, Run] = WeakKeyDictionary()


def current() -> Run:
    return _runs.setdefault(ctx_state.get(), Run())


def in_a_run() -> bool:
    return ctx_state.isset()


def serve(server: Server) -> None:
    """Record the server (redis_server) that the current host runs: deploy_redis, first."""
    current().servers[host.name] = server


def server() -> Server:
    """The server the current host runs, as deploy_redis recorded it (Redis outside a deploy)."""
    return current().servers.get(host.name, REDIS) if in_a_run() else REDIS


def once(key: str, make: Callable[[], T]) -> T:
    """What make() returns, made once per run: every host of the run gets the same (outside a run,
    a script or a test, it is made at each call)."""
    if not in_a_run():
        return make()
    made = current().made
    if key not in made:
        made[key] = make()
    return made[key]


def group_hosts(groups: tuple[str, ...] = GROUPS) -> list[Any]:
    """The inventory's hosts of the Sentinel group (or of the given groups), each once, in order."""
    seen: dict[str, Any] = {}
    for group in groups:
        for member in inventory.get_group(group, []):
            seen.setdefault(member.name, member)
    return list(seen.values())


def _activated() -> set[str]:
    return {h.name for h in getattr(state, "activated_hosts", ())}


def _failed() -> set[str]:
    return {h.name for h in getattr(state, "failed_hosts", ())}


def all_in_run(groups: tuple[str, ...] = GROUPS) -> bool:
    """Every host of the inventory's group (or groups) is a host of this run: no --limit left one out."""
    return {h.name for h in group_hosts(groups)} <= _activated()


def whole_group(groups: tuple[str, ...] = GROUPS) -> bool:
    """Every host of the inventory's group is in this run (no --limit) and none of them has failed."""
    return {h.name for h in group_hosts(groups)} <= _activated() - _failed()


def later_on(other: Any) -> list[str]:
    """Operations before the current one (in the run's order) that `other` has not completed with success."""
    order = state.get_op_order()
    here = order.index(host.current_op_hash) if host.current_op_hash in order else len(order)
    ops = state.ops.get(other, {})
    pending = []
    for op_hash in order[:here]:
        data = ops.get(op_hash)
        if data is not None and not (data.operation_meta.is_complete() and data.operation_meta._success):
            pending.append(", ".join(state.get_op_meta(op_hash).names) or op_hash)
    return pending


def _mode() -> str:
    """How pyinfra executes this run: "ordered" (each operation on every host before the next),
    "serial" (--serial: one host's whole deploy after the other) or "no-wait" (--no-wait)."""
    runner = getattr(getattr(gevent.getcurrent(), "_run", None), "__name__", "")
    return {"_run_host_op_with_context": "ordered", "_run_host_ops": "no-wait"}.get(runner, "serial")


def barrier(step: str) -> None:
    """At execution, before `step` changes the current host: every group host of this run has
    completed each earlier operation with success. Only then did each one take the earlier
    cross-host steps (accept before switch, switch before retire), whatever the run's mode."""
    if not getattr(state, "is_executing", False) or not any(h.name == host.name for h in group_hosts()):
        return
    for other in group_hosts():
        if other.name == host.name or other.name not in _activated():
            continue
        failed = other.name in _failed()
        if failed or later_on(other):
            why = "it failed in this run" if failed else "it has not finished the steps before it"
            raise OperationError(f"{step}: not on {host.name} while {other.name} of the group is behind ({why})")


def write_locally(path: str, writer: Callable[[], None]) -> None:
    """Have the run's first executing operation write this file on the operator's machine (once).
    Outside a pyinfra run (a script, a test) there is no plan to confirm: it is written at once."""
    if not ctx_state.isset():
        writer()
        return
    current().local_writes.setdefault(path, writer)


def _write_local(state: Any, host: Any) -> bool:
    for path, writer in list(current().local_writes.items()):
        writer()
        del current().local_writes[path]
        logger.info(f"Wrote {path}")
    return True


@operation()
def start(group: bool):
    """
    The run's first operation, after every decision of the plan: refuse a mode that breaks the
    group's order, then write what the run decided to keep on the operator's machine
    (write_locally). Sends no command to a host.

    + group: the inventory has a Sentinel group

    **Example:**

    .. code:: python

        start(name="Start the run", group=True)
    """
    if group and getattr(state, "is_executing", False) and _mode() != "ordered":
        # A failing command, not an exception: pyinfra reports it per host in every mode (it
        # swallows an operation's exception under --serial); and the host marked failed, as
        # --no-wait otherwise ends with exit code 0 whatever failed.
        state.failed_hosts.add(ctx_host.get())
        message = (
            f"--{_mode()}: refused for a run with a Sentinel group; its steps must reach every host of the group "
            "before the next starts anywhere: run without --serial and --no-wait"
        )
        yield StringCommand(f"echo {shlex.quote(message)} >&2; exit 1")
        return
    if current().local_writes:
        yield FunctionCommand(_write_local, (), {})
