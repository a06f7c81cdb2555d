"""redis-monitor's pure parts (smart_redis/host): the RESP client, thresholds, tables, the command line."""

from __future__ import annotations

import argparse
import io
import json
import socket
import time

import pytest

from smart_redis.host import counts as keycounts
from smart_redis.host import health, monitor, output, pm2, quorum, resp, snapshots
from smart_redis.host import info as infotext
from smart_redis.host import levels as nagios


def client_with_replies(raw: bytes) -> resp.Redis:
    ours, theirs = socket.socketpair()
    theirs.sendall(raw)
    theirs.close()
    client = resp.Redis.__new__(resp.Redis)
    client.sock, client.buf = ours, b""
    return client


def test_resp_replies_are_parsed():
    client = client_with_replies(b"+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\n0\r\n*1\r\n$3\r\nkey\r\n")
    assert [client.read() for _ in range(5)] == ["OK", 42, "hello", None, ["0", ["key"]]]


def test_error_replies_raise():
    client = client_with_replies(b"-NOPERM this user has no permissions\r\n")
    with pytest.raises(resp.RedisError, match="NOPERM"):
        client.read()


@pytest.mark.parametrize(
    "pct,level", [(10, nagios.OK), (80, nagios.WARNING), (89.9, nagios.WARNING), (90, nagios.CRITICAL)]
)
def test_thresholds_follow_nagios_levels(pct, level):
    assert nagios.level_for(pct, 80, 90) == level


def test_table_aligns_columns():
    assert output.table([{"db": 0, "name": "quotes"}, {"db": 15, "name": "x"}]).splitlines() == [
        "DB  NAME  ",
        "0   quotes",
        "15  x     ",
    ]


def _subcommands() -> list[str]:
    actions = [a for a in monitor.parser()._actions if isinstance(a, argparse._SubParsersAction)]
    return sorted(actions[0].choices)


# Every subcommand the parser has, so that a new one cannot come without --json.
@pytest.mark.parametrize("command", _subcommands())
def test_every_subcommand_takes_json(command):
    positional = {"restore-check": ["dump.rdb.counts.json"], "alert-failed": ["redis-backup"]}.get(command, [])
    assert monitor.parser().parse_args([command, *positional, "--json"]).json


def test_keys_arguments():
    args = monitor.parser().parse_args(["keys", "--db", "3", "calc:*", "--limit", "5"])
    assert (args.db, args.pattern, args.limit) == (3, "calc:*", 5)


def test_rotation_keeps_newest_hourly_and_one_per_day(tmp_path):
    names = [f"dump-202611{day:02d}T{hour:02d}0000Z.rdb" for day in range(1, 6) for hour in (0, 6, 12, 18)]
    for name in names:
        (tmp_path / name).write_text("x")
        (tmp_path / (name + ".counts.json")).write_text("{}")
    removed = snapshots.rotate(str(tmp_path), keep_hourly=3, keep_daily=3)
    kept = sorted(p.name for p in tmp_path.glob("*.rdb"))
    # the 3 newest (all of Nov 5), plus the newest of Nov 4 and Nov 3 (3 days in all)
    assert kept == [
        "dump-20261103T180000Z.rdb",
        "dump-20261104T180000Z.rdb",
        "dump-20261105T060000Z.rdb",
        "dump-20261105T120000Z.rdb",
        "dump-20261105T180000Z.rdb",
    ]
    assert len(removed) == len(names) - len(kept)
    assert sorted(p.name for p in tmp_path.glob("*.counts.json")) == [k + ".counts.json" for k in kept]


AGREE = {"10.0.0.1:26379": "10.0.0.1:6379", "10.0.0.2:26379": "10.0.0.1:6379", "10.0.0.3:26379": "10.0.0.1:6379"}
PRIMARY_2 = {
    "role": "master",
    "connected_slaves": "2",
    "slave0": "ip=10.0.0.2,port=6379,state=online,offset=1,lag=0",
    "slave1": "ip=10.0.0.3,port=6379,state=online,offset=1,lag=0",
}


SERVERS = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]


def primary_with(*replicas: str) -> dict:
    info = {"role": "master", "connected_slaves": str(len(replicas))}
    for n, ip in enumerate(replicas):
        info[f"slave{n}"] = f"ip={ip},port=6379,state=online,offset=1,lag=0"
    return info


def levels(view, info):
    return {name: level for name, level, _ in quorum.replication_checks(view, info, SERVERS, "10.0.0.1")}


@pytest.mark.parametrize(
    "view,info,expected",
    [
        (AGREE, PRIMARY_2, {"sentinels": nagios.OK, "replication": nagios.OK}),
        (AGREE, {"role": "master", "connected_slaves": "0"}, {"sentinels": nagios.OK, "replication": nagios.CRITICAL}),
        (
            {**AGREE, "10.0.0.3:26379": "10.0.0.2:6379"},
            PRIMARY_2,
            {"sentinels": nagios.WARNING, "replication": nagios.OK},
        ),
        (
            {"10.0.0.1:26379": "10.0.0.1:6379", "10.0.0.2:26379": "10.0.0.2:6379", "10.0.0.3:26379": "no answer (x)"},
            PRIMARY_2,
            {"sentinels": nagios.CRITICAL, "replication": nagios.OK},
        ),
        (
            {**AGREE, "10.0.0.2:26379": "no answer (timed out)", "10.0.0.3:26379": "no answer (refused)"},
            PRIMARY_2,
            {"sentinels": nagios.CRITICAL, "replication": nagios.OK},
        ),
        (
            {**AGREE, "10.0.0.3:26379": "no answer (timed out)"},
            PRIMARY_2,
            {"sentinels": nagios.WARNING, "replication": nagios.OK},
        ),
        (AGREE, primary_with("10.0.0.2"), {"sentinels": nagios.OK, "replication": nagios.WARNING}),
        (
            AGREE,
            {"role": "slave", "master_host": "10.0.0.1", "master_port": "6379", "master_link_status": "down"},
            {"sentinels": nagios.OK, "replication": nagios.WARNING},
        ),
    ],
    ids=[
        "healthy",
        "no-replica",
        "one-lags-behind",
        "no-majority-agrees",
        "no-quorum",
        "one-sentinel-down",
        "one-replica-gone",
        "replica-link-down",
    ],
)
def test_replication_health(view, info, expected):
    assert levels(view, info) == expected


def test_a_missing_member_is_named():
    """A stopped host of a three-host group: its sentinel and its replica are named, not counted only."""
    view = {**AGREE, "10.0.0.3:26379": "no answer (timed out)"}
    said = {
        name: detail
        for name, _, detail in quorum.replication_checks(view, primary_with("10.0.0.2"), SERVERS, "10.0.0.1")
    }
    assert said["sentinels"] == "2 of 3 agree on 10.0.0.1:6379; 10.0.0.3:26379 not answering"
    assert said["replication"] == "primary with 1 connected replica(s); not connected: 10.0.0.3"


@pytest.mark.parametrize(
    "view, own, speaks",
    [
        (AGREE, "10.0.0.1", True),  # the lowest address that answers
        (AGREE, "10.0.0.2", False),
        ({**AGREE, "10.0.0.1:26379": "no answer (refused)"}, "10.0.0.2", True),  # the next one, when it is gone
        ({**AGREE, "10.0.0.1:26379": "no answer (refused)"}, "10.0.0.3", False),
        ({"10.0.0.10:26379": "x:1", "10.0.0.9:26379": "x:1"}, "10.0.0.9", True),  # numeric order, not text
        ({"10.0.0.1:26379": "no answer (refused)"}, "10.0.0.1", False),
    ],
)
def test_one_host_speaks_for_the_group(view, own, speaks):
    assert quorum.group_reporter(view, own) is speaks


# --- Counts a restore can still compare after time has passed (issue 14, defect 13) ----------

NOW = 1_800_000_000
INFO_KEYSPACE = "# Keyspace\r\ndb0:keys=40,expires=37,avg_ttl=30000\r\ndb5:keys=7,expires=0,avg_ttl=0\r\n"


def counts_file(created=NOW - 65, buckets=((NOW - 60, 10, 25), (NOW + 3000, 600, 12))):
    """A counts file of a backup 65 s ago: db0 had 3 keys without TTL and 37 with one."""
    return {
        "created": "x",
        "created_epoch": created,
        "keys": {"0": 40, "5": 7},
        "persistent": {"0": 3, "5": 7},
        "volatile": {"0": {"keys": 37, "buckets": [list(b) for b in buckets], "sampled": 37}},
    }


def test_info_keyspace_is_parsed_with_expires():
    assert infotext.parse_keyspace(INFO_KEYSPACE) == {"0": {"keys": 40, "expires": 37}, "5": {"keys": 7, "expires": 0}}


def test_keys_expired_since_the_backup_do_not_fail_the_restore():
    # 25 of db0's keys expired between backup and restore: Redis did not load them.
    restored = infotext.parse_keyspace("db0:keys=15,expires=12\r\ndb5:keys=7,expires=0\r\n")
    ok, line = keycounts.compare_counts(counts_file(), restored, NOW)
    assert ok, line
    assert line == (
        "key counts match the backup: db0=3+12ttl, db5=7; 25 keys with a TTL expired in the 65 s since the snapshot"
    )


@pytest.mark.parametrize(
    "restored,reason",
    [
        ("db0:keys=15,expires=12\r\ndb5:keys=6,expires=0", "db5: 6 keys without TTL, 7 at backup time"),
        (
            "db0:keys=13,expires=10\r\ndb5:keys=7,expires=0",
            "db0: 10 keys with TTL, but 12 of the backup's outlive the 65 s since it",
        ),
        ("db0:keys=41,expires=38\r\ndb5:keys=7,expires=0", "db0: 38 keys with TTL, only 37 at backup time"),
        ("db0:keys=15,expires=12\r\ndb5:keys=7,expires=0\r\ndb9:keys=1,expires=0", "db9: 1 keys, none at backup time"),
    ],
    ids=["persistent-missing", "volatile-lost", "volatile-extra", "unknown-db"],
)
def test_what_should_have_survived_is_compared(restored, reason):
    ok, line = keycounts.compare_counts(counts_file(), infotext.parse_keyspace(restored), NOW)
    assert not ok and line == "restored key counts differ from the backup's: " + reason


def test_a_key_expiring_within_the_slack_may_be_gone():
    counts = counts_file(buckets=[(NOW + 5, 10, 37)])  # expiring right around the check
    ok, line = keycounts.compare_counts(counts, infotext.parse_keyspace("db0:keys=3,expires=0\r\ndb5:keys=7"), NOW)
    assert ok, line


def test_a_sampled_histogram_is_scaled_to_the_whole_db():
    counts = counts_file(buckets=[(NOW + 3600, 600, 100)])
    counts["volatile"]["0"].update(keys=1000, sampled=100)
    keyspace = infotext.parse_keyspace
    assert keycounts.compare_counts(counts, keyspace("db0:keys=903,expires=900\r\ndb5:keys=7"), NOW)[0]
    assert not keycounts.compare_counts(counts, keyspace("db0:keys=503,expires=500\r\ndb5:keys=7"), NOW)[0]


def test_old_counts_files_stay_readable():
    old = {"created": "20261105T120000Z", "redis_version": "7.0.15", "keys": {"0": 40, "5": 7}}
    ok, line = keycounts.compare_counts(old, infotext.parse_keyspace("db0:keys=12,expires=12\r\ndb5:keys=7"), NOW)
    assert ok and "older counts file" in line
    ok, line = keycounts.compare_counts(old, infotext.parse_keyspace("db0:keys=12,expires=12\r\ndb5:keys=8"), NOW)
    assert not ok and line.endswith("db5: 8 keys, 7 at backup time")


@pytest.mark.parametrize(
    "remaining,expected",
    [
        (4, (NOW, 10)),
        (599, (NOW + 590, 10)),
        (3600, (NOW + 3600, 600)),
        (2 * 86400, (NOW + 86400 * 2 - NOW % 86400, 86400)),
    ],
)
def test_expiry_times_are_bucketed_finer_near_the_backup(remaining, expected):
    assert keycounts.expiry_bucket(NOW + remaining, NOW) == expected


def test_restore_check_reads_info_keyspace_from_stdin(tmp_path, monkeypatch, capsys):
    path = tmp_path / "dump.rdb.counts.json"
    path.write_text(
        json.dumps({"created_epoch": int(time.time()), "keys": {"0": 40}, "persistent": {"0": 40}, "volatile": {}})
    )
    monkeypatch.setattr("sys.stdin", io.StringIO("# Keyspace\r\ndb0:keys=40,expires=0\r\n"))
    assert monitor.main(["restore-check", str(path)]) == 0
    monkeypatch.setattr("sys.stdin", io.StringIO("# Keyspace\r\ndb0:keys=39,expires=0\r\n"))
    assert monitor.main(["restore-check", str(path)]) == 1
    assert (
        capsys.readouterr().err
        == "restored key counts differ from the backup's: db0: 39 keys without TTL, 40 at backup time\n"
    )


# --- health: never a crash that Nagios reads as WARNING (defect 16) ---------------------------

JLIST = (
    '[{"name": "quotes-feed", "pm2_env": {"status": "online"}}, {"name": "orders", "pm2_env": {"status": "online"}}]'
)


@pytest.mark.parametrize(
    "output",
    [
        JLIST,
        "[PM2] Spawning PM2 daemon with pm2_home=/home/smart-trade/.pm2\n[PM2] PM2 Successfully daemonized\n"
        + JLIST
        + "\n",
        "Welcome to the trading host!\n[WARN] [1, 2] banner\n" + JLIST,
    ],
    ids=["plain", "pm2-banner", "motd-junk"],
)
def test_pm2_jlist_is_found_behind_banner_lines(output):
    assert [p["name"] for p in pm2.parse_jlist(output)] == ["quotes-feed", "orders"]


def test_pm2_jlist_without_a_list_is_an_error():
    with pytest.raises(ValueError):
        pm2.parse_jlist("[PM2] Spawning PM2 daemon\n[PM2][ERROR] Daemon not launched\n")


@pytest.fixture
def fake_runuser(tmp_path, monkeypatch):
    """A runuser on PATH that prints PM2's daemon banner before the list, and records its call."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    script = bin_dir / "runuser"
    script.write_text(
        f'#!/bin/sh\necho "$@" > {tmp_path}/runuser.args\n'
        f"echo '[PM2] Spawning PM2 daemon with pm2_home={tmp_path}'\necho '[PM2] PM2 Successfully daemonized'\n"
        f"echo '{JLIST}'\n"
    )
    script.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    return tmp_path


def test_pm2_check_reads_the_list_behind_pm2_banners(fake_runuser):
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(fake_runuser / "rpc.sock"))
    try:
        result = health.pm2_check({"pm2_user": "root", "pm2_home": str(fake_runuser)})
    finally:
        sock.close()
    assert result == ("pm2", nagios.OK, "2 processes online")
    args = (fake_runuser / "runuser.args").read_text().split()
    assert args[:3] == ["-u", "root", "--"] and "-l" not in args and f"PM2_HOME={fake_runuser}" in args


def test_pm2_check_spawns_no_daemon_when_none_runs(fake_runuser):
    result = health.pm2_check({"pm2_user": "root", "pm2_home": str(fake_runuser)})
    assert result == ("pm2", nagios.CRITICAL, f"PM2 is not running as root (no {fake_runuser}/rpc.sock)")
    assert not (fake_runuser / "runuser.args").exists()


def test_health_that_crashes_is_unknown_not_warning(tmp_path, monkeypatch, capsys):
    config = tmp_path / "monitor.json"
    config.write_text('{"service": "redis-server"}')  # a key health needs is missing
    monkeypatch.setattr(monitor, "CONFIG", str(config))
    monkeypatch.setattr(monitor.os, "geteuid", lambda: 0)
    assert monitor.main(["health"]) == 3
    out = capsys.readouterr().out.splitlines()
    assert len(out) == 1 and out[0].startswith("UNKNOWN redis-monitor health: unexpected error: KeyError")
    config.write_text("not json")
    assert monitor.main(["health"]) == 3


def test_other_subcommands_fail_with_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(monitor, "CONFIG", str(tmp_path / "missing.json"))
    monkeypatch.setattr(monitor.os, "geteuid", lambda: 0)
    assert monitor.main(["status"]) == 2
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("redis-monitor status: ") and "missing.json" in err[0]


def test_health_prints_the_checks_that_alert_watches(monkeypatch, capsys):
    """health and alert share health_checks(): health's lines and exit code come from its list."""
    checks = [("redis", nagios.OK, "answers"), ("backup", nagios.WARNING, "no snapshot in /var/backups/redis")]
    monkeypatch.setattr(monitor, "health_checks", lambda config, view=None: list(checks))
    assert monitor.cmd_health(monitor.parser().parse_args(["health"]), {}) == nagios.WARNING
    assert capsys.readouterr().out.splitlines() == [
        "OK       redis: answers",
        "WARNING  backup: no snapshot in /var/backups/redis",
    ]
    assert monitor.cmd_health(monitor.parser().parse_args(["health", "--json"]), {}) == nagios.WARNING
    assert json.loads(capsys.readouterr().out)["checks"][1] == {
        "check": "backup",
        "status": "WARNING",
        "detail": "no snapshot in /var/backups/redis",
    }


def test_certificate_expiry_warns_at_30_days_and_is_critical_at_7():
    from smart_redis.host.health import certificate_level
    from smart_redis.host.levels import CRITICAL, OK, WARNING

    assert [certificate_level(d) for d in (60, 29.9, 7.1, 6.9)] == [OK, WARNING, WARNING, CRITICAL]
