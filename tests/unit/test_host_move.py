"""The host side of a move between Redis and Valkey (smart_redis/host/move.py), on made-up files:
the new server starts on a copy of the old one's data, or the old one runs again as it was."""

from __future__ import annotations

import dataclasses
import os
import subprocess

import pytest

from smart_redis.host import move, server
from smart_redis.host.restart import StepError

KEYSPACE = {0: {"keys": 3, "expires": 3}, 5: {"keys": 2, "expires": 0}}


class Client:
    said: list[tuple[str, ...]] = []
    writes = "0"  # since the SAVE

    def __init__(self, world):
        self.world = world

    def call(self, *args):
        Client.said.append(args)
        return {"SAVE": "OK", "PING": "PONG", "CLIENT": "OK"}[args[0]]

    def info(self, section):
        return {"rdb_changes_since_last_save": Client.writes}


@pytest.fixture
def world(tmp_path, monkeypatch):
    """Redis (old) with its data and Valkey (new) with its package's config, under tmp_path."""
    old = dataclasses.replace(server.REDIS, data_dir=str(tmp_path / "redis"), config=str(tmp_path / "redis.conf"))
    new = dataclasses.replace(server.VALKEY, data_dir=str(tmp_path / "valkey"), config=str(tmp_path / "valkey.conf"))
    for folder in (old.data_dir, new.data_dir):
        os.mkdir(folder)
    (tmp_path / "redis" / "dump.rdb").write_text("REDIS0010 the data")
    (tmp_path / "valkey.conf").write_text("# the package's\n")
    candidate = tmp_path / "candidate.conf"
    candidate.write_text("# the deploy's\n")
    monkeypatch.setattr(move, "SERVERS", {"redis": old, "valkey": new})
    monkeypatch.setattr(move, "serving", lambda: new)
    monkeypatch.setattr(move, "select", lambda name: None)
    monkeypatch.setattr(move, "STAGE_DIR", str(tmp_path / "stage"))
    monkeypatch.setattr(
        move.pwd, "getpwnam", lambda name: type("P", (), {"pw_uid": os.getuid(), "pw_gid": os.getgid()})
    )
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(move, "run_systemctl", lambda *args: calls.append(args) or True)
    monkeypatch.setattr(move, "systemctl", lambda *args: "active" if args[1] == "redis-server" else "inactive")
    monkeypatch.setattr(move, "configured_port", lambda config: 6379)
    monkeypatch.setattr(move, "login", lambda *args, **kwargs: Client(None))
    monkeypatch.setattr(move, "backup_counts", lambda client, stamp, now: {"keys": {"0": 3, "5": 2}})
    after = {"keyspace": dict(KEYSPACE)}
    monkeypatch.setattr(move, "keyspace_counts", lambda client: after["keyspace"])
    monkeypatch.setattr(move, "compare_counts", lambda counts, keyspace, now: (keyspace == KEYSPACE, "the same keys"))
    checked = {"out": "[offset 0] \\o/ RDB looks OK! \\o/", "by": []}

    def check_rdb(server, path):
        checked["by"].append((server.name, path))
        return subprocess.CompletedProcess([], 0 if "OK" in checked["out"] else 1, checked["out"], "")

    monkeypatch.setattr(move, "check_rdb", check_rdb)
    return {
        "old": old,
        "new": new,
        "candidate": candidate,
        "calls": calls,
        "after": after,
        "checked": checked,
        "tmp": tmp_path,
    }


def test_a_move_starts_the_new_server_on_a_copy_of_the_data(world):
    Client.said = []
    line = move.move("redis", 6379, "acl", "acl", str(world["candidate"]))
    # writes wait from before the SAVE until the old server stops: none is acknowledged and lost
    assert Client.said[:2] == [("CLIENT", "PAUSE", "600000", "WRITE"), ("SAVE",)]
    assert ("CLIENT", "UNPAUSE") not in Client.said
    new, old, calls = world["new"], world["old"], world["calls"]
    assert "valkey-server runs on redis-server's data; the same keys" == line
    assert open(f"{new.data_dir}/dump.rdb").read() == "REDIS0010 the data"
    assert open(f"{old.data_dir}/dump.rdb").read() == "REDIS0010 the data"  # the old one's stays: the way back
    assert open(new.config).read() == "# the deploy's\n" and not world["candidate"].exists()
    # masked from its stop on (a reboot must not start both), disabled once the new one holds the data
    assert calls[:2] == [("stop", "redis-server"), ("mask", "redis-server")] and ("start", "valkey-server") in calls
    assert calls[-1] == ("disable", "redis-server")
    # the new server's checker (server.check_rdb: as its user) on the staged copy
    assert world["checked"]["by"] == [("valkey", os.path.join(str(world["tmp"] / "stage"), "dump.rdb"))]


def test_a_file_the_new_server_cannot_load_stops_the_move_before_anything_stops(world):
    world["checked"]["out"] = "--- RDB ERROR DETECTED ---\n[additional info] Can't handle RDB format version 12"
    Client.said = []
    with pytest.raises(
        StepError, match="it runs on as it was: valkey-check-rdb cannot load its data file .*version 12"
    ):
        move.move("redis", 6379, "acl", "acl", str(world["candidate"]))
    assert world["calls"] == [] and not world["candidate"].exists()
    assert open(world["new"].config).read() == "# the package's\n"
    assert Client.said[-1] == ("CLIENT", "UNPAUSE")  # the old server takes writes again


def test_keys_that_differ_undo_the_move(world):
    world["after"]["keyspace"] = {0: {"keys": 3, "expires": 3}}  # DB 5 did not come over
    with pytest.raises(StepError, match="Move from redis-server to valkey-server undone: redis-server runs again"):
        move.move("redis", 6379, "acl", "acl", str(world["candidate"]))
    new, calls = world["new"], world["calls"]
    assert not os.path.exists(f"{new.data_dir}/dump.rdb")
    assert open(new.config).read() == "# the package's\n"
    assert calls[-6:] == [
        ("stop", "valkey-server"),
        ("disable", "valkey-server"),
        ("mask", "valkey-server"),
        ("unmask", "redis-server"),
        ("reset-failed", "redis-server"),
        ("start", "redis-server"),
    ]


def test_a_link_planted_as_the_old_data_file_is_not_followed(world):
    secret = world["tmp"] / "shadow"
    secret.write_text("root's secret")
    os.unlink(f"{world['old'].data_dir}/dump.rdb")
    os.symlink(secret, f"{world['old'].data_dir}/dump.rdb")
    with pytest.raises(StepError, match="cannot be read as a plain file"):
        move.move("redis", 6379, "acl", "acl", str(world["candidate"]))
    assert world["calls"] == [] and not os.path.exists(f"{world['new'].data_dir}/dump.rdb")


def test_a_move_killed_between_the_stop_and_the_start_begins_again_from_the_old_server(world, monkeypatch):
    monkeypatch.setattr(move, "systemctl", lambda *args: "inactive")  # neither runs
    move.move("redis", 6379, "acl", "acl", str(world["candidate"]))
    assert world["calls"][:3] == [("unmask", "redis-server"), ("start", "redis-server"), ("stop", "redis-server")]


def test_writes_after_the_save_stop_the_move_before_the_old_server_stops(world):
    Client.writes, Client.said = "3", []
    try:
        with pytest.raises(StepError, match="took 3 writes after its SAVE"):
            move.move("redis", 6379, "acl", "acl", str(world["candidate"]))
    finally:
        Client.writes = "0"
    assert world["calls"] == [] and Client.said[-1] == ("CLIENT", "UNPAUSE")
    assert not os.path.exists(os.path.join(move.STAGE_DIR, "dump.rdb")) and not world["candidate"].exists()


def test_a_groups_replica_moves_by_starting_the_new_server_on_the_deploys_config(world):
    """No SAVE, no copy: the new server syncs from the primary, which has the data."""
    Client.said = []
    line = move.move_replica("redis", "acl", str(world["candidate"]))
    new, calls = world["new"], world["calls"]
    assert line == "valkey-server runs in place of redis-server, as a replica"
    assert calls == [
        ("stop", "redis-server"),
        ("mask", "redis-server"),
        ("unmask", "valkey-server"),
        ("enable", "valkey-server"),
        ("start", "valkey-server"),
        ("disable", "redis-server"),
    ]
    assert open(new.config).read() == "# the deploy's\n" and not os.path.exists(new.config + ".previous")
    assert Client.said == [("PING",)] and world["checked"]["by"] == []


def test_a_groups_replica_whose_new_server_does_not_start_runs_the_old_one_again(world, monkeypatch):
    calls = world["calls"]
    monkeypatch.setattr(move, "run_systemctl", lambda *args: calls.append(args) or args != ("start", "valkey-server"))
    with pytest.raises(StepError, match="Move from redis-server to valkey-server undone: redis-server runs again"):
        move.move_replica("redis", "acl", str(world["candidate"]))
    assert open(world["new"].config).read() == "# the package's\n"  # the package's file is back
    assert calls[-3:] == [("unmask", "redis-server"), ("reset-failed", "redis-server"), ("start", "redis-server")]
    assert ("mask", "valkey-server") in calls


MYID = "0123456789abcdef0123456789abcdef01234567"


@pytest.mark.parametrize(
    "text,found",
    [
        (f"port 26379\nsentinel myid {MYID}\nsentinel current-epoch 3\n", MYID),
        ("port 26379\n", None),
        ("sentinel myid 0123; rm -rf /\n", None),  # only an id of 40 hex digits passes
        (f"sentinel myid {MYID.upper()}\n", None),
    ],
)
def test_a_moving_sentinel_takes_the_old_ones_id_and_nothing_else(tmp_path, text, found):
    conf = tmp_path / "sentinel.conf"
    conf.write_text(text)
    assert server.sentinel_myid(str(conf)) == found


def test_the_old_sentinels_id_is_not_read_through_a_link_or_a_fifo(tmp_path):
    """/etc/redis is the redis user's: a link there could point root at any file."""
    target = tmp_path / "elsewhere.conf"
    target.write_text(f"sentinel myid {MYID}\n")
    (tmp_path / "link.conf").symlink_to(target)
    os.mkfifo(tmp_path / "fifo.conf")
    assert server.sentinel_myid(str(tmp_path / "link.conf")) is None
    assert server.sentinel_myid(str(tmp_path / "fifo.conf")) is None  # and it does not block
    assert server.sentinel_myid(str(tmp_path / "missing.conf")) is None


def test_the_new_sentinels_file_gets_the_logins_and_the_old_ones_id(tmp_path, monkeypatch):
    from smart_redis.host import steps

    monkeypatch.setattr(steps, "read_credentials", lambda: {"REDIS_SENTINEL_PASSWORD": "s3cret"})
    old = tmp_path / "old-sentinel.conf"
    old.write_text(f"sentinel myid {MYID}\n")
    staged = tmp_path / "staged.conf"
    staged.write_text("port 26379\n")
    assert steps.main(["--server", "valkey", "sentinel-auth", str(staged), "smart-trade", "--myid-from", str(old)]) == 0
    assert staged.read_text() == (
        f"port 26379\nsentinel auth-pass smart-trade s3cret\nsentinel sentinel-pass s3cret\nsentinel myid {MYID}\n"
    )
    staged.write_text("port 26379\n")  # a first sentinel: no id to take, Sentinel makes its own
    assert steps.main(["sentinel-auth", str(staged), "smart-trade"]) == 0
    assert "myid" not in staged.read_text()
