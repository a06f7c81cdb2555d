"""A small RESP2 client: enough for redis-monitor, nothing to install on the host.

Kept by hand rather than Debian's python3-redis: the host programs then need only the system
python3 that the deploy installs anyway, on every supported release, and a package upgrade of
python3-redis can never change what redis-monitor or the restore check do.
"""

from __future__ import annotations

import socket
import ssl

from .info import parse_info


class RedisError(Exception):
    pass


class Redis:
    """A small RESP2 client: enough for the monitor, nothing to install."""

    def __init__(
        self,
        host: str,
        port: int,
        user: str | None,
        password: str | None,
        timeout: float = 5.0,
        tls: ssl.SSLContext | None = None,
    ):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        if tls is not None:
            self.sock = tls.wrap_socket(self.sock, server_hostname=host)
        self.buf = b""
        if password:
            self.call("AUTH", user, password)

    def send(self, *args) -> None:
        out = [b"*%d\r\n" % len(args)]
        for arg in args:
            data = arg if isinstance(arg, bytes) else str(arg).encode()
            out.append(b"$%d\r\n%s\r\n" % (len(data), data))
        self.sock.sendall(b"".join(out))

    def _line(self) -> bytes:
        while b"\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RedisError("connection closed")
            self.buf += chunk
        line, self.buf = self.buf.split(b"\r\n", 1)
        return line

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n + 2:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise RedisError("connection closed")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n + 2 :]
        return data

    def read(self):
        line = self._line()
        kind, rest = line[:1], line[1:]
        if kind == b"+":
            return rest.decode()
        if kind == b"-":
            raise RedisError(rest.decode())
        if kind == b":":
            return int(rest)
        if kind == b"$":
            n = int(rest)
            return None if n < 0 else self._exact(n).decode(errors="replace")
        if kind == b"*":
            n = int(rest)
            return None if n < 0 else [self.read() for _ in range(n)]
        raise RedisError(f"unexpected reply {line[:40]!r}")

    def call(self, *args):
        self.send(*args)
        return self.read()

    def pipeline(self, commands: list[tuple]) -> list:
        for command in commands:
            self.send(*command)
        replies = []
        for _ in commands:
            try:
                replies.append(self.read())
            except RedisError as exc:
                replies.append(exc)
        return replies

    def info(self, section: str = "everything") -> dict:
        return parse_info(self.call("INFO", section))

    def scan(self, pattern: str = "*", count: int = 1000):
        cursor = "0"
        while True:
            cursor, keys = self.call("SCAN", cursor, "MATCH", pattern, "COUNT", count)
            yield from keys
            if cursor == "0":
                return


def scan_replies(r: Redis, command: str, limit: int | None, batch: int = 500):
    """(key, reply to COMMAND key) for the selected DB's keys, at most `limit` of them: SCAN, never
    KEYS, and the per-key commands pipelined in batches."""
    keys: list[str] = []
    for seen, key in enumerate(r.scan(count=1000), 1):
        keys.append(key)
        if len(keys) >= batch:
            yield from zip(keys, r.pipeline([(command, k) for k in keys]), strict=False)
            keys = []
        if limit is not None and seen >= limit:
            break
    if keys:
        yield from zip(keys, r.pipeline([(command, k) for k in keys]), strict=False)
