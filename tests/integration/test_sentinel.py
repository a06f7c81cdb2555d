"""Replication and Sentinel failover on three containers, from one inventory (issue 10).

The story runs in order: provision, replicate, lose the primary, fail over, get the old primary
back as a replica, lose a replica, re-run the deploy without undoing any of it. What a run does
to a running group (timing, a rebuilt host, a rolling restart, forged sentinels) is
test_sentinel_changes, on a group of its own.
"""

from __future__ import annotations

import json
import subprocess
import time

import pytest
from conftest import (
    GROUP_ECOSYSTEM,
    deploy,
    infra_checks,
    promoted,
    received,
    redis,
    sh,
    sh_input,
    start_receiver,
    wait_for,
)
from sentinel_group import (
    ALERT_INTERVAL,
    HOOK_PORT,
    MASTER,
    app_cli,
    group_passwords,
    pid,
    redis_cli_admin,
    replication,
    run_deploy,
    sentinel_group,
    sentinel_says,
)

from smart_redis.constants import ALERT_SERVICE, PATHS


@pytest.fixture(scope="module")
def cluster(docker_testbed, run_id, tmp_path_factory):
    with sentinel_group(docker_testbed, tmp_path_factory, f"smart-redis-test-{run_id}-ha", alerts=True) as group:
        yield group


def failover_messages(containers) -> list[dict]:
    return [p["body"] for n in containers for p in received(n) if p["body"].get("kind") == "failover"]


def since(messages: list[dict], before: list[dict]) -> list[dict]:
    """The messages that were not there before (each host's receiver keeps its own list)."""
    return [m for m in messages if m not in before]


def webhook_pending(container: str) -> int:
    """How many messages the host's alert state still keeps for its webhook (redis-monitor alerts)."""
    listed = json.loads(sh(container, "redis-monitor alerts --json").stdout)
    return sum(r["pending"] for r in listed["receivers"] if r["receiver"] == "webhook")


def replication_messages(container: str, kind: str) -> list[dict]:
    """The `replication` messages of `kind` that reached this host's receiver (its own check)."""
    return [
        p["body"]
        for p in received(container)
        if p["body"].get("kind") == kind and p["body"].get("check") == "replication"
    ]


def group_messages(containers, kind: str) -> list[dict]:
    """The messages about the group's sentinels of `kind` (problem, resolved) that reached any host's receiver."""
    return [
        p["body"]
        for n in containers
        for p in received(n)
        if p["body"].get("kind") == kind and p["body"].get("check") == "sentinels"
    ]


def test_failover_story(cluster):
    (a, b, c), (ip_a, ip_b, ip_c) = cluster["names"], cluster["addresses"]

    first = run_deploy(cluster, "-vvv")  # every command and fact output shown: still no password
    assert first.rc == 0, first.failure
    for n in (a, b, c):
        start_receiver(n, HOOK_PORT)

    # --- The group's passwords: generated once on the operator's side, 0600, never printed.
    secrets = cluster["secrets"]
    assert secrets.stat().st_mode & 0o777 == 0o600
    passwords = group_passwords(cluster)
    assert len(passwords) == 4 and not any(value in first.output for value in passwords)

    # --- Provisioned: a primary with two replicas, three sentinels that agree.
    wait_for("2 replicas online", lambda: replication(a).get("connected_slaves") == "2", 60)
    assert replication(b)["master_host"] == ip_a and replication(c)["master_host"] == ip_a
    wait_for(
        "every sentinel sees 3 sentinels",
        lambda: all(
            redis(n, "sentinel", "sentinels", MASTER, port=26379).splitlines().count("name") == 2 for n in (a, b, c)
        ),
        60,
    )
    assert {sentinel_says(n) for n in (a, b, c)} == {ip_a}
    # The package's own Sentinel (no bind, no password, "mymaster") never ran: it stayed masked.
    for n in (a, b, c):
        assert "mymaster" not in sh(n, "cat /var/log/redis/redis-sentinel.log").stdout
    assert "sentinel auth-pass" in sh(a, "cat /etc/redis/sentinel.conf").stdout
    assert sh(a, "stat -c '%U:%G %a' /etc/redis/sentinel.conf /etc/redis/replication-auth.conf").stdout.split() == [
        "redis:redis",
        "640",
        "root:redis",
        "640",
    ]
    # The apps may ask where the primary is, nothing more.
    denied = sh(
        a,
        '. /etc/smart-redis/credentials && REDISCLI_AUTH="$REDIS_APP_PASSWORD" redis-cli --no-auth-warning '
        f'--user "$REDIS_APP_USER" -p 26379 sentinel failover {MASTER}',
        check=False,
    ).stdout
    assert "NOPERM" in denied

    # --- The app password cannot reach Sentinel's channel on any server (a forged hello there
    # would hand the group to the address it names); the keyspace events stay the apps'.
    for n in (a, b, c):
        hello = f"{ip_c},26379,{'f' * 40},9,{MASTER},{ip_c},6390,9"  # a higher epoch, a port nobody serves
        forged = sh(n, f"{app_cli()} publish __sentinel__:hello {hello}", check=False)
        assert "NOPERM" in forged.stdout + forged.stderr, forged
    assert sh(a, f"{app_cli()} publish __keyevent@0__:expired k").stdout.strip() == "0"

    # --- A group's run under --serial or --no-wait is refused before anything changes; --dry and
    # a declined prompt leave the group's shared passwords file byte-identical.
    before = secrets.read_bytes()
    for mode in ("--serial", "--no-wait"):
        refused = run_deploy(cluster, mode, data={"redis_slowlog_max_len": 999})
        assert refused.rc == 1 and f"{mode}: refused for a run with a Sentinel group" in refused.output, refused.output
        assert not any("slowlog-max-len 999" in sh(n, "cat /etc/redis/redis.conf").stdout for n in (a, b, c))
    dry = run_deploy(cluster, "--dry", data={"redis_rotate_passwords": True})
    assert dry.rc == 0, dry.failure
    rotate = {"redis_ha_secrets_file": str(secrets), "redis_rotate_passwords": True}
    declined = deploy(cluster["inventory"], data=rotate, yes=False, no_apps=False, answer="n\n")
    assert "Press enter to execute" in declined.output and "Beginning operation run" not in declined.output
    assert secrets.read_bytes() == before

    # --- The apps' ecosystem file names the sentinels and the master.
    eco = sh(c, f"cat {GROUP_ECOSYSTEM}").stdout
    sentinels = ",".join(f"{ip}:26379" for ip in (ip_a, ip_b, ip_c))
    assert f"REDIS_SENTINELS: '{sentinels}'" in eco and f"REDIS_MASTER_NAME: '{MASTER}'" in eco

    # --- redis-monitor sees the topology and calls it healthy.
    status = json.loads(sh(a, "redis-monitor status --json").stdout)
    assert status["role"] == "master" and status["connected_replicas"] == 2
    assert set(status["sentinels"].values()) == {f"{ip_a}:6379"}
    assert f"sentinel {ip_b}:26379  primary {ip_a}:6379" in sh(a, "redis-monitor status").stdout
    health = sh(a, "redis-monitor health", check=False)
    assert (
        "OK       sentinels: 3 of 3 agree" in health.stdout and "primary with 2 connected replica(s)" in health.stdout
    )

    # --- The operator's host checks pass on the primary and on a replica (whose writes go to the
    # primary); redis-monitor's self-test passes on a replica the same way.
    for host_name, ip in ((a, ip_a), (b, ip_b)):  # the primary, and a replica
        checks = infra_checks(f"docker://{host_name}", f"--redis-data=redis_bind=127.0.0.1 -::1 {ip}")
        assert checks.returncode == 0, checks.stdout[-3000:]
    selftest = sh(b, "redis-monitor test", check=False)
    assert selftest.returncode == 0, selftest.stdout
    assert f"the write checks run on its primary {ip_a}:6379" in selftest.stdout
    assert "OK    replication: a key written on the primary arrived here" in selftest.stdout

    # --- Writes on the primary reach both replicas; record which ones a replica acknowledged.
    commands = "".join(f"SET ha:{i} v{i}\nWAIT 1 2000\n" for i in range(300))
    out = sh_input(a, f"{redis_cli_admin()} -n 5", commands).stdout.split()
    replies = list(zip(out[0::2], out[1::2], strict=False))
    acknowledged = [f"ha:{i}" for i, (ok, acks) in enumerate(replies) if ok == "OK" and int(acks) >= 1]
    assert len(acknowledged) == 300
    for replica in (b, c):
        wait_for(f"keys on {replica}", lambda r=replica: redis(r, "dbsize", db=5) == "300", 30)

    # The deploy ran each host's alert check once: the replicas know the primary they follow, so
    # whichever is promoted can name the old one (issue 17).
    wait_for(
        "the replicas' alert state names the primary",
        lambda: all(
            f'"primary": "{ip_a}:6379"' in sh(n, f"cat {PATHS.alert_state}", check=False).stdout for n in (b, c)
        ),
        30,
    )

    # --- Lose the primary: a replica is promoted within one election (ONE_ELECTION, 15 s), or
    # later only where the sentinels' log shows a split vote tried again (conftest.promoted).
    subprocess.run(["docker", "stop", "-t", "5", a], check=True, capture_output=True)
    stopped = time.monotonic()
    new_ip, took = promoted(ip_a, sentinel_says, [b, c])
    print(f"failover: {took:.1f} s after the primary stopped")
    new = {ip_b: b, ip_c: c}[new_ip]
    other = c if new == b else b
    # Sentinel rewrites sentinel.conf after the failover; the new primary's alert run then says so.
    try:
        wait_for("the failover message", lambda: failover_messages((b, c)), 90)
    except BaseException:
        for n in (b, c):  # what the alert runs saw, for whoever reads the failure
            print(
                n, sh(n, f"journalctl -u {ALERT_SERVICE} -n 15 --no-pager; cat {PATHS.alert_state}", check=False).stdout
            )
        raise
    print(f"failover message: {time.monotonic() - stopped:.1f} s after the primary stopped")
    # The lost member, once, from the survivor that speaks for the group, which names itself (issue 27).
    lost = wait_for("the group's WARNING", lambda: group_messages((b, c), "problem"), 4 * ALERT_INTERVAL)
    print(f"the group's WARNING: {time.monotonic() - stopped:.1f} s after the primary stopped")
    time.sleep(2 * ALERT_INTERVAL)
    lost = group_messages((b, c), "problem")
    assert len(lost) == 1 and lost[0]["status"] == "WARNING", lost
    assert f"{ip_a}:26379 not answering" in lost[0]["text"] and lost[0]["host"] in (f"@docker/{b}", f"@docker/{c}")
    assert replication(new)["role"] == "master"
    # Writes succeed on the new primary once the other replica follows it (min-replicas-to-write 1).
    wait_for(
        "a write on the new primary", lambda: redis(new, "set", "after:failover", "1", db=5, role="APP") == "OK", 30
    )
    # One redis-cli for all 300 (a docker exec each took the failover story 300 round trips).
    exists = sh_input(new, f"{redis_cli_admin()} -n 5", "".join(f"EXISTS {key}\n" for key in acknowledged)).stdout
    missing = [key for key, there in zip(acknowledged, exists.split(), strict=True) if there != "1"]
    assert missing == [], f"{len(missing)} acknowledged keys lost"

    # --- The old primary comes back and rejoins as a replica of the new one.
    subprocess.run(["docker", "start", a], check=True, capture_output=True)
    wait_for(
        "old primary rejoined as a replica",
        lambda: (
            replication(a).get("role") == "slave"
            and replication(a).get("master_host") == new_ip
            and replication(a).get("master_link_status") == "up"
        ),
        90,
        interval=1,
    )

    # Its resolve, once, from the host that announced the WARNING.
    wait_for("the group's resolve", lambda: group_messages((a, b, c), "resolved"), 5 * ALERT_INTERVAL)
    time.sleep(2 * ALERT_INTERVAL)
    resolved = group_messages((a, b, c), "resolved")
    assert [m["host"] for m in resolved] == [lost[0]["host"]], resolved
    assert len(group_messages((a, b, c), "problem")) == 1

    # One failover, one message, from the new primary: the other hosts stay silent about it.
    failovers = failover_messages((a, b, c))
    assert len(failovers) == 1, failovers
    assert failovers[0]["failover"] == {"master": MASTER, "from": f"{ip_a}:6379", "to": f"{new_ip}:6379"}

    # --- Lose a replica (issue 27): one WARNING about the group naming it, from a survivor, and
    # the primary's own `replication` WARNING naming it; each resolves once it is back.
    ip_other = {b: ip_b, c: ip_c}[other]
    survivors = (a, new)
    # a's receiver (a transient unit) did not survive its container's restart: start it again, and
    # let a's next alert run deliver what it kept meanwhile, before counting.
    start_receiver(a, HOOK_PORT)
    wait_for("a's kept messages delivered", lambda: webhook_pending(a) == 0, 3 * ALERT_INTERVAL)
    group_before = {kind: group_messages(survivors, kind) for kind in ("problem", "resolved")}
    primary_before = {kind: replication_messages(new, kind) for kind in ("problem", "resolved")}
    subprocess.run(["docker", "stop", "-t", "5", other], check=True, capture_output=True)
    stopped = time.monotonic()
    try:
        wait_for(
            "the WARNING for the lost replica",
            lambda: since(group_messages(survivors, "problem"), group_before["problem"]),
            4 * ALERT_INTERVAL,
        )
        print(f"the lost replica's WARNING: {time.monotonic() - stopped:.1f} s after it stopped")
        wait_for(
            "the primary's replication WARNING",
            lambda: since(replication_messages(new, "problem"), primary_before["problem"]),
            4 * ALERT_INTERVAL,
        )
        time.sleep(2 * ALERT_INTERVAL)
        replica_lost = since(group_messages(survivors, "problem"), group_before["problem"])
        assert len(replica_lost) == 1 and replica_lost[0]["status"] == "WARNING", replica_lost
        assert f"{ip_other}:26379 not answering" in replica_lost[0]["text"]
        assert replica_lost[0]["host"] in (f"@docker/{a}", f"@docker/{new}")
        (primary_said,) = since(replication_messages(new, "problem"), primary_before["problem"])
        assert primary_said["status"] == "WARNING" and ip_other in primary_said["text"], primary_said
    finally:
        subprocess.run(["docker", "start", other], check=True, capture_output=True)
    back = wait_for(
        "the lost replica's resolve",
        lambda: since(group_messages(survivors, "resolved"), group_before["resolved"]),
        9 * ALERT_INTERVAL,
    )
    wait_for(
        "the primary's replication resolve",
        lambda: since(replication_messages(new, "resolved"), primary_before["resolved"]),
        5 * ALERT_INTERVAL,
    )
    assert [m["host"] for m in back] == [replica_lost[0]["host"]], back

    # --- Re-run the deploy with a changed setting: the topology stays, the setting converges.
    pids = {n: pid(n) for n in (a, b, c)}
    rerun = run_deploy(cluster, data={"redis_maxmemory": "256mb"})
    assert rerun.rc == 0, rerun.failure
    assert {sentinel_says(n) for n in (a, b, c)} == {new_ip}
    assert replication(new)["role"] == "master"
    assert replication(a)["master_host"] == new_ip and replication(other)["master_host"] == new_ip
    assert {n: pid(n) for n in (a, b, c)} == pids, "the re-run restarted a server"
    for n in (a, b, c):
        assert redis(n, "config", "get", "maxmemory").split()[-1] == str(256 * 1024 * 1024)
    # redis.conf now records Sentinel's choice, so a restart brings each server back in its role.
    assert f"replicaof {new_ip} 6379" in sh(a, "cat /etc/redis/redis.conf").stdout
    assert sh(new, "grep -c '^replicaof' /etc/redis/redis.conf", check=False).stdout.strip() == "0"

    again = run_deploy(cluster, data={"redis_maxmemory": "256mb"}, json_output=True)
    assert again.rc == 0, again.failure
    assert again.changed == 0, again.failure

    for run in (rerun, again):
        assert not any(value in run.output for value in passwords)
