"""redis-monitor alert (smart_redis/host/alerts.py, receivers.py): the state machine, the checks
only `alert` makes, Sentinel's event spool as hostile input, and delivery to a real HTTP server
that the test runs on 127.0.0.1. (tests/unit/test_alerts.py is about monitoring/alerts.yml.)"""

from __future__ import annotations

import json
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from smart_redis.host import alert_run, alerts, monitor, receivers
from smart_redis.host.levels import CRITICAL, OK, UNKNOWN, WARNING

NOW = 1_800_000_000.0
GOOD = [("redis", OK, "answers"), ("disk", OK, "10% used")]
DOWN = [("redis", CRITICAL, "does not answer: refused"), ("disk", OK, "10% used")]
FULL = [("redis", WARNING, "answers, 85%"), ("disk", OK, "10% used")]


PORT_DOWN = ("web port", CRITICAL, "3000 not listening")


def state(status: str, since: float = NOW - 600, last_sent: float = NOW - 600) -> dict:
    return {"status": status, "since": since, "last_sent": last_sent, "evicted_keys": 0, "no_ttl": {}, "checks": {}}


DISK_FULL = ("disk", CRITICAL, "97% used")


def runs(sequence: list[list[tuple[str, int, str]]], repeat: int = 3600, every: float = 60, start=None):
    """The alert runs of a timer, one `every` seconds, through the state file as JSON: what each sent."""
    previous, sent = start, []
    for i, checks in enumerate(sequence):
        messages, new = alerts.decide(previous, checks, NOW + every * i, repeat, {"evicted_keys": 5, "no_ttl": {}})
        sent += [(i, m.kind, m.check, m.status) for m in messages]
        previous = alerts.parse_state(json.dumps(new))
        assert previous is not None and previous["evicted_keys"] == 5
    return sent, previous


@pytest.mark.parametrize(
    "sequence,repeat,sent,status",
    [
        ([GOOD, GOOD], 3600, [], "OK"),
        ([DOWN], 3600, [(0, "problem", "redis", "CRITICAL")], "CRITICAL"),
        ([GOOD, DOWN, DOWN, DOWN], 3600, [(1, "problem", "redis", "CRITICAL")], "CRITICAL"),
        ([DOWN, GOOD, GOOD, GOOD], 3600, [(0, "problem", "redis", "CRITICAL"), (2, "resolved", "redis", "OK")], "OK"),
        # flapping: bad, OK, bad, OK... is one problem; the resolve once OK has held for two runs
        (
            [DOWN, GOOD, DOWN, GOOD, DOWN, GOOD, GOOD],
            3600,
            [(0, "problem", "redis", "CRITICAL"), (6, "resolved", "redis", "OK")],
            "OK",
        ),
        (
            [DOWN, FULL, GOOD, GOOD],
            3600,
            [(0, "problem", "redis", "CRITICAL"), (1, "problem", "redis", "WARNING"), (3, "resolved", "redis", "OK")],
            "OK",
        ),  # fmt: skip
        ([DOWN] * 62, 3600, [(0, "problem", "redis", "CRITICAL"), (60, "reminder", "redis", "CRITICAL")], "CRITICAL"),
        ([DOWN] * 62, 0, [(0, "problem", "redis", "CRITICAL")], "CRITICAL"),
        # another check's problem is its own message, and so is each resolve, whatever the other does
        (
            [[*DOWN, PORT_DOWN], [*DOWN, PORT_DOWN], [*GOOD, PORT_DOWN], [*GOOD, PORT_DOWN], [*GOOD, PORT_DOWN]],
            3600,
            [
                (0, "problem", "redis", "CRITICAL"),
                (0, "problem", "web port", "CRITICAL"),
                (3, "resolved", "redis", "OK"),
            ],
            "CRITICAL",
        ),
        (
            [GOOD, DOWN, [DOWN[0], DISK_FULL], [DOWN[0], DISK_FULL]],
            3600,
            [(1, "problem", "redis", "CRITICAL"), (2, "problem", "disk", "CRITICAL")],
            "CRITICAL",
        ),
        # a check this run cannot read (Redis down: no TTL counts) keeps its state, resolves when read OK
        (
            [[*GOOD, ("db 0 TTL", WARNING, "grew")], DOWN, DOWN, [*GOOD, ("db 0 TTL", OK, "")], GOOD],
            3600,
            [
                (0, "problem", "db 0 TTL", "WARNING"),
                (1, "problem", "redis", "CRITICAL"),
                (4, "resolved", "redis", "OK"),
            ],
            "WARNING",
        ),
        (
            [[("health", UNKNOWN, "the checks failed")], [*GOOD, ("health", OK, "")], [*GOOD, ("health", OK, "")]],
            3600,
            [(0, "problem", "health", "UNKNOWN"), (2, "resolved", "health", "OK")],
            "OK",
        ),  # fmt: skip
    ],
    ids=[
        "ok-sends-nothing",
        "first-run-critical",
        "ok-to-critical-once",
        "resolve-after-two-ok-runs",
        "flapping-is-one-problem",
        "level-change-then-resolve",
        "reminder-after-repeat",
        "repeat-0-never",
        "each-check-its-own-problem-and-resolve",
        "a-second-check-going-bad-is-its-own-message",
        "a-check-not-read-keeps-its-state",
        "broken-checks-unknown-then-resolved",
    ],
)
def test_each_check_has_its_own_state(sequence, repeat, sent, status):
    got, state = runs(sequence, repeat)
    assert got == sent
    assert state["status"] == status


def test_a_resolve_names_its_check_and_what_is_still_bad():
    """Redis back while an app port the operator listed stays down: the resolve says both."""
    previous = runs([[*DOWN, PORT_DOWN], [*GOOD, PORT_DOWN]])[1]
    messages, _ = alerts.decide(previous, [*GOOD, PORT_DOWN], NOW + 600, 3600, {})
    (resolved,) = messages
    assert alerts.text(resolved, "r1", NOW + 600).splitlines() == [
        "smart-redis r1: OK again: redis (was CRITICAL for 10 min)",
        "still bad:",
        "CRITICAL web port: 3000 not listening",
    ]


def test_a_state_file_of_one_state_for_all_announces_nothing_again():
    """After an upgrade, the checks the old file had failing keep their level: no second problem."""
    old = {"status": "CRITICAL", "since": NOW - 600, "last_sent": NOW - 600, "failing": ["redis"], "no_ttl": {}}
    previous = alerts.parse_state(json.dumps(old))
    messages, state = alerts.decide(previous, DOWN, NOW, 3600, {})
    assert messages == [] and state["checks"]["redis"]["level"] == "CRITICAL"
    assert runs([GOOD, GOOD], start=previous)[0] == [(1, "resolved", "redis", "OK")]


def test_a_receiver_that_fails_gets_the_message_later_and_the_others_only_once(tmp_path, monkeypatch):
    """A receiver that is down keeps what it missed in the state; the others never hear it twice."""
    calls: list[tuple[str, str]] = []
    hook_outcomes = iter([(False, "HTTP 503"), (True, "HTTP 200")])

    def sender(name, outcomes):
        def send(message, now, timeout):
            calls.append((name, message.kind))
            return next(outcomes)

        return send

    state_file = tmp_path / "state" / "alert-state.json"
    config = {
        "keyspace": [],
        "alerts": {
            "host": "r1",
            "repeat": 3600,
            "state_file": str(state_file),
            "secrets": str(tmp_path / "secrets"),
            "webhook": {"format": "json"},
            "email": {"to": ["ops@example.com"], "from": "r"},
        },
    }
    always = iter([(True, "handed to sendmail")] * 5)
    monkeypatch.setattr(
        alert_run.receivers,
        "senders",
        lambda conf, secrets: {"webhook": sender("webhook", hook_outcomes), "email": sender("email", always)},
    )
    monkeypatch.setattr(alert_run, "health_checks", lambda config, view=None: list(DOWN))
    monkeypatch.setattr(alert_run, "alert_readings", lambda config: (None, None))
    monkeypatch.setattr(alert_run, "write_private", lambda path, text: open(path, "w").write(text))
    args = monitor.parser().parse_args(["alert", "--json"])
    assert monitor.cmd_alert(args, config) == 3  # ran; a receiver did not take its message
    state = json.loads(state_file.read_text())
    assert state["status"] == "CRITICAL" and [m["kind"] for m in state["pending"]["webhook"]] == ["problem"]
    assert monitor.cmd_alert(args, config) == 0
    # the receivers side by side: in either order
    assert sorted(calls[:2]) == [("email", "problem"), ("webhook", "problem")] and calls[2:] == [("webhook", "problem")]
    assert json.loads(state_file.read_text())["pending"] == {}
    assert monitor.cmd_alert(args, config) == 0 and len(calls) == 3  # unchanged: nothing more


def test_one_host_speaks_for_the_group_and_resolves_what_it_said(tmp_path, monkeypatch):
    """A sentinel host gone: only the lowest answering host says so, and the same host resolves it
    once the host is back, although the returned host (lower) speaks for the group again."""
    sent: list[tuple[str, str | None, str]] = []
    state_file = tmp_path / "alert-state.json"
    config = {
        "keyspace": [],
        "port": 6379,
        "ha": {"address": "10.0.0.2", "master_name": "smart-trade"},
        "alerts": {"host": "r2", "repeat": 3600, "state_file": str(state_file), "secrets": str(tmp_path / "s")},
    }
    gone = {
        "10.0.0.1:26379": "no answer (refused)",
        "10.0.0.2:26379": "10.0.0.2:6379",
        "10.0.0.3:26379": "10.0.0.2:6379",
    }
    back = {**gone, "10.0.0.1:26379": "10.0.0.2:6379"}
    views = iter([gone, gone, back, back, back, back])

    def checks(config, view=None):
        silent = [k for k, v in view.items() if v.startswith("no answer")]
        return [("sentinels", WARNING if silent else OK, "x")]

    monkeypatch.setattr(alert_run, "sentinel_view", lambda config: next(views))
    monkeypatch.setattr(alert_run, "health_checks", checks)
    monkeypatch.setattr(alert_run, "local_replication", lambda config: {"role": "master"})
    monkeypatch.setattr(alert_run, "alert_readings", lambda config: (None, None))
    monkeypatch.setattr(alert_run, "write_private", lambda path, text: open(path, "w").write(text))
    monkeypatch.setattr(
        alert_run.receivers,
        "senders",
        lambda conf, secrets: {
            "webhook": lambda m, now, timeout: sent.append((m.kind, m.check, m.status)) or (True, "ok")
        },
    )
    args = monitor.parser().parse_args(["alert", "--json"])
    for _ in range(6):
        assert monitor.cmd_alert(args, config) == 0
    assert sent == [("problem", "sentinels", "WARNING"), ("resolved", "sentinels", "OK")]
    config["ha"]["address"] = "10.0.0.3"  # another survivor: never the one to speak
    state_file.unlink()
    sent.clear()
    views = iter([gone, gone])
    for _ in range(2):
        assert monitor.cmd_alert(args, config) == 0
    assert sent == []


@pytest.mark.parametrize(
    "text",
    ["", "not json", "[]", '{"status": "BAD", "since": 1, "last_sent": 1}', '{"status": "OK", "since": "x"}'],
)
def test_a_corrupt_state_file_is_a_first_run(tmp_path, text):
    path = tmp_path / "state.json"
    path.write_text(text)
    assert alerts.read_state(str(path)) is None


def test_the_state_file_is_not_read_through_a_link(tmp_path):
    real = tmp_path / "elsewhere.json"
    real.write_text(json.dumps(state("CRITICAL")))
    assert alerts.read_state(str(real))["status"] == "CRITICAL"
    (tmp_path / "state.json").symlink_to(real)
    assert alerts.read_state(str(tmp_path / "state.json")) is None


def test_the_state_file_is_written_root_only_and_replaces_a_link(tmp_path):
    target = tmp_path / "victim"
    target.write_text("keep me")
    link = tmp_path / "alert-state.json"
    link.symlink_to(target)
    alert_run.write_private(str(link), '{"status": "OK"}\n')
    assert target.read_text() == "keep me"
    assert not link.is_symlink() and oct(link.stat().st_mode & 0o777) == "0o600" and link.stat().st_uid == 0


# --- The checks only `alert` makes --------------------------------------------------------------


@pytest.mark.parametrize(
    "before,now,level,base",
    [(None, 7, OK, 7), (7, 7, OK, 7), (7, 12, WARNING, 12), (12, 0, OK, 0)],
    ids=["first-look", "unchanged", "evictions-start", "server-restarted"],
)
def test_evictions_starting(before, now, level, base):
    previous = None if before is None else {**state("OK"), "evicted_keys": before}
    check, kept = alerts.eviction_check(previous, now)
    assert check[1] == level and kept == base
    if level == WARNING:
        assert check[2].startswith("5 keys evicted since the last check")


def test_evictions_without_an_answer_keep_the_baseline():
    assert alerts.eviction_check({**state("OK"), "evicted_keys": 9}, None) == (None, 9)


@pytest.mark.parametrize(
    "baseline,counts,levels,kept",
    [
        ({}, {"0": 3, "4": 0}, [OK, OK], {"0": 3, "4": 0}),
        ({"0": 3, "4": 0}, {"0": 3, "4": 0}, [OK, OK], {"0": 3, "4": 0}),
        ({"0": 3, "4": 0}, {"0": 14, "4": 0}, [WARNING, OK], {"0": 3, "4": 0}),
        ({"0": 3, "4": 0}, {"0": 13, "4": 0}, [OK, OK], {"0": 3, "4": 0}),  # within the slack: SET then EXPIRE
        ({"0": 1000, "4": 0}, {"0": 1100, "4": 0}, [OK, OK], {"0": 1000, "4": 0}),  # 10 % of a large count
        ({"0": 1000, "4": 0}, {"0": 1101, "4": 0}, [WARNING, OK], {"0": 1000, "4": 0}),
        ({"0": 3, "4": 0}, {"0": 0, "4": 0}, [OK, OK], {"0": 0, "4": 0}),
    ],
    ids=["first-look", "unchanged", "growing", "within-slack", "within-10-percent", "above-10-percent", "cleaned-up"],
)
def test_keys_without_ttl_growing(baseline, counts, levels, kept):
    checks, new = alerts.ttl_growth_checks(
        {**state("OK"), "no_ttl": baseline}, counts, {"0": "quotes", "4": "sessions"}
    )
    assert [c[1] for c in checks] == levels and new == kept
    assert checks[0][0] == "db 0 (quotes) TTL"
    if levels[0] == WARNING:
        assert checks[0][2].startswith(f"{counts['0']} keys without the DB's TTL, {baseline['0']} before")


# --- Messages ----------------------------------------------------------------------------------------


def test_the_generic_json_payload():
    message = alerts.Message("problem", "CRITICAL", "WARNING", DOWN, check="redis", still_bad=[DISK_FULL])
    body = alerts.payload(message, "r1", NOW)
    assert body == {
        "source": "smart-redis",
        "host": "r1",
        "kind": "problem",
        "status": "CRITICAL",
        "previous": "WARNING",
        "text": "smart-redis r1: CRITICAL redis: does not answer: refused (was WARNING)\n"
        "still bad:\nCRITICAL disk: 97% used",
        "check": "redis",
        "checks": [
            {"check": "redis", "status": "CRITICAL", "detail": "does not answer: refused"},
            {"check": "disk", "status": "OK", "detail": "10% used"},
        ],
        "still_bad": [{"check": "disk", "status": "CRITICAL", "detail": "97% used"}],
        "failover": None,
        "time": "2027-01-15T08:00:00Z",
    }
    assert alerts.payload(message, "r1", NOW, "slack") == {"text": body["text"]}


def test_a_message_kept_from_before_checks_had_a_state_each_still_reads():
    """A receiver's pending message from an older state file has no check: it says the level."""
    record = {"kind": "problem", "status": "CRITICAL", "previous": "OK", "checks": [list(DOWN[0])],
              "failover": None, "since": None}  # fmt: skip
    message = alerts.from_record(record)
    assert message is not None and alerts.text(message, "r1", NOW) == "smart-redis r1: CRITICAL (was OK)"


def test_resolve_reminder_and_failover_texts():
    resolved = alerts.Message("resolved", "OK", "CRITICAL", GOOD, since=NOW - 600, check="redis")
    assert alerts.text(resolved, "r1", NOW) == "smart-redis r1: OK again: redis (was CRITICAL for 10 min)"
    reminder = alerts.Message("reminder", "CRITICAL", "CRITICAL", DOWN, since=NOW - 3 * 3600, check="redis")
    assert alerts.text(reminder, "r1", NOW) == (
        "smart-redis r1: still CRITICAL for 3 h 0 min: redis: does not answer: refused"
    )
    event = {"master": "smart-trade", "from": "10.0.0.1:6379", "to": "10.0.0.2:6379"}
    failover = alerts.payload(alerts.Message("failover", "WARNING", None, failover=event), "r1", NOW)
    assert failover["kind"] == "failover" and failover["failover"] == event
    assert (
        failover["text"] == "smart-redis r1: Sentinel failover of smart-trade: primary 10.0.0.1:6379 -> 10.0.0.2:6379"
    )


# --- Sentinel failovers: one message, from the new primary ---------------------------------------

OWN = "10.0.0.2:6379"


def view(*answers: str) -> dict:
    return {f"10.0.0.{i}:26379": answer for i, answer in enumerate(answers, 1)}


@pytest.mark.parametrize(
    ("answers", "primary"),
    [
        (("10.0.0.2:6379",) * 3, "10.0.0.2:6379"),
        (("10.0.0.2:6379", "10.0.0.2:6379", "10.0.0.1:6379"), "10.0.0.2:6379"),
        (("10.0.0.2:6379", "10.0.0.1:6379", "no answer (timed out)"), None),
        (("does not know the primary",) * 3, None),
    ],
)
def test_the_primary_is_what_a_majority_of_sentinels_name(answers, primary):
    assert alerts.primary_of(view(*answers)) == primary


@pytest.mark.parametrize(
    ("before", "replication", "majority", "kept"),
    [
        (None, {"role": "slave", "master_host": "10.0.0.1", "master_port": "6379"}, None, "10.0.0.1:6379"),
        ("10.0.0.1:6379", {"role": "master"}, "10.0.0.1:6379", "10.0.0.1:6379"),  # promoted, not yet agreed
        ("10.0.0.1:6379", {"role": "master"}, OWN, OWN),
        ("10.0.0.1:6379", {}, None, "10.0.0.1:6379"),  # the server does not answer: keep what was known
    ],
    ids=["a-replica-knows-its-primary", "promoted-not-agreed", "named-by-the-sentinels", "no-answer"],
)
def test_the_primary_a_host_keeps_in_its_state(before, replication, majority, kept):
    assert alerts.primary_seen(before, replication, majority, OWN) == kept


@pytest.mark.parametrize(
    ("before", "now", "sent"),
    [
        ("10.0.0.1:6379", OWN, True),  # this host has become the primary: it tells
        (OWN, OWN, False),  # nothing moved
        ("10.0.0.1:6379", "10.0.0.3:6379", False),  # another host became primary: that one tells
        (None, OWN, False),  # a first run knows no earlier primary
        ("10.0.0.1:6379", None, False),  # no majority now: nothing to say yet
    ],
)
def test_only_the_new_primary_reports_a_failover(before, now, sent):
    previous = {"status": "OK", "since": NOW, "last_sent": 0.0, "primary": before}
    message = alerts.failover(previous, now, OWN, "smart-trade")
    assert (message is not None) == sent
    if sent:
        assert message.failover == {"master": "smart-trade", "from": before, "to": OWN}


# --- Receivers, against a real HTTP server on 127.0.0.1 -----------------------------------------------


class Receiver(BaseHTTPRequestHandler):
    received: list = []
    answer = 200

    def do_POST(self):  # noqa: N802 (http.server's name)
        body = self.rfile.read(int(self.headers["Content-Length"]))
        type(self).received.append((self.path, self.headers["Content-Type"], json.loads(body)))
        self.send_response(self.answer)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{"ok": false, "description": "Unauthorized"}' if self.answer >= 400 else b'{"ok": true}')

    def log_message(self, *args):
        pass


@pytest.fixture
def server():
    Receiver.received, Receiver.answer = [], 200
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield httpd, f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


PROBLEM = alerts.Message("problem", "CRITICAL", None, DOWN, check="redis")


def test_webhook_posts_the_generic_json(server):
    _, base = server
    url = base + "/hooks/T0KEN-abcdef?key=s3cret"
    assert receivers.webhook(url, "json", PROBLEM, "r1", NOW) == (True, "HTTP 200")
    path, content_type, body = Receiver.received[0]
    assert path == "/hooks/T0KEN-abcdef?key=s3cret" and content_type == "application/json"
    assert body == alerts.payload(PROBLEM, "r1", NOW)


def test_the_heartbeat_posts_on_every_run_and_says_nothing_of_its_url(server):
    _, base = server
    url = base + "/ping/0f3c-uuid-s3cret"
    conf = {"heartbeat": True, "host": "r1", "secrets": "/etc/smart-redis/alerts.secrets"}
    assert receivers.heartbeat(conf, {receivers.HEARTBEAT_URL: url}, "CRITICAL", NOW) == (True, "HTTP 200")
    path, _, body = Receiver.received[0]
    assert path == "/ping/0f3c-uuid-s3cret"
    assert body == {"source": "smart-redis", "host": "r1", "status": "CRITICAL", "time": "2027-01-15T08:00:00Z"}
    assert receivers.heartbeat({"heartbeat": False}, {receivers.HEARTBEAT_URL: url}, "OK", NOW) is None
    ok, reason = receivers.heartbeat(conf, {}, "OK", NOW)
    assert not ok and receivers.HEARTBEAT_URL in reason
    Receiver.answer = 404
    ok, reason = receivers.heartbeat(conf, {receivers.HEARTBEAT_URL: url}, "OK", NOW)
    assert not ok and reason.startswith("HTTP 404") and "s3cret" not in reason


def test_webhook_posts_a_slack_payload(server):
    _, base = server
    assert receivers.webhook(base + "/slack", "slack", PROBLEM, "r1", NOW)[0]
    assert Receiver.received[0][2] == {"text": "smart-redis r1: CRITICAL redis: does not answer: refused"}


def test_telegram_posts_to_the_bot_path_with_the_token(server):
    _, base = server
    token = "123456:AAH-secret-token"
    assert receivers.telegram(base, token, "-100123", PROBLEM, "r1", NOW) == (True, "HTTP 200")
    path, _, body = Receiver.received[0]
    assert path == f"/bot{token}/sendMessage"
    assert body == {"chat_id": "-100123", "text": alerts.text(PROBLEM, "r1", NOW)}


def test_a_refusing_receiver_fails_without_the_secret(server):
    _, base = server
    Receiver.answer = 401
    token = "123456:AAH-secret-token"
    ok, reason = receivers.telegram(base, token, "-100123", PROBLEM, "r1", NOW)
    assert not ok and reason == "HTTP 401: Unauthorized"


def unused_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_an_unreachable_webhook_fails_without_the_url_or_the_secret_file(tmp_path):
    url = f"http://127.0.0.1:{unused_port()}/hooks/T0KEN-abcdef?key=s3cret"
    secrets = tmp_path / "alerts.secrets"
    secrets.write_text(f"REDIS_ALERT_WEBHOOK_URL='{url}'\nREDIS_ALERT_TELEGRAM_TOKEN='123456:AAH-secret-token'\n")
    conf = {
        "host": "r1",
        "secrets": str(secrets),
        "webhook": {"format": "json"},
        "telegram": {"api": f"http://127.0.0.1:{unused_port()}", "chat_id": "-100123"},
        "email": None,
    }
    send = receivers.senders(conf, receivers.read_secrets(str(secrets)))
    assert list(send) == ["webhook", "telegram"]
    for name, fn in send.items():
        ok, reason = fn(PROBLEM, NOW)
        assert not ok and reason == "Connection refused", (name, reason)
        for secret in (url, "T0KEN", "s3cret", "hooks", "AAH-secret-token", "123456", str(secrets.read_text())):
            assert secret not in reason


def test_scrub_removes_every_part_of_a_secret_url():
    url = "https://user:pa55word@hooks.example.net/services/T0KEN/B1234?key=s3cret"
    said = receivers.scrub(f"error at {url} for hooks.example.net with T0KEN and key=s3cret and pa55word", [url])
    for part in ("hooks.example.net", "T0KEN", "s3cret", "pa55word", "B1234"):
        assert part not in said


def test_a_missing_secret_fails_that_receiver(tmp_path):
    conf = {"host": "r1", "secrets": str(tmp_path / "none"), "webhook": {"format": "json"}}
    send = receivers.senders(conf, receivers.read_secrets(conf["secrets"]))
    assert send["webhook"](PROBLEM, NOW) == (
        False,
        f"REDIS_ALERT_WEBHOOK_URL is not in the secrets file {tmp_path / 'none'}",
    )


def test_email_without_sendmail_fails(monkeypatch, tmp_path):
    monkeypatch.setattr(receivers, "SENDMAIL", str(tmp_path / "sendmail"))
    assert receivers.email(["ops@example.com"], "alerts@r1", PROBLEM, "r1", NOW) == (False, "no sendmail on this host")


def test_email_goes_to_sendmail_on_stdin(monkeypatch, tmp_path):
    sendmail = tmp_path / "sendmail"
    sendmail.write_text(f'#!/bin/sh\necho "$@" > {tmp_path}/args\ncat > {tmp_path}/mail\n')
    sendmail.chmod(0o755)
    monkeypatch.setattr(receivers, "SENDMAIL", str(sendmail))
    assert receivers.email(["ops@example.com", "b@example.com"], "alerts@r1", PROBLEM, "r1", NOW)[0]
    assert (tmp_path / "args").read_text() == "-t -i\n"
    mail = (tmp_path / "mail").read_text()
    assert "To: ops@example.com, b@example.com\n" in mail and "From: alerts@r1\n" in mail
    assert "Subject: smart-redis r1: CRITICAL redis: does not answer: refused\n" in mail
    sendmail.write_text("#!/bin/sh\ncat >/dev/null\necho 'queue full' >&2\nexit 75\n")
    assert receivers.email(["ops@example.com"], "alerts@r1", PROBLEM, "r1", NOW) == (
        False,
        "sendmail exited 75: queue full",
    )
    assert receivers.email(["ops@example.com\nBcc: x@evil"], "alerts@r1", PROBLEM, "r1", NOW) == (
        False,
        "an address holds a line break",
    )


def test_alert_test_reports_each_receiver(server, tmp_path, monkeypatch, capsys):
    _, base = server
    secrets = tmp_path / "alerts.secrets"
    token = "123456:" + "T" * 30
    secrets.write_text(f"REDIS_ALERT_WEBHOOK_URL='{base}/hook?key=s3cret'\nREDIS_ALERT_TELEGRAM_TOKEN='{token}'\n")
    monkeypatch.setattr(receivers, "SENDMAIL", str(tmp_path / "sendmail"))
    config = {
        "alerts": {
            "host": "r1",
            "secrets": str(secrets),
            "webhook": {"format": "json"},
            "telegram": {"api": base, "chat_id": "-100123"},
            "email": {"to": ["ops@example.com"], "from": "alerts@r1"},
        }
    }
    assert monitor.cmd_alert_test(monitor.parser().parse_args(["alert-test"]), config) == 1
    assert capsys.readouterr().out.splitlines() == [
        "OK      webhook: HTTP 200",
        "OK      telegram: HTTP 200",  # all three configured at once: each keeps its own settings
        "FAILED  email: no sendmail on this host",
    ]
    received = {path: body for path, _, body in Receiver.received}  # side by side: in either order
    assert sorted(received) == [f"/bot{token}/sendMessage", "/hook?key=s3cret"]
    assert (
        received["/hook?key=s3cret"]["kind"] == "test" and received[f"/bot{token}/sendMessage"]["chat_id"] == "-100123"
    )
    secrets.write_text(f"REDIS_ALERT_WEBHOOK_URL='{base}/hook'\n")
    assert monitor.cmd_alert_test(monitor.parser().parse_args(["alert-test"]), config) == 1
    assert (
        f"FAILED  telegram: REDIS_ALERT_TELEGRAM_TOKEN is not in the secrets file {secrets}" in capsys.readouterr().out
    )
    assert monitor.cmd_alert_test(monitor.parser().parse_args(["alert-test"]), {"alerts": None}) == 1
    assert capsys.readouterr().err.startswith("redis-monitor alert-test: no receiver is configured")


class Redirecting(BaseHTTPRequestHandler):
    def do_POST(self):  # noqa: N802 (http.server's name)
        self.send_response(302)
        self.send_header("Location", "/elsewhere")
        self.end_headers()

    do_GET = do_POST  # noqa: N815

    def log_message(self, *args):
        pass


def test_a_redirected_post_is_a_failed_delivery_not_a_lost_message():
    """urllib would follow with a GET and no body, and report 200: the message would be lost."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Redirecting)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{httpd.server_address[1]}/hook"
        ok, reason = receivers.webhook(url, "json", PROBLEM, "r1", NOW)
    finally:
        httpd.shutdown()
    assert not ok and reason == "HTTP 302: redirected: use the URL it redirects to"


def test_an_answer_that_is_not_http_is_a_failed_delivery():
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)

        def answer():
            conn, _ = listener.accept()
            conn.recv(65536)
            conn.sendall(b"SSH-2.0-OpenSSH\r\n")
            conn.close()

        threading.Thread(target=answer, daemon=True).start()
        ok, reason = receivers.webhook(f"http://127.0.0.1:{listener.getsockname()[1]}/x", "json", PROBLEM, "r1", NOW)
    assert not ok and reason == "BadStatusLine"
