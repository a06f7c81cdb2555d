"""The replication topology from inventory groups: who is what, and inventories that are refused."""

from __future__ import annotations

import pytest

from smart_redis.settings import SettingsError, load
from smart_redis.topology import build

THREE = {"redis_primary": ["db1"], "redis_replicas": ["db2", "db3"], "redis_sentinels": ["db1", "db2", "db3"]}
ADDRESSES = {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3"}
OPEN = load({"redis_bind": "127.0.0.1 10.0.0.1 10.0.0.2 10.0.0.3"})


@pytest.mark.parametrize(
    "host,role,runs_sentinel",
    [("db1", "primary", True), ("db2", "replica", True), ("db3", "replica", True), ("elsewhere", "standalone", False)],
)
def test_roles_come_from_the_groups(host, role, runs_sentinel):
    topology = build(host, THREE, ADDRESSES, OPEN)
    assert (topology.role, topology.runs_sentinel) == (role, runs_sentinel)


def test_a_group_of_three_sentinels_has_a_quorum_of_two_and_knows_every_address():
    topology = build("db2", THREE, ADDRESSES, OPEN)
    assert topology.quorum == 2
    assert topology.primary == "10.0.0.1" and topology.address == "10.0.0.2"
    assert topology.sentinels == ("10.0.0.1", "10.0.0.2", "10.0.0.3")


def test_five_sentinels_need_three():
    groups = {**THREE, "redis_sentinels": ["db1", "db2", "db3", "s4", "s5"]}
    topology = build("s4", groups, {**ADDRESSES, "s4": "10.0.0.4", "s5": "10.0.0.5"}, OPEN)
    assert topology.quorum == 3 and topology.role == "standalone" and topology.runs_sentinel


def test_no_groups_is_a_single_server():
    topology = build("db1", {}, {}, load({}))
    assert topology.role == "standalone" and not topology.ha


def test_an_inventory_name_that_is_an_ip_address_serves_as_the_address():
    groups = {"redis_primary": ["10.0.0.1"], "redis_sentinels": ["10.0.0.1", "10.0.0.2", "10.0.0.3"]}
    topology = build("10.0.0.1", groups, {}, load({"redis_bind": "0.0.0.0"}))
    assert topology.address == "10.0.0.1" and topology.sentinels == ("10.0.0.1", "10.0.0.2", "10.0.0.3")


@pytest.mark.parametrize(
    "host,groups,addresses,settings,message",
    [
        ("db1", {**THREE, "redis_primary": []}, ADDRESSES, OPEN, "redis_primary = []: allowed is exactly one host"),
        ("db1", {**THREE, "redis_primary": ["db1", "db2"]}, ADDRESSES, OPEN, "exactly one host"),
        ("db1", {**THREE, "redis_replicas": ["db1"]}, ADDRESSES, OPEN, "hosts other than the primary db1"),
        ("db1", {**THREE, "redis_sentinels": ["db1", "db2"]}, ADDRESSES, OPEN, "at least 3 hosts"),
        ("db1", THREE, {**ADDRESSES, "db2": "10.0.0.1"}, OPEN, "one address per host"),
        (
            "@docker/a",
            {"redis_primary": ["@docker/a"], "redis_sentinels": ["@docker/a", "s2", "s3"]},
            {},
            OPEN,
            "redis_ha_address of @docker/a = '@docker/a': allowed is an IP address",
        ),
        (
            "db1",
            THREE,
            {**ADDRESSES, "db3": "db3.example"},
            OPEN,
            "redis_ha_address of db3 = 'db3.example': allowed is an IP address",
        ),
        ("db1", THREE, ADDRESSES, load({}), "redis_bind = '127.0.0.1 -::1': allowed is a list that includes 10.0.0.1"),
        ("db1", THREE, ADDRESSES, load({"redis_auth": "none"}), 'redis_auth = "none": allowed is "acl"'),
    ],
)
def test_inconsistent_inventories_are_refused_in_one_line(host, groups, addresses, settings, message):
    with pytest.raises(SettingsError, match=None) as error:
        build(host, groups, addresses, settings)
    assert message in str(error.value) and "\n" not in str(error.value)


def test_a_restore_into_a_replica_is_refused(tmp_path):
    snapshot = tmp_path / "dump.rdb"
    snapshot.write_bytes(b"REDIS0011" + b"\0" * 16)
    settings = load({"redis_bind": "0.0.0.0", "redis_restore_from": str(snapshot)})
    with pytest.raises(SettingsError, match="allowed on a single server or the primary only"):
        build("db2", THREE, ADDRESSES, settings)
    assert build("db1", THREE, ADDRESSES, settings).role == "primary"
