"""prometheus-redis-exporter: on 127.0.0.1 only, logged in as its own least-privilege ACL user."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.operations import server, systemd
from pyinfra.operations.util import any_changed

from .constants import EXPORTER_PACKAGE, EXPORTER_SERVICE, PATHS
from .facts import HostState
from .operations import managed_file
from .settings import Settings


def dropin(settings: Settings) -> str:
    listen = f"127.0.0.1:{settings.exporter_port}"
    address = f"redis://127.0.0.1:{settings.port}"
    if settings.auth == "none":
        command = f"/usr/bin/prometheus-redis-exporter -web.listen-address {listen} -redis.addr {address}"
        env = ""
    else:
        # $$ reaches the shell as $: the password goes from the credentials file into the
        # exporter's environment, never into its arguments.
        command = (
            "/bin/sh -c 'REDIS_USER=\"$$REDIS_EXPORTER_USER\" REDIS_PASSWORD=\"$$REDIS_EXPORTER_PASSWORD\" "
            f"exec /usr/bin/prometheus-redis-exporter -web.listen-address {listen} -redis.addr {address}'"
        )
        # "-": at the package's first start the credentials do not exist yet; a restart follows.
        env = f"EnvironmentFile=-{PATHS.credentials}\n"
    return f"# Written by the smart-redis deploy.\n[Service]\n{env}ExecStart=\nExecStart={command}\n"


def _write_unit(settings: Settings):
    dropin_op = managed_file(name="Configure the Redis exporter", dest=PATHS.exporter_dropin, content=dropin(settings))
    systemd.daemon_reload(name="Reload systemd units for the exporter", _if=dropin_op.did_change)
    return dropin_op


def unit_before_install(settings: Settings, facts: HostState):
    """On a host without the exporter, its drop-in goes in first: the package's own start then
    already listens on 127.0.0.1 only, never on all addresses."""
    if settings.exporter_enabled and EXPORTER_PACKAGE not in facts.installed_packages:
        return _write_unit(settings)
    return None


def redis_exporter(settings: Settings, early_unit, credentials) -> None:
    """Configured after Redis itself otherwise, so a Redis change that fails leaves the exporter alone."""
    if not settings.exporter_enabled:
        host.log("redis_exporter_enabled = False: no metrics exporter", logger.info)
        return
    unit = early_unit or _write_unit(settings)
    server.shell(
        name="Restart the exporter for its new settings",
        commands=[f"systemctl restart {EXPORTER_SERVICE}"],
        _if=any_changed(unit, credentials),
    )
    systemd.service(name="Exporter enabled and running", service=EXPORTER_SERVICE, running=True, enabled=True)
