"""redis_server changed on a single server that runs the other program: it moves, with its data.

Decided once per run from the host's state (moving_from), before anything changes: the new
server is kept stopped while its package installs (the old one holds the port), the config step
hands over to the host's move step (smart_redis/host/move.py), and the old packages go once the
new server runs on the data. A data file the new server cannot load is refused here, in one line.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyinfra import host, logger

from . import run
from .facts import HostState
from .handover import at_least
from .host.server import SERVERS, Server
from .install import loads_rdb
from .operations import no_file_changed
from .preflight import PreflightError, major_version
from .settings import Settings
from .topology import Topology


@dataclass(frozen=True)
class Move:
    old: Server
    done: bool  # the new server runs already (a run that stopped before the old packages went)


def moving_from(settings: Settings, facts: HostState, topology: Topology) -> Move | None:
    """The move this run makes, if the host runs the other server; refused where it cannot work."""
    others = [s for s in SERVERS.values() if s != settings.server and s.service in facts.installed_packages]
    if not others:
        return None
    old, new = others[0], settings.server
    if facts.active == "active":
        if facts.other_enabled == "masked" and facts.other_active != "active":
            return Move(old, done=True)  # a move masked it at its stop: only its packages are left
        return None  # the deploy's server runs; another one installed beside it is the operator's
    if topology.ha:
        _group_can_move(settings, facts, topology, old, new)
    if settings.rotate_passwords:
        # The rotation's host steps would ask the new server's config for the port it runs on.
        raise PreflightError(
            f"redis_rotate_passwords: not in the run that moves this host from {old.service} to {new.service}; "
            "move first, then rotate in a run of its own"
        )
    writes = loads_rdb(facts.other_version or "", old.name)  # a server writes the newest format it loads
    loads = loads_rdb(f"{major_version(settings, facts)}.0", new.name)
    if writes is None or loads is None or writes > loads:
        raise PreflightError(
            f'redis_server = "{new.name}": this host\'s {old.service} {facts.other_version or "(unknown version)"} '
            f"writes RDB format {writes}, and {new.service} {major_version(settings, facts)}.x loads up to {loads}: "
            f"the move would not keep the data, so it is refused (docs/valkey.md)"
        )
    how = (
        "as a replica of the group's primary, the primary last after its handover"
        if topology.ha
        else "it starts on the data"
    )
    host.log(
        f"Moving from {old.service} {facts.other_version} to {new.service}: {how}, or {old.service} runs again as it was",
        logger.warning,
    )
    return Move(old, done=False)


def _group_can_move(settings: Settings, facts: HostState, topology: Topology, old: Server, new: Server) -> None:
    """A Sentinel group moves host by host in one run (config.py: the replicas, the handover, then
    the old primary as a replica): every host of it takes part. With TLS too: the files keep their
    names, and stay the old server's group until the host's own move step gives them to the new
    one (host/move.py; an undone move gives them back)."""
    if not run.all_in_run(run.GROUPS):
        raise PreflightError(
            f'redis_server = "{new.name}": a Sentinel group moves from {old.service} to {new.service} with every '
            "host of it in the run (the primary hands its role to a moved replica): run it without --limit"
        )
    if not at_least(facts.other_version, (6, 2)) or topology.members < 2:
        # its primary moves last, as a replica, after handing its role over (CLIENT PAUSE WRITE: 6.2)
        raise PreflightError(
            f'redis_server = "{new.name}": a Sentinel group moves to {new.service} through a handover of its '
            f"primary, which needs {old.service} 6.2 or later (this host runs {facts.other_version or 'an unknown version'}) "
            "and a replica"
        )


def runs_now(move: Move | None, wanted: Server) -> Server:
    """The server this host runs until its move step in this run: the old one while a move is to come."""
    return move.old if move is not None and not move.done else wanted


def hold_new_server(move: Move | None, facts: HostState) -> None:
    """The new server's package would start it on the port the old one holds: masked until the move."""
    if move is None or move.done or facts.enabled == "masked":
        return
    service = facts.server.service
    no_file_changed(name=f"Keep {service} stopped until the move", commands=[f"systemctl mask {service}"])


def remove_old(move: Move | None, facts: HostState) -> None:
    """The old server's packages, once the new one runs on the data (its files stay: the way back)."""
    if move is None:
        return
    # moving_from found the old server's package installed, so the list holds it at least. dpkg,
    # not apt: it refuses to remove them from under another package that needs them.
    packages = [p for p in (*move.old.packages, move.old.sentinel_service) if p in facts.installed_packages]
    no_file_changed(
        name=f"Remove {', '.join(packages)}: {facts.server.service} runs in its place",
        commands=[f"DEBIAN_FRONTEND=noninteractive dpkg --remove {' '.join(packages)}"],
    )
