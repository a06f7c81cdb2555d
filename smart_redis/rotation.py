"""New passwords reach a running server or Sentinel group without a restart or a failed command.

A run that replaces a stored password (a new one given, the group's shared file changed, or
redis_rotate_passwords) keeps the host's credentials file as it was (keep_previous), writes the
new passwords, and then, each step on every host before the next starts anywhere:

    accept           every server and sentinel takes the new password beside the old one
    (switch)         masterauth, Sentinel's logins, REDIS_URL and the PM2 reload move to it
    switch_sentinel  Sentinel's auth-pass and sentinel-pass
    retire           the old passwords are removed, last, once nothing uses them

The host side is smart_redis/host/rotation.py. A run that stopped in between leaves the kept
file on the host, which makes the next run repeat the steps (each is idempotent) and finish.
A run without a rotation sends no command for any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import OperationError
from pyinfra.context import ctx_host, ctx_state

from . import auth, run
from .constants import PATHS
from .facts import HostState
from .operations import host_state, operation
from .settings import Settings, SettingsError, operator_path
from .tools import step
from .topology import Topology


def group_intact() -> bool:
    """Every host of the inventory's Sentinel group is in this run and none of them has failed."""
    return run.whole_group()


def _unfinished_on() -> list[str]:
    """The group's hosts that keep the passwords of a rotation that has not ended."""
    found = []
    for other in run.group_hosts():
        with ctx_host.use(other):
            if PATHS.credentials_previous in host_state().files:
                found.append(other.name)
    return found


def renew_shared_passwords(settings: Settings, topology: Topology, given: dict[str, str]) -> dict[str, str]:
    """redis_rotate_passwords in a Sentinel group: the passwords this run gives every host instead,
    new ones (the ones given in the environment kept), the same for every host of the run.

    Only when the whole group is in the run and no rotation is unfinished: the new passwords would
    otherwise reach a file that names passwords some host never accepts. The run's first executing
    operation writes them to the group's file (run.start), so a --dry run or a declined prompt
    leaves it byte-identical.
    """
    if not (settings.rotate_passwords and topology.ha) or ctx_state.get() is None:
        return given
    # The hosts are planned side by side: the checks below ask the others' facts, and another
    # host's planning runs meanwhile. So every host checks, and the first to get past its checks
    # gives its new passwords to all (setdefault: nothing runs in between).
    if not group_intact():
        raise SettingsError(
            "redis_rotate_passwords = True: allowed only in a run of every host of the Sentinel group (no --limit)"
        )
    unfinished = _unfinished_on()
    if unfinished:
        raise SettingsError(
            f"redis_rotate_passwords = True: allowed once the earlier rotation has ended; it has not on "
            f"{', '.join(unfinished)}: run the deploy once without it (docs/planned-changes.md)"
        )
    record = run.current()
    if record.renewed is None:  # nothing runs between the check and the assignment
        record.renewed = auth.new_shared_passwords(auth.operator_passwords())
        path, renewed = operator_path(settings.ha_secrets_file), record.renewed
        run.write_locally(str(path), lambda: _write_renewed(path, renewed))
    return {**given, **record.renewed}


def _write_renewed(path: Path, passwords: dict[str, str]) -> None:
    """Before any host takes the new shared passwords: the group's file records them."""
    auth.write_shared(path, passwords)
    logger.warning(f"New shared passwords in {path}: the group moves to them in this run")


def in_progress(settings: Settings, given: Mapping[str, str], facts: HostState, topology: Topology) -> bool:
    """This run replaces a stored password, or an earlier run's rotation is not finished on the host."""
    if settings.auth == "none":
        return False
    if PATHS.credentials_previous in facts.files:
        return True
    stored = facts.secret_hashes
    if settings.rotate_passwords and not topology.ha and stored:  # a group's come in `given`
        return True
    return any(role in stored and auth.sha256(value) != stored[role] for role, value in given.items())


def renewed_roles(settings: Settings, topology: Topology, given: Mapping[str, str]) -> list[str]:
    """What the host generates anew with redis_rotate_passwords (a group's come from its shared file)."""
    if not settings.rotate_passwords or topology.ha:
        return []
    return [role for role in ("APP", "ADMIN") if role not in given]


def _sentinel_port(settings: Settings, topology: Topology) -> list[str | int]:
    return ["--sentinel-port", settings.sentinel_port] if topology.runs_sentinel else []


@operation()
def keep_previous(rotating: bool):
    """
    Keep the credentials file as it is before new passwords replace the stored ones.

    + rotating: this run rotates passwords (in_progress)

    **Example:**

    .. code:: python

        keep_previous(rotating=True)
    """
    if not rotating:
        host.noop("no password changes")
        return
    if PATHS.credentials_previous in host_state().files:
        host.noop("the passwords of an unfinished rotation are kept from an earlier run")
        return
    yield step("passwords", "keep-previous")


@operation()
def accept(settings: Settings, topology: Topology, rotating: bool):
    """
    Let this host's server (and sentinel) accept each new password beside the one it replaces.

    + settings, topology: whether a sentinel runs here, and its port
    + rotating: this run rotates passwords (in_progress)

    **Example:**

    .. code:: python

        accept(settings=settings, topology=topology, rotating=True)
    """
    if not rotating:
        host.noop("no password rotation")
        return
    run.barrier("accept the new passwords")
    yield step("passwords", "accept", *_sentinel_port(settings, topology))


@operation()
def switch_sentinel(settings: Settings, topology: Topology, rotating: bool):
    """
    Make this host's sentinel log in to the servers and the other sentinels with the new password.

    + settings: the Sentinel port and master name
    + topology, rotating: only a sentinel's host, only during a rotation

    **Example:**

    .. code:: python

        switch_sentinel(settings=settings, topology=topology, rotating=True)
    """
    if not (rotating and topology.runs_sentinel):
        host.noop("no Sentinel password rotation")
        return
    require_group_intact()
    run.barrier("Sentinel's logins move to the new password")
    yield step(
        "passwords", "switch-sentinel", "--sentinel-port", settings.sentinel_port,
        "--master-name", settings.ha_master_name,
    )  # fmt: skip


@operation()
def retire(settings: Settings, topology: Topology, rotating: bool):
    """
    Remove the replaced passwords from this host's server (and sentinel), ending the rotation.

    In a Sentinel group only once every host of it came this far in the run: a host left out
    (--limit) or failed may still use them.

    + settings, topology: whether a sentinel runs here, and its port
    + rotating: this run rotates passwords (in_progress)

    **Example:**

    .. code:: python

        retire(settings=settings, topology=topology, rotating=True)
    """
    if not rotating:
        host.noop("no password rotation")
        return
    if topology.ha and not group_intact():
        host.log(
            "The previous passwords stay accepted: a host of the group failed in this run; "
            "the next run of the whole group ends the rotation",
            logger.warning,
        )
        return
    run.barrier("retire the replaced passwords")
    run.current().retired.add(host.name)
    yield step("passwords", "retire", *_sentinel_port(settings, topology))


def retired_here() -> bool:
    """This run has ended the rotation on the current host."""
    return host.name in run.current().retired


def require_group_intact() -> None:
    """Before a login moves to a new password: a host of the group that failed may not accept it."""
    if not group_intact():
        raise OperationError(
            "the password rotation stops before any login moves to the new passwords: a host of the group "
            "failed in this run; the next run of the whole group carries on"
        )


def begin(settings: Settings, topology: Topology, given: Mapping[str, str], facts: HostState) -> bool:
    """Whether this run rotates passwords on the host; if so, the stored ones are kept first.

    Refused before anything changes: in a Sentinel group, a run without every host of it (each
    must accept a new password before any login moves to it); and new passwords on a host where
    an earlier rotation has not ended (the logins may be on either of the two it keeps).
    """
    rotating = in_progress(settings, given, facts, topology)
    if rotating and topology.ha and not group_intact():
        raise SettingsError(
            "a password rotation runs (a new password, or an earlier one not finished): allowed only in a run of "
            "every host of the Sentinel group (no --limit)"
        )
    unfinished = PATHS.credentials_previous in facts.files
    stored = facts.secret_hashes
    if unfinished and (
        any(role in stored and auth.sha256(value) != stored[role] for role, value in given.items())
        or renewed_roles(settings, topology, given)
    ):
        raise SettingsError(
            "new passwords: allowed once the earlier rotation has ended on this host; run the deploy once "
            "without them (docs/planned-changes.md)"
        )
    if planned(topology, rotating):
        keep_previous(name="Keep the replaced passwords until nothing uses them", rotating=rotating)
    return rotating


def planned(topology: Topology, rotating: bool) -> bool:
    """Whether the rotation's steps are in this host's plan: when it rotates, and on every host of
    a Sentinel group (each step's cross-host check counts them); a single server without a
    rotation has none of them (fewer operations to plan: BENCHMARKS.md)."""
    return rotating or topology.ha


def accept_new(settings: Settings, topology: Topology, rotating: bool) -> None:
    if planned(topology, rotating):
        accept(
            name="Accept the new passwords beside the old ones", settings=settings, topology=topology, rotating=rotating
        )


def sentinel_logins(settings: Settings, topology: Topology, rotating: bool) -> None:
    if topology.runs_sentinel:
        switch_sentinel(
            name="Sentinel logs in with the new password", settings=settings, topology=topology, rotating=rotating
        )


def finish(settings: Settings, topology: Topology, rotating: bool) -> None:
    if planned(topology, rotating):
        retire(name="Retire the replaced passwords", settings=settings, topology=topology, rotating=rotating)
