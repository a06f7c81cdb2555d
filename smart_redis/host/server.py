"""redis-server on the host: the unit, its files, and a client logged in as the deploy's admin."""

from __future__ import annotations

from .credentials import PATH as CREDENTIALS
from .credentials import read_credentials
from .resp import Redis

SERVICE = "redis-server"
CONFIG = "/etc/redis/redis.conf"
# Next to the live file so that the final rename is atomic.
CANDIDATE = "/etc/redis/redis.conf.candidate"
# dir, logfile and pidfile sit inside the ReadWritePaths of the packaged unit.
DATA_DIR = "/var/lib/redis"
LOGFILE = "/var/log/redis/redis-server.log"


def admin(
    port: int, auth: str, credentials: str = CREDENTIALS, address: str = "127.0.0.1", timeout: float = 5.0
) -> Redis:
    """A connection as the admin user of `credentials` (no login with auth "none")."""
    user = password = None
    if auth != "none":
        values = read_credentials(credentials)
        user, password = values["REDIS_ADMIN_USER"], values["REDIS_ADMIN_PASSWORD"]
    return Redis(address, port, user, password, timeout=timeout)


def failure_reason(log_tail: list[str], words: tuple[str, ...], lines: int = 3) -> str:
    """Why redis-server did not start, from the end of its log: the last matching lines,
    without the pid and time ("1234:M 27 Nov 2026 16:00:00.000 ")."""
    hits = [line.rstrip("\n") for line in log_tail if any(word in line for word in words)][-lines:]
    return " ".join(line.split(" ", 5)[5] if line.count(" ") >= 5 else line for line in hits)


def log_tail(path: str = LOGFILE, lines: int = 30) -> list[str]:
    try:
        with open(path, errors="replace") as f:
            return f.readlines()[-lines:]
    except OSError:
        return []


def connect(config: dict, db: int = 0, host: str = "127.0.0.1", port: int | None = None) -> Redis:
    """A connection as the admin user: to the local server, or to host:port (a replica's primary)."""
    client = admin(port or config["port"], config["auth"], config["credentials"], address=host)
    if db:
        client.call("SELECT", db)
    return client
