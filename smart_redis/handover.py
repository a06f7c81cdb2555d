"""The primary of a Sentinel group restarts only after it has handed its role to a replica.

Configuring redis.conf runs host after host. The primary's turn, when its change needs a
restart, checks that the group is whole, leaves the validated new file beside the running one
and notes the restart here; once every replica has restarted
(each back in sync before the next), `hand_over` moves the primary role to one of them
(smart_redis/host/handover.py), and configuring runs once more: the old primary restarts as a
replica of the new one, and every host's redis.conf names the new primary, so a re-run changes
nothing. A run without a handover sends no command for either step.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host, logger

from . import run
from .host.server import Server
from .operations import operation
from .settings import Settings
from .tools import step
from .topology import Topology


@dataclass(frozen=True)
class Deferred:
    """A primary's restart, left for after the handover."""

    port: int  # where the server runs now
    auth: str  # and the auth it runs with
    primary: str  # "IP PORT" as the sentinels name this server
    reasons: tuple[str, ...]
    runs: Server | None = None  # the server it runs now, where the host moves to the other one


def wanted(topology: Topology, primary: str | None, joining: bool, version: str | None, whole_group: bool) -> bool:
    """This host is the primary the sentinels name, with replicas to hand over to.

    version: its Redis (CLIENT PAUSE WRITE needs 6.2); whole_group: every Redis server of the
    group is in this run (not left out by --limit), so that each one's redis.conf follows.
    """
    return (
        topology.replicated
        and topology.members > 1
        and not joining
        and primary is not None
        and primary.split()[0] == topology.address
        and at_least(version, (6, 2))
        and whole_group
    )


def at_least(version: str | None, wanted: tuple[int, int]) -> bool:
    try:
        major, minor = (int(part) for part in (version or "").split(".")[:2])
    except ValueError:
        return False
    return (major, minor) >= wanted


def whole_group_in_run() -> bool:
    """Every Redis server of the inventory's group is a host of this run."""
    return run.all_in_run(run.SERVER_GROUPS)


def defer(restart: Deferred) -> None:
    host.log(
        f"Not restarting the primary in place ({'; '.join(restart.reasons)}): after the replicas, it hands "
        "its role to one of them and restarts as a replica",
        logger.warning,
    )
    run.current().deferred[host.name] = restart


def happened() -> bool:
    """A primary of this run has handed its role over: every host follows the new primary."""
    return run.current().handed_over


@operation()
def hand_over(settings: Settings, topology: Topology):
    """
    Move the primary role to an in-sync replica through Sentinel, when this host's restart waits for it.

    + settings: the Sentinel port and master name
    + topology: the sentinels to ask

    **Example:**

    .. code:: python

        hand_over(name="Hand the primary role to a replica", settings=settings, topology=topology, _serial=True)
    """
    restart = run.current().deferred.get(host.name)
    if restart is None:
        host.noop("no restart waits for a handover")
        return
    run.barrier("hand the primary role over")
    run.current().handed_over = True
    host.log(f"Handing the primary role of {restart.primary.replace(' ', ':')} to a replica", logger.warning)
    yield step(
        "handover", "--port", restart.port, "--auth", restart.auth, "--me", restart.primary,
        "--members", *topology.servers, "--sentinels", *topology.sentinels, "--sentinel-port", settings.sentinel_port,
        "--master-name", settings.ha_master_name, server=restart.runs,
    )  # fmt: skip
