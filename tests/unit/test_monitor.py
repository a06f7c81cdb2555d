"""redis-monitor's pure parts: the RESP client, thresholds, tables, the command line."""

from __future__ import annotations

import socket

import pytest

from smart_redis import monitor


def client_with_replies(raw: bytes) -> monitor.Redis:
    ours, theirs = socket.socketpair()
    theirs.sendall(raw)
    theirs.close()
    client = monitor.Redis.__new__(monitor.Redis)
    client.sock, client.buf = ours, b""
    return client


def test_resp_replies_are_parsed():
    client = client_with_replies(b"+OK\r\n:42\r\n$5\r\nhello\r\n$-1\r\n*2\r\n$1\r\n0\r\n*1\r\n$3\r\nkey\r\n")
    assert [client.read() for _ in range(5)] == ["OK", 42, "hello", None, ["0", ["key"]]]


def test_error_replies_raise():
    client = client_with_replies(b"-NOPERM this user has no permissions\r\n")
    with pytest.raises(monitor.RedisError, match="NOPERM"):
        client.read()


@pytest.mark.parametrize("pct,level", [(10, monitor.OK), (80, monitor.WARNING), (89.9, monitor.WARNING), (90, monitor.CRITICAL)])
def test_thresholds_follow_nagios_levels(pct, level):
    assert monitor.level_for(pct, 80, 90) == level


def test_table_aligns_columns():
    assert monitor.table([{"db": 0, "name": "quotes"}, {"db": 15, "name": "x"}]).splitlines() == [
        "DB  NAME  ", "0   quotes", "15  x     "
    ]


@pytest.mark.parametrize("command", ["status", "info", "memory", "databases", "keys", "test", "backup", "cleanup", "health", "sample-data"])
def test_every_subcommand_takes_json(command):
    assert monitor.parser().parse_args([command, "--json"]).json


def test_keys_arguments():
    args = monitor.parser().parse_args(["keys", "--db", "3", "calc:*", "--limit", "5"])
    assert (args.db, args.pattern, args.limit) == (3, "calc:*", 5)


def test_rotation_keeps_newest_hourly_and_one_per_day(tmp_path):
    names = [f"dump-202611{day:02d}T{hour:02d}0000Z.rdb" for day in range(1, 6) for hour in (0, 6, 12, 18)]
    for name in names:
        (tmp_path / name).write_text("x")
        (tmp_path / (name + ".counts.json")).write_text("{}")
    removed = monitor.rotate(str(tmp_path), keep_hourly=3, keep_daily=3)
    kept = sorted(p.name for p in tmp_path.glob("*.rdb"))
    # the 3 newest (all of Nov 5), plus the newest of Nov 4 and Nov 3 (3 days in all)
    assert kept == ["dump-20261103T180000Z.rdb", "dump-20261104T180000Z.rdb",
                    "dump-20261105T060000Z.rdb", "dump-20261105T120000Z.rdb", "dump-20261105T180000Z.rdb"]
    assert len(removed) == len(names) - len(kept)
    assert sorted(p.name for p in tmp_path.glob("*.counts.json")) == [k + ".counts.json" for k in kept]


AGREE = {"10.0.0.1:26379": "10.0.0.1:6379", "10.0.0.2:26379": "10.0.0.1:6379", "10.0.0.3:26379": "10.0.0.1:6379"}
PRIMARY_2 = {"role": "master", "connected_slaves": "2"}


def levels(view, info):
    return {name: level for name, level, _ in monitor.replication_checks(view, info)}


@pytest.mark.parametrize(
    "view,info,expected",
    [
        (AGREE, PRIMARY_2, {"sentinels": monitor.OK, "replication": monitor.OK}),
        (AGREE, {"role": "master", "connected_slaves": "0"}, {"sentinels": monitor.OK, "replication": monitor.CRITICAL}),
        ({**AGREE, "10.0.0.3:26379": "10.0.0.2:6379"}, PRIMARY_2, {"sentinels": monitor.CRITICAL, "replication": monitor.OK}),
        ({**AGREE, "10.0.0.2:26379": "no answer (timed out)", "10.0.0.3:26379": "no answer (refused)"}, PRIMARY_2,
         {"sentinels": monitor.CRITICAL, "replication": monitor.OK}),
        ({**AGREE, "10.0.0.3:26379": "no answer (timed out)"}, PRIMARY_2, {"sentinels": monitor.OK, "replication": monitor.OK}),
        (AGREE, {"role": "slave", "master_host": "10.0.0.1", "master_port": "6379", "master_link_status": "down"},
         {"sentinels": monitor.OK, "replication": monitor.WARNING}),
    ],
    ids=["healthy", "no-replica", "disagree", "no-quorum", "one-sentinel-down", "replica-link-down"],
)
def test_replication_health(view, info, expected):
    assert levels(view, info) == expected
