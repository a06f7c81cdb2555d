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
    "alert",
    "alert-test",
    "alerts",
    "alert-failed",
    "ttl-report",
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


def test_a_snapshot_due_during_a_restart_waits_for_it(host):
    """The hourly job that meets the deploy's restart (stop, the candidate put in place, start)
    waits for the server instead of failing and paging (test_handover met it at an hour's turn)."""
    before = sh(host, "ls /var/backups/redis").stdout.split()
    sh(host, "systemctl stop redis-server && systemd-run --on-active=3 --unit=test-start systemctl start redis-server")
    job = sh(host, "systemctl start redis-backup.service", check=False)
    assert job.returncode == 0, sh(host, "journalctl -u redis-backup.service -n 5 -o cat --no-pager").stdout
    assert sh(host, "systemctl is-active redis-server").stdout.strip() == "active"
    assert len(sh(host, "ls /var/backups/redis").stdout.split()) > len(before)


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


# Writes ARGV[2] keys named ARGV[1]..i and gives each, through DUMP/RESTORE, a TTL of ARGV[3] ms
# (0: none) and an idle time of ARGV[4] s: RESTORE's IDLETIME sets what OBJECT IDLETIME reports,
# so the test needs no wait for keys to sit idle.
LOAD = """
for i = 1, tonumber(ARGV[2]) do
  local key = ARGV[1] .. i
  redis.call('SET', key, string.rep('x', 200))
  redis.call('RESTORE', key, ARGV[3], redis.call('DUMP', key), 'REPLACE', 'IDLETIME', ARGV[4])
end
"""


def load_keys(container: str, db: int, prefix: str, count: int, pttl_ms: int, idle: int) -> None:
    redis(container, "eval", LOAD, "0", prefix, str(count), str(pttl_ms), str(idle), db=db)


def test_ttl_report_recommends_what_the_keys_imply(host):
    for db in range(7):
        redis(host, "flushdb", db=db)
    redis(host, "config", "resetstat")
    # Evictions first: DB 6 filled past a maxmemory just above what is used, under allkeys-lru.
    maxmemory = redis(host, "config", "get", "maxmemory").splitlines()[1]
    used = int(redis(host, "info", "memory").split("used_memory:")[1].split()[0])
    redis(host, "config", "set", "maxmemory", str(used + 2 * 1024 * 1024))
    try:
        sh(host, f"seq 1 5000 | sed 's/.*/SET junk:& {'x' * 1000}/' | ( {cli(6379, 'acl')} -n 6 --pipe ) > /dev/null")
    finally:
        redis(host, "config", "set", "maxmemory", maxmemory)
    redis(host, "flushdb", db=6)
    try:
        load_keys(host, 0, "quote:no-ttl:", 40, 0, 1)  # the app forgot EX
        load_keys(host, 2, "footprint:idle:", 200, 180_000, 420)  # 7 min untouched, 3 min left of 10
        load_keys(host, 3, "calc:read:", 200, 1_500_000, 1500)  # idle too, until the reads below
        sh(host, f"seq 1 200 | sed 's/.*/GET calc:read:&/' | ( {cli(6379, 'acl')} -n 3 --pipe ) > /dev/null")
        load_keys(host, 5, "config:", 20, 0, 1)
        started = time.monotonic()
        report = as_json(host, "ttl-report")
        print(f"ttl-report on {40 + 200 + 200 + 20} keys took {time.monotonic() - started:.2f} s")
        print("\n".join(d["recommendation"]["text"] for d in report["databases"]))
        dbs = {d["db"]: d for d in report["databases"]}
        assert {db: d["recommendation"]["rule"] for db, d in dbs.items()} == {
            0: "missing-ttl",
            1: "empty",
            2: "shorter-ttl",
            3: "no-change",
            4: "empty",
            5: "eviction-policy",
        }
        assert report["server"]["evicted_keys"] > 0 and report["server"]["maxmemory_policy"] == "allkeys-lru"
        assert (dbs[0]["keys"], dbs[0]["without_ttl"]) == (40, 40)
        assert dbs[2]["idle_s"]["min"] >= 420 and dbs[2]["remaining_ttl_s"]["max"] <= 180
        assert dbs[3]["idle_s"]["max"] < dbs[2]["idle_s"]["min"]  # the reads made them recent
        assert "a TTL of 5 min would free" in dbs[2]["recommendation"]["text"]
        assert all(d["also"] == [] for d in report["databases"])
        # Bounded to 50 keys a DB; and the first report touched no key: DB 2 still looks idle.
        bounded = {d["db"]: d for d in as_json(host, "ttl-report", "--sample", "50")["databases"]}
        text = monitor(host, "ttl-report").stdout
        print(text)
        assert [line.split(":")[0] for line in text.splitlines() if line[:3] == "DB " and line[3].isdigit()] == [
            f"DB {d['db']} {d['name']}" for d in report["databases"]
        ]
        assert bounded[2]["idle_s"]["min"] >= 420
        assert (bounded[2]["sampled"], bounded[2]["sample_complete"]) == (50, False)
        assert (bounded[5]["sampled"], bounded[5]["sample_complete"]) == (20, True)
        # Under LFU Redis keeps no idle time: the report says so instead of failing.
        redis(host, "config", "set", "maxmemory-policy", "allkeys-lfu")
        try:
            lfu = as_json(host, "ttl-report")["databases"][2]
        finally:
            redis(host, "config", "set", "maxmemory-policy", "allkeys-lru")
        assert lfu["idle_s"] is None and "idle time is not tracked under allkeys-lfu" in lfu["recommendation"]["text"]
    finally:
        for db in (0, 2, 3, 5):
            redis(host, "flushdb", db=db)
        redis(host, "config", "resetstat")


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
