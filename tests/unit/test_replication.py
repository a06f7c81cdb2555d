"""Replication's pure parts: the shared passwords file, the primary a host follows, sentinel answers."""

from __future__ import annotations

import os

import pytest

from smart_redis import auth, replication
from smart_redis.replication import SentinelPrimary
from smart_redis.settings import SettingsError, load
from smart_redis.topology import Topology

SETTINGS = load({"redis_bind": "0.0.0.0", "redis_ha_secrets_file": "secrets/ha.env"})
REPLICA = Topology("replica", "10.0.0.2", "10.0.0.1", ("10.0.0.1", "10.0.0.2", "10.0.0.3"), True)
PRIMARY = Topology("primary", "10.0.0.1", "10.0.0.1", ("10.0.0.1", "10.0.0.2", "10.0.0.3"), True)


def test_shared_passwords_are_generated_once_private_and_reused(tmp_path):
    first = auth.shared_passwords(SETTINGS, REPLICA, root=tmp_path)
    path = tmp_path / "secrets" / "ha.env"
    assert set(first) == {"APP", "ADMIN", "REPLICATION", "SENTINEL"}
    assert all(len(p) == 48 and p.isalnum() for p in first.values())
    assert len(set(first.values())) == 4
    assert path.stat().st_mode & 0o777 == 0o600
    assert auth.shared_passwords(SETTINGS, PRIMARY, root=tmp_path) == first


def test_the_first_run_keeps_passwords_given_in_the_environment_and_later_runs_insist_on_them(tmp_path):
    given = {"APP": "A" * 40}
    assert auth.shared_passwords(SETTINGS, REPLICA, root=tmp_path, given=given)["APP"] == "A" * 40
    assert auth.shared_passwords(SETTINGS, REPLICA, root=tmp_path, given=given)["APP"] == "A" * 40
    with pytest.raises(SettingsError, match="SMART_REDIS_APP_PASSWORD: allowed is the group's password") as error:
        auth.shared_passwords(SETTINGS, REPLICA, root=tmp_path, given={"APP": "B" * 40})
    assert "B" * 40 not in str(error.value)


def test_a_single_server_needs_no_shared_file(tmp_path):
    assert auth.shared_passwords(SETTINGS, Topology("standalone"), root=tmp_path) == {}
    assert not (tmp_path / "secrets").exists()


def test_a_shared_file_others_can_read_is_refused(tmp_path):
    auth.shared_passwords(SETTINGS, REPLICA, root=tmp_path)
    os.chmod(tmp_path / "secrets" / "ha.env", 0o644)
    with pytest.raises(SettingsError, match="chmod 600"):
        auth.shared_passwords(SETTINGS, REPLICA, root=tmp_path)


@pytest.mark.parametrize(
    "topology,sentinel_says,expected",
    [
        (REPLICA, None, "10.0.0.1 6379"),  # first provisioning: the inventory's primary
        (PRIMARY, None, None),
        (REPLICA, "10.0.0.3 6379", "10.0.0.3 6379"),  # after a failover: Sentinel's
        (REPLICA, "10.0.0.2 6379", None),  # this host was promoted
        (PRIMARY, "10.0.0.2 6379", "10.0.0.2 6379"),  # the old primary follows the new one
        (Topology("standalone"), None, None),
    ],
)
def test_the_primary_a_host_follows(topology, sentinel_says, expected):
    assert replication.replicaof(SETTINGS, topology, sentinel_says) == expected


def test_sentinel_answers_are_parsed_and_silence_dropped():
    output = ["answer=10.0.0.2 6379 ", "answer=", "answer=NOAUTH Authentication required. ", "answer=10.0.0.2 6379"]
    assert SentinelPrimary().process(output) == ["10.0.0.2 6379", "NOAUTH Authentication required.", "10.0.0.2 6379"]


@pytest.mark.parametrize(
    "answers,expected",
    [
        ([], None),  # nobody answers: a new group, or the sentinels are unreachable
        (["10.0.0.2 6379"] * 3, "10.0.0.2 6379"),
        (["10.0.0.2 6379"] * 2, "10.0.0.2 6379"),  # one sentinel down
        (["10.0.0.2 6379"], "10.0.0.2 6379"),  # a group whose sentinels start one by one
        (["10.0.0.2 6379", "10.0.0.2 6379", "10.0.0.1 6379"], "10.0.0.2 6379"),  # a majority
        (["10.0.0.2 6379", "10.0.0.1 6379"], "disagree on the primary"),  # no majority of 3
        (["WRONGPASS invalid username-password pair"], "answered with an error .WRONGPASS"),
        (["10.0.0.2 6379", "NOAUTH Authentication required."], "answered with an error .NOAUTH"),
        (["ERR No such master with that name"], "redis_ha_master_name"),
    ],
)
def test_the_sentinels_decide_or_the_run_stops(answers, expected):
    if expected is None or expected[0].isdigit():
        assert replication.decide(answers, 3) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            replication.decide(answers, 3)


def test_no_credentials_yet_means_no_answers():
    assert SentinelPrimary().default() == []


def test_sentinel_master_fields_are_read_as_pairs():
    from smart_redis.sentinel import SentinelMaster, tunables

    output = ["name", "smart-trade", "quorum", "2", "down-after-milliseconds", "5000", "parallel-syncs", "1"]
    assert SentinelMaster().process(output)["down-after-milliseconds"] == "5000"
    assert SentinelMaster().process(["NOAUTH Authentication required."]) is None
    assert tunables(SETTINGS, REPLICA) == {
        "quorum": "2",
        "down-after-milliseconds": "5000",
        "failover-timeout": "30000",
        "parallel-syncs": "1",
    }


def test_a_hand_edited_secrets_file_with_a_password_redis_cannot_parse_is_refused_without_echoing_it(tmp_path):
    auth.shared_passwords(SETTINGS, REPLICA, root=tmp_path)
    path = tmp_path / "secrets" / "ha.env"
    bad = 'x"' * 20
    path.write_text(path.read_text().replace(path.read_text().split()[2].split("=", 1)[1], bad))
    with pytest.raises(SettingsError, match="not so: REPLICATION") as error:
        auth.shared_passwords(SETTINGS, REPLICA, root=tmp_path)
    assert bad not in str(error.value)


@pytest.mark.parametrize(
    "answers",
    [
        ["10.0.0.2 6379; touch /tmp/x"],
        ["$(reboot) 6379"],
        ["fe80::1%$(id) 6379"],
        ["10.0.0.2 70000"],
        ["10.0.0.2 6379 extra"],
        ["db2.example 6379"],
        ["10.0.0.2 6379", "10.0.0.2 6379", "10.0.0.9:6379 x"],
    ],
)
def test_an_answer_that_is_not_an_ip_address_and_a_port_stops_the_run(answers):
    with pytest.raises(ValueError, match="not an IP address and a port") as error:
        replication.decide(answers, 3)
    assert "\n" not in str(error.value)


def test_an_answer_is_written_in_normal_form():
    assert replication.decide(["::ffff:10.0.0.2 6379"] * 2, 3) == "::ffff:a00:2 6379"
    assert replication.decide(["10.0.0.2 06379"] * 2, 3) == "10.0.0.2 6379"


@pytest.mark.parametrize(
    "answers,expected",
    [
        (["10.0.0.2 6379"], "only 1 of 3 sentinels name the primary 10.0.0.2:6379"),
        (["10.0.0.2 6379", "10.0.0.3 6379"], "only 1 of 3"),
        (["10.0.0.2 6379"] * 2, "10.0.0.2 6379"),
        ([], None),  # silence: redis.conf keeps the primary it names
    ],
)
def test_a_member_follows_a_majority_of_the_group_only(answers, expected):
    if expected is None or expected[0].isdigit():
        assert replication.decide(answers, 3, member=True) == expected
    else:
        with pytest.raises(ValueError, match=expected):
            replication.decide(answers, 3, member=True)


def test_sentinel_addresses_and_the_master_name_reach_the_shell_quoted():
    command = SentinelPrimary().command(("10.0.0.1", "10.0.0.2"), 26379, "smart-trade")
    assert "for s in 10.0.0.1 10.0.0.2;" in command and "get-master-addr-by-name smart-trade" in command
