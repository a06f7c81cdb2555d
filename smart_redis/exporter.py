"""prometheus-redis-exporter: on 127.0.0.1 only, logged in as its own least-privilege ACL user.

The exporter runs as the unprivileged user prometheus, so whatever is in its environment can be
read in /proc/PID/environ by that user: it gets its own user and password only, from a root-only
env file composed on the host, never the whole credentials file.
"""

from __future__ import annotations

import functools

from pyinfra import host, logger

from .constants import CREDENTIALS_MODE, EXPORTER_PACKAGE, EXPORTER_SERVICE, PATHS
from .facts import HostState
from .operations import (
    File,
    host_state,
    managed_file,
    no_file_changed,
    one_round_trip,
    operation,
    reload_units,
    service_running,
    state_telling,
)
from .render import render
from .settings import Settings
from .tls import TlsFiles
from .tools import step

BINARY = "/usr/bin/prometheus-redis-exporter"


def _tls_host(settings: Settings, tls: TlsFiles) -> str:
    """Where the exporter connects: 127.0.0.1 when the certificate names it (Go checks the name),
    else the name REDIS_URL uses, which the certificate names."""
    return "127.0.0.1" if tls.loopback_named else settings.url_host


def dropin(settings: Settings, tls: TlsFiles | None = None) -> str:
    """tls: with redis_tls = "only" the exporter verifies the server with the CA, and where
    client certificates are required shows its own (tls.Certificates), copied at each start into
    its own runtime directory (0700): the key stays root-only in /etc/ssl."""
    only = tls if settings.tls == "only" else None
    return render(
        "exporter-dropin.conf.j2",
        env_file=None if settings.auth == "none" else PATHS.exporter_env,
        binary=BINARY,
        exporter_port=settings.exporter_port,
        address=f"rediss://{_tls_host(settings, only)}:{settings.port}"
        if only
        else f"redis://127.0.0.1:{settings.port}",
        tls=only,
        client_cert=only is not None and only.exporter_cert is not None,
        runtime="/run/smart-redis-exporter",
    )


def _env_up_to_date(facts: HostState) -> bool:
    current = facts.files.get(PATHS.exporter_env)
    stored = (facts.secret_hashes.get("EXPORTER"), facts.secret_users.get("EXPORTER"))
    return (
        current is not None
        and (current.user, current.group, current.mode) == ("root", "root", CREDENTIALS_MODE)
        and stored[0] is not None
        and facts.exporter_env == stored
    )


@operation(writes=(PATHS.exporter_env,))
def exporter_env(then: str | None = None):
    """
    Keep the exporter's own login (and nothing else) in its root-only env file.

    + then: a command that runs next in any case, in the same round trip (a restart)

    **Example:**

    .. code:: python

        exporter_env(name="Give the exporter its login")
    """
    if _env_up_to_date(state_telling(PATHS.exporter_env, PATHS.credentials)):
        if then:
            yield then
        else:
            host.noop(f"{PATHS.exporter_env} holds the exporter's login")
        return
    yield from one_round_trip([step("login-file", "exporter-env", PATHS.exporter_env), *([then] if then else [])])


def needs_restart(facts: HostState, auth: str) -> str | None:
    """Why the running exporter must restart, judged from what runs (so a run that failed before
    its restart is repaired by the next one), or None."""
    if facts.units.get(EXPORTER_SERVICE, ("", ""))[1] != "active" or facts.exporter_auth is None:
        return None  # not running: service_running starts it with what is on disk
    if facts.exporter_stale:
        return "its unit or env file changed since it started"
    if auth != "none" and facts.exporter_auth != facts.secret_hashes.get("EXPORTER"):
        return "it does not run with its password from the credentials file"
    return None


def unit_before_install(settings: Settings, facts: HostState) -> File | None:
    """On a host without the exporter, its drop-in goes in first: the package's own start then
    already listens on 127.0.0.1 only, never on all addresses (systemd loads it in
    service.before_install)."""
    if settings.exporter_enabled and EXPORTER_PACKAGE not in facts.installed_packages:
        return File(PATHS.exporter_dropin, dropin(settings, None))  # the TLS files come later in the run
    return None


def redis_exporter(settings: Settings, early_unit: File | None, tls: TlsFiles | None = None) -> None:
    """Configured after Redis itself otherwise, so a Redis change that fails leaves the exporter
    alone; its restart follows the host's state, so a run that stopped before it is repaired."""
    if not settings.exporter_enabled:
        host.log("redis_exporter_enabled = False: no metrics exporter", logger.info)
        return
    facts = host_state()
    if early_unit is None or tls is not None:
        unit = managed_file(
            name="Configure the Redis exporter", dest=PATHS.exporter_dropin, content=dropin(settings, tls)
        )
        reload_units(EXPORTER_SERVICE, unit, facts=facts)
    restart = None
    if early_unit is not None:  # its package, installed in this run, started it before its login was written
        unit = EXPORTER_SERVICE
        unmask = f"systemctl unmask {unit} && " if facts.units.get(unit, ("", ""))[0] == "masked" else ""
        restart = (
            f"{unmask}{{ systemctl is-enabled -q {unit} || systemctl enable {unit}; }} && systemctl restart {unit}"
        )
    if settings.auth != "none":
        name = "Give the exporter its own login" + (" and start it with it" if restart else "")
        exporter_env(name=name, then=restart)
    elif restart:
        no_file_changed(name="Exporter running with its current settings", commands=[restart])
    if restart:
        return
    service_running(
        name="Exporter running with its current settings",
        service=EXPORTER_SERVICE,
        restart_if=functools.partial(needs_restart, auth=settings.auth),
    )
