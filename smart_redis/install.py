"""Install the Redis packages of the requested major, touching apt only when something is missing."""

from __future__ import annotations

import re
import shlex

from pyinfra import host, logger
from pyinfra.api import FactBase, OperationError
from pyinfra.operations import server

from . import backports
from .constants import DISTRO_REDIS_MAJOR, EXPORTER_PACKAGE, PATHS, VALKEY_BACKPORTS
from .facts import LOCK_PROBE, HostState
from .operations import copy_command, host_state, managed_file, operation
from .preflight import major_version
from .settings import Settings


def redis_packages(settings: Settings, facts: HostState, sentinel: bool = False) -> None:
    """The server's packages and the tools, the exporter when enabled and Sentinel where it runs, in one apt run."""
    server, major = settings.server, major_version(settings, facts)
    if settings.upgrade and not facts.missing_packages:
        upgrade(
            name=f"Upgrade {server.service} to the newest {major}.x of its source",
            settings=settings,
            sentinel=sentinel and server.sentinel_service in facts.installed_packages,
            rdb_version=facts.rdb_version,
        )
    missing = list(facts.missing_packages)
    if settings.exporter_enabled and EXPORTER_PACKAGE not in facts.installed_packages:
        missing.append(EXPORTER_PACKAGE)
    if sentinel and server.sentinel_service not in facts.installed_packages:
        missing.append(server.sentinel_service)
    if not missing:
        return  # no apt-get update, no dpkg: a converged host costs nothing here
    sources: tuple[str, ...] = ()
    if _from_redis_repository(settings, facts.os) and facts.missing_packages:
        _redis_apt_repository(settings, facts)
        sources = REPOSITORY_FILES
    elif server.name == "valkey":
        sources = backports.source(server, facts)
    # in the same command as the install, when it installs the server: its version checked, and
    # the config it comes with kept as it is (config.redis_conf keeps it otherwise)
    check = (
        f"{{ {server.service} --version | grep -q ' v={major}\\.' || "
        f'{{ echo "installed $({server.service} --version): not the requested {major}.x" >&2; exit 1; }}; }}'
    )
    if server.config_backup not in facts.files:
        check += f" && {{ {copy_command(server.config, server.config_backup)}; }}"
    apt_install(
        f"Install {', '.join(missing)}",
        missing,
        settings,
        sources=sources,
        then=check if facts.missing_packages else None,
        lock_held=facts.dpkg_locked,
    )


# A fresh cloud server often runs unattended-upgrades at first boot: the deploy waits for it
# (bounded, with a message) instead of failing at once; apt's own timeout covers the race after.
LOCK_WAIT_SECONDS = 300
APT = f"DEBIAN_FRONTEND=noninteractive apt-get -y -o DPkg::Lock::Timeout={LOCK_WAIT_SECONDS}"


class DpkgLocked(FactBase[bool]):
    """True while another process (unattended-upgrades, an operator's apt) holds the dpkg lock."""

    def command(self) -> str:
        return f"{LOCK_PROBE} && echo free || echo held"

    def process(self, output):
        return bool(output) and output[-1].strip() == "held"


@operation()
def wait_for_dpkg_lock(timeout: int = LOCK_WAIT_SECONDS, held: bool | None = None):
    """
    Wait, bounded, until no other package run holds the dpkg lock.

    + timeout: seconds before the run fails
    + held: what the run's RedisHost answer said of the lock (asked where the server's package is
      missing); None: asked now. apt's own lock timeout covers the moments in between.

    **Example:**

    .. code:: python

        wait_for_dpkg_lock(name="Wait for apt", timeout=300)
    """
    if not (host.get_fact(DpkgLocked) if held is None else held):
        host.noop("the dpkg lock is free")
        return
    host.log(
        f"Waiting up to {timeout} s for the dpkg lock: another package run (unattended-upgrades?) holds it",
        logger.warning,
    )
    yield (
        f"i=0; while ! {LOCK_PROBE}; do i=$((i+1)); "
        f"if [ $i -ge {timeout} ]; then echo 'the dpkg lock is still held after {timeout} s' >&2; exit 1; fi; "
        "sleep 1; done"
    )


# What makes apt see the Redis repository: lists older than any of them predate it.
REPOSITORY_FILES = (PATHS.apt_keyring, PATHS.apt_source, PATHS.apt_pin)


def lists_are_fresh(cache_time: int, sources: tuple[str, ...] = (), lists: str = "/var/lib/apt/lists") -> str:
    """Shell that succeeds when apt's package lists need no refresh: one is younger than
    cache_time seconds and younger than every file in sources (a repository, keyring or pin
    written after the last update, in this run or in one that failed, makes them stale)."""
    newer = "".join(f" -newer {shlex.quote(path)}" for path in sources)
    probe = " && ".join([*(f"test -e {shlex.quote(path)}" for path in sources), ""])
    return (
        f"{probe}test -n \"$(find {shlex.quote(lists)} -maxdepth 1 -name '*Packages*' "
        f"-newermt '-{int(cache_time)} seconds'{newer} 2>/dev/null | head -n 1)\""
    )


def apt_install(
    name: str,
    packages: list[str],
    settings: Settings,
    sources: tuple[str, ...] = (),
    then: str | None = None,
    lock_held: bool | None = None,
) -> None:
    """Install packages, refreshing the index first unless it is younger than redis_apt_cache_time
    and than every file in sources (the repository's, when Redis comes from there); `then`: a
    check that runs after the install, in the same command; lock_held: see wait_for_dpkg_lock."""
    wait_for_dpkg_lock(name="Wait for other package runs to finish", held=lock_held)
    install = (
        f'{APT} -o Dpkg::Options::="--force-confdef" -o Dpkg::Options::="--force-confold" '
        f"install {' '.join(shlex.quote(p) for p in packages)}"
    )
    update = f"{{ {lists_are_fresh(settings.apt_cache_time, sources)}; }} || {APT} update"
    server.shell(name=name, commands=[" && ".join(f"{{ {part}; }}" for part in (update, install, then) if part)])


# An os-release VERSION_CODENAME is one lowercase word; anything else did not come from the distro.
CODENAME_RE = re.compile(r"^[a-z][a-z0-9-]{0,31}$")


def source_line(repo_url: str, codename: str) -> str:
    """The one-line sources.list entry; a value with whitespace would add options or entries."""
    for what, value in (("redis_apt_repo_url", repo_url), ("codename", codename)):
        if not value or any(c.isspace() for c in value):
            raise OperationError(f"{what} = {value!r}: allowed is a value without spaces or newlines")
    return f"deb [signed-by={PATHS.apt_keyring}] {repo_url} {codename} main\n"


def _redis_apt_repository(settings: Settings, facts: HostState) -> None:
    """The official Redis APT repository, signed-by its keyring and pinned to the major line."""
    if not CODENAME_RE.match(facts.os_codename):
        raise OperationError(
            f"the host's /etc/os-release VERSION_CODENAME is {facts.os_codename!r}: allowed is one lowercase word "
            "(bookworm, jammy...), needed for the Redis APT repository"
        )
    if PATHS.apt_keyring not in facts.files:
        apt_install("Install tools to fetch the Redis signing key", ["curl", "gpg"], settings)
        server.shell(
            name="Fetch the Redis APT signing key",
            # Through a file, not a pipe: a failed download must fail the step, not leave an empty keyring.
            commands=[
                f"curl -fsSL -o {shlex.quote(PATHS.apt_keyring + '.asc')} {shlex.quote(settings.apt_key_url)} && "
                f"gpg --dearmor --yes -o {shlex.quote(PATHS.apt_keyring)} {shlex.quote(PATHS.apt_keyring + '.asc')} && "
                f"rm -f {shlex.quote(PATHS.apt_keyring + '.asc')}"
            ],
        )
    managed_file(
        name="Add the Redis APT repository",
        dest=PATHS.apt_source,
        content=source_line(settings.apt_repo_url, facts.os_codename),
    )
    managed_file(
        name=f"Pin Redis packages to {settings.major_version}.x",
        dest=PATHS.apt_pin,
        content=(
            f"Package: {' '.join((*settings.server.packages, settings.server.sentinel_service))}\n"
            f"Pin: version *:{settings.major_version}.*\n"
            "Pin-Priority: 1001\n"
        ),
    )


def _from_redis_repository(settings: Settings, os: tuple[str, str]) -> bool:
    """Redis of a major the distro does not ship comes from Redis's own APT repository."""
    return settings.server.name == "redis" and DISTRO_REDIS_MAJOR[os] != settings.major_version


class RedisCandidate(FactBase[tuple[bool, str, str]]):
    """(apt's lists are fresh, installed version, candidate version) of the server's package."""

    def command(self, cache_time: int, sources: tuple[str, ...] = (), package: str = "redis-server") -> str:
        return (
            f"{{ {lists_are_fresh(cache_time, sources)}; }} && echo lists=fresh; "
            f"apt-cache policy {shlex.quote(package)} 2>/dev/null | sed -n 's/^ *\\(Installed\\|Candidate\\): /\\1=/p'"
        )

    def process(self, output) -> tuple[bool, str, str]:
        values = dict(line.strip().partition("=")[::2] for line in output)
        return values.get("lists") == "fresh", values.get("Installed", ""), values.get("Candidate", "")


# A Debian version as apt prints it; anything else in apt's answer stops the step.
VERSION_RE = re.compile(r"^[0-9][A-Za-z0-9.+~:-]*$")
# The newest RDB format each release line loads; a data file in a newer one stops the server at start.
RDB_FORMAT_LOADED = {
    "redis": {(6, 0): 9, (6, 2): 9, (7, 0): 10, (7, 2): 11, (7, 4): 12, (8, 0): 12},
    # Valkey forked from Redis 7.2: its 8.x lines read RDB 11, not Redis 7.4's 12.
    "valkey": {(7, 2): 11, (8, 0): 11, (8, 1): 11},
}


def loads_rdb(version: str, server: str = "redis") -> int | None:
    """The newest RDB format a Debian version string's release loads ("5:7.0.15-1~deb12u5" -> 10); None if unknown."""
    match = re.match(r"^(?:\d+:)?(\d+)\.(\d+)", version)
    if not match:
        return None
    line = (int(match[1]), int(match[2]))
    known = [fmt for release, fmt in RDB_FORMAT_LOADED[server].items() if release <= line]
    return max(known) if known else None


# The package's maintainer scripts would restart redis-server in place; the deploy restarts it
# instead, one host at a time and the primary after a handover (config.py, handover.py). Our
# policy-rc.d carries a marker, so that one left by a run that was killed is removed (and an
# operator's own is put back) by the next upgrade; dash runs the EXIT trap on a signal only
# through the INT/TERM/HUP trap.
HOLD_RESTARTS = (
    "P=/usr/sbin/policy-rc.d; K=/usr/sbin/policy-rc.d.smart-redis-kept; M='# smart-redis: upgrade'; "
    'restore() {{ if grep -qsx "$M" "$P"; then rm -f "$P"; fi; '
    'if test -e "$K" && ! test -e "$P"; then mv "$K" "$P"; fi; }}; '
    'restore; if test -e "$P"; then mv "$P" "$K"; fi; '
    "trap restore EXIT; trap 'exit 1' INT TERM HUP; "
    'printf "#!/bin/sh\\n%s\\nexit 101\\n" "$M" > "$P" && chmod 755 "$P" && {install}'
)


@operation()
def upgrade(settings: Settings, sentinel: bool, rdb_version: int | None):
    """
    Install the newest Redis release of the major that apt offers, without restarting anything.

    + settings: the major, and how old apt's lists may be
    + sentinel: upgrade redis-sentinel too
    + rdb_version: the RDB format of the data file (a release that cannot load it is refused)

    **Example:**

    .. code:: python

        upgrade(name="Upgrade Redis", settings=settings, sentinel=True, rdb_version=10)
    """
    facts = host_state()
    server, major = settings.server, major_version(settings, facts)
    sources: tuple[str, ...] = REPOSITORY_FILES if _from_redis_repository(settings, facts.os) else ()
    if server.name == "valkey" and VALKEY_BACKPORTS.get(facts.os):
        sources = (PATHS.backports_source, PATHS.backports_pin)
    asked = dict(cache_time=settings.apt_cache_time, sources=sources, package=server.service)
    fresh, installed, candidate = host.get_fact(RedisCandidate, **asked)
    if not fresh:
        yield f"{APT} update"
        fresh, installed, candidate = host.get_fact(RedisCandidate, **asked)
    if not candidate or candidate in ("(none)", installed):
        host.noop(f"{server.service} {installed} is the newest the package source offers")
        return
    if not VERSION_RE.match(candidate) or not candidate.split(":")[-1].startswith(f"{major}."):
        raise OperationError(
            f"redis_upgrade: the package source offers {server.service} {candidate!r}, not a {major}.x"
        )
    newest = loads_rdb(candidate, server.name)
    if rdb_version is not None and newest is not None and rdb_version > newest:
        raise OperationError(
            f"redis_upgrade: {server.service} {candidate} loads RDB formats up to {newest}, and the data file is "
            f"format {rdb_version}: a release that cannot load the data is refused"
        )
    host.log(
        f"Upgrading {server.service} {installed} -> {candidate}; the servers restart one by one afterwards",
        logger.warning,
    )
    packages = [*server.packages, *([server.sentinel_service] if sentinel else [])]
    yield (
        f"dpkg --compare-versions {shlex.quote(candidate)} gt {shlex.quote(installed)} || "
        f"{{ echo {shlex.quote(f'redis_upgrade: {candidate} is older than the installed {installed}: a downgrade is refused')} >&2; exit 1; }}"
    )
    yield HOLD_RESTARTS.format(
        install=f'{APT} -o Dpkg::Options::="--force-confdef" -o Dpkg::Options::="--force-confold" install '
        + " ".join(shlex.quote(f"{p}={candidate}") for p in packages)
    )
