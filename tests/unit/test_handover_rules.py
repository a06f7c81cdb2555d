"""The pure rules of planned changes on a Sentinel group (issue 16): who hands over, what the
host reads from INFO and apt, and which release may load which data file."""

from __future__ import annotations

import pytest

from smart_redis import handover
from smart_redis.facts import parse
from smart_redis.host.handover import replicas
from smart_redis.install import RedisCandidate, loads_rdb
from smart_redis.topology import Topology

PRIMARY = Topology(
    "primary", address="10.0.0.1", primary="10.0.0.1", sentinels=("10.0.0.1",) * 3, group=True, members=3
)
REPLICA = Topology(
    "replica", address="10.0.0.2", primary="10.0.0.1", sentinels=("10.0.0.1",) * 3, group=True, members=3
)


@pytest.mark.parametrize(
    ("topology", "sentinels_say", "joining", "expected"),
    [
        (PRIMARY, "10.0.0.1 6379", False, True),  # the primary the sentinels name, replicas to take over
        (REPLICA, "10.0.0.2 6379", False, True),  # a replica promoted by an earlier failover is the primary now
        (PRIMARY, "10.0.0.2 6379", False, False),  # after a failover the inventory's primary is a replica
        (PRIMARY, None, False, False),  # a new group: nobody to hand over to yet
        (PRIMARY, "10.0.0.1 6379", True, False),  # joining restarts into the group, as before
        (
            Topology("primary", address="10.0.0.1", primary="10.0.0.1", group=True, members=1),
            "10.0.0.1 6379",
            False,
            False,
        ),
        (Topology("standalone"), None, False, False),
    ],
)
def test_who_hands_the_primary_role_over_before_a_restart(topology, sentinels_say, joining, expected):
    assert handover.wanted(topology, sentinels_say, joining) is expected


def test_the_replicas_a_primary_lists():
    info = {
        "role": "master",
        "connected_slaves": "2",
        "slave0": "ip=10.0.0.2,port=6379,state=online,offset=1234,lag=0",
        "slave1": "ip=10.0.0.3,port=6380,state=wait_bgsave,offset=0,lag=1",
        "slave_read_only": "1",  # not a replica line
    }
    assert replicas(info) == [("10.0.0.2", 6379, "online", 1234), ("10.0.0.3", 6380, "wait_bgsave", 0)]


@pytest.mark.parametrize(
    ("version", "loads"),
    [
        ("5:7.0.15-1~deb12u5", 10),  # Debian 12
        ("6:7.2.4-1rl1~bookworm1", 11),  # the Redis repository
        ("7.4.1-1", 12),
        ("5:8.0.2-3", 12),  # Debian 13
        ("5:6.0.16-1+deb11u2", 9),
        ("5:9.1.0-1", 12),  # a release not in the table loads at least what the newest known one does
        ("5:5.0.14-1", None),  # older than the table: unknown
        ("(none)", None),
    ],
)
def test_the_newest_data_format_a_release_loads(version, loads):
    assert loads_rdb(version) == loads


def test_apt_policy_is_read():
    output = ["lists=fresh", "Installed=5:7.0.15-1~deb12u5", "Candidate=5:7.0.16-1~deb12u1"]
    assert RedisCandidate().process(output) == (True, "5:7.0.15-1~deb12u5", "5:7.0.16-1~deb12u1")
    assert RedisCandidate().process(["Installed=(none)", "Candidate=(none)"]) == (False, "(none)", "(none)")


def test_the_host_reports_replaced_binaries_and_the_data_format():
    state = parse(["stale=redis-server", "stale=redis-sentinel", "rdb=10"])
    assert state.stale_binaries == {"redis-server", "redis-sentinel"} and state.rdb_version == 10
    fresh = parse(["rdb="])
    assert fresh.stale_binaries == set() and fresh.rdb_version is None
