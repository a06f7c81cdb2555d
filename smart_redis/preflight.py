"""Refuse hosts the deploy does not support, before anything on them changes."""

from __future__ import annotations

from pyinfra.api.exceptions import PyinfraError

from .constants import SUPPORTED_OS
from .facts import HostState
from .settings import Settings


class PreflightError(PyinfraError):
    """The host is not one this deploy can provision as it is."""


def check(settings: Settings, facts: HostState) -> None:
    if facts.os not in SUPPORTED_OS:
        supported = ", ".join(f"{name} {version}" for name, version in SUPPORTED_OS)
        raise PreflightError(f"unsupported OS {facts.os_id} {facts.os_version}: supported are {supported}")
    if not facts.systemd:
        raise PreflightError("systemd is not running on this host: redis-server is managed as a systemd service")
    if facts.redis_major is not None and facts.redis_major != settings.major_version:
        raise PreflightError(
            f"redis_major_version = {settings.major_version}, but redis-server {facts.redis_version} "
            "is installed: upgrades between majors are not done by this deploy"
        )
