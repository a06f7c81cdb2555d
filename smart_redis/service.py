"""The server's systemd service (redis-server or valkey-server): container sandbox drop-in, enabled, running, restarted on change."""

from __future__ import annotations

from collections.abc import Sequence

from .constants import BACKUP_SERVICE, BACKUP_TIMER, EXPORTER_SERVICE
from .facts import HostState
from .operations import File, Placed, no_file_changed, place_files, reload_units, service_running
from .render import render


def container_dropin() -> str:
    """The drop-in that lets redis-server and redis-sentinel start inside a container."""
    return render("container-dropin.conf.j2")


def container_sandbox(facts: HostState) -> File | None:
    """Relax PrivateUsers inside containers; on a real host the packaged unit stays intact.
    Placed with the other units before the install (before_install)."""
    if not facts.container:
        return None
    return File(facts.server.container_dropin, container_dropin())


def before_install(facts: HostState, units: Sequence[File | None], *others: File) -> Placed:
    """The drop-ins and units that must be in place before the packages start their services
    (the container sandbox, the exporter's drop-in, the backup job and timer), and `others` that
    may as well go with them: one command for all, and one daemon-reload for a changed unit.

    No daemon-reload of its own when this run installs the server's package anew (not installed, or its config files
    only): its maintainer script's configure reloads systemd before it starts the service
    (debhelper's dh_installsystemd), which loads them all, and a run that fails before that
    installs the package, and so reloads, in the next run. (A package left with its triggers
    pending only gets them processed: no reload, so the deploy's own.)"""
    files = [unit for unit in units if unit is not None]
    placed = place_files("Units and files before the install", [*files, *others])
    if facts.redis_version is None and facts.server.service in facts.missing_packages:
        return placed
    services = (facts.server.service, EXPORTER_SERVICE, BACKUP_SERVICE, BACKUP_TIMER)
    reload_units(services, placed.any_of(*(f.dest for f in files)), facts=facts)
    return placed


def redis_server(facts: HostState, units: Placed, sandbox: File | None, moving: bool = False) -> None:
    """Enabled and running; restarted here only for a new sandbox drop-in (config changes restart
    themselves in config.py, and only when Redis cannot take them at runtime).

    A failed run cannot lose this restart for good: inside a container redis-server does not
    start at all with PrivateUsers on (status 217/USER), so a server that runs there already runs
    without it, and one that does not run is started by service_running on the next run, after
    the reload that NeedDaemonReload asks for. The restart only makes a changed drop-in take effect.
    """
    if moving:
        return  # the old server holds the port: the move starts this one (move.py)
    service = facts.server.service
    service_running(name=f"Enable and start {service}", service=service)
    if sandbox is not None and facts.redis_version:  # a new install starts in the sandbox anyway
        no_file_changed(
            name=f"Restart {service} in its new sandbox",
            commands=[f"systemctl restart {service}"],
            _if=units.any_of(sandbox.dest),
        )
