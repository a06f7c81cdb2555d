"""Issue 6: redis-monitor and the metrics exporter on a provisioned container.

The checks that change data or stop the server live here, not in tests/infra, which operators
also run against production hosts.
"""

from __future__ import annotations

import json
import time

import pytest
from conftest import deploy, redis, sh

from smart_redis.auth import cli
from smart_redis.settings import load

SUBCOMMANDS = [
    "status",
    "info",
    "memory",
    "databases",
    "keys",
    "test",
    "backup",
    "cleanup",
    "health",
    "sample-data",
    "restore-check",
]


@pytest.fixture(scope="module")
def host(new_container):
    name = new_container("monitor")
    run = deploy(f"@docker/{name}")
    assert run.rc == 0, run.output
    return name


def monitor(container: str, *args: str, check: bool = True):
    result = sh(container, "redis-monitor " + " ".join(args), check=False)
    if check:
        assert result.returncode == 0, result.stdout + result.stderr
    return result


def as_json(container: str, *args: str):
    return json.loads(monitor(container, *args, "--json").stdout)


@pytest.mark.parametrize("command", SUBCOMMANDS)
def test_every_subcommand_has_help(host, command):
    assert "--json" in monitor(host, command, "--help").stdout


def test_databases_reports_the_keyspace_and_ttl_breaks(host):
    rows = as_json(host, "databases")
    assert [(r["db"], r["name"], r["ttl"]) for r in rows] == [(d.db, d.name, d.ttl) for d in load({}).keyspace]
    for i in range(3):
        redis(host, "set", f"quote:no-ttl:{i}", "5.234", db=0)
    assert as_json(host, "databases")[0]["ttl_breaks"] == 3
    fixed = as_json(host, "cleanup", "--apply-ttl")
    assert fixed[0]["ttl_applied"] == 3 and fixed[0]["ttl_breaks"] == 0
    assert as_json(host, "databases")[0]["ttl_breaks"] == 0
    assert 0 < int(redis(host, "ttl", "quote:no-ttl:0", db=0)) <= 60


def test_keys_uses_scan_and_respects_the_limit(host):
    sh(host, "seq 1 100000 | sed 's/.*/SET calc:& &/' > /tmp/calc.txt")
    sh(host, f"{cli(6379, 'acl')} -n 3 --pipe < /tmp/calc.txt > /dev/null")
    redis(host, "config", "resetstat")
    started = time.monotonic()
    rows = as_json(host, "keys", "--db", "3", "calc:*", "--limit", "25")
    print(f"keys --limit 25 on 100 000 keys took {time.monotonic() - started:.2f} s")
    assert len(rows) == 25 and all(r["type"] == "string" and r["ttl"] == -1 for r in rows)
    stats = redis(host, "info", "commandstats")
    assert "cmdstat_scan:" in stats and "cmdstat_keys:" not in stats
    redis(host, "flushdb", db=3)


def test_test_subcommand_passes_on_a_healthy_server(host):
    results = as_json(host, "test")
    assert [r["check"] for r in results] == ["connectivity", "write/read", "ttl expiry", "databases", "keyspace event"]
    assert all(r["result"] == "OK" for r in results), results


def test_backup_writes_a_root_only_valid_snapshot(host):
    redis(host, "set", "config:backup-probe", "1", db=5)
    result = as_json(host, "backup")
    assert result["file"].startswith("/var/backups/redis/dump-") and result["bytes"] > 0
    assert sh(host, f"stat -c '%U %a' {result['file']}").stdout.strip() == "root 600"
    assert "RDB looks OK" in sh(host, f"redis-check-rdb {result['file']}").stdout


def test_backup_waits_for_a_save_that_already_runs(host):
    """A save point or a replica's sync may be saving when the timer fires: a bare BGSAVE fails then."""
    sh(host, f"seq 1 40 | sed 's/.*/SET slow-save:& &/' | ( {cli(6379, 'acl')} -n 7 --pipe ) > /dev/null")
    redis(host, "config", "set", "rdb-key-save-delay", "50000")  # 50 ms per key: a save of 2 s and more
    try:
        assert redis(host, "bgsave") == "Background saving started"
        assert "rdb_bgsave_in_progress:1" in redis(host, "info", "persistence")
        started = time.monotonic()
        result = as_json(host, "backup")
        print(f"backup behind a running BGSAVE took {time.monotonic() - started:.1f} s")
        assert result["keys"]["7"] == 40
        assert "RDB looks OK" in sh(host, f"redis-check-rdb {result['file']}").stdout
    finally:
        redis(host, "config", "set", "rdb-key-save-delay", "0")
        redis(host, "flushdb", db=7)


def test_backup_job_leaves_a_stopped_server_stopped_and_health_says_why(host):
    sh(host, "systemctl stop redis-server")
    try:
        job = sh(host, "systemctl start redis-backup.service", check=False)
        assert job.returncode != 0
        assert sh(host, "systemctl is-active redis-server", check=False).stdout.strip() == "inactive"
        journal = sh(host, "journalctl -u redis-backup.service -n 20 -o cat --no-pager").stdout
        reason = "redis-server is inactive, not running: no snapshot taken (start it, or stop redis-backup.timer)"
        assert f"redis-monitor backup: {reason}" in journal, journal
        down = monitor(host, "health", check=False)
        assert down.returncode == 2 and f"WARNING  backup: the last backup job failed: {reason}" in down.stdout, (
            down.stdout
        )
    finally:
        sh(host, "systemctl start redis-server")
    # The next deploy sees the failed job (not only its own changes) and takes the snapshot again.
    repair = deploy(f"@docker/{host}", json_output=True)
    assert repair.rc == 0 and repair.changed == 1, repair.output
    assert sh(host, "systemctl is-failed redis-backup.service", check=False).stdout.strip() != "failed"
    again = deploy(f"@docker/{host}", json_output=True)
    assert again.rc == 0 and again.changed == 0, again.output
    healthy = monitor(host, "health", check=False)
    assert healthy.returncode == 0 and "OK       backup: newest dump-" in healthy.stdout, healthy.stdout


def test_health_that_cannot_run_is_unknown(host):
    """Nagios reads exit 1 as WARNING: a health check that breaks itself must say UNKNOWN (3)."""
    sh(
        host,
        "cp -p /etc/smart-redis/monitor.json /tmp/monitor.json.saved && echo '{\"port\": 6379}' > /etc/smart-redis/monitor.json",
    )
    try:
        broken = monitor(host, "health", check=False)
    finally:
        sh(host, "mv -f /tmp/monitor.json.saved /etc/smart-redis/monitor.json")
    assert broken.returncode == 3, broken.stdout + broken.stderr
    assert (
        broken.stdout.startswith("UNKNOWN redis-monitor health: unexpected error: KeyError")
        and broken.stdout.count("\n") == 1
    )
    assert "Traceback" not in broken.stderr


def test_sample_data_loads_the_platform_records(host):
    as_json(host, "sample-data")
    assert json.loads(redis(host, "get", "quote:DOL", db=0))["symbol"] == "DOL"
    assert 0 < int(redis(host, "ttl", "session:abc123", db=4)) <= 3600
    keys = {r["db"]: r["keys"] for r in as_json(host, "databases")}
    assert keys[1] >= 1 and keys[4] >= 1


def test_exporter_serves_metrics_on_loopback_only(host):
    script = "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:9121/metrics').read().decode())"
    for _ in range(50):
        metrics = sh(host, f'python3 -c "{script}"', check=False).stdout
        if "redis_up 1" in metrics:
            break
        time.sleep(0.2)
    assert "\nredis_up 1\n" in metrics
    listeners = sh(host, "ss -Hltn 'sport = :9121'").stdout.split()
    assert "127.0.0.1:9121" in listeners and "*:9121" not in listeners and "0.0.0.0:9121" not in listeners


def test_operator_group_members_may_run_it_and_others_may_not(host):
    sh(host, "useradd -m -G redis-operators ops && useradd -m guest")
    status = json.loads(sh(host, "runuser -u ops -- redis-monitor status --json").stdout)
    assert status["service"] == "active" and status["role"] == "master"
    refused = sh(host, "runuser -u guest -- redis-monitor status", check=False)
    assert refused.returncode != 0 and "REDIS" not in refused.stdout


def test_health_is_ok_while_redis_runs_and_critical_when_it_stops(host):
    healthy = monitor(host, "health", check=False)
    assert healthy.returncode == 0, healthy.stdout
    sh(host, "systemctl stop redis-server")
    try:
        down = monitor(host, "health", check=False)
        assert down.returncode == 2
        assert down.stdout.startswith("CRITICAL redis: does not answer")
        failing = monitor(host, "test", check=False)
        assert failing.returncode == 1 and "FAIL  connectivity" in failing.stdout
    finally:
        sh(host, "systemctl start redis-server")
    assert monitor(host, "health", check=False).returncode == 0
