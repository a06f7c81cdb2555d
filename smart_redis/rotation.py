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

from pyinfra import host, inventory, logger, state

from . import auth
from .constants import PATHS
from .facts import HostState
from .operations import host_state, operation
from .settings import Settings
from .tools import step
from .topology import GROUPS, Topology


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
    yield step(
        "passwords", "switch-sentinel", "--sentinel-port", settings.sentinel_port,
        "--master-name", settings.ha_master_name,
    )  # fmt: skip


def _whole_group_went_on() -> bool:
    """Every host of the inventory's group is in this run and none of them failed: then nothing
    of the group uses an old password any more."""
    failed = {h.name for h in getattr(state, "failed_hosts", ())}
    in_run = {h.name for h in getattr(state, "activated_hosts", ())} - failed
    return {h.name for group in GROUPS for h in inventory.get_group(group, [])} <= in_run


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
    if topology.ha and not _whole_group_went_on():
        host.log(
            "The previous passwords stay accepted: not every host of the group is in this run or got this far; "
            "a run with all of them ends the rotation",
            logger.warning,
        )
        return
    yield step("passwords", "retire", *_sentinel_port(settings, topology))


def begin(settings: Settings, topology: Topology, given: Mapping[str, str], facts: HostState) -> bool:
    """Whether this run rotates passwords on the host; if so, the stored ones are kept first."""
    rotating = in_progress(settings, given, facts, topology)
    keep_previous(name="Keep the replaced passwords until nothing uses them", rotating=rotating)
    return rotating


def accept_new(settings: Settings, topology: Topology, rotating: bool) -> None:
    accept(name="Accept the new passwords beside the old ones", settings=settings, topology=topology, rotating=rotating)


def sentinel_logins(settings: Settings, topology: Topology, rotating: bool) -> None:
    if topology.runs_sentinel:
        switch_sentinel(
            name="Sentinel logs in with the new password", settings=settings, topology=topology, rotating=rotating
        )


def finish(settings: Settings, topology: Topology, rotating: bool) -> None:
    retire(name="Retire the replaced passwords", settings=settings, topology=topology, rotating=rotating)
