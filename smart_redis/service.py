"""The server's systemd service (redis-server or valkey-server): container sandbox drop-in, enabled, running, restarted on change."""

from __future__ import annotations

from pyinfra.api.operation import OperationMeta

from .constants import BACKUP_SERVICE, BACKUP_TIMER, EXPORTER_SERVICE
from .facts import HostState
from .operations import managed_file, no_file_changed, reload_units, service_running
from .render import render


def container_dropin() -> str:
    """The drop-in that lets redis-server and redis-sentinel start inside a container."""
    return render("container-dropin.conf.j2")


def container_sandbox(facts: HostState) -> OperationMeta | None:
    """Relax PrivateUsers inside containers; on a real host the packaged unit stays intact.
    systemd loads it with the exporter's drop-in (units_before_install)."""
    if not facts.container:
        return None
    return managed_file(
        name=f"Let {facts.server.service} start inside a {facts.container} container",
        dest=facts.server.container_dropin,
        content=container_dropin(),
    )


def units_before_install(facts: HostState, *written: OperationMeta | None) -> None:
    """One daemon-reload for the drop-ins and units written before the packages start their
    services (the container sandbox, the exporter's drop-in, the backup job and timer).

    None when this run installs the server's package anew (not installed, or its config files
    only): its maintainer script's configure reloads systemd before it starts the service
    (debhelper's dh_installsystemd), which loads them all, and a run that fails before that
    installs the package, and so reloads, in the next run. (A package left with its triggers
    pending only gets them processed: no reload, so the deploy's own.)"""
    if facts.redis_version is None and facts.server.service in facts.missing_packages:
        return
    reload_units((facts.server.service, EXPORTER_SERVICE, BACKUP_SERVICE, BACKUP_TIMER), *written, facts=facts)


def redis_server(facts: HostState, sandbox: OperationMeta | None, moving: bool = False) -> None:
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
            _if=sandbox.did_change,
        )
