"""redis-monitor alert's decisions: what to send, given the previous state, the checks and the time.

Pure (no Redis, no network): the state machine, the alert-only checks, the failover rule, and
the message text and payloads.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass, field

from .levels import CRITICAL, OK, UNKNOWN, WARNING

NAMES = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL", UNKNOWN: "UNKNOWN"}
LEVELS = {name: level for level, name in NAMES.items()}


# --- The state machine -----------------------------------------------------------------------


@dataclass
class Message:
    kind: str  # problem | reminder | resolved | failover | test
    status: str
    previous: str | None
    checks: list[tuple[str, int, str]] = field(default_factory=list)
    failover: dict | None = None
    since: float | None = None  # when the status began (reminder, resolved)


def parse_state(text: str) -> dict | None:
    """The state file's content, or None (a first run) when it is not what `alert` writes."""
    try:
        state = json.loads(text)
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("status") not in LEVELS:
        return None
    for key in ("since", "last_sent"):
        if not isinstance(state.get(key), (int, float)) or isinstance(state.get(key), bool):
            return None
    evicted = state.get("evicted_keys")
    if evicted is not None and (not isinstance(evicted, int) or isinstance(evicted, bool)):
        state["evicted_keys"] = None
    if not isinstance(state.get("primary"), str):
        state["primary"] = None
    failing = state.get("failing")  # None in a state from before it was kept: nothing joined then
    state["failing"] = [n for n in failing if isinstance(n, str)] if isinstance(failing, list) else None
    pending = state.get("pending")
    if not isinstance(pending, dict):
        pending = {}
    state["pending"] = {
        name: [m for m in (items if isinstance(items, list) else []) if from_record(m) is not None]
        for name, items in pending.items()
        if isinstance(name, str)
    }
    no_ttl = state.get("no_ttl")
    if not isinstance(no_ttl, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in no_ttl.values()):
        state["no_ttl"] = {}
    return state


# Messages a receiver has not taken yet, kept per receiver (the newest ones): a receiver that is
# down gets them when it is back, and the others never hear a message twice because of it.
PENDING_KEPT = 10


def to_record(message: Message) -> dict:
    """A message as the state file keeps it until its receiver takes it."""
    return {
        "kind": message.kind,
        "status": message.status,
        "previous": message.previous,
        "checks": [list(check) for check in message.checks],
        "failover": message.failover,
        "since": message.since,
    }


def from_record(record) -> Message | None:
    """The message a record holds, or None when it is not one that to_record wrote."""
    try:
        checks = [(str(name), int(level), str(detail)) for name, level, detail in record["checks"]]
        message = Message(
            str(record["kind"]), str(record["status"]), record["previous"], checks, record["failover"], record["since"]
        )
    except (TypeError, KeyError, ValueError):
        return None
    if message.status not in LEVELS or not (message.failover is None or isinstance(message.failover, dict)):
        return None
    return message


def read_state(path: str) -> dict | None:
    """The previous run's state; None when there is none, or it is a link or unreadable."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd, "rb") as f:
        raw = f.read(1 << 20)
    try:
        return parse_state(raw.decode())
    except UnicodeDecodeError:
        return None


def worst(checks: list[tuple[str, int, str]]) -> int:
    return max((level for _, level, _ in checks), default=UNKNOWN)


def decide(
    previous: dict | None, checks: list[tuple[str, int, str]], now: float, repeat: int, baselines: dict
) -> tuple[list[Message], dict]:
    """The messages this run sends and the state to keep once they are delivered.

    One message on a change of level, and one when another check joins a problem at the same level
    (redis-server down, then the disk too: a person must hear of the second); a reminder after
    `repeat` seconds of the same non-OK level (0: never); nothing otherwise. A first run that finds
    a problem reports it (previous None).
    """
    status = NAMES[worst(checks)]
    before = previous["status"] if previous else None
    since = previous["since"] if previous and before == status else now
    last_sent = previous["last_sent"] if previous else 0.0
    failing = sorted(name for name, level, _ in checks if level != OK)
    known = previous.get("failing") if previous else None
    joined = set(failing) - set(known) if known is not None else set()
    messages = []
    if status != (before or "OK"):
        kind = "resolved" if status == "OK" else "problem"
        messages.append(
            Message(kind, status, before, checks, since=previous["since"] if previous and kind == "resolved" else None)
        )
    elif status != "OK" and joined:
        messages.append(Message("problem", status, before, checks))
    elif status != "OK" and repeat and now - last_sent >= repeat:
        messages.append(Message("reminder", status, before, checks, since=since))
    state = {
        "status": status,
        "since": since,
        "last_sent": now if messages else last_sent,
        "failing": failing,
        **baselines,
    }
    return messages, state


# --- Checks only `alert` makes: they compare with the previous run ----------------------------


def eviction_check(previous: dict | None, evicted: int | None) -> tuple[tuple[str, int, str] | None, int | None]:
    """(the check, or None when Redis gave no number; the count to keep as the new baseline)."""
    if evicted is None:
        return None, previous.get("evicted_keys") if previous else None
    before = previous.get("evicted_keys") if previous else None
    if before is None or evicted <= before:
        # A first look, or a restarted server whose counters began again: nothing to compare.
        return ("evictions", OK, f"{evicted} keys evicted since Redis started"), evicted
    return (
        ("evictions", WARNING, f"{evicted - before} keys evicted since the last check: memory is full"),
        evicted,
    )


TTL_SLACK = 10  # keys without TTL above the baseline that still count as the same


def ttl_growth_checks(
    previous: dict | None, no_ttl: dict[str, int] | None, names: dict[str, str]
) -> tuple[list[tuple[str, int, str]], dict[str, int]]:
    """Per DB that declares a TTL: WARNING while clearly more keys lack it than at the baseline.

    The baseline is the lowest count seen since the last warning cleared: it follows the count
    down (after `redis-monitor cleanup --apply-ttl`), never up, so a slow leak keeps warning.
    Clearly: by more than TTL_SLACK keys and 10 %, so that an app that sets a key and gives it
    its TTL in two commands (a few keys without TTL at any moment) does not warn and clear by turns.
    """
    kept = dict(previous.get("no_ttl") or {}) if previous else {}
    if no_ttl is None:
        return [], kept
    checks, baselines = [], {}
    for db, count in sorted(no_ttl.items(), key=lambda x: int(x[0])):
        base = kept.get(db)
        label = f"db {db} ({names.get(db, '?')}) TTL"
        if base is None or count <= base:
            baselines[db] = count
            checks.append((label, OK, f"{count} keys without the DB's TTL"))
        elif count <= base + max(TTL_SLACK, base // 10):
            baselines[db] = base
            checks.append((label, OK, f"{count} keys without the DB's TTL"))
        else:
            baselines[db] = base
            checks.append(
                (
                    label,
                    WARNING,
                    f"{count} keys without the DB's TTL, {base} before "
                    "(redis-monitor databases; cleanup --apply-ttl gives them the TTL)",
                )
            )
    return checks, baselines


# --- What a message says -----------------------------------------------------------------------


def _minutes(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes} min" if minutes < 120 else f"{minutes // 60} h {minutes % 60} min"


def text(message: Message, host: str, now: float) -> str:
    if message.kind == "test":
        return f"smart-redis {host}: test message from redis-monitor alert-test"
    if message.kind == "failover":
        f = message.failover or {}
        return f"smart-redis {host}: Sentinel failover of {f.get('master')}: primary {f.get('from')} -> {f.get('to')}"
    bad = [f"{NAMES[level]} {name}: {detail}" for name, level, detail in message.checks if level != OK]
    if message.kind == "resolved":
        took = f" for {_minutes(now - message.since)}" if message.since else ""
        return f"smart-redis {host}: OK again (was {message.previous}{took})"
    if message.kind == "reminder":
        head = f"smart-redis {host}: still {message.status}"
        head += f" for {_minutes(now - message.since)}" if message.since else ""
    elif message.previous == message.status:  # same level, one more check failing
        head = f"smart-redis {host}: {message.status}, and another check fails now"
    else:
        head = f"smart-redis {host}: {message.status}" + (f" (was {message.previous})" if message.previous else "")
    return "\n".join([head, *bad])


def iso(now: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now))


def payload(message: Message, host: str, now: float, fmt: str = "json") -> dict:
    """The webhook's body: the generic JSON document, or Slack/Mattermost's {"text": ...}."""
    said = text(message, host, now)
    if fmt == "slack":
        return {"text": said}
    return {
        "source": "smart-redis",
        "host": host,
        "kind": message.kind,
        "status": message.status,
        "previous": message.previous,
        "text": said,
        "checks": [{"check": n, "status": NAMES[lv], "detail": d} for n, lv, d in message.checks],
        "failover": message.failover,
        "time": iso(now),
    }


def subject(message: Message, host: str, now: float) -> str:
    return text(message, host, now).splitlines()[0]


# --- Sentinel failovers ---------------------------------------------------------------------------


def primary_of(view: dict) -> str | None:
    """The primary ("IP:PORT") that a majority of the sentinels name, or None."""
    answers = [v for v in view.values() if v.count(":") >= 1 and not v.startswith(("no answer", "does not"))]
    for answer in set(answers):
        if answers.count(answer) > len(view) // 2:
            return answer
    return None


def primary_seen(previous: str | None, replication: dict, majority: str | None, own: str) -> str | None:
    """The primary as this host knows it, to keep in the state: while it is a replica, the one it
    replicates from (known at its first run, before any sentinel has to agree); once the sentinels
    name it, itself; otherwise what it knew before."""
    if replication.get("role") == "slave" and replication.get("master_host"):
        return f"{replication['master_host']}:{replication.get('master_port', '')}"
    if majority == own:
        return own
    return previous


def failover(previous: dict | None, primary: str | None, own: str, master: str) -> Message | None:
    """One failover message, sent by the host that has become the primary: a majority of the
    sentinels name it now, and its previous run knew another primary. Every other host of the
    group stays silent, so a failover is one message however many hosts watch it."""
    before = previous.get("primary") if previous else None
    if primary is None or before is None or primary == before or primary != own:
        return None
    return Message("failover", "WARNING", None, failover={"master": master, "from": before, "to": primary})
