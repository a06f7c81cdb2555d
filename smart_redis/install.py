"""Install the Redis packages of the requested major, touching apt only when something is missing."""

from __future__ import annotations

from pyinfra.operations import apt, server

from .constants import DISTRO_REDIS_MAJOR, PACKAGES, PATHS, REDIS_PACKAGES
from .facts import HostState
from .operations import managed_file
from .settings import Settings


def redis_packages(settings: Settings, facts: HostState) -> None:
    if not facts.missing_packages:
        return  # no apt-get update, no dpkg: a converged host costs nothing here
    if DISTRO_REDIS_MAJOR[facts.os] != settings.major_version:
        _redis_apt_repository(settings, facts)
    apt.packages(
        name=f"Install Redis {settings.major_version}.x, python3 and sudo",
        packages=list(PACKAGES),
        update=True,
        cache_time=settings.apt_cache_time,
    )
    major = settings.major_version
    server.shell(
        name=f"Check that redis-server is {major}.x",
        commands=[
            f"redis-server --version | grep -q ' v={major}\\.' || "
            f"{{ echo \"installed $(redis-server --version): not the requested {major}.x\" >&2; exit 1; }}"
        ],
    )


def _redis_apt_repository(settings: Settings, facts: HostState) -> None:
    """The official Redis APT repository, signed-by its keyring and pinned to the major line."""
    if PATHS.apt_keyring not in facts.files:
        apt.packages(name="Install tools to fetch the Redis signing key", packages=["curl", "gpg"], update=True)
        server.shell(
            name="Fetch the Redis APT signing key",
            commands=[f"curl -fsSL {settings.apt_key_url} | gpg --dearmor --yes -o {PATHS.apt_keyring}"],
        )
    managed_file(
        name="Add the Redis APT repository",
        dest=PATHS.apt_source,
        content=f"deb [signed-by={PATHS.apt_keyring}] {settings.apt_repo_url} {facts.os_codename} main\n",
    )
    managed_file(
        name=f"Pin Redis packages to {settings.major_version}.x",
        dest=PATHS.apt_pin,
        content=(
            f"Package: {' '.join(REDIS_PACKAGES)}\n"
            f"Pin: version *:{settings.major_version}.*\n"
            "Pin-Priority: 1001\n"
        ),
    )
