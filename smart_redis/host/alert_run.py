"""redis-monitor alert and alert-test: the checks, the state machine (alerts.py) and the receivers
(receivers.py) put together, one run at a time."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time

from . import alerts, receivers
from .checks import health_checks
from .info import parse_keyspace
from .levels import OK, UNKNOWN
from .output import emit
from .quorum import group_reporter, sentinel_view
from .resp import RedisError
from .secret_files import write_private
from .server import connect


def alert_readings(config) -> tuple[int | None, dict[str, int] | None]:
    """Redis's eviction counter, and the keys without TTL of each DB that declares one (from INFO,
    exact and cheap); (None, None) when Redis does not answer: the redis check says so already."""
    try:
        r = connect(config)
        evicted = int(r.info("stats").get("evicted_keys", 0))
        keyspace = parse_keyspace(r.call("INFO", "keyspace"))
    except (OSError, RedisError):
        return None, None
    no_ttl = {}
    for entry in config["keyspace"]:
        if entry.get("ttl"):
            counts = keyspace.get(str(entry["db"]), {"keys": 0, "expires": 0})
            no_ttl[str(entry["db"])] = counts["keys"] - counts["expires"]
    return evicted, no_ttl


def local_replication(config) -> dict:
    """This server's INFO replication; empty while it does not answer (the redis check says so)."""
    try:
        return connect(config).info("replication")
    except (OSError, RedisError):
        return {}


def deliver(send: dict, message: alerts.Message, now: float, log: list[dict], pending: dict[str, list]) -> None:
    """The message to every receiver; a receiver that does not take it keeps it in `pending`."""
    for name, fn in send.items():
        try:
            ok, reason = fn(message, now)
        except Exception as exc:  # noqa: BLE001 - one receiver's bug must not cost the others their message
            ok, reason = False, f"the receiver failed: {type(exc).__name__}"
        log.append({"kind": message.kind, "receiver": name, "result": "OK" if ok else "FAILED", "reason": reason})
        if not ok:
            pending.setdefault(name, []).append(alerts.to_record(message))


def cmd_alert(args, config) -> int:
    conf = config.get("alerts")
    if not conf:
        emit(args, {"status": None, "sent": [], "note": "no receiver is configured"}, "no receiver is configured")
        return 0
    os.makedirs(os.path.dirname(conf["state_file"]), mode=0o755, exist_ok=True)
    # One run at a time (the timer, the path unit, an operator): two would both send a change.
    lock = os.open(conf["state_file"] + ".lock", os.O_WRONLY | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)
        return _alert_run(args, config, conf)
    finally:
        os.close(lock)


def _alert_run(args, config, conf) -> int:
    now = time.time()
    secrets = receivers.read_secrets(conf["secrets"])
    send = receivers.senders(conf, secrets)
    log: list[dict] = []
    previous = alerts.read_state(conf["state_file"])
    # First what a receiver missed before, to that receiver only.
    pending: dict[str, list] = {}
    for name, records in (previous or {}).get("pending", {}).items():
        for message in map(alerts.from_record, records if name in send else []):
            if message is not None:  # read_state keeps only records that are messages
                deliver({name: send[name]}, message, now, log, pending)
    primary = (previous or {}).get("primary")
    try:
        view = sentinel_view(config) if config.get("ha") else {}
        if config.get("ha"):
            ha = config["ha"]
            own, majority = f"{ha['address']}:{config['port']}", alerts.primary_of(view)
            moved = alerts.failover(previous, majority, own, ha["master_name"])
            if moved:
                deliver(send, moved, now, log, pending)
            primary = alerts.primary_seen(primary, local_replication(config), majority, own)
        # "health" has a state like every check: it resolves once the checks run again.
        checks = [*health_checks(config, view), ("health", OK, "every check ran")]
        # One host speaks for the group; one that announced a problem of it keeps its word until the resolve.
        announced = "sentinels" in (previous or {}).get("checks", {})
        if config.get("ha") and not group_reporter(view, config["ha"]["address"]) and not announced:
            checks = [c for c in checks if c[0] != "sentinels"]
        evicted, no_ttl = alert_readings(config)
    except Exception as exc:  # noqa: BLE001 - a check that breaks itself is an UNKNOWN state worth a message
        checks = [("health", UNKNOWN, f"the checks failed: {type(exc).__name__}: {exc}")]
        evicted, no_ttl = None, None
    eviction, evicted_base = alerts.eviction_check(previous, evicted)
    names = {str(e["db"]): e["name"] for e in config["keyspace"]}
    ttl_checks, no_ttl_base = alerts.ttl_growth_checks(previous, no_ttl, names)
    checks += ([eviction] if eviction else []) + ttl_checks
    messages, state = alerts.decide(
        previous,
        checks,
        now,
        int(conf.get("repeat", 0)),
        {"evicted_keys": evicted_base, "no_ttl": no_ttl_base, "primary": primary},
    )
    for message in messages:
        deliver(send, message, now, log, pending)
    state["pending"] = {name: records[-alerts.PENDING_KEPT :] for name, records in pending.items()}
    write_private(conf["state_file"], json.dumps(state, sort_keys=True) + "\n")
    # Last, and on every run: its silence at the receiver is the alarm (host, timer or program gone).
    beat = receivers.heartbeat(conf, secrets, state["status"], now)
    failed = [x for x in log if x["result"] == "FAILED"]
    for x in failed:
        print(f"redis-monitor alert: {x['kind']} to {x['receiver']} FAILED: {x['reason']}", file=sys.stderr)
    if beat is not None and not beat[0]:
        print(f"redis-monitor alert: heartbeat FAILED: {beat[1]}", file=sys.stderr)
    data = {
        "status": state["status"],
        "previous": previous["status"] if previous else None,
        "sent": log,
        "heartbeat": None if beat is None else {"result": "OK" if beat[0] else "FAILED", "reason": beat[1]},
        "checks": [{"check": n, "status": alerts.NAMES[lv], "detail": d} for n, lv, d in checks],
    }
    lines = [f"{state['status']} (was {data['previous'] or 'unknown'})" + ("" if log else ": nothing to send")]
    lines += [f"{x['result']:6}  {x['kind']} to {x['receiver']}: {x['reason']}" for x in log]
    if beat is not None:
        lines.append(f"{'OK' if beat[0] else 'FAILED':6}  heartbeat: {beat[1]}")
    emit(args, data, "\n".join(lines))
    return 1 if failed or (beat is not None and not beat[0]) else 0


def cmd_alert_test(args, config) -> int:
    conf = config.get("alerts")
    if not conf or not receivers.configured(conf):
        print("redis-monitor alert-test: no receiver is configured (redis_alert_* settings)", file=sys.stderr)
        return 1
    send = receivers.senders(conf, receivers.read_secrets(conf["secrets"]))
    log: list[dict] = []
    deliver(send, alerts.Message("test", "OK", None), time.time(), log, {})
    rows = [{"receiver": x["receiver"], "result": x["result"], "reason": x["reason"]} for x in log]
    emit(args, rows, "\n".join(f"{x['result']:6}  {x['receiver']}: {x['reason']}" for x in rows))
    return 1 if any(x["result"] == "FAILED" for x in rows) else 0
