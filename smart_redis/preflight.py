"""Refuse hosts the deploy does not support, before anything on them changes."""

from __future__ import annotations

from pyinfra.api.exceptions import PyinfraError

from .constants import DISTRO_VALKEY, SUPPORTED_OS
from .facts import HostState
from .settings import Settings


class PreflightError(PyinfraError):
    """The host is not one this deploy can provision as it is."""


def check(settings: Settings, facts: HostState) -> None:
    if facts.os not in SUPPORTED_OS:
        supported = ", ".join(f"{name} {version}" for name, version in SUPPORTED_OS)
        raise PreflightError(f"unsupported OS {facts.os_id} {facts.os_version}: supported are {supported}")
    if not facts.systemd:
        raise PreflightError(
            f"systemd is not running on this host: {settings.server.service} is managed as a systemd service"
        )
    server = settings.server
    if server.name == "valkey" and facts.os not in DISTRO_VALKEY:
        supported = ", ".join(f"{name} {version}" for name, version in DISTRO_VALKEY)
        raise PreflightError(
            f'redis_server = "valkey": {facts.os_id} {facts.os_version} has no Valkey package; supported are {supported}'
        )
    major = major_version(settings, facts)
    if facts.redis_major is not None and facts.redis_major != major:
        raise PreflightError(
            f"redis_major_version = {major}, but {server.service} {facts.redis_version} "
            "is installed: upgrades between majors are not done by this deploy"
        )


def major_version(settings: Settings, facts: HostState) -> int:
    """The server's major version to install: redis_major_version, or the distro's Valkey."""
    if settings.server.name == "valkey":
        return DISTRO_VALKEY[facts.os]
    return settings.major_version
