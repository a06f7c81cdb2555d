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
    status: str  # the level the message announces (of `check` when it names one)
    previous: str | None  # the level announced before (None: the first run)
    checks: list[tuple[str, int, str]] = field(default_factory=list)
    failover: dict | None = None
    since: float | None = None  # when the announced level began (reminder, resolved)
    check: str | None = None  # the check whose state changed (problem, reminder, resolved)
    still_bad: list[tuple[str, int, str]] = field(default_factory=list)  # the other checks announced not OK


# A check's resolve waits for this many OK runs in a row: a check that flaps (bad, OK, bad...)
# stays one problem, and its resolve comes once it has held (within two intervals).
RESOLVE_AFTER = 2
# A check that no run reports for this long is forgotten (the setting that made it is gone).
FORGET_AFTER = 86400


def parse_state(text: str) -> dict | None:
    """The state file's content, or None (a first run) when it is not what `alert` writes."""
    try:
        state = json.loads(text)
    except ValueError:
        return None
    if not isinstance(state, dict) or state.get("status") not in LEVELS:
        return None
    for key in ("since", "last_sent"):
        if not _valid_time(state.get(key)):
            return None
    evicted = state.get("evicted_keys")
    if evicted is not None and (not isinstance(evicted, int) or isinstance(evicted, bool)):
        state["evicted_keys"] = None
    if not isinstance(state.get("primary"), str):
        state["primary"] = None
    state["checks"] = _parse_checks(state)
    state.pop("failing", None)
    pending = state.get("pending")
    if not isinstance(pending, dict):
        pending = {}
    state["pending"] = {
        name: [m for m in (items if isinstance(items, list) else []) if from_record(m) is not None]
        for name, items in pending.items()
        if isinstance(name, str)
    }
    try:
        last = state.get("last_run") or {}
        state["last_run"] = {"at": _time(last["at"]), "checks": _check_list(last["checks"])}
    except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
        state["last_run"] = None
    receivers = state.get("receivers")
    state["receivers"] = {
        name: {key: entry.get(key) for key in ("at", "kind", "check", "result", "reason")}
        for name, entry in (receivers.items() if isinstance(receivers, dict) else [])
        if isinstance(name, str) and isinstance(entry, dict) and _valid_time(entry.get("at"))
    }
    no_ttl = state.get("no_ttl")
    if not isinstance(no_ttl, dict) or not all(isinstance(v, int) and not isinstance(v, bool) for v in no_ttl.values()):
        state["no_ttl"] = {}
    return state


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _valid_time(value) -> bool:
    try:
        return _time(value) is not None
    except ValueError:
        return False


def _parse_checks(state: dict) -> dict[str, dict]:
    """Each check's announced state; from a state file of the one-state-for-all days, the checks
    it had failing at its level (so an upgrade does not announce them again)."""
    checks = state.get("checks")
    if not isinstance(checks, dict):
        failing = state.get("failing")
        names = [n for n in failing if isinstance(n, str)] if isinstance(failing, list) else []
        at = {"level": state["status"], "since": state["since"], "sent": state["last_sent"], "ok_runs": 0}
        return {name: {**at, "seen": state["since"]} for name in names if state["status"] != "OK"}
    kept = {}
    for name, entry in checks.items():
        if (
            isinstance(name, str)
            and isinstance(entry, dict)
            and entry.get("level") in LEVELS
            and all(_valid_time(entry.get(key)) for key in ("since", "sent", "seen"))
            and isinstance(entry.get("ok_runs"), int)
        ):
            kept[name] = {key: entry[key] for key in ("level", "since", "sent", "seen", "ok_runs")}
    return kept


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
        "check": message.check,
        "still_bad": [list(check) for check in message.still_bad],
    }


def _check_list(items) -> list[tuple[str, int, str]]:
    checks = [(str(name), int(level), str(detail)) for name, level, detail in items]
    if any(level not in NAMES for _, level, _ in checks):
        raise ValueError("not a level")
    return checks


def _time(value) -> float:
    """A time the state file holds: a finite number that time.gmtime takes."""
    if not _number(value) or not 0 <= value < 1e11:
        raise ValueError("not a time")
    return float(value)


def from_record(record) -> Message | None:
    """The message a record holds, or None when it is not one that to_record wrote."""
    try:
        message = Message(
            str(record["kind"]),
            str(record["status"]),
            record["previous"],
            _check_list(record["checks"]),
            record["failover"],
            record["since"],
            record.get("check"),
            _check_list(record.get("still_bad", [])),
        )
    except (TypeError, KeyError, ValueError, AttributeError, OverflowError):
        return None
    if message.status not in LEVELS or not (message.failover is None or isinstance(message.failover, dict)):
        return None
    if message.check is not None and not isinstance(message.check, str):
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

    One state per check, announced apart from the others: a problem when a check goes bad or
    changes level, its resolve once it has been OK for RESOLVE_AFTER runs in a row (whatever the
    other checks do), a reminder per check after `repeat` seconds at the same level (0: never),
    nothing otherwise. A check this run does not report (its source did not answer) keeps its
    state. A first run that finds a problem reports it (previous None).
    """
    known = dict(previous["checks"]) if previous else {}
    read = {name: (level, detail) for name, level, detail in checks}
    changes: list[tuple[str, str, str, dict]] = []  # (kind, check, level announced before, its entry before)
    for name, (level, _) in read.items():
        entry, reading = known.get(name), NAMES[level]
        said = entry["level"] if entry else "OK"
        if entry is None or (reading != "OK" and reading != said):
            if reading != "OK":
                changes.append(("problem", name, said, entry or {}))
                known[name] = {"level": reading, "since": now, "sent": now, "seen": now, "ok_runs": 0}
        elif reading != "OK":
            known[name] = {**entry, "seen": now, "ok_runs": 0}
            if repeat and now - entry["sent"] >= repeat:
                changes.append(("reminder", name, said, entry))
                known[name]["sent"] = now
        elif entry["ok_runs"] + 1 >= RESOLVE_AFTER:
            changes.append(("resolved", name, said, entry))
            del known[name]
        else:
            known[name] = {**entry, "seen": now, "ok_runs": entry["ok_runs"] + 1}
    for name, entry in list(known.items()):
        if name not in read and now - entry["seen"] >= FORGET_AFTER:
            del known[name]
    announced = sorted(
        (n for n, e in known.items() if e["level"] != "OK"), key=lambda n: (-LEVELS[known[n]["level"]], n)
    )
    messages = []
    for kind, name, before, entry in changes:
        still_bad = [
            (other, LEVELS[known[other]["level"]], read.get(other, (0, "not read in this run"))[1])
            for other in announced
            if other != name
        ]
        messages.append(
            Message(
                kind,
                "OK" if kind == "resolved" else NAMES[read[name][0]],
                before,
                checks,
                since=entry.get("since") if kind != "problem" else None,
                check=name,
                still_bad=still_bad,
            )
        )
    status = known[announced[0]]["level"] if announced else "OK"
    before_status = previous["status"] if previous else None
    state = {
        "status": status,
        "since": previous["since"] if previous and before_status == status else now,
        "last_sent": now if messages else (previous["last_sent"] if previous else 0.0),
        "checks": known,
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
    """What changed first (one check), then what is still bad."""
    if message.kind == "test":
        return f"smart-redis {host}: test message from redis-monitor alert-test"
    if message.kind == "failover":
        f = message.failover or {}
        return f"smart-redis {host}: Sentinel failover of {f.get('master')}: primary {f.get('from')} -> {f.get('to')}"
    detail = dict((name, d) for name, _, d in message.checks).get(message.check or "", "")
    took = f" for {_minutes(now - message.since)}" if message.since else ""
    if message.check is None:  # a message kept from before checks had a state each
        head = f"smart-redis {host}: {message.status}" + (f" (was {message.previous})" if message.previous else "")
    elif message.kind == "resolved":
        head = f"smart-redis {host}: OK again: {message.check} (was {message.previous}{took})"
    elif message.kind == "reminder":
        head = f"smart-redis {host}: still {message.status}{took}: {message.check}: {detail}"
    else:
        was = f" (was {message.previous})" if message.previous not in (None, "OK") else ""
        head = f"smart-redis {host}: {message.status} {message.check}: {detail}{was}"
    bad = [f"{NAMES[level]} {name}: {d}" for name, level, d in message.still_bad]
    return "\n".join([head, *(["still bad:", *bad] if bad else [])])


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
        "check": message.check,
        "checks": [{"check": n, "status": NAMES[lv], "detail": d} for n, lv, d in message.checks],
        "still_bad": [{"check": n, "status": NAMES[lv], "detail": d} for n, lv, d in message.still_bad],
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
