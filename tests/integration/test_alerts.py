"""Issue 17, part 1: alerts that reach a person, from a provisioned host.

The host's alert timer runs every 10 s here; a receiver run by the test inside the container
stands in for the webhook and for Telegram's Bot API (redis_alert_telegram_api points at it).
The container has no sendmail, so the e-mail receiver must say that it failed.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import deploy, put, received, sh, start_receiver, wait_for

from smart_redis.constants import ALERT_SERVICE, ALERT_TIMER, BACKUP_SERVICE, PATHS
from smart_redis.host.server import REDIS

PORT = 8099
BLACKHOLE_PORT = 8098
HOOK_TOKEN = "hook-token-" + "k" * 24
BOT_TOKEN = "123456:" + "T" * 32
PING_TOKEN = "ping-" + "u" * 24
INTERVAL = 10
APP_PORT = 3999
DATA = {
    "redis_alert_webhook_url": f"http://127.0.0.1:{PORT}/hooks/{HOOK_TOKEN}",
    "redis_alert_telegram_token": BOT_TOKEN,
    "redis_alert_telegram_chat_id": "-100200300",
    "redis_alert_telegram_api": f"http://127.0.0.1:{PORT}",
    "redis_alert_email_to": "ops@example.com",
    "redis_alert_heartbeat_url": f"http://127.0.0.1:{PORT}/ping/{PING_TOKEN}",
    "redis_alert_interval": INTERVAL,
    # Only Redis and the app port decide the state here, not the test machine's disk or memory.
    "redis_health_warning_pct": 99,
    "redis_health_critical_pct": 100,
}
# No ecosystem file on this host (a dedicated Redis host): by default no port is checked; the
# operator lists one.
LISTED = {**DATA, "redis_platform_ports": json.dumps({"web": APP_PORT})}


@pytest.fixture(scope="module")
def host(new_container):
    name = new_container("alerts")
    run = deploy(f"@docker/{name}", data=DATA)
    assert run.rc == 0, run.output
    start_receiver(name, PORT)
    # The first run of the timer records the state (all OK) and sends nothing.
    wait_for("the first alert run", lambda: sh(name, f"test -f {PATHS.alert_state}", check=False).returncode == 0, 60)
    return {"name": name, "run": run}


def app_up(name: str) -> None:
    """The app the operator listed the port of: a listener on APP_PORT."""
    sh(name, f"systemd-run --unit=test-app python3 -m http.server {APP_PORT} --bind 127.0.0.1")
    wait_for("the app listens", lambda: f":{APP_PORT} " in sh(name, "ss -ltnH").stdout, 10)


def sent(name: str) -> list[tuple[str, str | None, str]]:
    """(kind, check, status) of each message at the webhook, in order."""
    return [
        (p["body"]["kind"], p["body"]["check"], p["body"]["status"]) for p in by_receiver(received(name))["webhook"]
    ]


def by_receiver(posts: list[dict]) -> dict[str, list[dict]]:
    """The bodies that reached the webhook, Telegram's sendMessage and the heartbeat, in order."""
    found: dict[str, list[dict]] = {"webhook": [], "telegram": [], "heartbeat": []}
    for post in posts:
        path = post["path"]
        found[
            "telegram" if path.startswith("/bot") else "heartbeat" if path.startswith("/ping/") else "webhook"
        ].append(post)
    return found


def alert_tests(telegram: list[dict]) -> list[dict]:
    """alert-test's Telegram messages: the timer's own run may send there meanwhile (a previous
    test stopped Redis or the app)."""
    return [post for post in telegram if "test message from redis-monitor alert-test" in post["body"]["text"]]


def messages(name: str) -> list[dict]:
    """What reached the webhook and Telegram (not the heartbeat's pings)."""
    got = by_receiver(received(name))
    return got["webhook"] + got["telegram"]


def test_the_secrets_stay_root_only_and_out_of_the_output(host):
    name = host["name"]
    assert sh(name, f"stat -c '%U:%G %a' {PATHS.alert_secrets}").stdout.strip() == "root:root 600"
    assert "crosses the network in clear" not in host["run"].output  # http:// to this host only
    for secret in (HOOK_TOKEN, BOT_TOKEN, PING_TOKEN):
        assert secret not in host["run"].output
        assert secret not in sh(name, f"cat {PATHS.monitor_config}").stdout
        assert secret not in sh(name, "ps -eo args").stdout
    again = deploy(f"@docker/{name}", json_output=True, data=DATA)
    assert again.rc == 0 and again.changed == 0, again.output
    assert sh(name, f"systemctl is-enabled {ALERT_TIMER}").stdout.strip() == "enabled"


def test_each_check_is_one_problem_and_one_resolve_whatever_the_others_do(host):
    """The app's port goes down and stays down; meanwhile redis-server stops and starts again:
    each check's problem and resolve arrive on their own, at both receivers, once."""
    name = host["name"]
    assert messages(name) == []  # a dedicated host with the defaults: all OK since the deploy, nothing sent
    app_up(name)
    listed = deploy(f"@docker/{name}", data=LISTED)
    assert listed.rc == 0, listed.output
    time.sleep(2 * INTERVAL)
    assert messages(name) == []  # the listed port listens: still nothing
    sh(name, "systemctl stop test-app")
    wait_for("the port's problem", lambda: len(sent(name)) >= 1, 6 * INTERVAL)
    assert sent(name) == [("problem", "web port", "CRITICAL")]
    sh(name, f"systemctl stop {REDIS.service}")
    stopped = time.monotonic()
    try:
        wait_for("redis's problem", lambda: len(sent(name)) >= 2, 6 * INTERVAL)
        print(f"\nCRITICAL reached the receivers {time.monotonic() - stopped:.1f} s after redis-server stopped")
        time.sleep(3 * INTERVAL)  # unchanged for three more runs: nothing more
        got = by_receiver(received(name))
        assert [len(got["webhook"]), len(got["telegram"])] == [2, 2], messages(name)
        hook, telegram = got["webhook"][1], got["telegram"][1]
        assert hook["path"] == f"/hooks/{HOOK_TOKEN}"
        assert (hook["body"]["kind"], hook["body"]["check"], hook["body"]["status"]) == ("problem", "redis", "CRITICAL")
        assert [c["check"] for c in hook["body"]["still_bad"]] == ["web port"]
        assert telegram["path"] == f"/bot{BOT_TOKEN}/sendMessage"
        assert str(telegram["body"]["chat_id"]) == "-100200300" and "CRITICAL redis" in telegram["body"]["text"]
    finally:
        sh(name, f"systemctl start {REDIS.service}")
    started = time.monotonic()
    wait_for("redis's resolve at both receivers", lambda: len(messages(name)) >= 6, 6 * INTERVAL)
    print(f"the resolve reached the receivers {time.monotonic() - started:.1f} s after redis-server started")
    time.sleep(2 * INTERVAL)
    assert sent(name)[2:] == [("resolved", "redis", "OK")]  # the port is still down: redis resolves anyway
    resolved = by_receiver(received(name))["webhook"][2]["body"]
    assert resolved["previous"] == "CRITICAL" and [c["check"] for c in resolved["still_bad"]] == ["web port"]
    app_up(name)
    wait_for("the port's resolve", lambda: len(sent(name)) >= 4, 6 * INTERVAL)
    time.sleep(2 * INTERVAL)
    assert sent(name)[3:] == [("resolved", "web port", "OK")]
    assert len(by_receiver(received(name))["telegram"]) == 4


def test_alert_test_says_which_receiver_worked(host):
    name = host["name"]
    before = len(received(name))
    result = sh(name, "redis-monitor alert-test --json", check=False)
    assert result.returncode == 1, result.stdout + result.stderr  # e-mail cannot work: no sendmail here
    rows = {row["receiver"]: row for row in json.loads(result.stdout)}
    assert rows["webhook"]["result"] == "OK" and rows["telegram"]["result"] == "OK"
    assert rows["email"]["result"] == "FAILED" and "sendmail" in rows["email"]["reason"]
    assert HOOK_TOKEN not in result.stdout + result.stderr and BOT_TOKEN not in result.stdout + result.stderr
    got = by_receiver(received(name)[before:])
    assert [p["body"]["kind"] for p in got["webhook"]].count("test") == 1 and len(alert_tests(got["telegram"])) == 1


def test_the_heartbeat_comes_every_run_and_stops_with_the_timer(host):
    """The dead man's switch: a ping each interval; with the timer stopped, none (the gap a
    monitoring service alarms on)."""
    name = host["name"]

    def pings() -> list[dict]:
        return by_receiver(received(name))["heartbeat"]

    before = len(pings())
    time.sleep(3 * INTERVAL)
    running = pings()[before:]
    assert len(running) >= 2, running
    assert all(p["path"] == f"/ping/{PING_TOKEN}" and p["body"]["host"] for p in running)
    sh(name, f"systemctl stop {ALERT_TIMER}")
    try:
        time.sleep(2)  # a run that had started when the timer stopped ends
        stopped = len(pings())
        time.sleep(4 * INTERVAL)
        print(f"\nheartbeat: {len(running)} pings in {3 * INTERVAL} s; none in {4 * INTERVAL} s with the timer stopped")
        assert len(pings()) == stopped
    finally:
        sh(name, f"systemctl start {ALERT_TIMER}")


def test_alerts_lists_each_check_and_what_each_receiver_was_last_sent(host):
    name = host["name"]
    before = len(sent(name))
    sh(name, f"systemctl stop {REDIS.service}")
    try:
        wait_for("redis's problem", lambda: ("problem", "redis", "CRITICAL") in sent(name)[before:], 6 * INTERVAL)
        listed = json.loads(sh(name, "redis-monitor alerts --json").stdout)
    finally:
        sh(name, f"systemctl start {REDIS.service}")
    checks = {c["check"]: c for c in listed["checks"]}
    assert {"redis", "disk", "ram", "health"} <= set(checks)
    assert (checks["redis"]["now"], checks["redis"]["told"]) == ("CRITICAL", "CRITICAL") and checks["redis"]["since"]
    receivers = {r["receiver"]: r for r in listed["receivers"]}
    assert receivers["webhook"]["message"] == "problem redis" and receivers["webhook"]["result"] == "OK"
    assert receivers["webhook"]["pending"] == 0
    assert receivers["email"]["result"] == "FAILED" and receivers["email"]["pending"] >= 1  # no sendmail here
    assert HOOK_TOKEN not in json.dumps(listed) and BOT_TOKEN not in json.dumps(listed)
    wait_for("redis's resolve", lambda: ("resolved", "redis", "OK") in sent(name)[before:], 6 * INTERVAL)


def test_a_burst_of_rewrites_meets_no_start_limit(host):
    """What a burst of Sentinel rewrites does through the path unit (a path unit of the test's here,
    on a single host): with systemd's default start limit (5 in 10 s) the sixth start would be
    refused and the path unit left failed until the next deploy."""
    name = host["name"]
    put(name, "/etc/systemd/system/test-watch.path", f"[Path]\nPathChanged=/tmp/watched\nUnit={ALERT_SERVICE}\n")
    sh(name, "systemctl daemon-reload && systemctl start test-watch.path")
    since = sh(name, "date +%s.%N").stdout.strip()
    try:
        sh(name, "for i in $(seq 12); do echo $i > /tmp/watched; sleep 0.8; done")
        time.sleep(2)
        starts = sh(name, f"journalctl -q -u {ALERT_SERVICE} --since @{since} | grep -c Starting", check=False)
        assert int(starts.stdout) > 5  # more than the default limit lets through
        watch = sh(name, "systemctl show -p ActiveState -p Result test-watch.path").stdout.split()
        assert sorted(watch) == ["ActiveState=active", "Result=success"], watch
    finally:
        sh(name, "systemctl stop test-watch.path; rm -f /etc/systemd/system/test-watch.path; systemctl daemon-reload")


def test_a_failed_backup_is_one_message_at_once(host):
    """OnFailure= of the backup unit: a message names the unit at once (not when the snapshot is
    old enough for health to say so), once an hour however often it fails."""
    name = host["name"]

    def failures() -> list[dict]:
        return [m for m in messages(name) if m["path"].startswith("/hooks/") and m["body"]["check"] == BACKUP_SERVICE]

    sh(name, f"systemctl stop {REDIS.service}")
    try:
        assert sh(name, f"systemctl start {BACKUP_SERVICE}", check=False).returncode != 0  # the server is stopped
        wait_for("the backup's failure message", lambda: len(failures()) == 1, 30)
        body = failures()[0]["body"]
        assert (body["kind"], body["status"]) == ("problem", "CRITICAL") and "journalctl -u" in body["text"]
        assert sh(name, f"systemctl start {BACKUP_SERVICE}", check=False).returncode != 0
        wait_for(
            "the second failure's handler",
            lambda: (
                sh(name, "systemctl show -p Result --value smart-redis-failed@redis-backup.service").stdout.strip()
                == "success"
                and "said so at" in sh(name, "journalctl -q -u smart-redis-failed@redis-backup.service -n 3").stdout
            ),
            30,
        )
        assert len(failures()) == 1
    finally:
        sh(name, f"systemctl start {REDIS.service}")
    assert sh(name, f"systemctl start {BACKUP_SERVICE}", check=False).returncode == 0


BLACKHOLE = """
import json, socket, sys, time
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen(8)
while True:
    c, _ = s.accept()
    opened = time.time()
    while c.recv(65536):  # the request, never answered; the client gives up and closes
        pass
    with open("/var/log/test-blackhole.jsonl", "a") as log:
        log.write(json.dumps({"opened": opened, "closed": time.time()}) + "\\n")
    c.close()
"""


def test_a_blackholed_webhook_does_not_hold_back_telegram(host):
    """The webhook's host takes the connection and never answers: Telegram has its message while
    the webhook's request still hangs (the times are printed, not asserted)."""
    name = host["name"]
    put(name, "/usr/local/lib/test-blackhole.py", BLACKHOLE)
    sh(name, f"systemd-run --unit=test-blackhole python3 /usr/local/lib/test-blackhole.py {BLACKHOLE_PORT}")
    wait_for("the blackhole listens", lambda: f":{BLACKHOLE_PORT} " in sh(name, "ss -ltnH").stdout, 10)
    holed = {**DATA, "redis_alert_webhook_url": f"http://127.0.0.1:{BLACKHOLE_PORT}/hooks/{HOOK_TOKEN}"}
    try:
        assert deploy(f"@docker/{name}", data=holed).rc == 0
        before = len(received(name))
        started = time.time()
        result = sh(name, "redis-monitor alert-test --json", check=False)
        took = time.time() - started
        rows = {row["receiver"]: row for row in json.loads(result.stdout)}
        assert rows["webhook"]["result"] == "FAILED" and rows["webhook"]["reason"].startswith("no answer within")
        assert rows["telegram"]["result"] == "OK"
        (telegram,) = alert_tests(by_receiver(received(name)[before:])["telegram"])
        holes = [json.loads(line) for line in sh(name, "cat /var/log/test-blackhole.jsonl").stdout.splitlines()]
        hole = min((h for h in holes if h["opened"] >= started), key=lambda h: h["opened"])
        print(
            f"\nblackholed webhook: Telegram had its message {telegram['at'] - started:.2f} s after the start, "
            f"the webhook gave up after {hole['closed'] - hole['opened']:.1f} s, alert-test took {took:.1f} s"
        )
        # The webhook's connection was still open when Telegram had its message. (The blackhole's
        # accept may come after Telegram's answer: the kernel takes the connection before that.)
        assert telegram["at"] < hole["closed"]
    finally:
        assert deploy(f"@docker/{name}", data=DATA).rc == 0
        sh(name, "systemctl stop test-blackhole", check=False)
