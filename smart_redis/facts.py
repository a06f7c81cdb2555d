"""What the steps need to know about a host, gathered in one round trip.

A converged host answers every question here with one command, so a no-op run costs one
fact instead of a dozen (see BENCHMARKS.md for the command count).

    state = host.get_fact(RedisHost)
    state.container            # "docker", or None on a real machine
    state.files[REDIS.config]  # FileState(user="redis", group="redis", mode="640", sha256=...)
"""

from __future__ import annotations

import ipaddress
import re
import shlex
from dataclasses import dataclass, field

from pyinfra.api import FactBase

from .constants import (
    ACL_ROLES,
    ALERT_PATH,
    ALERT_TIMER,
    BACKUP_SERVICE,
    BACKUP_TIMER,
    EXPORTER_PACKAGE,
    EXPORTER_SERVICE,
    PATHS,
    TOOL_PACKAGES,
)
from .host.server import REDIS, SERVERS, Server

# The first line of sentinel.conf as the deploy writes it.
SENTINEL_MARKER = "# smart-redis: written once by the deploy"

WATCHED_FILES = (
    PATHS.credentials,
    PATHS.ecosystem_editor,
    PATHS.step_program,
    PATHS.monitor,
    PATHS.monitor_config,
    PATHS.monitor_sudoers,
    PATHS.exporter_dropin,
    PATHS.exporter_env,
    PATHS.credentials_previous,
    PATHS.backup_service,
    PATHS.backup_timer,
    PATHS.alert_service,
    PATHS.alert_timer,
    PATHS.alert_path,
    PATHS.alert_failed,
    PATHS.alert_secrets,
    PATHS.sysctl,
    PATHS.thp_unit,
    PATHS.apt_keyring,
    PATHS.apt_source,
    PATHS.apt_pin,
    PATHS.backports_source,
    PATHS.backports_pin,
    PATHS.tls_ca,
)
# Besides WATCHED_FILES: the certificates and keys in here (their names carry a fingerprint).
WATCHED_DIRS = (PATHS.tls_dir,)


def server_files(server: Server) -> tuple[str, ...]:
    """The server's own files that RedisHost watches besides WATCHED_FILES."""
    return (
        server.config,
        server.config_backup,
        server.container_dropin,
        server.replication_auth,
        server.ha_dropin,
        server.sentinel_container_dropin,
    )


# What managed_file may write: the deploy's files, and those of either server.
WRITABLE = frozenset(WATCHED_FILES).union(*(server_files(server) for server in SERVERS.values()))


def watched(path: str) -> bool:
    return path in WRITABLE or any(path.startswith(d + "/") for d in WATCHED_DIRS)


@dataclass(frozen=True)
class FileState:
    user: str
    group: str
    mode: str
    sha256: str


@dataclass
class HostState:
    # The server the fact was asked about (redis_server): its packages, unit and files below.
    server: Server = REDIS
    os_id: str = ""
    os_version: str = ""
    os_codename: str = ""
    systemd: bool = False
    container: str | None = None
    redis_version: str | None = None
    installed_packages: tuple[str, ...] = ()
    enabled: str = ""
    active: str = ""
    sysctl: dict[str, str] = field(default_factory=dict)
    thp: str = ""
    files: dict[str, FileState] = field(default_factory=dict)
    # From the credentials file: role -> user name, role -> SHA-256 of the password (never the password).
    secret_users: dict[str, str] = field(default_factory=dict)
    secret_hashes: dict[str, str] = field(default_factory=dict)
    # From the passwords a running rotation replaces (credentials.previous): role -> SHA-256.
    previous_hashes: dict[str, str] = field(default_factory=dict)
    # unit -> (is-enabled, is-active) of the units besides redis-server that steps start
    units: dict[str, tuple[str, str]] = field(default_factory=dict)
    # sentinel.conf carries the deploy's first-write marker (from then on Sentinel owns it)
    sentinel_conf_written: bool = False
    # redis.conf is the deploy's replicated one already (written after a successful join)
    ha_member: bool = False
    # TLS as the group's files say now: sentinel.conf has a TLS port, redis.conf no plain port
    sentinel_tls: bool = False
    server_tls_only: bool = False
    # Sentinel's certificate files changed since it started (it loads them only then)
    sentinel_tls_stale: bool = False
    # units whose files changed on disk since systemd loaded them (NeedDaemonReload=yes)
    need_reload: set[str] = field(default_factory=set)
    # The exporter's env file: (sha256 of its REDIS_PASSWORD or "", its REDIS_USER), None without the file.
    exporter_env: tuple[str, str] | None = None
    # The running exporter: sha256 of the REDIS_PASSWORD in its environment ("" for none), None when it
    # does not run; stale: its drop-in or env file was written after it started.
    exporter_auth: str | None = None
    exporter_stale: bool = False
    # Services that run a binary the package has replaced since they started (an upgrade, a reinstall).
    stale_binaries: set[str] = field(default_factory=set)
    # The host's own addresses (not loopback, not link-local): redis_ha_address when it is one.
    addresses: tuple[str, ...] = ()
    # The running server's values of the settings the config step compares (RedisLive's answer,
    # asked in the same round trip when the run said what it would ask: operations.expect_live);
    # None when not asked or nobody answered.
    live: dict[str, str] | None = None
    # The probe asked with the open login: the server's config has no `user default off` (the
    # package's own config, on a fresh host).
    live_open: bool = False
    # The RDB format of the data file (the number in its "REDIS0010" header), None without one.
    rdb_version: int | None = None
    # The local groups (/etc/group): the operator group is created when it is not among them.
    groups: tuple[str, ...] = ()
    # Whether another package run holds the dpkg lock; None where not asked (the server is installed).
    dpkg_locked: bool | None = None

    @property
    def os(self) -> tuple[str, str]:
        return (self.os_id, self.os_version)

    @property
    def redis_major(self) -> int | None:
        return int(self.redis_version.split(".")[0]) if self.redis_version else None

    @property
    def missing_packages(self) -> list[str]:
        return [p for p in (*self.server.packages, *TOOL_PACKAGES) if p not in self.installed_packages]

    # The other server, where its binary is installed: its version and whether it runs.
    other_version: str | None = None
    other_active: str = ""
    other_enabled: str = ""  # "masked" once a move has stopped it
    other_ha_member: bool = False  # its config is a Sentinel group member's (a group that moves)

    @property
    def other_servers(self) -> list[str]:
        """Another server's package that is installed here (a host that runs Redis, asked about Valkey)."""
        return [s.service for s in SERVERS.values() if s != self.server and s.service in self.installed_packages]


# apt locks with fcntl, so flock(1) cannot see it; perl is essential on Debian and Ubuntu.
LOCK_PROBE = (
    'perl -MFcntl -e \'open(my $f, "<", "/var/lib/dpkg/lock-frontend") or exit 0; '
    'my $l = pack("s s x4 q q i x4", F_WRLCK, 0, 0, 0, 0); fcntl($f, F_GETLK, $l) or exit 0; '
    'exit((unpack("s", $l))[0] == F_UNLCK ? 0 : 1)\''
)

# Builtins and pipes only: the passwords are hashed on the host and reach no process's arguments.
_EXPORTER_ENV = (
    f"test -f {PATHS.exporter_env} && ( . {PATHS.exporter_env}; "
    'xh=$(printf %s "${REDIS_PASSWORD:-}" | sha256sum); xh=${xh%% *}; test -n "${REDIS_PASSWORD:-}" || xh=-; '
    "echo \"exporter_env=$xh $(printf %s \"${REDIS_USER:-}\" | tr '\\n' ' ')\" )"
)

# The running exporter, from its block of the units' answer: $xpid its main PID, $xstart its start.
_EXPORTER_RUNNING = (
    'if test "${xpid:-0}" != 0 && test -r "/proc/$xpid/environ"; then '
    "e=$(tr '\\000' '\\n' < \"/proc/$xpid/environ\" | grep '^REDIS_PASSWORD='); e=${e#REDIS_PASSWORD=}; "
    'h=-; test -z "$e" || { h=$(printf %s "$e" | sha256sum); h=${h%% *}; }; echo "exporter_auth=$h"; '
    f"xstart=${{xstart#@}}; for f in {PATHS.exporter_dropin} {PATHS.exporter_env}; do "
    'test -f "$f" && test "$(stat -c %Y "$f")" -gt "${xstart:-0}" && echo exporter_stale=yes; done; fi'
)


def _units_answer(server: Server) -> str:
    """Every unit in one `systemctl show`, each block ended by an empty line ("u." here; the last
    one's may be missing); read by shell builtins, which keep the exporter's PID and start for
    _EXPORTER_RUNNING (a systemctl of its own costs a host about 7 ms)."""
    exporter = f"{EXPORTER_SERVICE}.service"
    keep = f'test "$id" = {exporter} && xpid=$pid xstart=$start'
    return (
        "systemctl show --timestamp=unix -p Id,UnitFileState,ActiveState,NeedDaemonReload,ExecMainStartTimestamp,MainPID "
        f"{' '.join(units(server))} 2>/dev/null | {{ id=; pid=; start=; xpid=; xstart=; "
        'while IFS= read -r l || test -n "$l"; do printf \'u.%s\\n\' "$l"; case $l in '
        "Id=*) id=${l#Id=};; MainPID=*) pid=${l#MainPID=};; ExecMainStartTimestamp=*) start=${l#ExecMainStartTimestamp=};; "
        f"'') {keep}; id=; pid=; start=;; esac; done; {keep}; {_EXPORTER_RUNNING}; }}"
    )


# The deploy's units besides the server's and Sentinel's.
OWN_UNITS = (EXPORTER_SERVICE, BACKUP_SERVICE, BACKUP_TIMER, ALERT_TIMER, ALERT_PATH)


def units(server: Server) -> tuple[str, ...]:
    """The units the steps read, asked of systemd in one `systemctl show` (its blocks come in this order)."""
    return (server.service, server.sentinel_service, *OWN_UNITS)


def reload_checked(server: Server) -> tuple[str, ...]:
    """The units whose file a run that failed before its daemon-reload may have left: reloaded by the next."""
    return (server.service, EXPORTER_SERVICE, server.sentinel_service, BACKUP_SERVICE, BACKUP_TIMER, ALERT_TIMER)


def binaries(server: Server) -> tuple[str, ...]:
    """The services whose binary the package may replace under them."""
    return (server.service, server.sentinel_service)


SENTINEL_TLS_FILES = (PATHS.sentinel_tls_cert, PATHS.sentinel_tls_key, PATHS.sentinel_tls_ca)


def _script(server: Server = REDIS) -> str:
    """One shell script, few processes: a host answers in a fraction of a second, also eight at once."""
    files = " ".join((*server_files(server), *WATCHED_FILES))
    packages = " ".join(
        (*(p for s in SERVERS.values() for p in (*s.packages, s.sentinel_service)), *TOOL_PACKAGES, EXPORTER_PACKAGE)
    )
    return "; ".join(
        [
            f"echo server={server.name}",
            ". /etc/os-release",
            'echo "os_id=$ID"',
            'echo "os_version=$VERSION_ID"',
            'echo "os_codename=$VERSION_CODENAME"',
            'echo "systemd=$(test -d /run/systemd/system && echo yes)"',
            'echo "container=$(systemd-detect-virt --container 2>/dev/null)"',
            'echo "addresses=$(hostname -I 2>/dev/null)"',
            # Shell builtins only: each process here is paid by every run on every host.
            # (a last line without its newline counts too: an editor may leave one)
            'g=; while IFS=: read -r n _ || test -n "$n"; do g="$g $n"; done < /etc/group; echo "groups=$g"',
            # The server's version is its package's (its binary's --version costs about 10 ms).
            f"p=$(dpkg-query -W -f='${{Package}}:${{db:Status-Status}}:${{Version}} ' {packages} 2>/dev/null)",
            'echo "packages=$p"',
            # The install that follows waits while another package run holds the lock: asked here.
            f'case " $p" in *" {server.service}:installed:"*) ;; *) {LOCK_PROBE} && echo dpkg_lock=free '
            "|| echo dpkg_lock=held ;; esac",
            _EXPORTER_ENV,
            _units_answer(server),
            # The other server (a host that moves): builtins only where it is not installed.
            *(
                f'command -v {s.service} >/dev/null && {{ echo "other={s.service} '
                f"$({s.service} --version 2>/dev/null | sed -n 's/.* v=\\([0-9.]*\\).*/\\1/p') "
                f'$(systemctl is-active {s.service} 2>/dev/null) $(systemctl is-enabled {s.service} 2>/dev/null)"; '
                # a Sentinel group's member that moves: its membership is in the old server's config
                f"grep -Eqs '^(masteruser|primaryuser) ' {s.config} && echo other_ha_member=yes; }}"
                for s in SERVERS.values()
                if s != server
            ),
            # Started before its binary was replaced (ctime: dpkg renames a new file into place), or
            # before its certificate was written. Not /proc/PID/exe: reading it needs ptrace rights
            # that root lacks in a container. Unix timestamps: `date -d` misreads zone abbreviations.
            f"stat -L -c 'ctime=%n %Z' {' '.join('/usr/bin/' + b for b in binaries(server))} "
            f"{' '.join(SENTINEL_TLS_FILES)} 2>/dev/null",
            f"echo \"rdb=$(head -c 9 {server.data_dir}/dump.rdb 2>/dev/null | sed -n 's/^REDIS0*\\([0-9]\\{{1,3\\}}\\)$/\\1/p')\"",
            f"grep -qs '^{SENTINEL_MARKER}' {server.sentinel_config} && echo sentinel_conf=yes",
            # Valkey's CONFIG REWRITE names it primaryuser (README: a Sentinel group on Valkey).
            f"grep -Eqs '^(masteruser|primaryuser) ' {server.config} && echo ha_member=yes",
            f"grep -qs '^tls-port [1-9]' {server.sentinel_config} && echo sentinel_tls=yes",
            f"grep -qsx 'port 0' {server.config} && echo server_tls_only=yes",
            'echo "sysctl.vm.overcommit_memory=$(cat /proc/sys/vm/overcommit_memory 2>/dev/null)"',
            'echo "sysctl.net.core.somaxconn=$(cat /proc/sys/net/core/somaxconn 2>/dev/null)"',
            'echo "thp=$(cat /sys/kernel/mm/transparent_hugepage/enabled 2>/dev/null)"',
            # The plain files among them, then one stat and one sha256sum for all.
            f'set --; for f in {files} {" ".join(d + "/*" for d in WATCHED_DIRS)}; do test -f "$f" && set -- "$@" "$f"; done; '
            "if test $# -gt 0; then stat -c 'owner=%n %U %G %a' -- \"$@\" 2>/dev/null; "
            "sha256sum -- \"$@\" 2>/dev/null | sed 's/^/sha256=/'; fi",
            # A subshell and shell builtins only: the passwords never reach a process's arguments.
            f"test -f {PATHS.credentials} && ( . {PATHS.credentials}; for r in {' '.join(ACL_ROLES)}; do "
            'eval "u=\\${REDIS_${r}_USER:-}; p=\\${REDIS_${r}_PASSWORD:-}"; '
            # The user name last and on one line, whatever it holds.
            'test -n "$p" && h=$(printf %s "$p" | sha256sum) && echo "secret=$r ${h%% *} '
            "$(printf %s \"$u\" | tr '\\n' ' ')\"; done )",
            f"test -f {PATHS.credentials_previous} && ( . {PATHS.credentials_previous}; for r in {' '.join(ACL_ROLES)}; do "
            'eval "p=\\${REDIS_${r}_PASSWORD:-}"; '
            'test -n "$p" && h=$(printf %s "$p" | sha256sum) && echo "previous=$r ${h%% *}"; done )',
            "true",
        ]
    )


def parse(lines: list[str]) -> HostState:
    """The fact's lines -> HostState. A line that does not have the expected shape (a host value
    with spaces or a newline in it, a tool's stray output) is skipped, never fatal."""
    state = HostState()
    blocks: list[dict[str, str]] = [{}]  # systemctl show's, in units() order
    owners: dict[str, tuple[str, str, str]] = {}
    hashes: dict[str, str] = {}
    ctimes: dict[str, int] = {}
    live: list[str] = []
    for line in lines:
        try:
            key, _, value = line.partition("=")
            if key.startswith("u."):
                if key == "u.":
                    blocks.append({})
                else:
                    blocks[-1][key[2:]] = value.strip()
            elif key == "owner":
                path, user, group, mode = value.split()
                owners[path] = (user, group, mode)
            elif key == "sha256":
                sha, path = value.split("  ", 1)  # sha256sum's "HASH  NAME"; an escaped name starts with "\"
                if len(sha) == 64:
                    hashes[path] = sha
            elif key == "live" and value == OPEN_LOGIN:
                state.live_open = True
            elif key == "live":
                live.append(value)
            elif key == "ctime":
                path, seconds = value.split()
                ctimes[path] = int(seconds)
            else:
                _parse_line(state, line)
        except (ValueError, IndexError):
            continue
    state.files = {path: FileState(*owners[path], hashes[path]) for path in owners if path in hashes}
    _units(state, [b for b in blocks if b], ctimes)
    state.live = _live_values(live)
    return state


def _units(state: HostState, blocks: list[dict[str, str]], ctimes: dict[str, int]) -> None:
    """systemctl show's blocks -> the units' states; a block that is not the unit expected in its place is skipped."""
    server = state.server
    for unit, block in zip(units(server), blocks, strict=False):
        if block.get("Id") != (unit if "." in unit else f"{unit}.service"):
            continue
        enabled, active = block.get("UnitFileState", ""), block.get("ActiveState", "")
        if unit == server.service:
            state.enabled, state.active = enabled, active
        else:
            state.units[unit] = (enabled, active)
        if unit in reload_checked(server) and block.get("NeedDaemonReload") == "yes":
            state.need_reload.add(unit)
        started = block.get("ExecMainStartTimestamp", "").lstrip("@")
        if not started.isdigit():
            continue
        if unit in binaries(server) and ctimes.get(f"/usr/bin/{unit}", 0) > int(started):
            state.stale_binaries.add(unit)
        # Sentinel reads its certificate only when it starts: one written since then is not in use.
        if unit == server.sentinel_service and any(ctimes.get(f, 0) > int(started) for f in SENTINEL_TLS_FILES):
            state.sentinel_tls_stale = True


def _parse_line(state: HostState, line: str) -> None:
    key, _, value = line.partition("=")
    value = value.strip()
    if key == "server":
        state.server = SERVERS[value]
    elif key == "secret":
        role, sha, *named = value.split(" ", 2)
        if role not in ACL_ROLES or len(sha) != 64:
            raise ValueError(line)
        state.secret_users[role], state.secret_hashes[role] = (named or [""])[0].strip(), sha
    elif key == "previous":
        role, sha = value.split()
        if role not in ACL_ROLES or len(sha) != 64:
            raise ValueError(line)
        state.previous_hashes[role] = sha
    elif key == "addresses":
        state.addresses = tuple(a for a in map(_own_address, value.split()) if a)
    elif key == "groups":
        state.groups = tuple(value.split())
    elif key == "dpkg_lock":
        state.dpkg_locked = {"held": True, "free": False}.get(value)
    elif key == "rdb":
        state.rdb_version = int(value) if value else None
    elif key == "exporter_env":
        sha, _, user = value.partition(" ")
        state.exporter_env = ("" if sha == "-" else sha, user.strip())
    elif key == "exporter_auth":
        state.exporter_auth = "" if value == "-" else value
    elif key == "exporter_stale":
        state.exporter_stale = True
    elif key == "sentinel_conf":
        state.sentinel_conf_written = True
    elif key == "ha_member":
        state.ha_member = True
    elif key == "other_ha_member":
        state.other_ha_member = True
    elif key == "sentinel_tls":
        state.sentinel_tls = True
    elif key == "server_tls_only":
        state.server_tls_only = True
    elif key.startswith("sysctl."):
        state.sysctl[key[len("sysctl.") :]] = value
    elif key == "systemd":
        state.systemd = value == "yes"
    elif key == "container":
        state.container = None if value in ("", "none") else value
    elif key == "other":
        _, *version, active, enabled = value.split()  # no version: the binary did not say one
        state.other_version = version[0] if version else None
        state.other_active, state.other_enabled = active, enabled
    elif key == "packages":
        # "redis-server:installed:5:7.0.15-1~deb12u7 redis-tools:config-files:5:7.0.15-1~deb12u7 valkey-server:not-installed:"
        listed = [(name, *rest.partition(":")[::2]) for name, _, rest in (p.partition(":") for p in value.split())]
        state.installed_packages = tuple(name for name, status, _ in listed if status == "installed")
        # the server's files are there (not removed, nor never installed): its version
        unpacked = {
            name: version for name, status, version in listed if status not in ("", "not-installed", "config-files")
        }
        state.redis_version = upstream_version(unpacked.get(state.server.service, ""))
    elif key == "thp":
        # "always madvise [never]" -> "never"
        state.thp = value[value.find("[") + 1 : value.find("]")] if "[" in value else value
    elif key in ("os_id", "os_version", "os_codename"):
        setattr(state, key, value)


def upstream_version(package_version: str) -> str | None:
    """A Debian package's version -> the upstream one its binary reports: "5:7.0.15-1~deb12u7"
    -> "7.0.15", "8.0.2+dfsg1-1~bpo12+1" -> "8.0.2"; None for none."""
    without_epoch = package_version.partition(":")[2] if ":" in package_version else package_version
    found = re.match(r"[0-9]+(\.[0-9]+)*", without_epoch)
    return found.group(0) if found else None


def _own_address(text: str) -> str | None:
    """An address others may reach the host by, in normal form; None for loopback, link-local
    and anything that is no plain IP address."""
    if "%" in text:  # a zone id could carry any text into a config file
        return None
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    return None if address.is_loopback or address.is_link_local else str(address)


# The script reads files in folders that the server's user controls (its data file, redis.conf
# and sentinel.conf in its config folder), as root: a FIFO planted there would block a read, and
# with it every run at its first answer. Bounded, the run stops with this line instead.
ANSWER_SECONDS = 60


def bounded(script: str) -> str:
    """script, killed with what it started after ANSWER_SECONDS; the fact then fails with one line."""
    return (
        f"timeout {ANSWER_SECONDS} sh -c {shlex.quote(script)} || {{ echo "
        + shlex.quote(
            f"the host did not answer within {ANSWER_SECONDS} s: a file the deploy reads there blocks "
            "(a FIFO in the server's config or data folder?)"
        )
        + " >&2; exit 1; }"
    )


# The probe's line when it asked with the open login (a server config without ACL users).
OPEN_LOGIN = "open-login"
# What tells a server config with ACL users, as the config step reads it (config._login).
ACL_MARK = "user default off"


class RedisHost(FactBase[HostState]):
    """OS, container, Redis package and service state, and the managed files of a host; with
    live_cli, also RedisLive's answer for live_names (one round trip for both)."""

    def command(
        self,
        server: str = "redis",
        live_cli: str | None = None,
        live_names: tuple[str, ...] = (),
        live_guard: tuple[str, ...] = (),
        live_open_cli: str | None = None,
    ) -> str:
        return bounded(self.script(server, live_cli, live_names, live_guard, live_open_cli))

    @staticmethod
    def script(
        server: str = "redis",
        live_cli: str | None = None,
        live_names: tuple[str, ...] = (),
        live_guard: tuple[str, ...] = (),
        live_open_cli: str | None = None,
    ) -> str:
        """The script that command() runs, bounded. live_open_cli: the client for a config
        without ACL users (its first answer, on a fresh host), where live_cli logs in."""
        flavour = SERVERS[server]
        if not live_cli:
            return _script(flavour)
        # Only while redis.conf has the lines the client assumes (its port and TLS port): a TLS
        # client on a port that speaks plain text would wait for ever.
        guard = "".join(f"grep -Fqsx {shlex.quote(line)} {flavour.config} && " for line in live_guard)
        # Bounded: a wedged server must not hold up the first answer of every run (the config
        # step then asks on its own, as RedisLive, and waits as it always did).
        bounded_cli = live_cli.replace(f"{flavour.cli} ", f"timeout 10 {flavour.cli} ", 1)
        query = _live_query(bounded_cli, live_names)
        if live_open_cli:
            open_query = _live_query(
                live_open_cli.replace(f"{flavour.cli} ", f"timeout 10 {flavour.cli} ", 1), live_names
            )
            query = (
                f"if grep -Fqs {shlex.quote(ACL_MARK)} {flavour.config}; then {query}; "
                f"else echo {OPEN_LOGIN}; {open_query}; fi"
            )
        return f"{_script(flavour)}; {{ {guard}{query}; }} | sed 's/^/live=/'"

    def process(self, output) -> HostState:
        return parse(list(output))


class RedisLive(FactBase[dict[str, str] | None]):
    """The running server's values of the named settings, asked as the admin user; None when it does
    not answer. Only the settings the deploy renders are asked for, so masterauth never is.

    The password goes to redis-cli in its environment, from the root-only credentials file.
    """

    def command(self, cli: str, names: tuple[str, ...]) -> str:
        return _live_query(cli, names)

    def process(self, output):
        return _live_values(list(output))


def _live_query(cli: str, names: tuple[str, ...]) -> str:
    # A subshell: a missing credentials file must not end the fact's shell.
    return f"( {cli} --csv config get port {' '.join(sorted(names))} ) 2>/dev/null; true"


def _live_values(lines: list[str]) -> dict[str, str] | None:
    from .live import parse_config_get

    values = parse_config_get("".join(lines)) if lines else {}
    return values if "port" in values else None  # an error reply, or nobody listening
