"""The backup job's wait for a server that restarts (smart_redis/host/snapshots.py): a snapshot due
while the deploy or a package restarts the server waits for it; one that an operator stopped fails."""

from __future__ import annotations

import os
import pwd

import pytest

from smart_redis.host.resp import RedisError
from smart_redis.host.server import open_plain_file
from smart_redis.host.snapshots import RESTART_SECONDS, SETTLE_SECONDS, BackupError, running_server, wait_for_snapshot


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.now += seconds


class Server:
    def __init__(self, loading: bool):
        self.loading = loading

    def info(self, section: str) -> dict:
        return {"loading": "1" if self.loading else "0"}


def run(states: list[str], connects: list[object]) -> tuple[object, float]:
    """states: systemd's answer at each poll (the last one stays); connects: what each connection
    attempt gives (a Server, or an exception to raise; the last one stays). Returns what
    running_server returned or raised, and the seconds it waited."""
    clock, polls, tries = Clock(), iter(states), iter(connects)

    def connect():
        got = next(tries, connects[-1])
        if isinstance(got, Exception):
            raise got
        return got

    try:
        got = running_server(lambda: next(polls, states[-1]), connect, "redis-server", clock=clock, sleep=clock.sleep)
    except BackupError as exc:
        got = exc
    return got, clock.now


READY = Server(loading=False)


@pytest.mark.parametrize(
    ("states", "connects", "waited"),
    [
        (["active"], [READY], 0),  # the usual case: no wait
        (["deactivating", "activating", "activating", "active"], [READY], 3),  # a restart in progress
        (["inactive", "activating", "active"], [READY], 2),  # the moment between stop and start
        (["active"], [Server(loading=True), Server(loading=True), READY], 2),  # loading its data after the start
        (["active"], [ConnectionRefusedError("refused"), READY], 1),  # started, not listening yet
        (["activating"] * 60 + ["active"], [READY], 60),  # a long restart: a large data set to save and load
    ],
)
def test_a_snapshot_waits_for_a_restart_in_progress(states, connects, waited):
    server, took = run(states, connects)
    assert server is READY and took == waited


@pytest.mark.parametrize(
    ("states", "connects", "said", "after"),
    [
        (["inactive"], [READY], "redis-server is inactive, not running: no snapshot taken", SETTLE_SECONDS),
        (["failed"], [READY], "redis-server is failed, not running", SETTLE_SECONDS),
        (["activating"], [READY], "redis-server is activating, not running", RESTART_SECONDS),
        (["active"], [Server(loading=True)], "still loading its data", RESTART_SECONDS),
        (["active"], [RedisError("WRONGPASS invalid username-password pair")], "does not answer: WRONGPASS", RESTART_SECONDS),
    ],
)  # fmt: skip
def test_a_server_that_stays_down_fails_the_job_with_one_line(states, connects, said, after):
    error, took = run(states, connects)
    assert isinstance(error, BackupError) and said in str(error)
    assert after < took <= after + 1  # no later than the bound (and one poll): the timer never starts it


class Saving:
    """A server's BGSAVE as INFO persistence and LASTSAVE show it: `before` polls of another save
    still running, then ours for `polls` polls, ending with `status`; `refusals` BGSAVE errors
    first; with `followed`, another save starts as ours ends (a replica's full sync), for ever."""

    def __init__(self, before: int = 0, polls: int = 3, status: str = "ok", refusals: int = 0, followed=False):
        self.before, self.polls, self.status, self.refusals, self.followed = before, polls, status, refusals, followed
        self.bgsaves, self.lastsave = 0, 1_700_000_000

    def info(self, section: str) -> dict:
        if self.before:
            self.before -= 1
            return {"rdb_bgsave_in_progress": "1", "rdb_last_bgsave_status": "ok"}
        running = self.bgsaves > 0 and self.polls > 0
        self.polls -= running
        done = self.bgsaves > 0 and not running
        if done and self.status == "ok" and self.lastsave == 1_700_000_000:
            self.lastsave += 1  # ours ended with success
        return {
            "rdb_bgsave_in_progress": "1" if running or (done and self.followed) else "0",
            "rdb_last_bgsave_status": self.status if done else "ok",
        }

    def call(self, *command: str):
        if command == ("LASTSAVE",):
            return self.lastsave
        assert command == ("BGSAVE",), command
        if self.refusals:
            self.refusals -= 1
            raise RedisError("ERR Background save already in progress")
        self.bgsaves += 1
        return "Background saving started"


@pytest.mark.parametrize(
    ("server", "waited"),
    [
        (Saving(polls=0), 0.0),  # an empty data set: saved before the first poll
        (Saving(polls=3), 0.15),  # each poll 50 ms, however near the next second the save ends
        (Saving(before=2, polls=1), 0.45),  # a save point's BGSAVE first: its end, then ours
        (Saving(refusals=1, polls=1), 0.25),  # one started between the poll and our BGSAVE
        (Saving(polls=2, followed=True), 0.1),  # a replica's sync saves right after ours: ours has ended
    ],
)
def test_a_snapshot_ends_when_its_save_does(server, waited):
    clock = Clock()
    wait_for_snapshot(server, timeout=60, clock=clock, sleep=clock.sleep)
    assert server.bgsaves == 1 and clock.now == pytest.approx(waited)


@pytest.mark.parametrize(
    ("server", "said"),
    [
        (Saving(polls=1, status="err"), "BGSAVE reported err"),
        (Saving(polls=10_000), "no snapshot within 60 s"),
        (Saving(before=10_000), "another save still runs after 60 s"),
    ],
)
def test_a_snapshot_that_fails_or_never_ends_fails_the_job(server, said):
    clock = Clock()
    with pytest.raises(BackupError, match=said):
        wait_for_snapshot(server, timeout=60, clock=clock, sleep=clock.sleep)
    assert clock.now <= 61


def _mine() -> str:
    return pwd.getpwuid(os.getuid()).pw_name


@pytest.mark.parametrize("planted", ["link", "fifo", "folder", "someone else's"])
def test_the_data_file_is_read_only_as_a_plain_file_of_its_owner(tmp_path, planted):
    """The backup's source is in the server user's folder: a link there (to a root-only file), a
    FIFO (which would block root) or a file of another user's is refused, never read."""
    import os

    from smart_redis.host.server import open_plain_file

    secret = tmp_path / "credentials"
    secret.write_text("REDIS_ADMIN_PASSWORD=x")
    dump = tmp_path / "dump.rdb"
    if planted == "link":
        dump.symlink_to(secret)
    elif planted == "fifo":
        os.mkfifo(dump)
    elif planted == "folder":
        dump.mkdir()
    else:
        dump.write_text("REDIS0011")
    owner = "nobody" if planted == "someone else's" else _mine()
    with pytest.raises(OSError):
        os.close(open_plain_file(str(dump), owner=owner))


def test_the_data_file_of_its_owner_is_read(tmp_path):
    dump = tmp_path / "dump.rdb"
    dump.write_text("REDIS0011")
    fd = open_plain_file(str(dump), owner=_mine())
    try:
        assert os.read(fd, 100) == b"REDIS0011"
    finally:
        os.close(fd)
