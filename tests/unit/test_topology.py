"""The replication topology from inventory groups: who is what, and inventories that are refused."""

from __future__ import annotations

import pytest

from smart_redis.settings import SettingsError, load
from smart_redis.topology import build, with_own_address

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


# --- redis_ha_address found on the host when it is not set (issue 16)
NAMED = {"redis_primary": ["db1"], "redis_replicas": ["db2"], "redis_sentinels": ["db1", "db2", "s3"]}


def test_a_host_with_one_address_is_reached_by_it_and_listens_on_it():
    found = {"db1": ("10.0.0.1",), "db2": ("10.0.0.2",), "s3": ("10.0.0.3",)}
    topology = build("db2", NAMED, {}, load({}), found)
    assert topology.address == "10.0.0.2" and topology.primary == "10.0.0.1"
    assert topology.sentinels == ("10.0.0.1", "10.0.0.2", "10.0.0.3")
    assert with_own_address(load({}), topology).bind == "127.0.0.1 -::1 10.0.0.2"


def test_a_bind_that_covers_the_found_address_stays_as_it_is():
    found = {"db1": ("10.0.0.1",), "db2": ("10.0.0.2",), "s3": ("10.0.0.3",)}
    settings = load({"redis_bind": "0.0.0.0"})
    assert with_own_address(settings, build("db1", NAMED, {}, settings, found)) == settings
    # a sentinel-only host's Redis stays a single server on loopback
    assert build("s3", NAMED, {}, load({}), found).listen_also is None


def test_an_address_set_in_the_host_data_wins_over_the_found_one():
    found = {"db1": ("10.0.0.1", "192.168.0.1"), "db2": ("10.0.0.2",), "s3": ("10.0.0.3",)}
    topology = build("db2", NAMED, {"db1": "192.168.0.1"}, load({}), found)
    assert topology.primary == "192.168.0.1"


@pytest.mark.parametrize(
    ("seen", "message"),
    [
        (
            ("10.0.0.1", "192.168.0.1"),
            "redis_ha_address of db1: not set, and db1 has 2 addresses (10.0.0.1, 192.168.0.1)",
        ),
        ((), "redis_ha_address of db1: not set, and db1 has 0 addresses (none)"),
        (
            None,
            "redis_ha_address of db1: not set, and db1 is not part of this run (--limit) nor seen by an earlier one",
        ),
    ],
)
def test_an_ambiguous_or_unknown_host_needs_its_address_set(seen, message):
    found = {"db1": seen, "db2": ("10.0.0.2",), "s3": ("10.0.0.3",)}
    with pytest.raises(SettingsError) as error:
        build("db2", NAMED, {}, load({}), found)
    assert str(error.value).startswith(message)


def test_the_host_reports_only_addresses_others_can_reach():
    from smart_redis.facts import parse

    state = parse(["addresses=172.20.0.11 127.0.0.1 fe80::1 ::1 2001:db8::11 2001:db8::12%eth0 junk"])
    assert state.addresses == ("172.20.0.11", "2001:db8::11")


def test_a_host_outside_the_run_is_known_by_what_an_earlier_run_found(tmp_path):
    from types import SimpleNamespace

    from smart_redis.topology import _addresses_found

    secrets = tmp_path / "secrets" / "redis-ha.env"
    settings = load({"redis_ha_secrets_file": str(secrets)})
    db1, db2 = SimpleNamespace(name="db1", connected=True), SimpleNamespace(name="db2", connected=False)
    inventory = SimpleNamespace(get_host=lambda name, default=None: {"db1": db1, "db2": db2}.get(name, default))
    assert _addresses_found(db1, inventory, ["db2"], settings) == {"db2": None}  # never seen: not guessed
    secrets.parent.mkdir()
    (secrets.parent / "redis-ha.addresses.json").write_text('{"db2": ["10.0.0.2"]}')
    assert _addresses_found(db1, inventory, ["db2"], settings) == {"db2": ("10.0.0.2",)}
    # The record is a file like any other: what this code would not have written counts as unseen.
    for hostile in (
        '{"db2": ["10.0.0.2\\nbind 0.0.0.0"]}',
        '{"db2": ["fe80::1%eth0"]}',
        '["db2"]',
        '{"db2": "10.0.0.2"}',
    ):
        (secrets.parent / "redis-ha.addresses.json").write_text(hostile)
        assert _addresses_found(db1, inventory, ["db2"], settings) == {"db2": None}, hostile
