"""redis-server on the host: the unit, its files, and a client logged in as the deploy's admin."""

from __future__ import annotations

import glob
import os
import pwd
import re
import ssl
import stat
import subprocess
from dataclasses import dataclass

from .credentials import PATH as CREDENTIALS
from .credentials import PREVIOUS, read_credentials
from .resp import Redis, RedisError


@dataclass(frozen=True)
class Server:
    """The server program as Debian packages it: Redis, or Valkey (its fork under the BSD licence,
    which speaks the same protocol and reads the same config). `name` is redis_server's value;
    the tools the apps and operators use keep their redis-* names whichever runs."""

    name: str
    service: str  # the unit, the binary and the server package
    tools_package: str  # the CLI and the RDB checker
    cli: str
    check_rdb: str
    config: str
    user: str  # the package's system user, owner of the config folder and the data
    sentinel_service: str  # the unit and the package
    sentinel_config: str
    sentinel_pidfile: str
    sentinel_logfile: str
    # dir, logfile and pidfile sit inside the ReadWritePaths of the packaged unit.
    data_dir: str
    logfile: str
    pidfile: str

    @property
    def group(self) -> str:
        return self.user

    @property
    def config_dir(self) -> str:
        return os.path.dirname(self.config)

    @property
    def config_backup(self) -> str:
        """The package's own config, kept once before the deploy first renders its own."""
        return f"{self.config}.backup"

    @property
    def replication_auth(self) -> str:
        """masterauth apart from the config, so that the deploy never renders it."""
        return f"{self.config_dir}/replication-auth.conf"

    @property
    def container_dropin(self) -> str:
        return f"/etc/systemd/system/{self.service}.service.d/10-container.conf"

    @property
    def ha_dropin(self) -> str:
        """Keeps the server (and so Sentinel's CONFIG REWRITE) from rewriting the deploy's config."""
        return f"/etc/systemd/system/{self.service}.service.d/20-smart-redis-ha.conf"

    @property
    def sentinel_container_dropin(self) -> str:
        return f"/etc/systemd/system/{self.sentinel_service}.service.d/10-container.conf"

    @property
    def packages(self) -> tuple[str, str]:
        return (self.service, self.tools_package)

    def unprivileged(self, *argv: str) -> list[str]:
        """argv as the server's user, for programs that parse what the server wrote: no groups
        besides its own, no way back to more privileges, none of root's environment (a secret an
        operator has there), and a session of its own (no terminal of root's to type into)."""
        return [
            "setsid",
            "--wait",
            "setpriv",
            f"--reuid={self.user}",
            f"--regid={self.group}",
            "--clear-groups",
            "--reset-env",
            "--no-new-privs",
            "--",
            *argv,
        ]

    def rdb_checker(self) -> list[str]:
        """The RDB checker on the file given as standard input, as the server's user: it parses
        what the server wrote (or an operator's snapshot), so never as root. Root opens the file
        (it may be root's own); the checker reads it on a pipe of the user's own, because it
        opens /dev/stdin again by name, which a file or pipe of root's would refuse it."""
        return self.unprivileged("sh", "-c", f"cat | exec {self.check_rdb} /dev/stdin")


REDIS = Server(
    name="redis",
    service="redis-server",
    tools_package="redis-tools",
    cli="redis-cli",
    check_rdb="redis-check-rdb",
    config="/etc/redis/redis.conf",
    user="redis",
    sentinel_service="redis-sentinel",
    sentinel_config="/etc/redis/sentinel.conf",
    sentinel_pidfile="/run/sentinel/redis-sentinel.pid",
    sentinel_logfile="/var/log/redis/redis-sentinel.log",
    data_dir="/var/lib/redis",
    logfile="/var/log/redis/redis-server.log",
    pidfile="/run/redis/redis-server.pid",
)
VALKEY = Server(
    name="valkey",
    service="valkey-server",
    tools_package="valkey-tools",
    cli="valkey-cli",
    check_rdb="valkey-check-rdb",
    config="/etc/valkey/valkey.conf",
    user="valkey",
    sentinel_service="valkey-sentinel",
    sentinel_config="/etc/valkey/sentinel.conf",
    sentinel_pidfile="/run/sentinel/valkey-sentinel.pid",
    sentinel_logfile="/var/log/valkey/valkey-sentinel.log",
    data_dir="/var/lib/valkey",
    logfile="/var/log/valkey/valkey-server.log",
    pidfile="/run/valkey/valkey-server.pid",
)
SERVERS = {server.name: server for server in (REDIS, VALKEY)}
# The one a host program serves: set once at its start (select) from what the deploy told it.
_serving = REDIS


def serving() -> Server:
    return _serving


def select(name: str) -> Server:
    """Make `name` (redis_server's value, as the deploy wrote it) the server this program serves."""
    global _serving
    _serving = SERVERS[name]
    return _serving


def server_version(info: dict) -> str | None:
    """The server's own version from INFO: Valkey reports the Redis version it forked from as
    redis_version, and its own as valkey_version."""
    return info.get("valkey_version") or info.get("redis_version")


# In the deploy's root-only folder, not in the config's (the server user's): renamed over the config.
CANDIDATE = "/etc/smart-redis/redis.conf.candidate"
# The deploy's TLS files (root-owned): the CA files in here are the only ones the tools trust.
TLS_DIR = "/etc/ssl/smart-redis"
# The names the deploy gives them in redis.conf (smart_redis/tls.py). redis.conf is the redis
# user's to write: any other path there is never read, nor put in a shell, by root.
TLS_FILE_RE = re.compile(re.escape(TLS_DIR) + r"/redis-[0-9a-f]{16}(-ca)?\.(crt|key)")
# Sentinel's (smart_redis/tls.py): the same certificate under fixed names, root's to write, on
# every host of a Sentinel group with TLS (those without a sentinel use them to ask the others).
SENTINEL_TLS_CERT = f"{TLS_DIR}/sentinel.crt"
SENTINEL_TLS_KEY = f"{TLS_DIR}/sentinel.key"
SENTINEL_TLS_CA = f"{TLS_DIR}/sentinel-ca.crt"
# OpenSSL's X509_V_FLAG_NO_CHECK_TIME (x509_vfy.h, OpenSSL 1.1.0 on): Python's ssl has no name for it.
NO_CHECK_TIME = 0x200000


def admin(
    port: int, auth: str, credentials: str = CREDENTIALS, address: str = "127.0.0.1", timeout: float = 5.0
) -> Redis:
    """A connection as the admin user of `credentials` (no login with auth "none")."""
    user = password = None
    if auth != "none":
        values = read_credentials(credentials)
        user, password = values["REDIS_ADMIN_USER"], values["REDIS_ADMIN_PASSWORD"]
    return Redis(address, port, user, password, timeout=timeout, tls=tls_context(port))


def directives(config: str | None = None) -> dict[str, str]:
    """The config's one-word directives (port, tls-port, the TLS files), as the file says now."""
    config = config or _serving.config
    found = {}
    try:
        with open(config) as f:
            for line in f:
                words = line.split()
                if len(words) == 2 and not words[0].startswith("#"):
                    found[words[0].lower()] = words[1].strip('"')  # CONFIG REWRITE quotes paths
    except OSError:
        pass
    return found


def configured_port(config: str | None = None) -> int:
    """The port redis.conf names: where the server runs once the deploy's last restart is done
    (with redis_tls = "only", the TLS port: the plain one is 0)."""
    found = directives(config)
    try:
        port = int(found.get("port", 6379))
        return port or int(found.get("tls-port", 0)) or 6379
    except ValueError:
        return 6379


def tls_context(port: int, config: str | None = None) -> ssl.SSLContext | None:
    """TLS for a connection to `port` when redis.conf makes it this server's TLS port and no plain
    one: the server's CA verifies the other side, and its certificate is the client's, as Redis
    itself presents it to a primary. No name check: a host tool connects to 127.0.0.1 or to a peer
    by the address the topology gives, and the CA is the project's or the operator's own."""
    found = directives(config)
    tls_port, plain = found.get("tls-port", "0"), found.get("port", "6379")
    if tls_port in ("0", plain) or str(port) != tls_port:
        return sentinel_tls_context(plain)
    named = [found.get(name, "") for name in ("tls-ca-cert-file", "tls-cert-file", "tls-key-file")]
    if not all(TLS_FILE_RE.fullmatch(path) for path in named):
        raise ssl.SSLError("redis.conf names a TLS file the deploy did not write")
    context = management_context(found["tls-ca-cert-file"])
    # Also the CA of a change the deploy has begun (it removes the replaced files once the server
    # presents the new certificate): a run that stopped between the two still logs in.
    for other in sorted(glob.glob(os.path.join(TLS_DIR, "redis-*-ca.crt"))):
        context.load_verify_locations(cafile=other)
    if found.get("tls-auth-clients", "yes") == "yes":  # only where required: see live.endpoint
        context.load_cert_chain(found["tls-cert-file"], found["tls-key-file"])
    return context


def management_context(cafile: str) -> ssl.SSLContext:
    """The deploy's and the host tools' TLS to the group's servers and sentinels: the chain must
    reach the CA the deploy installed (root's files), but its dates are not checked. An expired
    certificate is repaired by the next run, whose SAVE, restart and questions to the sentinels
    go through here (and redis-monitor health then says "expired", not "no TLS"). This is the
    simplest safe way: these connections check no name (tls_context), so they take any certificate
    of this CA already; ignoring the dates adds only this CA's expired ones (the project's CA
    issued those to the group's hosts alone). The deploy itself installs none that expired
    (certs.check). Not --insecure, which would take a certificate of any CA, or none."""
    context = ssl.create_default_context(cafile=cafile)
    context.check_hostname = False
    context.verify_flags |= NO_CHECK_TIME  # an int: ssl has no name for this flag
    return context


def sentinel_tls_context(plain: str) -> ssl.SSLContext | None:
    """TLS for a connection to the group's sentinels: in a Sentinel group with TLS (the deploy has
    put Sentinel's files here) every server and sentinel speaks TLS alone, so any port but the
    server's own is a sentinel's. plain: redis.conf's plain port ("0": none). Read nothing from
    sentinel.conf, the redis user's file; a host without a sentinel has none."""
    if plain != "0" or not os.path.exists(SENTINEL_TLS_CA):
        return None
    context = management_context(SENTINEL_TLS_CA)
    # Shown only when a sentinel asks for one; in a group it allows clientAuth (certs.check, group).
    context.load_cert_chain(SENTINEL_TLS_CERT, SENTINEL_TLS_KEY)
    return context


def logins(auth: str) -> list[str]:
    """The credentials files a login tries, in order: during a rotation the previous one too."""
    return [CREDENTIALS] + ([PREVIOUS] if auth == "acl" and os.path.exists(PREVIOUS) else [])


def login(port: int, auth: str, address: str = "127.0.0.1", timeout: float = 5.0) -> Redis:
    """The admin login a server accepts now: during a rotation, before it accepts the new
    passwords, that is the previous one."""
    errors: list[Exception] = [RedisError("no login")]
    for path in logins(auth):
        try:
            client = admin(port, auth, path, address=address, timeout=timeout)
            client.call("PING")
            return client
        except (OSError, RedisError, KeyError) as exc:
            errors.append(exc)
    # A server that loads its data refuses every login's PING alike: say that, not the last WRONGPASS.
    raise next((e for e in errors if "LOADING" in str(e)), errors[-1])


def failure_reason(log_tail: list[str], words: tuple[str, ...], lines: int = 3) -> str:
    """Why redis-server did not start, from the end of its log: the last matching lines,
    without the pid and time ("1234:M 27 Nov 2026 16:00:00.000 ")."""
    hits = [line.rstrip("\n") for line in log_tail if any(word in line for word in words)][-lines:]
    return " ".join(line.split(" ", 5)[5] if line.count(" ") >= 5 else line for line in hits)


def log_tail(path: str | None = None, lines: int = 30) -> list[str]:
    try:
        with open(path or _serving.logfile, errors="replace") as f:
            return f.readlines()[-lines:]
    except OSError:
        return []


def connect(config: dict, db: int = 0, host: str = "127.0.0.1", port: int | None = None) -> Redis:
    """A connection as the admin user: to the local server, or to host:port (a replica's primary).

    During a password rotation the credentials file holds the new admin password a moment before
    each server accepts it: then the replaced one, still accepted, logs in."""
    try:
        client = admin(port or config["port"], config["auth"], config["credentials"], address=host)
    except RedisError as exc:
        if "WRONGPASS" not in str(exc) or not os.path.exists(PREVIOUS):
            raise
        client = admin(port or config["port"], config["auth"], PREVIOUS, address=host)
    if db:
        client.call("SELECT", db)
    return client


def open_plain_file(path: str, owner: str | None = None) -> int:
    """A descriptor of the plain file at path, opened without following a link there (nor
    waiting on a FIFO), owned by `owner` when given; OSError with the reason otherwise."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    try:
        found = os.fstat(fd)
        if not stat.S_ISREG(found.st_mode):
            raise OSError(f"{path} is not a plain file")
        if owner is not None and found.st_uid != pwd.getpwnam(owner).pw_uid:
            raise OSError(f"{path} is not {owner}'s")
    except BaseException:
        os.close(fd)
        raise
    return fd


SENTINEL_MYID_RE = re.compile(r"sentinel myid ([0-9a-f]{40})")


def sentinel_myid(path: str) -> str | None:
    """The id a sentinel keeps in its config at path, None without one. The folder is the server
    user's: a link or a FIFO there is not read, and only a line of that shape passes."""
    try:
        fd = open_plain_file(path)
    except OSError:
        return None
    with os.fdopen(fd, errors="replace") as f:
        text = f.read(1 << 20)
    found = (SENTINEL_MYID_RE.fullmatch(line.strip()) for line in text.splitlines())
    return next((m.group(1) for m in found if m), None)


def check_rdb(server: Server, path: str) -> subprocess.CompletedProcess:
    """server's RDB checker on root's file at path, as the server's user; stdout and stderr together."""
    fd = open_plain_file(path)
    try:
        return subprocess.run(
            server.rdb_checker(), stdin=fd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
        )
    finally:
        os.close(fd)
