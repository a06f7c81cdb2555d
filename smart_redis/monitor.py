#!/usr/bin/python3
"""redis-monitor: look after the Smart-Trade Redis server of this host.

Installed by the smart-redis deploy as /usr/local/bin/redis-monitor. Standard library only
(runs on the host's system Python). It logs in as the admin ACL user with the password from
the root-only credentials file, never from the command line; run it as root or, as a member
of the operator group, through sudo (it re-runs itself with `sudo -n` when needed).

    redis-monitor status|info|memory|databases|test|backup|cleanup|health|sample-data [--json]
    redis-monitor keys [--db N] [PATTERN] [--limit N]
    redis-monitor restore-check COUNTS_FILE < INFO-KEYSPACE   (the deploy's check after a restore)
"""

from __future__ import annotations

import argparse
import json
import os
import pwd
import shlex
import shutil
import socket
import stat
import subprocess
import sys
import time

CONFIG = "/etc/smart-redis/monitor.json"
TEST_PREFIX = "redis-monitor:test:"
OK, WARNING, CRITICAL = 0, 1, 2
LEVEL = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL"}


class RedisError(Exception):
    pass


class Redis:
    """A small RESP2 client: enough for the monitor, nothing to install."""

    def __init__(self, host: str, port: int, user: str | None, password: str | None, timeout: float = 5.0):
        self.sock = socket.create_connection((host, port), timeout=timeout)
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
        result = {}
        for line in self.call("INFO", section).splitlines():
            if ":" in line and not line.startswith("#"):
                key, _, value = line.partition(":")
                result[key] = value
        return result

    def scan(self, pattern: str = "*", count: int = 1000):
        cursor = "0"
        while True:
            cursor, keys = self.call("SCAN", cursor, "MATCH", pattern, "COUNT", count)
            yield from keys
            if cursor == "0":
                return


# --- Setup -----------------------------------------------------------------------------------


def load_config() -> dict:
    with open(CONFIG) as f:
        return json.load(f)


def read_credentials(path: str) -> dict:
    values = {}
    with open(path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                key, _, value = line.strip().partition("=")
                values[key] = shlex.split(value)[0] if value else ""
    return values


def connect(config: dict, db: int = 0, host: str = "127.0.0.1", port: int | None = None) -> Redis:
    """A connection as the admin user: to the local server, or to host:port (a replica's primary)."""
    user = password = None
    if config["auth"] != "none":
        creds = read_credentials(config["credentials"])
        user, password = creds["REDIS_ADMIN_USER"], creds["REDIS_ADMIN_PASSWORD"]
    client = Redis(host, port or config["port"], user, password)
    if db:
        client.call("SELECT", db)
    return client


def human(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    return str(n)


def table(rows: list[dict]) -> str:
    if not rows:
        return "(nothing)"
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r.get(c, ""))) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns)]
    lines += ["  ".join(str(r.get(c, "")).ljust(widths[c]) for c in columns) for r in rows]
    return "\n".join(lines)


def emit(args, data, text: str | None = None) -> None:
    if args.json:
        print(json.dumps(data, indent=2, sort_keys=False))
    elif text is not None:
        print(text)
    elif isinstance(data, list):
        print(table(data))
    else:
        print(table([{"field": k, "value": v} for k, v in data.items()]))


def systemctl(*args: str) -> str:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    return result.stdout.strip()


# --- Subcommands -----------------------------------------------------------------------------


def cmd_status(args, config) -> int:
    data = {
        "service": systemctl("is-active", config["service"]) or "unknown",
        "enabled_at_boot": systemctl("is-enabled", config["service"]) == "enabled",
    }
    try:
        r = connect(config)
        info = r.info()
        data.update(
            version=info.get("redis_version"),
            uptime_seconds=int(info.get("uptime_in_seconds", 0)),
            port=int(info.get("tcp_port", config["port"])),
            bind=r.call("CONFIG", "GET", "bind")[1],
            connected_clients=int(info.get("connected_clients", 0)),
            role=info.get("role"),
        )
        if config.get("ha"):
            data.update(replication_view(info))
    except (OSError, RedisError) as exc:
        data["error"] = str(exc)
    if config.get("ha"):
        data["sentinels"] = sentinel_view(config)
    rows = [{"field": k, "value": v} for k, v in data.items() if k != "sentinels"]
    rows += [{"field": f"sentinel {address}", "value": f"primary {answer}" if ":" in answer and "(" not in answer else answer}
             for address, answer in data.get("sentinels", {}).items()]
    emit(args, data, table(rows))
    return 0 if "error" not in data else 2


def replication_view(info: dict) -> dict:
    """This server's side of replication, from INFO: its primary, or its replicas."""
    if info.get("role") == "slave":
        return {
            "primary": f"{info.get('master_host')}:{info.get('master_port')}",
            "link": info.get("master_link_status"),
        }
    replicas = []
    for n in range(int(info.get("connected_slaves", 0))):
        fields = dict(part.split("=", 1) for part in info.get(f"slave{n}", "").split(",") if "=" in part)
        replicas.append(f"{fields.get('ip')}:{fields.get('port')} ({fields.get('state')}, lag {fields.get('lag')}s)")
    return {"connected_replicas": len(replicas), "replicas": ", ".join(replicas) or "none"}


def sentinel_view(config: dict) -> dict:
    """Each sentinel's answer to "where is the primary?", or why it gave none."""
    ha = config["ha"]
    creds = read_credentials(config["credentials"])
    view = {}
    for address in ha["sentinels"]:
        try:
            s = Redis(address, ha["sentinel_port"], creds["REDIS_ADMIN_USER"], creds["REDIS_ADMIN_PASSWORD"], timeout=2)
            reply = s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", ha["master_name"])
            view[f"{address}:{ha['sentinel_port']}"] = ":".join(reply) if reply else "does not know the primary"
        except (OSError, RedisError) as exc:
            view[f"{address}:{ha['sentinel_port']}"] = f"no answer ({exc})"
    return view


def replication_checks(view: dict, info: dict) -> list[tuple]:
    """CRITICAL when the sentinels disagree (or too few answer), or the primary has no replica.

    view: sentinel_view(); info: this server's INFO replication (empty when it does not answer)
    """
    answers = {v for v in view.values() if ":" in v and not v.startswith("no answer")}
    answered = sum(1 for v in view.values() if not v.startswith("no answer") and v != "does not know the primary")
    quorum = len(view) // 2 + 1
    if len(answers) > 1:
        checks = [("sentinels", CRITICAL, "disagree on the primary: " + ", ".join(f"{k} says {v}" for k, v in view.items()))]
    elif answered < quorum:
        checks = [("sentinels", CRITICAL, f"only {answered} of {len(view)} answer (a failover needs {quorum})")]
    else:
        checks = [("sentinels", OK, f"{answered} of {len(view)} agree: primary {answers.pop()}")]
    if info.get("role") == "master":
        replicas = int(info.get("connected_slaves", 0))
        checks.append(("replication", CRITICAL if replicas == 0 else OK, f"primary with {replicas} connected replica(s)"))
    elif info:
        link = info.get("master_link_status")
        checks.append(("replication", OK if link == "up" else WARNING,
                       f"replica of {info.get('master_host')}:{info.get('master_port')}, link {link}"))
    return checks


INFO_FIELDS = {
    "server": ("redis_version", "redis_mode", "os", "process_id", "tcp_port", "uptime_in_days", "hz"),
    "clients": ("connected_clients", "blocked_clients", "maxclients"),
    "memory": ("used_memory_human", "used_memory_peak_human", "maxmemory_human", "maxmemory_policy", "mem_fragmentation_ratio"),
    "persistence": ("loading", "rdb_changes_since_last_save", "rdb_last_save_time", "rdb_last_bgsave_status", "aof_enabled"),
    "stats": ("total_connections_received", "total_commands_processed", "instantaneous_ops_per_sec",
              "rejected_connections", "expired_keys", "evicted_keys", "keyspace_hits", "keyspace_misses"),
    "replication": ("role", "connected_slaves", "master_host", "master_link_status"),
}


def cmd_info(args, config) -> int:
    info = connect(config).info()
    data = {section: {k: info.get(k) for k in fields if k in info} for section, fields in INFO_FIELDS.items()}
    rows = [{"section": s, "field": k, "value": v} for s, fields in data.items() for k, v in fields.items()]
    emit(args, data, None if args.json else table(rows))
    return 0


def memory_data(r: Redis) -> dict:
    info = r.info("memory")
    used, maxmemory = int(info["used_memory"]), int(info.get("maxmemory", 0))
    return {
        "used_memory": used,
        "maxmemory": maxmemory,
        "used_pct": round(100.0 * used / maxmemory, 1) if maxmemory else None,
        "peak_memory": int(info["used_memory_peak"]),
        "fragmentation_ratio": float(info.get("mem_fragmentation_ratio", 0)),
        "evicted_keys": int(r.info("stats").get("evicted_keys", 0)),
        "policy": info.get("maxmemory_policy"),
    }


def cmd_memory(args, config) -> int:
    data = memory_data(connect(config))
    text = None
    if not args.json:
        shown = dict(data)
        for key in ("used_memory", "maxmemory", "peak_memory"):
            shown[key] = human(data[key])
        text = table([{"field": k, "value": v} for k, v in shown.items()])
    emit(args, data, text)
    return 0


def scan_replies(r: Redis, command: str, limit: int | None, batch: int = 500):
    """(key, reply to COMMAND key) for the selected DB's keys, at most `limit` of them: SCAN, never
    KEYS, and the per-key commands pipelined in batches."""
    keys: list[str] = []
    for seen, key in enumerate(r.scan(count=1000), 1):
        keys.append(key)
        if len(keys) >= batch:
            yield from zip(keys, r.pipeline([(command, k) for k in keys]))
            keys = []
        if limit is not None and seen >= limit:
            break
    if keys:
        yield from zip(keys, r.pipeline([(command, k) for k in keys]))


def ttl_breaks(r: Redis, ttl: int | None, sample: int | None) -> tuple[int, int, list[str]]:
    """(keys sampled, keys without TTL in a DB that wants one, those keys)."""
    if ttl is None:
        return 0, 0, []
    sampled, keys = 0, []
    for key, remaining in scan_replies(r, "TTL", sample):
        sampled += 1
        if remaining == -1:
            keys.append(key)
    return sampled, len(keys), keys


def cmd_databases(args, config) -> int:
    rows = []
    r = connect(config)
    for entry in config["keyspace"]:
        r.call("SELECT", entry["db"])
        sampled, breaks, _ = ttl_breaks(r, entry["ttl"], args.sample)
        rows.append(
            {"db": entry["db"], "name": entry["name"], "keys": r.call("DBSIZE"), "ttl": entry["ttl"],
             "sampled": sampled, "ttl_breaks": breaks}
        )
    emit(args, rows)
    return 0


def cmd_keys(args, config) -> int:
    r = connect(config, args.db)
    keys = []
    for key in r.scan(args.pattern, count=min(max(args.limit, 10), 1000)):
        keys.append(key)
        if len(keys) >= args.limit:
            break
    replies = r.pipeline([c for k in keys for c in (("TYPE", k), ("TTL", k))])
    rows = [{"key": k, "type": replies[2 * i], "ttl": replies[2 * i + 1]} for i, k in enumerate(keys)]
    emit(args, rows)
    return 0


def cmd_test(args, config) -> int:
    results = []

    def check(name, fn):
        try:
            detail = fn()
            results.append({"check": name, "result": "OK", "detail": detail or ""})
        except Exception as exc:  # every failure is one FAIL line, never a traceback
            results.append({"check": name, "result": "FAIL", "detail": str(exc)})

    r = None
    local = None  # on a replica: this host's server, while r is its primary (replicas refuse writes)
    target = ("127.0.0.1", config["port"])

    def connectivity():
        nonlocal r, local, target
        r = connect(config)
        if r.call("PING") != "PONG":
            raise RedisError("no PONG")
        info = r.info("replication")
        if info.get("role") == "slave":
            local, target = r, (info["master_host"], int(info["master_port"]))
            r = connect(config, host=target[0], port=target[1])
            return f"127.0.0.1:{config['port']}, a replica: the write checks run on its primary {target[0]}:{target[1]}"
        return f"127.0.0.1:{config['port']}"

    def replicated():
        key = TEST_PREFIX + "replicated"
        r.call("SET", key, "1", "EX", 60)
        deadline = time.monotonic() + 5
        while local.call("EXISTS", key) != 1 and time.monotonic() < deadline:
            time.sleep(0.05)
        if local.call("EXISTS", key) != 1:
            raise RedisError("a key written on the primary did not reach this replica within 5 s")
        r.call("DEL", key)
        return "a key written on the primary arrived here"

    def write_read():
        key = TEST_PREFIX + "rw"
        r.call("SET", key, "value", "EX", 60)
        if r.call("GET", key) != "value":
            raise RedisError("read back another value")
        r.call("DEL", key)

    def ttl_expiry():
        key = TEST_PREFIX + "ttl"
        r.call("SET", key, "1", "PX", 300)
        deadline = time.monotonic() + 5
        while r.call("EXISTS", key) and time.monotonic() < deadline:
            time.sleep(0.05)
        if r.call("EXISTS", key):
            raise RedisError("the key outlived its 300 ms TTL")
        return "a 300 ms key expired"

    def databases():
        for entry in config["keyspace"]:
            r.call("SELECT", entry["db"])
            key = TEST_PREFIX + "db"
            r.call("SET", key, entry["name"], "EX", 60)
            if r.call("GET", key) != entry["name"]:
                raise RedisError(f"db {entry['db']} did not read back")
            r.call("DEL", key)
        r.call("SELECT", 0)
        return f"{len(config['keyspace'])} databases"

    def keyspace_event():
        listener = connect(config, host=target[0], port=target[1])
        listener.sock.settimeout(5)
        listener.call("SUBSCRIBE", "__keyevent@0__:expired")
        key = TEST_PREFIX + "event"
        r.call("SET", key, "1", "PX", 100)
        while True:
            message = listener.read()
            if message[0] == "message" and message[2] == key:
                return "expired event received"

    check("connectivity", connectivity)
    checks = [("write/read", write_read), ("ttl expiry", ttl_expiry), ("databases", databases),
              ("keyspace event", keyspace_event)]
    if local is not None:
        checks.append(("replication", replicated))
    for name, fn in checks:
        if r is None:
            results.append({"check": name, "result": "FAIL", "detail": "not connected"})
        else:
            check(name, fn)
    failed = any(x["result"] == "FAIL" for x in results)
    emit(args, results, None if args.json else "\n".join(f"{x['result']:4}  {x['check']}: {x['detail']}" for x in results))
    return 1 if failed else 0


def parse_keyspace(text: str) -> dict:
    """db number -> {"keys": n, "expires": m}, from the text of INFO keyspace (redis-cli's too)."""
    counts = {}
    for line in text.splitlines():
        name, _, fields = line.strip().partition(":")
        if name.startswith("db") and name[2:].isdigit():
            values = dict(field.split("=", 1) for field in fields.split(",") if "=" in field)
            counts[name[2:]] = {"keys": int(values.get("keys", 0)), "expires": int(values.get("expires", 0))}
    return counts


def keyspace_counts(r: Redis) -> dict:
    """db number -> {"keys": n, "expires": m}, from INFO keyspace."""
    return parse_keyspace(r.call("INFO", "keyspace"))


# Expiry times are kept as a histogram of absolute times: finer where a restore soon after the
# backup needs it, coarse for keys that outlive any plausible restore delay.
BUCKETS = ((600, 10), (86400, 600), (30 * 86400, 86400))
LONG_BUCKET = 30 * 86400
EXPIRY_SCAN_LIMIT = 200_000  # keys looked at per DB: bounds the time a backup spends on SCAN


def expiry_bucket(expires_at: int, now: int) -> tuple[int, int]:
    """(bucket start, width) for a key expiring at expires_at (epoch seconds), seen at now."""
    remaining = expires_at - now
    width = next((w for limit, w in BUCKETS if remaining < limit), LONG_BUCKET)
    return expires_at // width * width, width


def expiry_histogram(r: Redis, now: float, limit: int = EXPIRY_SCAN_LIMIT) -> dict:
    """Absolute expiry times of the selected DB's volatile keys, from a bounded SCAN + PTTL.

    {"buckets": [[start, width, count], ...], "sampled": volatile keys seen} - a sample when
    the DB holds more than `limit` keys.
    """
    buckets: dict = {}
    sampled = 0
    for _, pttl in scan_replies(r, "PTTL", limit, batch=1000):
        if isinstance(pttl, int) and pttl >= 0:
            sampled += 1
            bucket = expiry_bucket(int(now + pttl / 1000), int(now))
            buckets[bucket] = buckets.get(bucket, 0) + 1
    return {"buckets": [[start, width, n] for (start, width), n in sorted(buckets.items())], "sampled": sampled}


def backup_counts(r: Redis, stamp: str, now: float) -> dict:
    """What a restore can still compare later: keys without TTL, and when the others expire."""
    counts = keyspace_counts(r)
    volatile = {}
    for db, n in counts.items():
        if n["expires"]:
            r.call("SELECT", db)
            volatile[db] = {"keys": n["expires"], **expiry_histogram(r, now)}
    r.call("SELECT", 0)
    return {
        "created": stamp,
        "created_epoch": int(now),
        "redis_version": r.info("server").get("redis_version"),
        "keys": {db: n["keys"] for db, n in counts.items()},
        "persistent": {db: n["keys"] - n["expires"] for db, n in counts.items()},
        "volatile": volatile,
    }


RESTORE_SLACK = 10  # seconds of clock difference and check delay a volatile key is given


def compare_counts(counts: dict, restored: dict, now: float, slack: int = RESTORE_SLACK) -> tuple[bool, str]:
    """Compare a restored server's INFO keyspace (parse_keyspace) with a backup's counts file.

    Keys without TTL must all be back. Of the keys with a TTL, at least those whose expiry
    lies beyond now + slack must be back, and no more than there were. Counts files of older
    redis-monitor versions (totals only) can only say that no DB gained keys.
    """
    wrong, shown, expired = [], [], 0
    if "persistent" not in counts:
        for db, total in sorted(counts["keys"].items(), key=lambda x: int(x[0])):
            got = restored.get(db, {}).get("keys", 0)
            if got > total:
                wrong.append(f"db{db}: {got} keys, {total} at backup time")
            shown.append(f"db{db}={got}/{total}")
        wrong += [f"db{db}: {n['keys']} keys, none at backup time" for db, n in sorted(restored.items()) if db not in counts["keys"]]
        if wrong:
            return False, "restored key counts differ from the backup's: " + "; ".join(wrong)
        return True, ("key counts within the backup's (an older counts file without TTLs: only checked that "
                      "no DB has more keys than at backup time): " + ", ".join(shown))
    age = max(0, int(now - counts.get("created_epoch", now)))
    for db in sorted(set(counts["persistent"]) | set(restored), key=int):
        got = restored.get(db, {"keys": 0, "expires": 0})
        persistent = got["keys"] - got["expires"]
        want = counts["persistent"].get(db)
        if want is None:
            wrong.append(f"db{db}: {got['keys']} keys, none at backup time")
            continue
        if persistent != want:
            wrong.append(f"db{db}: {persistent} keys without TTL, {want} at backup time")
        volatile = counts.get("volatile", {}).get(db, {"keys": 0, "buckets": [], "sampled": 0})
        alive = sum(n for start, _, n in volatile["buckets"] if start > now + slack)
        if volatile["sampled"] and volatile["sampled"] < volatile["keys"]:
            # A sample: scaled to the whole DB, with a margin for the sample's error.
            alive = int(alive * volatile["keys"] / volatile["sampled"] * 0.9)
        if got["expires"] > volatile["keys"]:
            wrong.append(f"db{db}: {got['expires']} keys with TTL, only {volatile['keys']} at backup time")
        elif got["expires"] < alive:
            wrong.append(f"db{db}: {got['expires']} keys with TTL, but {alive} of the backup's outlive the {age} s since it")
        expired += volatile["keys"] - got["expires"]
        shown.append(f"db{db}={persistent}+{got['expires']}ttl" if volatile["keys"] else f"db{db}={persistent}")
    if wrong:
        return False, "restored key counts differ from the backup's: " + "; ".join(wrong)
    line = "key counts match the backup: " + ", ".join(shown)
    if expired > 0:
        line += f"; {expired} keys with a TTL expired in the {age} s since the snapshot"
    return True, line


def rotate(directory: str, keep_hourly: int, keep_daily: int) -> list[str]:
    """Keep the newest keep_hourly snapshots and the newest of each of the last keep_daily days."""
    snapshots = sorted((f for f in os.listdir(directory) if f.startswith("dump-") and f.endswith(".rdb")), reverse=True)
    keep = set(snapshots[:keep_hourly])
    days: list[str] = []
    for name in snapshots:
        day = name[5:13]
        if day not in days:
            days.append(day)
            if len(days) <= keep_daily:
                keep.add(name)
    removed = [name for name in snapshots if name not in keep]
    for name in removed:
        for path in (os.path.join(directory, name), os.path.join(directory, name + ".counts.json")):
            if os.path.exists(path):
                os.unlink(path)
    return removed


class BackupError(RedisError):
    """A backup that cannot run, with the reason the job's journal shows."""


BACKUP_UNIT = "redis-backup.service"


def wait_for_snapshot(r: Redis, timeout: float, clock=time.monotonic, sleep=time.sleep) -> None:
    """BGSAVE once no other save (a save point, a replica's sync, an AOF rewrite) runs, and wait for it."""
    deadline = clock() + timeout

    def busy() -> bool:
        info = r.info("persistence")
        return info.get("rdb_bgsave_in_progress") == "1" or info.get("aof_rewrite_in_progress") == "1"

    while True:
        while busy():
            if clock() > deadline:
                raise BackupError(f"another save still runs after {timeout} s")
            sleep(0.2)
        before = r.call("LASTSAVE")
        # LASTSAVE counts seconds: ours must end in a later second than the one before it.
        while int(time.time()) <= before and clock() < deadline:
            sleep(0.05)
        try:
            r.call("BGSAVE")
            break
        except RedisError as exc:
            # A save that started in between: wait for it too.
            if ("in progress" not in str(exc) and "child process is active" not in str(exc)) or clock() > deadline:
                raise BackupError(f"BGSAVE refused: {exc}") from None
            sleep(0.2)
    while r.call("LASTSAVE") == before:
        info = r.info("persistence")
        if info.get("rdb_bgsave_in_progress") == "0" and info.get("rdb_last_bgsave_status") != "ok":
            raise BackupError(f"BGSAVE failed (rdb_last_bgsave_status {info.get('rdb_last_bgsave_status')}), see the Redis log")
        if clock() > deadline:
            raise BackupError(f"no snapshot within {timeout} s")
        sleep(0.1)
    status = r.info("persistence").get("rdb_last_bgsave_status")
    if status != "ok":
        raise BackupError(f"BGSAVE reported {status}")


def cmd_backup(args, config) -> int:
    state = systemctl("is-active", config["service"]) or "unknown"
    if state != "active":
        # The timer must not bring back a server an operator stopped: it says so and fails instead.
        raise BackupError(f"{config['service']} is {state}, not running: no snapshot taken (start it, or stop redis-backup.timer)")
    r = connect(config)
    wait_for_snapshot(r, args.timeout)
    # Counted right after the snapshot, for the restore to check against.
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    counts = backup_counts(r, stamp, now)
    source = os.path.join(r.call("CONFIG", "GET", "dir")[1], r.call("CONFIG", "GET", "dbfilename")[1])
    os.makedirs(config["backup_dir"], mode=0o700, exist_ok=True)
    target = os.path.join(config["backup_dir"], f"dump-{stamp}.rdb")
    old_umask = os.umask(0o077)
    try:
        shutil.copyfile(source, target + ".partial")
        check = subprocess.run(["redis-check-rdb", target + ".partial"], capture_output=True, text=True)
        if check.returncode != 0 or "RDB looks OK" not in check.stdout:
            os.unlink(target + ".partial")
            raise BackupError(f"redis-check-rdb rejects the snapshot: {check.stdout.strip().splitlines()[-1:]}")
        os.rename(target + ".partial", target)
        with open(target + ".counts.json", "w") as f:
            json.dump(counts, f)
    finally:
        os.umask(old_umask)
    removed = rotate(config["backup_dir"], args.keep_hourly, args.keep_daily) if args.rotate else []
    data = {"file": target, "bytes": os.path.getsize(target), "keys": counts["keys"], "removed": removed}
    emit(args, data)
    return 0


def cmd_restore_check(args, config) -> int:
    """INFO keyspace of the restored server on stdin; exit 1 (one line) when it does not match."""
    with open(args.counts_file) as f:
        counts = json.load(f)
    ok, line = compare_counts(counts, parse_keyspace(sys.stdin.read()), time.time())
    print(line, file=sys.stdout if ok else sys.stderr)
    return 0 if ok else 1


def cmd_cleanup(args, config) -> int:
    r = connect(config)
    rows = []
    for entry in config["keyspace"]:
        r.call("SELECT", entry["db"])
        removed = 0
        test_keys = list(r.scan(TEST_PREFIX + "*"))
        if test_keys:
            removed = r.call("DEL", *test_keys)
        _, breaks, keys = ttl_breaks(r, entry["ttl"], None)
        fixed = 0
        if args.apply_ttl and keys:
            fixed = sum(1 for x in r.pipeline([("EXPIRE", k, entry["ttl"]) for k in keys]) if x == 1)
        rows.append({"db": entry["db"], "name": entry["name"], "test_keys_removed": removed,
                     "ttl_breaks": breaks - fixed, "ttl_applied": fixed})
    emit(args, rows)
    return 0


def listening_ports() -> set:
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A":  # LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def level_for(pct: float, warn: float, crit: float) -> int:
    return CRITICAL if pct >= crit else WARNING if pct >= warn else OK


def cmd_health(args, config) -> int:
    warn, crit = config["health_warning_pct"], config["health_critical_pct"]
    checks = []
    info: dict = {}
    try:
        client = connect(config)
        mem = memory_data(client)
        info = client.info("replication")
        if mem["maxmemory"]:
            checks.append(("redis", level_for(mem["used_pct"], warn, crit),
                           f"answers, {human(mem['used_memory'])} of {human(mem['maxmemory'])} ({mem['used_pct']}%)"))
        else:
            checks.append(("redis", OK, f"answers, {human(mem['used_memory'])} used, no maxmemory"))
    except (OSError, RedisError) as exc:
        checks.append(("redis", CRITICAL, f"does not answer: {exc}"))
    disk = shutil.disk_usage(config["data_dir"] if os.path.isdir(config["data_dir"]) else "/")
    disk_pct = round(100.0 * disk.used / disk.total, 1)
    checks.append(("disk", level_for(disk_pct, warn, crit), f"{disk_pct}% used"))
    meminfo = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            meminfo[key] = int(value.split()[0])
    ram_pct = round(100.0 * (1 - meminfo["MemAvailable"] / meminfo["MemTotal"]), 1)
    checks.append(("ram", level_for(ram_pct, warn, crit), f"{ram_pct}% used"))
    if config.get("ha"):
        checks += replication_checks(sentinel_view(config), info)
    if config.get("backup_max_age"):
        checks.append(backup_check(config))
    if config.get("ecosystem_file"):
        checks.append(pm2_check(config))
        listening = listening_ports()
        for name, port in sorted(config["platform_ports"].items(), key=lambda x: x[1]):
            up = port in listening
            checks.append((f"{name} port", OK if up else CRITICAL, f"{port} {'listening' if up else 'not listening'}"))
    worst = max(level for _, level, _ in checks)
    data = {"status": LEVEL[worst], "exit_code": worst,
            "checks": [{"check": n, "status": LEVEL[lv], "detail": d} for n, lv, d in checks]}
    emit(args, data, None if args.json else "\n".join(f"{LEVEL[lv]:8} {n}: {d}" for n, lv, d in checks))
    return worst


def backup_check(config) -> tuple:
    failed = backup_job_failure()
    if failed:
        return ("backup", WARNING, f"the last backup job failed: {failed}")
    directory = config["backup_dir"]
    snapshots = sorted(f for f in os.listdir(directory) if f.endswith(".rdb")) if os.path.isdir(directory) else []
    if not snapshots:
        return ("backup", WARNING, f"no snapshot in {directory}")
    age = time.time() - os.path.getmtime(os.path.join(directory, snapshots[-1]))
    level = WARNING if age > config["backup_max_age"] else OK
    return ("backup", level, f"newest {snapshots[-1]}, {int(age // 60)} min old")


def backup_job_failure() -> str | None:
    """Why the backup unit's last run failed (its own one-line reason from the journal), or None."""
    if systemctl("is-failed", BACKUP_UNIT) != "failed":
        return None
    journal = subprocess.run(["journalctl", "-u", BACKUP_UNIT, "-n", "50", "-o", "cat", "--no-pager"],
                             capture_output=True, text=True).stdout
    reasons = [line for line in journal.splitlines() if line.startswith("redis-monitor backup: ")]
    if reasons:
        return reasons[-1][len("redis-monitor backup: "):]
    return f"Result={systemctl('show', '-p', 'Result', '--value', BACKUP_UNIT) or 'unknown'} (journalctl -u {BACKUP_UNIT})"


def parse_jlist(output: str) -> list:
    """The process list in `pm2 jlist` output, behind whatever PM2 printed first ([PM2] banners)."""
    decoder = json.JSONDecoder()
    start = output.find("[")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(output, start)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(p, dict) for p in value):
            return value
        start = output.find("[", start + 1)
    raise ValueError("no process list in the output of pm2 jlist")


def pm2_home(user: str, config: dict) -> tuple[str, str]:
    """(the user's home, PM2_HOME) without asking PM2 (which would spawn a daemon)."""
    home = pwd.getpwnam(user).pw_dir
    return home, config.get("pm2_home") or os.path.join(home, ".pm2")


def pm2_check(config) -> tuple:
    user = config["pm2_user"]
    try:
        home, pm2_dir = pm2_home(user, config)
    except KeyError:
        return ("pm2", CRITICAL, f"the PM2 user {user} does not exist")
    # Without a daemon, `pm2 jlist` would start one (and print banners): health only looks.
    socket_path = os.path.join(pm2_dir, "rpc.sock")
    try:
        is_socket = stat.S_ISSOCK(os.stat(socket_path).st_mode)
    except OSError:
        is_socket = False
    if not is_socket:
        return ("pm2", CRITICAL, f"PM2 is not running as {user} (no {socket_path})")
    env = ["env", "-i", f"HOME={home}", f"PM2_HOME={pm2_dir}", "PATH=/usr/local/bin:/usr/bin:/bin"]
    try:
        result = subprocess.run(["runuser", "-u", user, "--", *env, "pm2", "jlist"],
                                capture_output=True, text=True, timeout=60)
        procs = parse_jlist(result.stdout) if result.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return ("pm2", CRITICAL, f"pm2 jlist as {user} failed: {exc}")
    if procs is None:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [f"exit {result.returncode}"]
        return ("pm2", CRITICAL, f"pm2 jlist as {user} failed: {said[0][:200]}")
    down = sorted({str(p.get("name")) for p in procs if (p.get("pm2_env") or {}).get("status") != "online"})
    if not procs:
        return ("pm2", CRITICAL, f"no app runs under PM2 as {user}")
    if down:
        return ("pm2", CRITICAL, f"not online: {', '.join(down)}")
    return ("pm2", OK, f"{len(procs)} processes online")


SAMPLE = [
    (0, "quote:DOL", {"symbol": "DOL", "price": 5.234, "volume": 1000, "timestamp": 1751628055}),
    (1, "orderflow:DOL", {"symbol": "DOL", "trades": [{"price": 5.234, "volume": 100, "side": "buy"}]}),
    (4, "session:abc123", {"user_id": "user123", "socket_id": "abc123", "subscriptions": ["DOL"]}),
]


def cmd_sample_data(args, config) -> int:
    ttls = {entry["db"]: entry["ttl"] for entry in config["keyspace"]}
    r = connect(config)
    rows = []
    for db, key, value in SAMPLE:
        r.call("SELECT", db)
        ttl = ttls.get(db)
        r.call("SET", key, json.dumps(value), *(("EX", ttl) if ttl else ()))
        rows.append({"db": db, "key": key, "ttl": ttl})
    emit(args, rows)
    return 0


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="redis-monitor", description="Look after this host's Redis server.")
    sub = top.add_subparsers(dest="command", required=True)

    def add(name, helptext):
        p = sub.add_parser(name, help=helptext, description=helptext)
        p.add_argument("--json", action="store_true", help="machine-readable output")
        return p

    add("status", "systemd state, boot, version, uptime, port and bind, clients, role")
    add("info", "the key INFO sections, summarised")
    add("memory", "used memory against maxmemory, peak, fragmentation, evictions, policy")
    add("databases", "each configured DB: name, keys, expected TTL, keys without the TTL").add_argument(
        "--sample", type=int, default=1000, help="keys per DB to look at with SCAN (default 1000)")
    keys = add("keys", "list keys with type and TTL, using SCAN (never KEYS)")
    keys.add_argument("pattern", nargs="?", default="*")
    keys.add_argument("--db", type=int, default=0)
    keys.add_argument("--limit", type=int, default=100)
    add("test", "connectivity, write/read, TTL expiry, every DB, a keyspace event; exit 1 on a FAIL")
    backup = add("backup", "an RDB snapshot now, checked and copied to the backup directory")
    backup.add_argument("--timeout", type=int, default=120, help="seconds to wait for the snapshot")
    backup.add_argument("--rotate", action="store_true", help="remove snapshots beyond --keep-hourly/--keep-daily")
    backup.add_argument("--keep-hourly", type=int, default=48)
    backup.add_argument("--keep-daily", type=int, default=14)
    add("cleanup", "remove keys `test` left; report (or --apply-ttl fix) keys without their DB's TTL").add_argument(
        "--apply-ttl", action="store_true", help="give such keys their DB's TTL")
    add("health", "Redis, disk, RAM, PM2 apps and platform ports; exit 0 OK, 1 WARNING, 2 CRITICAL")
    add("sample-data", "load the platform's example records with their DBs' TTLs")
    add("restore-check", "compare the restored server's INFO keyspace (on stdin) with a backup's counts file; "
        "exit 1 on a difference").add_argument("counts_file", help="NAME.rdb.counts.json of the restored snapshot")
    return top


UNKNOWN = 3  # Nagios: the check itself failed, which says nothing about Redis


def main(argv=None) -> int:
    args = parser().parse_args(argv)
    if os.geteuid() != 0 and args.command != "restore-check":
        # The admin password is root's: operators come through sudo (see /etc/sudoers.d/redis-monitor).
        os.execvp("sudo", ["sudo", "-n", os.path.realpath(sys.argv[0]), *sys.argv[1:]])
    handler = globals()["cmd_" + args.command.replace("-", "_")]
    try:
        # restore-check runs during a rebuild, before this host has a monitor.json.
        return handler(args, {} if args.command == "restore-check" else load_config())
    except Exception as exc:  # one line, never a traceback; health's exit codes keep their Nagios meaning
        known = isinstance(exc, (OSError, RedisError, ValueError))
        reason = str(exc) if known else f"unexpected error: {type(exc).__name__}: {exc}"
        if args.command == "health":
            print(f"UNKNOWN redis-monitor health: {reason}")
            return UNKNOWN
        print(f"redis-monitor {args.command}: {reason}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
