"""Alerts that reach a person: a systemd timer runs `redis-monitor alert` on each host.

It sends one message to each receiver (webhook, Telegram, e-mail through the host's sendmail)
when the host's checks change state, a reminder while a problem lasts, and one when it clears.
In a Sentinel group a path unit also runs it as soon as Sentinel rewrites sentinel.conf, which
every sentinel does after a failover: the new primary then sends one failover message.

The receivers' secrets (the webhook URL, the Telegram token) go into a root-only file on the
host, uploaded like the passwords and never shown in a diff or the output.
"""

from __future__ import annotations

import hashlib
import ipaddress
from io import StringIO
from typing import Any
from urllib.parse import urlsplit

from pyinfra import host, logger
from pyinfra.operations.util import any_changed

from .constants import (
    ALERT_FAILED_TIMEOUT,
    ALERT_PATH,
    ALERT_RUN_TIMEOUT,
    ALERT_SERVICE,
    ALERT_TIMER,
    CREDENTIALS_MODE,
    ON_FAILURE,
    PATHS,
)
from .facts import HostState
from .operations import (
    file_state,
    managed_file,
    no_file_changed,
    operation,
    place,
    prepare_folder,
    reload_units,
    staging_path,
    upload,
)
from .render import render
from .settings import Settings
from .topology import Topology


def configured(settings: Settings) -> bool:
    return bool(
        settings.alert_webhook_url
        or settings.alert_telegram_token
        or settings.alert_email_to
        or settings.alert_heartbeat_url
    )


def monitor_block(settings: Settings, host_name: str) -> dict[str, Any] | None:
    """What redis-monitor's config says about alerts (no secret in it); None without receivers."""
    if not configured(settings):
        return None
    return {
        "host": host_name,
        "interval": settings.alert_interval,
        "repeat": settings.alert_repeat,
        "state_file": PATHS.alert_state,
        "secrets": PATHS.alert_secrets,
        "webhook": {"format": settings.alert_webhook_format} if settings.alert_webhook_url else None,
        "telegram": {"api": settings.alert_telegram_api, "chat_id": settings.alert_telegram_chat_id}
        if settings.alert_telegram_token
        else None,
        "email": {"to": list(settings.alert_email_to), "from": "redis-alerts"} if settings.alert_email_to else None,
        "heartbeat": bool(settings.alert_heartbeat_url),  # its URL is in the secrets file
    }


def secrets_text(settings: Settings) -> str:
    values = {
        "WEBHOOK_URL": settings.alert_webhook_url,
        "TELEGRAM_TOKEN": settings.alert_telegram_token,
        "HEARTBEAT_URL": settings.alert_heartbeat_url,
    }
    return "".join(f"REDIS_ALERT_{key}='{value}'\n" for key, value in values.items() if value)


@operation(writes=(PATHS.alert_secrets,))
def secrets_file(settings: Settings):
    """
    Keep the receivers' secrets in the root-only alerts secrets file (or remove it when none is set).

    Never diffed or printed; uploaded into a file that is 0600 before the secret goes in.

    + settings: alert_webhook_url and alert_telegram_token

    **Example:**

    .. code:: python

        secrets_file(name="Keep the alert receivers' secrets", settings=settings)
    """
    text, dest = secrets_text(settings), PATHS.alert_secrets
    current = file_state(dest)
    if not text:
        if current is None:
            host.noop("no alert secrets")
        else:
            yield f"rm -f {dest}"
        return
    wanted = (hashlib.sha256(text.encode()).hexdigest(), "root", "root", CREDENTIALS_MODE)
    if current is not None and (current.sha256, current.user, current.group, current.mode) == wanted:
        host.noop(f"{dest} is up to date")
        return
    staged = staging_path(dest)
    placed = place(staged, dest, "root", "root", CREDENTIALS_MODE)
    yield from upload(StringIO(text), staged, private=True, first=prepare_folder(dest), then=placed)


def _units(settings: Settings, topology: Topology) -> dict[str, str]:
    units = {
        PATHS.alert_service: render(
            "smart-redis-alert.service.j2",
            service=settings.server.service,
            monitor=PATHS.monitor,
            on_failure=ON_FAILURE,
            timeout=ALERT_RUN_TIMEOUT,
        ),
        PATHS.alert_failed: render(
            "smart-redis-failed@.service.j2", monitor=PATHS.monitor, timeout=ALERT_FAILED_TIMEOUT
        ),
        PATHS.alert_timer: render("smart-redis-alert.timer.j2", interval=settings.alert_interval),
    }
    if topology.runs_sentinel:
        units[PATHS.alert_path] = render(
            "smart-redis-alert.path.j2", sentinel_config=settings.server.sentinel_config, alert_service=ALERT_SERVICE
        )
    return units


def clear_text_warnings(settings: Settings) -> list[str]:
    """One line per receiver whose token would cross the network in clear: http:// to anything
    but this host. The line names the setting and the host, never the URL's path or the token."""
    found = []
    for name, url in (
        ("redis_alert_webhook_url", settings.alert_webhook_url),
        ("redis_alert_heartbeat_url", settings.alert_heartbeat_url),
        ("redis_alert_telegram_api", settings.alert_telegram_api if settings.alert_telegram_token else None),
    ):
        parts = urlsplit(url or "")
        if parts.scheme == "http" and not _loopback(parts.hostname or ""):
            found.append(
                f"{name}: plain http:// to {parts.hostname}: the token in it crosses the network in clear; use https://"
            )
    return found


def _loopback(name: str) -> bool:
    if name == "localhost":
        return True
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return False


def alerts(settings: Settings, topology: Topology, facts: HostState) -> None:
    """The alert timer (and in a Sentinel group its path unit), after redis-monitor is in place."""
    wanted = [ALERT_TIMER, *([ALERT_PATH] if topology.runs_sentinel else [])]
    if not configured(settings):
        host.log(
            "No alert receiver (redis_alert_webhook_url, _telegram_token, _email_to, _heartbeat_url): no alerts",
            logger.info,
        )
        running = [u for u in (ALERT_TIMER, ALERT_PATH) if facts.units.get(u, ("", ""))[0] == "enabled"]
        if running:
            no_file_changed(
                name="Stop the alert timer (no receiver)", commands=[f"systemctl disable --now {' '.join(running)}"]
            )
        secrets_file(name="No alert secrets", settings=settings)
        return
    for warning in clear_text_warnings(settings):
        host.log(warning, logger.warning)
    secrets_file(name="Keep the alert receivers' secrets", settings=settings)
    if not topology.runs_sentinel and facts.units.get(ALERT_PATH, ("", ""))[0] == "enabled":
        no_file_changed(
            name="Stop watching sentinel.conf (no Sentinel here now)",
            commands=[f"systemctl disable --now {ALERT_PATH}"],
        )
    written = [
        managed_file(name=f"Alert unit {path.rsplit('/', 1)[1]}", dest=path, content=content)
        for path, content in _units(settings, topology).items()
    ]
    reload_units(ALERT_TIMER, *written, facts=facts)
    converged = all(facts.units.get(u) == ("enabled", "active") for u in wanted)
    # restart, not only start: a timer re-arms with a new interval only then. And one run now: it
    # records the state the next runs compare with (a replica: the primary it follows, which the
    # new primary names after a failover), whatever the timer's first run would have met.
    no_file_changed(
        name="Enable the alert timer" + (" and its Sentinel watch" if topology.runs_sentinel else ""),
        commands=[
            f"systemctl enable {' '.join(wanted)}",
            f"systemctl restart {' '.join(wanted)}",
            f"systemctl start --no-block {ALERT_SERVICE}",
        ],
        _if=None if not converged else any_changed(*written),
    )
