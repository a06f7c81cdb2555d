"""redis-monitor alert and alert-test: the checks, the state machine (alerts.py) and the receivers
(receivers.py) put together, one run at a time."""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time

from . import alerts, delivery, receivers
from .checks import health_checks
from .info import parse_keyspace
from .levels import OK, UNKNOWN
from .output import emit, table
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


# The run went through but a receiver did not take a message (it stays pending): not a failure of
# the unit (SuccessExitStatus=), whose OnFailure= is for a run that broke or timed out.
DELIVERY_FAILED = 3


def last_deliveries(before: dict, log: list[dict], now: float) -> dict[str, dict]:
    """Per receiver, what it was last sent and how that went (for `redis-monitor alerts`)."""
    kept = dict(before)
    for entry in log:
        kept[entry["receiver"]] = {"at": now, **{k: entry[k] for k in ("kind", "check", "result", "reason")}}
    return kept


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
    previous = alerts.read_state(conf["state_file"])
    moved = None
    primary = (previous or {}).get("primary")
    try:
        view = sentinel_view(config) if config.get("ha") else {}
        if config.get("ha"):
            ha = config["ha"]
            own, majority = f"{ha['address']}:{config['port']}", alerts.primary_of(view)
            moved = alerts.failover(previous, majority, own, ha["master_name"])
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
    # New messages first, then what a receiver missed before (to that receiver only).
    new = ([moved] if moved else []) + messages
    missed = (previous or {}).get("pending", {})
    log, state["pending"] = delivery.deliver(
        send, {name: delivery.queue(new, missed.get(name, [])) for name in send}, now
    )
    state["last_run"] = {"at": now, "checks": [list(check) for check in checks]}
    state["receivers"] = last_deliveries((previous or {}).get("receivers", {}), log, now)
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
    return DELIVERY_FAILED if failed or (beat is not None and not beat[0]) else 0


def cmd_alert_test(args, config) -> int:
    conf = config.get("alerts")
    if not conf or not receivers.configured(conf):
        print("redis-monitor alert-test: no receiver is configured (redis_alert_* settings)", file=sys.stderr)
        return 1
    send = receivers.senders(conf, receivers.read_secrets(conf["secrets"]))
    test = alerts.Message("test", "OK", None)
    log, _ = delivery.deliver(send, {name: [test] for name in send}, time.time())
    rows = [{"receiver": x["receiver"], "result": x["result"], "reason": x["reason"]} for x in log]
    emit(args, rows, "\n".join(f"{x['result']:6}  {x['receiver']}: {x['reason']}" for x in rows))
    return 1 if any(x["result"] == "FAILED" for x in rows) else 0


def cmd_alerts(args, config) -> int:
    """Each check as the last alert run read it and as the receivers were told, and per receiver
    what it was last sent and what it still has to take."""
    conf = config.get("alerts")
    state = alerts.read_state(conf["state_file"]) if conf else None
    if state is None:
        said = "no receiver is configured" if not conf else "no alert run yet"
        emit(args, {"status": None, "checks": [], "receivers": []}, said)
        return 0
    told = state["checks"]
    last = state["last_run"] or {
        "at": None,
        "checks": [(name, alerts.LEVELS[e["level"]], "") for name, e in told.items()],
    }
    rows = []
    for name, level, detail in sorted(last["checks"], key=lambda c: (-c[1], c[0])):
        entry = told.get(name)
        rows.append(
            {
                "check": name,
                "now": alerts.NAMES[level],
                "told": entry["level"] if entry else "OK",
                "since": alerts.iso(entry["since"]) if entry else "",
                "last sent": alerts.iso(entry["sent"]) if entry else "",
                "detail": detail,
            }
        )
    receivers = [
        {
            "receiver": name,
            "last sent": alerts.iso(entry["at"]),
            "message": f"{entry.get('kind')} {entry.get('check') or ''}".strip(),
            "result": entry.get("result"),
            "reason": entry.get("reason"),
            "pending": len(state["pending"].get(name, [])),
        }
        for name, entry in sorted(state["receivers"].items())
    ]
    ran = f", last run {alerts.iso(last['at'])}" if last["at"] else ""
    head = f"{state['status']} since {alerts.iso(state['since'])}{ran}"
    emit(
        args,
        {
            "status": state["status"],
            "since": state["since"],
            "last_run": last["at"],
            "checks": rows,
            "receivers": receivers,
        },
        "\n\n".join([head, table(rows), table(receivers) if receivers else "no message sent yet"]),
    )
    return 0
