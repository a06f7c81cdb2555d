"""Password rotation's rules: when a run rotates, and what each host step asks of Redis (issue 16)."""

from __future__ import annotations

import pytest

from smart_redis import rotation
from smart_redis.auth import sha256
from smart_redis.constants import PATHS
from smart_redis.facts import FileState, HostState
from smart_redis.host import rotation as host_rotation
from smart_redis.settings import SettingsError, load
from smart_redis.topology import Topology

OLD, NEW = "o" * 40, "n" * 40
SINGLE, MEMBER = Topology("standalone"), Topology("replica", address="10.0.0.2", runs_sentinel=True)


@pytest.mark.parametrize(
    ("data", "given", "facts", "topology", "expected"),
    [
        ({}, {}, HostState(secret_hashes={"APP": sha256(OLD)}), SINGLE, False),
        ({}, {"APP": OLD}, HostState(secret_hashes={"APP": sha256(OLD)}), SINGLE, False),
        ({}, {"APP": NEW}, HostState(secret_hashes={"APP": sha256(OLD)}), SINGLE, True),
        # A new host has nothing stored: its first passwords are no rotation.
        ({}, {"APP": NEW}, HostState(), SINGLE, False),
        ({"redis_rotate_passwords": True}, {}, HostState(secret_hashes={"APP": sha256(OLD)}), SINGLE, True),
        # In a group the new passwords come from the shared file, as given ones.
        ({"redis_rotate_passwords": True}, {"APP": OLD}, HostState(secret_hashes={"APP": sha256(OLD)}), MEMBER, False),
        ({}, {"SENTINEL": NEW}, HostState(secret_hashes={"SENTINEL": sha256(OLD)}), MEMBER, True),
        # An earlier run stopped halfway: the kept file says the rotation is not over.
        (
            {},
            {},
            HostState(files={PATHS.credentials_previous: FileState("root", "root", "600", "0" * 64)}),
            SINGLE,
            True,
        ),
        ({"redis_auth": "none"}, {"APP": NEW}, HostState(secret_hashes={"APP": sha256(OLD)}), SINGLE, False),
    ],
)
def test_when_a_run_rotates(data, given, facts, topology, expected):
    assert rotation.in_progress(load(data), given, facts, topology) is expected


def test_a_single_server_renews_only_what_was_not_given():
    assert rotation.renewed_roles(load({"redis_rotate_passwords": True}), SINGLE, {"ADMIN": NEW}) == ["APP"]
    assert rotation.renewed_roles(load({"redis_rotate_passwords": True}), MEMBER, {}) == []
    assert rotation.renewed_roles(load({}), SINGLE, {}) == []


def test_pending_lists_the_roles_whose_password_changes():
    current = {
        "REDIS_APP_USER": "app",
        "REDIS_APP_PASSWORD": NEW,
        "REDIS_ADMIN_USER": "ops",
        "REDIS_ADMIN_PASSWORD": OLD,
    }
    previous = {"REDIS_APP_PASSWORD": OLD, "REDIS_ADMIN_PASSWORD": OLD}
    assert host_rotation.pending(current, previous) == {"APP": ("app", [sha256(NEW), sha256(OLD)])}
    assert host_rotation.pending(current, {}) == {}


class FakeRedis:
    """A server or sentinel's ACL: user -> accepted hashes; records every command."""

    def __init__(self, users: dict[str, list[str]], log: list[tuple]):
        self.users, self.log = users, log

    def call(self, *args):
        self.log.append(args)
        if args[:2] == ("ACL", "GETUSER"):
            hashes = self.users.get(args[2])
            return None if hashes is None else ["flags", ["on"], "passwords", list(hashes), "commands", "+@all"]
        if args[:2] == ("ACL", "SETUSER"):
            for rule in args[3:]:
                if rule.startswith("#") and rule[1:] not in self.users[args[2]]:
                    self.users[args[2]].append(rule[1:])
                elif rule.startswith("!"):
                    self.users[args[2]].remove(rule[1:])
        return "OK"


@pytest.fixture
def host_side(tmp_path, monkeypatch):
    current, previous = tmp_path / "credentials", tmp_path / "credentials.previous"
    current.write_text(
        f"REDIS_APP_USER='app'\nREDIS_APP_PASSWORD='{NEW}'\nREDIS_ADMIN_USER='ops'\nREDIS_ADMIN_PASSWORD='{OLD}'\n"
        f"REDIS_REPLICATION_USER='replicator'\nREDIS_REPLICATION_PASSWORD='{NEW}'\n"
    )
    previous.write_text(current.read_text().replace(NEW, OLD))
    monkeypatch.setattr(host_rotation, "CREDENTIALS", str(current))
    monkeypatch.setattr(host_rotation, "PREVIOUS", str(previous))
    monkeypatch.setattr(host_rotation, "read_credentials", lambda path=str(current): _read(path))
    log: list[tuple] = []
    acl = {
        6379: {"app": [sha256(OLD)], "ops": [sha256(OLD)], "replicator": [sha256(OLD)]},
        26379: {"app": [sha256(OLD)], "ops": [sha256(OLD)]},  # a sentinel has no replication user
    }
    monkeypatch.setattr(host_rotation, "login", lambda port, auth: FakeRedis(acl[port], log))
    return acl, log, previous


def _read(path):
    from smart_redis.host.credentials import read_credentials

    return read_credentials(path)


def test_accept_adds_the_new_hash_beside_the_old_on_the_server_and_the_sentinel(host_side):
    acl, log, previous = host_side
    said = host_rotation.accept(6379, 26379)
    both = sorted([sha256(NEW), sha256(OLD)])
    assert sorted(acl[6379]["app"]) == both and sorted(acl[6379]["replicator"]) == both
    assert acl[6379]["ops"] == [sha256(OLD)]  # its password does not change
    assert sorted(acl[26379]["app"]) == both and "replicator" not in acl[26379]
    assert ("SENTINEL", "FLUSHCONFIG") in log and previous.exists()
    assert said == [
        "redis-server accepts the new and the previous password of: app, replicator",
        "Sentinel accepts the new and the previous password of: app",
    ]
    assert not any(NEW in " ".join(map(str, command)) for command in log), "a password went to Redis as a rule"


def test_retire_keeps_only_the_credentials_files_passwords_and_ends_the_rotation(host_side):
    acl, log, previous = host_side
    host_rotation.accept(6379, 26379)
    host_rotation.retire(6379, 26379)
    assert acl[6379] == {"app": [sha256(NEW)], "ops": [sha256(OLD)], "replicator": [sha256(NEW)]}
    assert acl[26379] == {"app": [sha256(NEW)], "ops": [sha256(OLD)]}
    assert not previous.exists()
    log.clear()
    host_rotation.retire(6379, 26379)  # again, as a re-run after a stop does: nothing left to remove
    assert not [command for command in log if command[:2] == ("ACL", "SETUSER")]


UNFINISHED = {PATHS.credentials_previous: FileState("root", "root", "600", "0" * 64)}


@pytest.mark.parametrize(
    ("given", "facts", "topology", "whole_group", "refused"),
    [
        # A group's rotation needs every host: each accepts before any login moves.
        ({"APP": NEW}, HostState(secret_hashes={"APP": sha256(OLD)}), MEMBER, False, "every host of the Sentinel"),
        ({}, HostState(files=UNFINISHED), MEMBER, False, "every host of the Sentinel"),
        ({"APP": NEW}, HostState(secret_hashes={"APP": sha256(OLD)}), MEMBER, True, None),
        # New passwords over an unfinished rotation: the logins may be on either kept password.
        ({"APP": NEW}, HostState(secret_hashes={"APP": sha256(OLD)}, files=UNFINISHED), SINGLE, True, "has ended"),
        ({}, HostState(secret_hashes={"APP": sha256(OLD)}, files=UNFINISHED), SINGLE, True, None),
        # A rebuilt host joins with nothing stored: no rotation, whatever --limit leaves out.
        ({"APP": NEW}, HostState(), MEMBER, False, None),
    ],
)
def test_a_rotation_is_refused_before_anything_changes(monkeypatch, given, facts, topology, whole_group, refused):
    kept: list[bool] = []
    monkeypatch.setattr(rotation, "group_intact", lambda: whole_group)
    monkeypatch.setattr(rotation, "keep_previous", lambda name, rotating: kept.append(rotating))
    if refused:
        with pytest.raises(SettingsError, match=refused):
            rotation.begin(load({}), topology, given, facts)
        assert kept == []
    else:
        rotation.begin(load({}), topology, given, facts)
        assert len(kept) == 1


def test_while_a_rotation_runs_redis_conf_keeps_the_replaced_password_too():
    from smart_redis.render import redis_conf

    settings = load({})
    hashes = {"APP": sha256(NEW), "ADMIN": sha256(OLD), "EXPORTER": sha256(OLD)}
    line = next(line for line in redis_conf(settings, hashes).splitlines() if line.startswith("user smart-trade "))
    assert line.startswith(f"user smart-trade on #{sha256(NEW)} resetkeys")  # as ever outside a rotation
    during = redis_conf(settings, hashes, replaced={"APP": sha256(OLD)}).splitlines()
    line = next(line for line in during if line.startswith("user smart-trade "))
    assert line.startswith(f"user smart-trade on #{sha256(NEW)} #{sha256(OLD)} resetkeys")


def test_the_fact_reads_the_replaced_passwords_hashes_only():
    from smart_redis.facts import parse

    facts = parse([f"previous=APP {sha256(OLD)}", "previous=NOBODY " + "a" * 64, "previous=ADMIN short"])
    assert facts.previous_hashes == {"APP": sha256(OLD)}


def test_redis_monitor_logs_in_with_the_replaced_password_until_its_server_accepts_the_new(tmp_path, monkeypatch):
    from smart_redis.host import server
    from smart_redis.host.resp import RedisError

    previous = tmp_path / "credentials.previous"
    monkeypatch.setattr(server, "PREVIOUS", str(previous))
    tried: list[str] = []

    def admin(port, auth, credentials, address="127.0.0.1", timeout=5.0):
        tried.append(credentials)
        if credentials == "/etc/smart-redis/credentials":
            raise RedisError("WRONGPASS invalid username-password pair or user is disabled.")
        return "logged in"

    monkeypatch.setattr(server, "admin", admin)
    config = {"port": 6379, "auth": "acl", "credentials": "/etc/smart-redis/credentials"}
    with pytest.raises(RedisError, match="WRONGPASS"):  # no rotation runs: the error as it is
        server.connect(config)
    previous.write_text("REDIS_ADMIN_USER='ops'\n")
    assert server.connect(config) == "logged in"
    assert tried == [config["credentials"], config["credentials"], str(previous)]
