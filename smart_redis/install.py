"""Install the Redis packages of the requested major, touching apt only when something is missing."""

from __future__ import annotations

from pyinfra import host, logger
from pyinfra.api import FactBase, operation
from pyinfra.operations import server

from .constants import DISTRO_REDIS_MAJOR, EXPORTER_PACKAGE, PATHS, REDIS_PACKAGES, SENTINEL_PACKAGE
from .facts import HostState
from .operations import managed_file
from .settings import Settings


def redis_packages(settings: Settings, facts: HostState, sentinel: bool = False) -> None:
    """The Redis packages and the tools, the exporter when enabled and Sentinel where it runs, in one apt run."""
    missing = list(facts.missing_packages)
    if settings.exporter_enabled and EXPORTER_PACKAGE not in facts.installed_packages:
        missing.append(EXPORTER_PACKAGE)
    if sentinel and SENTINEL_PACKAGE not in facts.installed_packages:
        missing.append(SENTINEL_PACKAGE)
    if not missing:
        return  # no apt-get update, no dpkg: a converged host costs nothing here
    if DISTRO_REDIS_MAJOR[facts.os] != settings.major_version and facts.missing_packages:
        _redis_apt_repository(settings, facts)
    apt_install(f"Install {', '.join(missing)}", missing, settings)
    if not facts.missing_packages:
        return
    major = settings.major_version
    server.shell(
        name=f"Check that redis-server is {major}.x",
        commands=[
            f"redis-server --version | grep -q ' v={major}\\.' || "
            f"{{ echo \"installed $(redis-server --version): not the requested {major}.x\" >&2; exit 1; }}"
        ],
    )


# A fresh cloud server often runs unattended-upgrades at first boot: the deploy waits for it
# (bounded, with a message) instead of failing at once; apt's own timeout covers the race after.
LOCK_WAIT_SECONDS = 300
APT = f"DEBIAN_FRONTEND=noninteractive apt-get -y -o DPkg::Lock::Timeout={LOCK_WAIT_SECONDS}"


# apt locks with fcntl, so flock(1) cannot see it; perl is essential on Debian and Ubuntu.
LOCK_PROBE = (
    "perl -MFcntl -e 'open(my $f, \"<\", \"/var/lib/dpkg/lock-frontend\") or exit 0; "
    "my $l = pack(\"s s x4 q q i x4\", F_WRLCK, 0, 0, 0, 0); fcntl($f, F_GETLK, $l) or exit 0; "
    "exit((unpack(\"s\", $l))[0] == F_UNLCK ? 0 : 1)'"
)


class DpkgLocked(FactBase):
    """True while another process (unattended-upgrades, an operator's apt) holds the dpkg lock."""

    def command(self) -> str:
        return f"{LOCK_PROBE} && echo free || echo held"

    def process(self, output):
        return bool(output) and output[-1].strip() == "held"


@operation()
def wait_for_dpkg_lock(timeout: int = LOCK_WAIT_SECONDS):
    """
    Wait, bounded, until no other package run holds the dpkg lock.

    + timeout: seconds before the run fails

    **Example:**

    .. code:: python

        wait_for_dpkg_lock(name="Wait for apt", timeout=300)
    """
    if not host.get_fact(DpkgLocked):
        host.noop("the dpkg lock is free")
        return
    host.log(f"Waiting up to {timeout} s for the dpkg lock: another package run (unattended-upgrades?) holds it",
             logger.warning)
    yield (
        f"i=0; while ! {LOCK_PROBE}; do i=$((i+1)); "
        f"if [ $i -ge {timeout} ]; then echo 'the dpkg lock is still held after {timeout} s' >&2; exit 1; fi; "
        "sleep 1; done"
    )


def apt_install(name: str, packages: list[str], settings: Settings) -> None:
    """Install packages, refreshing the index first unless it is younger than redis_apt_cache_time."""
    wait_for_dpkg_lock(name="Wait for other package runs to finish")
    fresh = f"find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -newermt '-{settings.apt_cache_time} seconds'"
    server.shell(
        name=name,
        commands=[
            f'test -n "$({fresh} | head -n 1)" || {APT} update',
            f'{APT} -o Dpkg::Options::="--force-confdef" -o Dpkg::Options::="--force-confold" '
            f"install {' '.join(packages)}",
        ],
    )


def _redis_apt_repository(settings: Settings, facts: HostState) -> None:
    """The official Redis APT repository, signed-by its keyring and pinned to the major line."""
    if PATHS.apt_keyring not in facts.files:
        apt_install("Install tools to fetch the Redis signing key", ["curl", "gpg"], settings)
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
            f"Package: {' '.join((*REDIS_PACKAGES, SENTINEL_PACKAGE))}\n"
            f"Pin: version *:{settings.major_version}.*\n"
            "Pin-Priority: 1001\n"
        ),
    )
