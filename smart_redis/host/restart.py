"""Restarts of redis-server that lose nothing: SAVE first, roll back a file it does not start
on, and in a replication group wait until the group is whole before and after."""

from __future__ import annotations

import os
import stat
import time

from .resp import RedisError
from .server import CANDIDATE, failure_reason, log_tail, login, serving
from .systemctl import run_systemctl

SAVE_TIMEOUT = 600.0  # seconds a SAVE of a large dataset may take
# SAVE's answers while a save point's BGSAVE (or a replica's full sync) runs, or while a replica
# loads the dataset its primary just sent (found by make test: a demoted primary resyncs): wait.
SAVE_BUSY = ("in progress", "child process is active", "LOADING")
START_WORDS = ("FATAL", "Could not", "Failed", "rror")


class StepError(Exception):
    """The step failed: its message is the deploy's one line, and the host is as it says."""


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _keep_copy(source: str, copy: str) -> None:
    """copy = source, with its owner and mode, as a new file: /etc/redis is the redis user's
    (Sentinel rewrites its file there), so a link planted at `copy` is replaced, never followed."""
    _unlink(copy)
    # Not through a link, nor blocked on a FIFO, that the server's user planted there.
    with os.fdopen(os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK), "rb") as f:
        st = os.fstat(f.fileno())
        if not stat.S_ISREG(st.st_mode):
            raise StepError(f"{source} is not a plain file")
        text = f.read()
    fd = os.open(copy, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.write(fd, text)
        os.fchown(fd, st.st_uid, st.st_gid)
        os.fchmod(fd, stat.S_IMODE(st.st_mode))
    finally:
        os.close(fd)


def save_first(port: int, auth: str, candidate: str = CANDIDATE) -> None:
    """SAVE, as whoever the running server accepts, or stop: a restart after a failed SAVE loses
    every key written since the last snapshot (all of them with redis_save = "")."""
    deadline = time.monotonic() + SAVE_TIMEOUT
    while True:
        try:
            reply = _save(login(port, auth, timeout=SAVE_TIMEOUT), deadline)
        except (OSError, RedisError, KeyError) as exc:
            reply = str(exc) or type(exc).__name__
            # A replica that loads what its primary sent refuses the login's PING too: wait as SAVE does.
            if "LOADING" in reply and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
        break
    if reply == "OK":
        return
    _unlink(candidate)
    raise StepError(
        f"{serving().service} was not restarted: the SAVE before the restart failed ({reply}), and a restart would lose "
        "the keys written since the last snapshot; the server runs on, redis.conf is as it was"
    )


def _save(client, deadline: float | None = None) -> str:
    """SAVE, after the background save that runs now: under steady writes the save points start
    one every minute, and a large dataset takes seconds to write.

    deadline: time.monotonic() at which to give up (default: SAVE_TIMEOUT from now)."""
    deadline = time.monotonic() + SAVE_TIMEOUT if deadline is None else deadline
    while True:
        try:
            return client.call("SAVE")
        except RedisError as exc:
            if not any(words in str(exc) for words in SAVE_BUSY) or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


def restart_with_rollback(config: str | None = None, candidate: str = CANDIDATE) -> None:
    """Put the candidate in place and restart; if the server does not come up on it, put the
    previous file back and start on that."""
    service = serving().service
    config = config or serving().config
    previous = config + ".previous"
    if os.path.exists(config):
        _keep_copy(config, previous)
    os.replace(candidate, config)
    if run_systemctl("restart", service):
        _unlink(previous)
        return
    reason = failure_reason(log_tail(), START_WORDS)
    if os.path.exists(previous):
        os.replace(previous, config)
    run_systemctl("reset-failed", service)
    now = (
        "in place and running"
        if run_systemctl("restart", service)
        else f"in place, but {service} does not start on it either"
    )
    raise StepError(
        f"{service} did not start with the new configuration, so the previous one is back {now}. {serving().name.capitalize()} said: {reason}"
    )


def _poll(seconds: float, ask, every: float = 0.5):
    """ask() until it returns something true (errors count as not yet): that answer, or None at
    the deadline."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            answer = ask()
            if answer:
                return answer
        except (OSError, RedisError):
            pass
        if time.monotonic() >= deadline:
            return None
        time.sleep(every)


def wait_for_sync(port: int, auth: str, primary: str, seconds: float = 120) -> None:
    """Block until a restarted replica is in sync again, so that the next host restarts only then."""
    if not _poll(seconds, lambda: login(port, auth).info("replication").get("master_link_status") == "up"):
        raise StepError(
            f"{serving().service} is not in sync with its primary {primary} {int(seconds)} s after the restart"
        )


def online_replicas(info: dict[str, str], besides: str | None = None) -> int:
    """Replicas that INFO replication of a primary lists as online (but the one at `besides`)."""
    listed = [
        dict(part.split("=", 1) for part in value.split(",") if "=" in part)
        for key, value in info.items()
        if key.startswith("slave") and key[5:].isdigit()
    ]
    return sum(1 for fields in listed if fields.get("state") == "online" and fields.get("ip") != besides)


def group_in_sync(
    port: int, auth: str, primary: str, replicas: int, seconds: float = 60, besides: str | None = None
) -> None:
    """Wait until the primary has every replica of the group in sync (every one at another address
    than `besides`), else refuse to restart."""
    address, primary_port = primary.split()
    seen = [0]

    def whole() -> bool:
        seen[0] = online_replicas(login(int(primary_port), auth, address=address).info("replication"), besides)
        return seen[0] >= replicas

    if not _poll(seconds, whole):
        raise StepError(
            f"Not restarting {serving().service}: the primary {address}:{primary_port} has {seen[0]} of {replicas} replicas "
            "in sync, and this restart would take another server of the group away"
        )
