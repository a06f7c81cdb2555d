"""redis-monitor: look after the Smart-Trade Redis server of this host.

Installed by the smart-redis deploy as /usr/local/bin/redis-monitor. Standard library only
(runs on the host's system Python). It logs in as the admin ACL user with the password from
the root-only credentials file, never from the command line; run it as root or, as a member
of the operator group, through sudo (it re-runs itself with `sudo -n` when needed).

    redis-monitor status|info|memory|databases|test|backup|cleanup|health|sample-data [--json]
    redis-monitor keys [--db N] [PATTERN] [--limit N]
    redis-monitor ttl-report [--sample N] [--seconds S] [--json]   (see ttl_report.py)
    redis-monitor restore-check COUNTS_FILE < INFO-KEYSPACE   (the deploy's check after a restore)
    redis-monitor alert [--json]        (the alert timer's run: see alert_run.py)
    redis-monitor alert-test [--json]   (one test message through every receiver)
    redis-monitor alerts [--json]       (each check's state, and what each receiver was last sent)
    redis-monitor alert-failed UNIT     (OnFailure= of the alert and backup units: see alert_failed.py)
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time
from typing import Any

from .checks import health_checks, memory_data
from .counts import backup_counts, compare_counts
from .info import parse_keyspace
from .levels import LEVEL, UNKNOWN
from .output import emit, human, table
from .quorum import replication_view, sentinel_view
from .resp import Redis, RedisError, scan_replies
from .server import check_rdb, connect, open_plain_file, select, server_version, serving
from .snapshots import BackupError, rotate, running_server, wait_for_snapshot
from .systemctl import systemctl
from .ttl_report import report as ttl_report
from .ttl_report import text as ttl_report_text

CONFIG = "/etc/smart-redis/monitor.json"
TEST_PREFIX = "redis-monitor:test:"


# --- Setup -----------------------------------------------------------------------------------


# The alert subcommands, found by name in main() like the others, import the receivers (urllib,
# email, http.client: about 80 ms) only when they run; backup, health and the rest do without.
def cmd_alert(args, config) -> int:
    from .alert_run import cmd_alert as run

    return run(args, config)


def cmd_alert_test(args, config) -> int:
    from .alert_run import cmd_alert_test as run

    return run(args, config)


def cmd_alerts(args, config) -> int:
    from .alert_run import cmd_alerts as run

    return run(args, config)


def cmd_alert_failed(args, config) -> int:
    from .alert_failed import cmd_alert_failed as run

    return run(args, config)


def load_config() -> dict:
    """What the deploy told redis-monitor about this host; it serves the server named there."""
    with open(CONFIG) as f:
        config = json.load(f)
    select(config.get("server", "redis"))
    return config


# --- Subcommands -----------------------------------------------------------------------------


def cmd_status(args, config) -> int:
    data: dict[str, Any] = {
        "service": systemctl("is-active", config["service"]) or "unknown",
        "enabled_at_boot": systemctl("is-enabled", config["service"]) == "enabled",
    }
    try:
        r = connect(config)
        info = r.info()
        data.update(
            version=server_version(info),
            uptime_seconds=int(info.get("uptime_in_seconds", 0)),
            # 0 with redis_tls = "only": the port that answered is the TLS one
            port=int(info.get("tcp_port") or 0) or config["port"],
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
    rows += [
        {
            "field": f"sentinel {address}",
            "value": f"primary {answer}" if ":" in answer and "(" not in answer else answer,
        }
        for address, answer in data.get("sentinels", {}).items()
    ]
    emit(args, data, table(rows))
    return 0 if "error" not in data else 2


INFO_FIELDS = {
    "server": (
        "server_name",
        "valkey_version",
        "redis_version",
        "redis_mode",
        "os",
        "process_id",
        "tcp_port",
        "uptime_in_days",
        "hz",
    ),
    "clients": ("connected_clients", "blocked_clients", "maxclients"),
    "memory": (
        "used_memory_human",
        "used_memory_peak_human",
        "maxmemory_human",
        "maxmemory_policy",
        "mem_fragmentation_ratio",
    ),
    "persistence": (
        "loading",
        "rdb_changes_since_last_save",
        "rdb_last_save_time",
        "rdb_last_bgsave_status",
        "aof_enabled",
    ),
    "stats": (
        "total_connections_received",
        "total_commands_processed",
        "instantaneous_ops_per_sec",
        "rejected_connections",
        "expired_keys",
        "evicted_keys",
        "keyspace_hits",
        "keyspace_misses",
    ),
    "replication": ("role", "connected_slaves", "master_host", "master_link_status"),
}


def cmd_info(args, config) -> int:
    info = connect(config).info()
    data = {section: {k: info.get(k) for k in fields if k in info} for section, fields in INFO_FIELDS.items()}
    rows = [{"section": s, "field": k, "value": v} for s, fields in data.items() for k, v in fields.items()]
    emit(args, data, None if args.json else table(rows))
    return 0


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
            {
                "db": entry["db"],
                "name": entry["name"],
                "keys": r.call("DBSIZE"),
                "ttl": entry["ttl"],
                "sampled": sampled,
                "ttl_breaks": breaks,
            }
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

    r: Redis | None = None
    local: Redis | None = None  # on a replica: this host's server, while r is its primary (replicas refuse writes)
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
        assert r is not None and local is not None  # the checks below run only once connectivity() connected
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
        assert r is not None  # the checks below run only once connectivity() connected
        key = TEST_PREFIX + "rw"
        r.call("SET", key, "value", "EX", 60)
        if r.call("GET", key) != "value":
            raise RedisError("read back another value")
        r.call("DEL", key)

    def ttl_expiry():
        assert r is not None  # the checks below run only once connectivity() connected
        key = TEST_PREFIX + "ttl"
        r.call("SET", key, "1", "PX", 300)
        deadline = time.monotonic() + 5
        while r.call("EXISTS", key) and time.monotonic() < deadline:
            time.sleep(0.05)
        if r.call("EXISTS", key):
            raise RedisError("the key outlived its 300 ms TTL")
        return "a 300 ms key expired"

    def databases():
        assert r is not None  # the checks below run only once connectivity() connected
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
        assert r is not None  # the checks below run only once connectivity() connected
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
    checks = [
        ("write/read", write_read),
        ("ttl expiry", ttl_expiry),
        ("databases", databases),
        ("keyspace event", keyspace_event),
    ]
    if local is not None:
        checks.append(("replication", replicated))
    for name, fn in checks:
        if r is None:
            results.append({"check": name, "result": "FAIL", "detail": "not connected"})
        else:
            check(name, fn)
    failed = any(x["result"] == "FAIL" for x in results)
    emit(
        args,
        results,
        None if args.json else "\n".join(f"{x['result']:4}  {x['check']}: {x['detail']}" for x in results),
    )
    return 1 if failed else 0


def cmd_backup(args, config) -> int:
    r = running_server(lambda: systemctl("is-active", config["service"]), lambda: connect(config), config["service"])
    wait_for_snapshot(r, args.timeout)
    # Counted right after the snapshot, for the restore to check against.
    now = time.time()
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now))
    counts = backup_counts(r, stamp, now)
    server = serving()
    # The deploy's own path, not the server's answer: its user may replace the file there with a
    # link to anything root can read, so it is opened without following one, and only its own.
    source = os.path.join(server.data_dir, "dump.rdb")
    answered = os.path.join(r.call("CONFIG", "GET", "dir")[1], r.call("CONFIG", "GET", "dbfilename")[1])
    if answered != source:
        raise BackupError(f"{server.service} saves to {answered!r}, not to {source}: not copied")
    os.makedirs(config["backup_dir"], mode=0o700, exist_ok=True)
    target = os.path.join(config["backup_dir"], f"dump-{stamp}.rdb")
    old_umask = os.umask(0o077)
    try:
        try:
            src = open_plain_file(source, owner=server.user)
        except OSError as exc:
            raise BackupError(f"{source} cannot be copied: {exc.strerror or exc}") from None
        with os.fdopen(src, "rb") as snapshot, open(target + ".partial", "wb") as copy:
            shutil.copyfileobj(snapshot, copy, 1 << 20)
        check = check_rdb(server, target + ".partial")
        if check.returncode != 0 or "RDB looks OK" not in check.stdout:
            os.unlink(target + ".partial")
            raise BackupError(f"{server.check_rdb} rejects the snapshot: {check.stdout.strip().splitlines()[-2:]}")
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
        rows.append(
            {
                "db": entry["db"],
                "name": entry["name"],
                "test_keys_removed": removed,
                "ttl_breaks": breaks - fixed,
                "ttl_applied": fixed,
            }
        )
    emit(args, rows)
    return 0


def cmd_health(args, config) -> int:
    checks = health_checks(config)
    worst = max(level for _, level, _ in checks)
    data = {
        "status": LEVEL[worst],
        "exit_code": worst,
        "checks": [{"check": n, "status": LEVEL[lv], "detail": d} for n, lv, d in checks],
    }
    emit(args, data, None if args.json else "\n".join(f"{LEVEL[lv]:8} {n}: {d}" for n, lv, d in checks))
    return worst


def cmd_ttl_report(args, config) -> int:
    data = ttl_report(connect(config), config["keyspace"], args.sample, args.seconds)
    emit(args, data, None if args.json else ttl_report_text(data))
    return 0


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
        "--sample", type=int, default=1000, help="keys per DB to look at with SCAN (default 1000)"
    )
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
        "--apply-ttl", action="store_true", help="give such keys their DB's TTL"
    )
    add("health", "Redis, disk, RAM, PM2 apps and platform ports; exit 0 OK, 1 WARNING, 2 CRITICAL")
    ttl = add("ttl-report", "each DB's TTLs, idle times and memory from a SCAN sample; one recommendation per DB")
    ttl.add_argument("--sample", type=int, default=1000, help="keys per DB to look at with SCAN (default 1000)")
    ttl.add_argument("--seconds", type=float, default=2.0, help="sampling time per DB at most (default 2)")
    add(
        "alert",
        "send Sentinel's failover events and a message when the health checks change state; exit 3 on a failed delivery",
    )
    add("alert-test", "one test message through every configured receiver; exit 1 if one failed")
    add("alerts", "each check as the last alert run read it and as the receivers were told; what each was last sent")
    add(
        "alert-failed", "tell the receivers that a unit failed (its OnFailure= handler; at most once an hour)"
    ).add_argument("unit", help="smart-redis-alert or redis-backup")
    add("sample-data", "load the platform's example records with their DBs' TTLs")
    add(
        "restore-check",
        "compare the restored server's INFO keyspace (on stdin) with a backup's counts file; exit 1 on a difference",
    ).add_argument("counts_file", help="NAME.rdb.counts.json of the restored snapshot")
    return top


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
