"""Delivery of a run's messages (smart_redis/host/delivery.py), `redis-monitor alerts` and the
OnFailure= handler `alert-failed`: receivers side by side within their budgets, new messages
before retries, a blackholed receiver against a real socket on 127.0.0.1."""

from __future__ import annotations

import json
import socket
import time

import pytest

from smart_redis.constants import ALERT_SERVICE, BACKUP_SERVICE
from smart_redis.host import alert_failed, alerts, delivery, monitor, receivers
from smart_redis.host.levels import CRITICAL, OK

NOW = 1_800_000_000.0


def message(check: str | None, kind: str = "problem", status: str = "CRITICAL") -> alerts.Message:
    return alerts.Message(kind, status, None, [(check or "", CRITICAL, "x")], check=check)


QUEUES = [
    # (new messages, what the receiver missed before, the checks of its queue in order)
    ([], [], []),
    ([message("redis")], [], ["redis"]),
    ([], [message("disk")], ["disk"]),
    ([message("redis", "resolved", "OK")], [message("disk"), message("redis")], ["redis", "disk"]),
    ([message("web port")], [message(None, "failover"), message("web port")], ["web port", None]),
]


@pytest.mark.parametrize("new, missed, checks", QUEUES)
def test_new_messages_come_first_and_replace_what_they_supersede(new, missed, checks):
    queue = delivery.queue(new, [alerts.to_record(m) for m in missed])
    assert [m.check for m in queue] == checks
    assert queue[: len(new)] == new


def test_a_slow_receiver_delays_no_other_and_keeps_what_its_budget_left():
    """The blackholed receiver takes its budget; the other one's messages arrive at once."""
    arrived: dict[str, list[float]] = {"fast": [], "slow": []}
    started = time.monotonic()

    def fast(msg, now, timeout):
        arrived["fast"].append(time.monotonic() - started)
        return True, "HTTP 200"

    def slow(msg, now, timeout):
        time.sleep(min(timeout, 0.6))  # a request that gets no answer within its timeout
        arrived["slow"].append(time.monotonic() - started)
        return False, f"no answer within {timeout:g} s"

    queue = [message("redis"), message("disk"), message("web port")]
    log, pending = delivery.deliver({"slow": slow, "fast": fast}, {"slow": queue, "fast": queue}, NOW, budget=2)
    assert len(arrived["fast"]) == 3 and max(arrived["fast"]) < min(arrived["slow"])
    assert len(arrived["slow"]) == 2  # 2 s: two tries, then under a second left
    assert [(x["receiver"], x["check"], x["result"]) for x in log] == [
        ("slow", "redis", "FAILED"),
        ("slow", "disk", "FAILED"),
        ("slow", "web port", "FAILED"),
        ("fast", "redis", "OK"),
        ("fast", "disk", "OK"),
        ("fast", "web port", "OK"),
    ]
    assert log[2]["reason"] == "not tried: the receiver had used its 2 s"
    assert list(pending) == ["slow"] and [r["check"] for r in pending["slow"]] == ["redis", "disk", "web port"]


def test_a_receiver_that_ignores_its_timeout_is_left_behind(monkeypatch):
    """A name lookup hangs past any socket timeout: the run stops waiting for it at budget + grace."""
    monkeypatch.setattr(delivery, "GRACE", 0.2)

    def stuck(msg, now, timeout):
        time.sleep(3)
        return True, "too late"

    started = time.monotonic()
    log, pending = delivery.deliver({"stuck": stuck}, {"stuck": [message("redis")]}, NOW, budget=1.2)
    assert time.monotonic() - started < 2.5
    assert [(x["result"], x["reason"]) for x in log] == [("FAILED", "no answer within 1.4 s")]
    assert [r["check"] for r in pending["stuck"]] == ["redis"]


def test_a_receiver_that_raises_fails_alone():
    def broken(msg, now, timeout):
        raise KeyError("x")

    log, pending = delivery.deliver(
        {"broken": broken, "ok": lambda m, n, t: (True, "ok")},
        {"broken": [message("redis")], "ok": [message("redis")]},
        NOW,
    )
    assert [(x["receiver"], x["result"], x["reason"]) for x in log] == [
        ("broken", "FAILED", "the receiver failed: KeyError"),
        ("ok", "OK", "ok"),
    ]
    assert list(pending) == ["broken"]


def test_a_blackholed_webhook_fails_within_the_time_it_was_given():
    """A port that takes the connection and never answers (a listen backlog nobody accepts)."""
    with socket.socket() as hole:
        hole.bind(("127.0.0.1", 0))
        hole.listen(8)
        url = f"http://127.0.0.1:{hole.getsockname()[1]}/hooks/T0KEN-s3cret"
        started = time.monotonic()
        ok, reason = receivers.webhook(url, "json", message("redis"), "r1", NOW, timeout=0.5)
        took = time.monotonic() - started
    assert (ok, reason) == (False, "no answer within 0.5 s") and 0.4 < took < 3


def alert_config(tmp_path) -> dict:
    return {
        "keyspace": [],
        "alerts": {
            "host": "r1",
            "repeat": 0,
            "state_file": str(tmp_path / "alert-state.json"),
            "secrets": str(tmp_path / "secrets"),
            "webhook": {"format": "json"},
        },
    }


def test_alerts_lists_each_check_and_what_each_receiver_was_last_sent(tmp_path, monkeypatch, capsys):
    from smart_redis.host import alert_run

    config = alert_config(tmp_path)
    readings = iter([[("redis", CRITICAL, "does not answer"), ("disk", OK, "10% used")]])
    monkeypatch.setattr(alert_run, "health_checks", lambda config, view=None: next(readings))
    monkeypatch.setattr(alert_run, "alert_readings", lambda config: (None, None))
    monkeypatch.setattr(alert_run, "write_private", lambda path, text: open(path, "w").write(text))
    monkeypatch.setattr(
        alert_run.receivers, "senders", lambda conf, s: {"webhook": lambda m, n, t: (False, "HTTP 503")}
    )
    monkeypatch.setattr(alert_run.receivers, "heartbeat", lambda *a: None)
    monkeypatch.setattr(alert_run.time, "time", lambda: NOW)
    assert monitor.cmd_alert(monitor.parser().parse_args(["alert", "--json"]), config) == 3
    capsys.readouterr()
    assert monitor.cmd_alerts(monitor.parser().parse_args(["alerts", "--json"]), config) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["status"] == "CRITICAL" and listed["last_run"] == NOW
    assert [(c["check"], c["now"], c["told"], c["since"]) for c in listed["checks"]] == [
        ("redis", "CRITICAL", "CRITICAL", "2027-01-15T08:00:00Z"),
        ("disk", "OK", "OK", ""),
        ("health", "OK", "OK", ""),
    ]
    assert listed["receivers"] == [
        {
            "receiver": "webhook",
            "last sent": "2027-01-15T08:00:00Z",
            "message": "problem redis",
            "result": "FAILED",
            "reason": "HTTP 503",
            "pending": 1,
        }
    ]
    assert monitor.cmd_alerts(monitor.parser().parse_args(["alerts"]), config) == 0
    assert capsys.readouterr().out.startswith("CRITICAL since 2027-01-15T08:00:00Z, last run 2027-01-15T08:00:00Z")


def test_alerts_before_any_run_says_so(tmp_path, capsys):
    assert monitor.cmd_alerts(monitor.parser().parse_args(["alerts"]), alert_config(tmp_path)) == 0
    assert capsys.readouterr().out == "no alert run yet\n"


def test_the_failure_handler_knows_the_units_that_name_it():
    assert set(alert_failed.UNITS.values()) == {ALERT_SERVICE, BACKUP_SERVICE}


def test_a_failed_unit_is_said_once_an_hour(tmp_path, monkeypatch, capsys):
    config = alert_config(tmp_path)
    sent: list[tuple[str | None, str]] = []
    clock = iter([NOW, NOW + 1800, NOW + 3700])
    monkeypatch.setattr(alert_failed.time, "time", lambda: next(clock))
    monkeypatch.setattr(alert_failed, "systemctl", lambda *a: "timeout")
    monkeypatch.setattr(alert_failed, "write_private", lambda path, text: open(path, "w").write(text))
    monkeypatch.setattr(
        alert_failed.receivers,
        "senders",
        lambda conf, s: {"webhook": lambda m, n, t: sent.append((m.check, alerts.text(m, "r1", n))) or (True, "ok")},
    )
    args = monitor.parser().parse_args(["alert-failed", "redis-backup"])
    assert [monitor.cmd_alert_failed(args, config) for _ in range(3)] == [0, 0, 0]
    assert [check for check, _ in sent] == [BACKUP_SERVICE, BACKUP_SERVICE]  # not at +30 min, again at +62 min
    assert sent[0][1] == f"smart-redis r1: CRITICAL {BACKUP_SERVICE}: failed (timeout): journalctl -u {BACKUP_SERVICE}"


def test_the_failure_handler_names_only_our_units(tmp_path, capsys):
    args = monitor.parser().parse_args(["alert-failed", "ssh"])
    assert monitor.cmd_alert_failed(args, alert_config(tmp_path)) == 2
    assert "unit must be one of redis-backup, smart-redis-alert" in capsys.readouterr().err


def test_a_receiver_down_for_long_keeps_the_newest_messages():
    """Ten missed already, two new ones: the two new ones are among what it keeps."""
    old = [alerts.to_record(message(f"old {n}")) for n in range(alerts.PENDING_KEPT)]
    new = [message("redis"), message("disk")]
    _, pending = delivery.deliver(
        {"down": lambda m, n, t: (False, "HTTP 503")}, {"down": delivery.queue(new, old)}, NOW
    )
    kept = [r["check"] for r in pending["down"]]
    assert len(kept) == alerts.PENDING_KEPT and kept[:2] == ["redis", "disk"] and "old 9" not in kept


@pytest.mark.parametrize(
    "change",
    [
        {"last_run": {"at": 10**400, "checks": []}},
        {"last_run": {"at": NOW, "checks": [["redis", float("inf"), "x"]]}},
        {"last_run": {"at": NOW, "checks": [["redis", 7, "x"]]}},
        {"receivers": {"webhook": {"at": 1e300, "kind": "problem"}}},
        {"checks": {"redis": {"level": "CRITICAL", "since": 1e300, "sent": NOW, "seen": NOW, "ok_runs": 0}}},
        {"since": float("inf")},
    ],
)
def test_a_corrupt_state_file_neither_stops_the_runs_nor_the_listing(change, tmp_path, monkeypatch, capsys):
    config = alert_config(tmp_path)
    good = {"status": "OK", "since": NOW, "last_sent": NOW, "checks": {}, "pending": {}}
    (tmp_path / "alert-state.json").write_text(json.dumps({**good, **change}))
    state = alerts.read_state(str(tmp_path / "alert-state.json"))
    assert state is None or state["status"] == "OK"
    assert monitor.cmd_alerts(monitor.parser().parse_args(["alerts", "--json"]), config) == 0


def test_a_failure_nobody_heard_is_tried_again_at_the_next_failure(tmp_path, monkeypatch, capsys):
    config = alert_config(tmp_path)
    tries: list[str | None] = []
    answers = iter([(False, "HTTP 503"), (True, "ok"), (True, "ok")])
    monkeypatch.setattr(alert_failed, "systemctl", lambda *a: "exit-code")
    monkeypatch.setattr(alert_failed, "write_private", lambda path, text: open(path, "w").write(text))
    monkeypatch.setattr(
        alert_failed.receivers,
        "senders",
        lambda conf, s: {"webhook": lambda m, n, t: tries.append(m.check) or next(answers)},
    )
    args = monitor.parser().parse_args(["alert-failed", "smart-redis-alert"])
    assert [monitor.cmd_alert_failed(args, config) for _ in range(3)] == [1, 0, 0]
    assert tries == [ALERT_SERVICE, ALERT_SERVICE]  # the second said it; the third is within the hour
