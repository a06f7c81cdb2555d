"""The pure rules of planned changes on a Sentinel group (issue 16): who hands over, what the
host reads from INFO and apt, and which release may load which data file."""

from __future__ import annotations

import pytest

from smart_redis import handover
from smart_redis.facts import parse
from smart_redis.host.handover import promotable, replicas
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
    assert handover.wanted(topology, sentinels_say, joining, "7.0.15", True) is expected


@pytest.mark.parametrize(
    ("version", "whole_group", "expected"),
    [
        ("7.0.15", True, True),
        ("6.2.14", True, True),
        ("6.0.16", True, False),  # no CLIENT PAUSE WRITE: the primary restarts in place, as before
        (None, True, False),
        ("7.0.15", False, False),  # --limit left a server out: its redis.conf would name the old primary
    ],
)
def test_a_handover_needs_redis_6_2_and_the_whole_group_in_the_run(version, whole_group, expected):
    assert handover.wanted(PRIMARY, "10.0.0.1 6379", False, version, whole_group) is expected


def test_the_replicas_a_primary_lists():
    info = {
        "role": "master",
        "connected_slaves": "2",
        "slave0": "ip=10.0.0.2,port=6379,state=online,offset=1234,lag=0",
        "slave1": "ip=10.0.0.3,port=6380,state=wait_bgsave,offset=0,lag=1",
        "slave_read_only": "1",  # not a replica line
    }
    assert replicas(info) == [("10.0.0.2", 6379, "online", 1234), ("10.0.0.3", 6380, "wait_bgsave", 0)]


FIT = {
    "ip": "10.0.0.2",
    "flags": "slave",
    "master-link-status": "ok",
    "slave-priority": "100",
    "last-ok-ping-reply": "300",
    "info-refresh": "4000",
    "master-link-down-time": "0",
}


@pytest.mark.parametrize(
    ("changed", "expected"),
    [
        ({}, True),
        ({"ip": "10.0.0.9"}, False),  # no member of the inventory's group
        ({"flags": "s_down,slave"}, False),
        ({"flags": "slave,disconnected"}, False),
        ({"master-link-status": "err"}, False),  # the INFO Sentinel took while it restarted
        ({"slave-priority": "0"}, False),  # never promoted
        ({"last-ok-ping-reply": "6000"}, False),
        ({"info-refresh": "31000"}, False),
        ({"master-link-down-time": "40001"}, False),  # ten times down-after-milliseconds (4000)
        ({"info-refresh": "soon"}, False),
    ],
)
def test_a_replica_sentinel_would_promote(changed, expected):
    assert promotable({**FIT, **changed}, 4000, ["10.0.0.2", "10.0.0.3"]) is expected


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


def test_the_host_reports_the_data_format():  # replaced binaries: test_facts.py
    assert parse(["rdb=10"]).rdb_version == 10
    assert parse(["rdb="]).rdb_version is None


def _hold(tmp_path, install: str) -> tuple[int, str]:
    """HOLD_RESTARTS with its policy-rc.d in tmp_path, run by dash as pyinfra runs it."""
    import shutil
    import subprocess

    from smart_redis.install import HOLD_RESTARTS

    script = HOLD_RESTARTS.format(install=install).replace("/usr/sbin/policy-rc.d", str(tmp_path / "policy-rc.d"))
    shell = shutil.which("dash") or "/bin/sh"
    done = subprocess.run([shell, "-c", script], capture_output=True, text=True, timeout=10)
    return done.returncode, done.stdout


def test_package_scripts_may_not_restart_anything_during_the_upgrade(tmp_path):
    rc, out = _hold(tmp_path, f'"{tmp_path}/policy-rc.d" redis-server restart; echo "policy says $?"')
    assert rc == 0 and "policy says 101" in out
    assert not (tmp_path / "policy-rc.d").exists()  # gone afterwards


def test_an_operators_own_policy_is_kept_and_put_back(tmp_path):
    (tmp_path / "policy-rc.d").write_text("#!/bin/sh\nexit 0\n")
    rc, _ = _hold(tmp_path, "false")  # apt failed
    assert rc == 1 and (tmp_path / "policy-rc.d").read_text() == "#!/bin/sh\nexit 0\n"
    assert not (tmp_path / "policy-rc.d.smart-redis-kept").exists()


def test_a_killed_upgrade_leaves_no_policy_behind_and_a_leftover_is_cleaned(tmp_path):
    (tmp_path / "policy-rc.d").write_text("#!/bin/sh\nexit 0\n")
    rc, _ = _hold(tmp_path, "kill -TERM $$")
    assert rc != 0 and (tmp_path / "policy-rc.d").read_text() == "#!/bin/sh\nexit 0\n"
    # A run killed harder (SIGKILL: no trap) left ours in place and the operator's aside.
    (tmp_path / "policy-rc.d").rename(tmp_path / "policy-rc.d.smart-redis-kept")
    (tmp_path / "policy-rc.d").write_text("#!/bin/sh\n# smart-redis: upgrade\nexit 101\n")
    rc, _ = _hold(tmp_path, "true")
    assert rc == 0 and (tmp_path / "policy-rc.d").read_text() == "#!/bin/sh\nexit 0\n"


class _Member:
    """A server's CONFIG SET as the handover's login sees it: busy (OSError) for its first calls."""

    def __init__(self, busy_for: int):
        self.busy_for, self.value = busy_for, "0"

    def call(self, *command: str) -> str:
        if self.busy_for > 0:
            self.busy_for -= 1
            raise OSError("timed out")
        self.value = command[-1]
        return "OK"


def test_min_replicas_to_write_is_put_back_on_a_member_that_is_busy_for_a_while(monkeypatch):
    from smart_redis.host import handover as on_host

    members = {("127.0.0.1", 6379): _Member(0), ("10.0.0.2", 6379): _Member(3), ("10.0.0.3", 6379): _Member(10**6)}
    monkeypatch.setattr(on_host, "logins", lambda auth: ["/etc/smart-redis/credentials"])
    monkeypatch.setattr(on_host, "admin", lambda port, auth, path, address: members[(address, port)])
    monkeypatch.setattr(on_host.time, "sleep", lambda _: None)
    monkeypatch.setattr(on_host, "RESTORE_SECONDS", 0.05)
    left = on_host._restore_min_replicas(list(members), "acl", "1")
    # The busy one took it once it answered; the one that never answered is named, not forgotten.
    assert [m.value for m in members.values()] == ["1", "1", "0"]
    assert left == ["10.0.0.3 6379"]
