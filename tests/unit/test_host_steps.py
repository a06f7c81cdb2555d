"""The deploy's host-side steps (smart_redis/host): the credentials file and what is derived from
it, and the restart that saves first and rolls back. Real files in a temporary folder; Redis and
systemctl are stood in for only where the real ones run in tests/integration
(test_live_reconfiguration, test_backup, test_security)."""

from __future__ import annotations

import dataclasses
import os
import stat

import pytest

from smart_redis.host import restart, secret_files, server
from smart_redis.host.credentials import read_credentials
from smart_redis.host.resp import RedisError
from smart_redis.host.server import REDIS

STORED = "S" * 48
GIVEN = "G" * 40


def _mode(path) -> int:
    return stat.S_IMODE(os.lstat(path).st_mode)


@pytest.fixture
def files(tmp_path):
    stored, given = tmp_path / "credentials", tmp_path / "credentials.given"
    stored.write_text(f"{secret_files.HEADER}REDIS_APP_USER='app'\nREDIS_APP_PASSWORD='{STORED}'\n")
    given.write_text(f"REDIS_ADMIN_PASSWORD='{GIVEN}'\n")
    return stored, given


def test_compose_takes_given_then_stored_then_generates(files):
    stored, given = files
    secret_files.compose({"APP": "smart-trade", "ADMIN": "admin", "EXPORTER": "metrics"}, str(stored), str(given))
    values = read_credentials(str(stored))
    assert values["REDIS_APP_PASSWORD"] == STORED and values["REDIS_APP_USER"] == "smart-trade"
    assert values["REDIS_ADMIN_PASSWORD"] == GIVEN
    generated = values["REDIS_EXPORTER_PASSWORD"]
    assert len(generated) == secret_files.GENERATED_LENGTH and generated.isalnum() and generated not in (STORED, GIVEN)
    assert _mode(stored) == 0o600 and os.stat(stored).st_uid == 0
    assert not given.exists()  # the upload is gone once composed
    assert not (stored.parent / "credentials.new").exists()


def test_compose_is_stable_and_shell_readable(files):
    stored, given = files
    secret_files.compose({"APP": "app"}, str(stored), str(given))
    first = stored.read_text()
    secret_files.compose({"APP": "app"}, str(stored), str(given))
    assert stored.read_text() == first == f"{secret_files.HEADER}REDIS_APP_USER='app'\nREDIS_APP_PASSWORD='{STORED}'\n"


def test_a_planted_link_is_replaced_not_followed(tmp_path):
    """Root writes beside the target and renames: a link at the target or at its .new is never written through."""
    victim = tmp_path / "victim"
    victim.write_text("untouched\n")
    target = tmp_path / "exporter.env"
    target.symlink_to(victim)
    (tmp_path / "exporter.env.new").symlink_to(victim)
    secret_files.write_private(str(target), "REDIS_USER='m'\n")
    assert victim.read_text() == "untouched\n"
    assert not target.is_symlink() and target.read_text() == "REDIS_USER='m'\n" and _mode(target) == 0o600


def test_derived_files_hold_one_login_only(files):
    stored, given = files
    secret_files.compose({"ADMIN": "admin", "EXPORTER": "metrics"}, str(stored), str(given))
    exporter = secret_files.login_lines("EXPORTER", "REDIS_", str(stored))
    password = read_credentials(str(stored))["REDIS_EXPORTER_PASSWORD"]
    assert exporter == f"REDIS_USER='metrics'\nREDIS_PASSWORD='{password}'\n"
    assert GIVEN not in exporter
    assert secret_files.masterauth("pw", "/c") == "# Written by the smart-redis deploy from /c.\nmasterauth pw\n"


# --- restart: SAVE first, roll back (issue 14, item 18) ---


class Server:
    """Stands in for the local Redis: records which login a SAVE used and answers as told."""

    def __init__(self, replies: dict[str, object]):
        self.replies, self.logins = replies, []

    def __call__(self, port, auth, credentials=server.CREDENTIALS, address="127.0.0.1", timeout=5.0):
        self.logins.append(credentials)
        reply = self.replies[credentials]
        if isinstance(reply, Exception):
            raise reply
        return type("Client", (), {"call": lambda _self, *args: reply})()


@pytest.fixture
def host_files(tmp_path, monkeypatch):
    previous = tmp_path / "credentials.previous"
    monkeypatch.setattr(server, "PREVIOUS", str(previous))
    calls: list[tuple[str, ...]] = []
    outcomes: list[bool] = []
    monkeypatch.setattr(restart, "run_systemctl", lambda *args: calls.append(args) or outcomes.pop(0))
    monkeypatch.setattr(restart, "log_tail", lambda: ["1:M 27 Nov 2026 16:00:00.000 # Could not bind: in use\n"])
    config, candidate = tmp_path / "redis.conf", tmp_path / "redis.conf.candidate"
    config.write_text("port 6379\n")
    candidate.write_text("port 6380\n")
    return previous, calls, outcomes, config, candidate


def test_the_save_logs_in_with_the_previous_password_while_a_rotation_runs(host_files, monkeypatch):
    previous, _, _, _, candidate = host_files
    previous.write_text("REDIS_ADMIN_USER='admin'\n")
    redis = Server({server.CREDENTIALS: RedisError("WRONGPASS"), str(previous): "OK"})
    monkeypatch.setattr(server, "admin", redis)
    restart.save_first(6379, "acl", str(candidate))
    assert redis.logins == [server.CREDENTIALS, str(previous)]
    assert candidate.exists()


def test_a_failed_save_stops_the_restart(host_files, monkeypatch):
    _, calls, _, config, candidate = host_files
    monkeypatch.setattr(server, "admin", Server({server.CREDENTIALS: RedisError("MISCONF Errors writing to disk")}))
    with pytest.raises(restart.StepError, match=r"SAVE before the restart failed \(MISCONF Errors writing"):
        restart.save_first(6379, "acl", str(candidate))
    assert not candidate.exists() and config.read_text() == "port 6379\n" and calls == []


@pytest.mark.parametrize(
    "busy",
    [
        # Under steady writes a save point starts a BGSAVE every minute: found by the handover test.
        "ERR Background save already in progress",
        # A replica loads the dataset of a full sync (a primary just demoted): found by make test.
        "LOADING Redis is loading the dataset in memory",
    ],
)
def test_the_save_waits_while_the_server_is_busy(host_files, monkeypatch, busy):
    _, _, _, _, candidate = host_files
    replies = [RedisError(busy)] * 3 + ["OK"]
    asked: list[tuple] = []

    class Busy:
        def call(self, *args):
            if args == ("PING",):
                return "PONG"
            asked.append(args)
            reply = replies.pop(0)
            if isinstance(reply, Exception):
                raise reply
            return reply

    monkeypatch.setattr(server, "admin", lambda *args, **kwargs: Busy())
    monkeypatch.setattr(restart.time, "sleep", lambda seconds: None)
    restart.save_first(6379, "acl", str(candidate))
    assert asked == [("SAVE",)] * 4 and candidate.exists()


def test_the_save_waits_while_a_loading_replica_refuses_the_logins_ping(host_files, monkeypatch):
    """A primary demoted by the handover loads its new primary's dataset: PING (the login's check)
    answers LOADING as SAVE does, until the load ends. Found by make test (600 000 keys)."""
    _, _, _, _, candidate = host_files
    pings = [RedisError("LOADING Redis is loading the dataset in memory")] * 3 + ["PONG"]
    asked: list[tuple] = []

    class Loading:
        def call(self, *args):
            asked.append(args)
            reply = pings.pop(0) if args == ("PING",) else "OK"
            if isinstance(reply, Exception):
                raise reply
            return reply

    monkeypatch.setattr(server, "admin", lambda *args, **kwargs: Loading())
    monkeypatch.setattr(restart.time, "sleep", lambda seconds: None)
    restart.save_first(6379, "none", str(candidate))
    assert asked == [("PING",)] * 4 + [("SAVE",)] and candidate.exists()


def test_a_loading_server_during_a_rotation_is_waited_for_not_taken_for_a_wrong_password(host_files, monkeypatch):
    """While a rotation runs the login tries the previous password too, which the loading server
    refuses the same way or, once it has loaded, as WRONGPASS: the LOADING is what counts."""
    previous, _, _, _, candidate = host_files
    previous.write_text("REDIS_ADMIN_USER='admin'\n")
    answers = [RedisError("LOADING Redis is loading the dataset in memory"), RedisError("WRONGPASS")] * 2

    def admin(port, auth, credentials=server.CREDENTIALS, address="127.0.0.1", timeout=5.0):
        reply = answers.pop(0) if answers else "OK"
        if isinstance(reply, Exception):
            raise reply
        return type("Client", (), {"call": lambda _self, *args: "OK"})()

    monkeypatch.setattr(server, "admin", admin)
    monkeypatch.setattr(restart.time, "sleep", lambda seconds: None)
    restart.save_first(6379, "acl", str(candidate))
    assert not answers and candidate.exists()


def test_a_restart_that_works_keeps_the_new_file(host_files):
    _, calls, outcomes, config, candidate = host_files
    outcomes.append(True)
    restart.restart_with_rollback(str(config), str(candidate))
    assert config.read_text() == "port 6380\n" and not candidate.exists()
    assert not (config.parent / "redis.conf.previous").exists()
    assert calls == [("restart", "redis-server")]


@pytest.mark.parametrize(
    ("second_start", "said"), [(True, "in place and running"), (False, "does not start on it either")]
)
def test_a_restart_that_fails_puts_the_previous_file_back(host_files, second_start, said):
    _, calls, outcomes, config, candidate = host_files
    outcomes += [False, True, second_start]
    with pytest.raises(restart.StepError) as error:
        restart.restart_with_rollback(str(config), str(candidate))
    assert config.read_text() == "port 6379\n"
    assert said in str(error.value) and str(error.value).endswith("Redis said: # Could not bind: in use")
    assert calls == [("restart", "redis-server"), ("reset-failed", "redis-server"), ("restart", "redis-server")]


def test_online_replicas_counts_only_online_ones():
    info = {
        "role": "master",
        "slave0": "ip=10.0.0.3,port=6379,state=online,offset=1,lag=0",
        "slave1": "ip=10.0.0.4,port=6379,state=wait_bgsave,offset=0,lag=0",
        "slave_read_repl_offset": "1",
    }
    assert restart.online_replicas(info) == 1
    # a member that moves: only the others count (10.0.0.3 is not 10.0.0.33)
    info["slave1"] = "ip=10.0.0.33,port=6379,state=online,offset=1,lag=0"
    assert restart.online_replicas(info, besides="10.0.0.3") == 1
    assert restart.online_replicas(info, besides="10.0.0.33") == 1 and restart.online_replicas(info) == 2


def test_failure_reason_keeps_the_last_matching_lines_without_prefix():
    tail = ["1:M 27 Nov 2026 16:00:00.000 * Ready\n", "1:M 27 Nov 2026 16:00:01.000 # FATAL CONFIG FILE ERROR\n"]
    assert server.failure_reason(tail, ("FATAL",)) == "# FATAL CONFIG FILE ERROR"


def test_the_previous_file_replaces_a_planted_link_instead_of_writing_through_it(host_files, tmp_path):
    """/etc/redis is the redis user's: a link at redis.conf.previous must not turn root's copy into
    a write (and a chown to redis) of the file it points at."""
    _, _, outcomes, config, candidate = host_files
    victim = tmp_path / "shadow"
    victim.write_text("root:x:0:\n")
    victim.chmod(0o640)
    (config.parent / "redis.conf.previous").symlink_to(victim)
    config.chmod(0o640)
    outcomes += [False, True, True]
    with pytest.raises(restart.StepError):
        restart.restart_with_rollback(str(config), str(candidate))
    assert victim.read_text() == "root:x:0:\n" and _mode(victim) == 0o640
    assert config.read_text() == "port 6379\n" and _mode(config) == 0o640


# --- the restore's swap: any failure after the stop brings the replaced dataset back ---


@pytest.fixture
def swap_files(tmp_path, monkeypatch):
    from smart_redis.host import restore_swap

    paths = {name: tmp_path / name for name in ("dump.rdb", "kept.rdb", "snapshot.rdb", "counts.json")}
    served = dataclasses.replace(REDIS, data_dir=str(tmp_path))  # its dump.rdb is paths["dump.rdb"]
    monkeypatch.setattr(restore_swap, "serving", lambda: served)
    for attr, name in (
        ("KEPT", "kept.rdb"),
        ("STAGED", "snapshot.rdb"),
        ("STAGED_COUNTS", "counts.json"),
    ):
        monkeypatch.setattr(restore_swap, attr, str(paths[name]))
    calls: list[tuple[str, ...]] = []
    monkeypatch.setattr(restore_swap, "run_systemctl", lambda *args: calls.append(args) or True)
    paths["dump.rdb"].write_text("the live dataset")
    paths["snapshot.rdb"].write_text("the snapshot")
    return restore_swap, paths, calls, monkeypatch


def test_a_counts_file_that_cannot_be_compared_undoes_the_restore(swap_files):
    restore_swap, paths, calls, monkeypatch = swap_files
    monkeypatch.setattr(restore_swap.pwd, "getpwnam", lambda name: type("P", (), {"pw_uid": os.getuid()}))
    monkeypatch.setattr(restore_swap.grp, "getgrnam", lambda name: type("G", (), {"gr_gid": os.getgid()}))
    replies = {"PING": "PONG", "INFO": "# Keyspace\r\ndb0:keys=1,expires=0\r\n"}
    monkeypatch.setattr(
        restore_swap, "admin", lambda *a, **k: type("C", (), {"call": lambda _s, *args: replies[args[0]]})()
    )
    paths["counts.json"].write_text('{"keys": []}')  # passes the deploy's look, breaks the comparison
    with pytest.raises(restart.StepError, match="Restore of dump-1.rdb undone, the previous dataset is loaded again"):
        restore_swap.swap(6379, "acl", "dump-1.rdb", with_counts=True)
    assert paths["dump.rdb"].read_text() == "the live dataset"
    assert calls[-2:] == [("reset-failed", "redis-server"), ("start", "redis-server")]


def test_a_swap_that_breaks_off_after_the_stop_puts_the_dataset_back(swap_files):
    restore_swap, paths, calls, monkeypatch = swap_files

    def no_such_user(name):
        raise KeyError(name)

    monkeypatch.setattr(restore_swap.pwd, "getpwnam", no_such_user)
    with pytest.raises(restart.StepError, match="the restore broke off: KeyError"):
        restore_swap.swap(6379, "acl", "dump-1.rdb", with_counts=False)
    assert paths["dump.rdb"].read_text() == "the live dataset" and not paths["kept.rdb"].exists()


def test_a_dataset_kept_by_a_broken_run_is_not_thrown_away(swap_files):
    """A run that broke off between stop and swap leaves the dataset only in KEPT: the next
    restore must not delete it before it has a dataset to keep instead."""
    restore_swap, paths, calls, monkeypatch = swap_files
    paths["dump.rdb"].rename(paths["kept.rdb"])
    monkeypatch.setattr(restore_swap.pwd, "getpwnam", lambda name: (_ for _ in ()).throw(KeyError(name)))
    with pytest.raises(restart.StepError):
        restore_swap.swap(6379, "acl", "dump-1.rdb", with_counts=False)
    assert paths["dump.rdb"].read_text() == "the live dataset"


def test_a_data_folder_on_another_filesystem_is_refused_before_the_server_stops(swap_files):
    restore_swap, paths, calls, monkeypatch = swap_files
    real_stat = os.stat
    data_dir = str(paths["dump.rdb"].parent)

    class Elsewhere:
        st_dev = -1

    monkeypatch.setattr(restore_swap, "STAGED", "/stage/snapshot.rdb")
    monkeypatch.setattr(restore_swap.os, "stat", lambda p, *a, **k: Elsewhere if p == "/stage" else real_stat(p))
    with pytest.raises(restart.StepError, match=f"{data_dir} is on another filesystem than /stage"):
        restore_swap.swap(6379, "acl", "dump-1.rdb", with_counts=False)
    assert calls == [] and paths["dump.rdb"].read_text() == "the live dataset"
