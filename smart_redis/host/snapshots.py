"""RDB snapshots: a BGSAVE that waits its turn, and the rotation of the backup directory."""

from __future__ import annotations

import os
import time

from .resp import Redis, RedisError


def rotate(directory: str, keep_hourly: int, keep_daily: int) -> list[str]:
    """Keep the newest keep_hourly snapshots and the newest of each of the last keep_daily days."""
    snapshots = sorted((f for f in os.listdir(directory) if f.startswith("dump-") and f.endswith(".rdb")), reverse=True)
    keep = set(snapshots[:keep_hourly])
    days: list[str] = []
    for name in snapshots:
        day = name[5:13]
        if day not in days:
            days.append(day)
            if len(days) <= keep_daily:
                keep.add(name)
    removed = [name for name in snapshots if name not in keep]
    for name in removed:
        for path in (os.path.join(directory, name), os.path.join(directory, name + ".counts.json")):
            if os.path.exists(path):
                os.unlink(path)
    return removed


class BackupError(RedisError):
    """A backup that cannot run, with the reason the job's journal shows."""


BACKUP_UNIT = "redis-backup.service"

# A snapshot due while the server restarts (the deploy's restart, a package's) waits for the
# restart to end, up to RESTART_SECONDS, and then loads: it does not fail, nor page anybody.
RESTART_SECONDS = 120.0
RESTARTING = ("activating", "deactivating", "reloading")
# A restart passes through "inactive" for a moment; a server an operator stopped stays there.
SETTLE_SECONDS = 5.0


def running_server(state_of, connect, service: str, clock=time.monotonic, sleep=time.sleep) -> Redis:
    """A connection to `service`'s server once it runs and has loaded its data.

    state_of(): systemd's ActiveState of the unit; connect(): a new admin connection. A server
    that stays stopped fails the job with one line: the timer never starts it.
    """
    start = clock()
    while True:
        state, waited = state_of() or "unknown", clock() - start
        if state == "active":
            try:
                server = connect()
                if server.info("persistence").get("loading") != "1":
                    return server
                reason = "it is still loading its data"
            except (OSError, RedisError) as exc:
                reason = f"it does not answer: {exc}"
            if waited > RESTART_SECONDS:
                raise BackupError(f"{service} runs, but {reason} after {RESTART_SECONDS:.0f} s: no snapshot taken")
        elif waited > (RESTART_SECONDS if state in RESTARTING else SETTLE_SECONDS):
            raise BackupError(
                f"{service} is {state}, not running: no snapshot taken (start it, or stop redis-backup.timer)"
            )
        sleep(1)


def wait_for_snapshot(r: Redis, timeout: float, clock=time.monotonic, sleep=time.sleep) -> None:
    """BGSAVE once no other save (a save point, a replica's sync, an AOF rewrite) runs, and wait for it."""
    deadline = clock() + timeout

    def busy() -> bool:
        info = r.info("persistence")
        return info.get("rdb_bgsave_in_progress") == "1" or info.get("aof_rewrite_in_progress") == "1"

    while True:
        while busy():
            if clock() > deadline:
                raise BackupError(f"another save still runs after {timeout} s")
            sleep(0.2)
        before = r.call("LASTSAVE")
        try:
            r.call("BGSAVE")
            break
        except RedisError as exc:
            # A save that started in between: wait for it too.
            if ("in progress" not in str(exc) and "child process is active" not in str(exc)) or clock() > deadline:
                raise BackupError(f"BGSAVE refused: {exc}") from None
            sleep(0.2)
    # The server forks the save's child before it answers BGSAVE: ours runs until the flag drops,
    # or, when another save follows at once (a replica's full sync), until LASTSAVE moves (it only
    # moves on a success, and in whole seconds: alone it would cost up to a second a snapshot).
    while r.info("persistence").get("rdb_bgsave_in_progress") == "1":
        if r.call("LASTSAVE") != before:
            return
        if clock() > deadline:
            raise BackupError(f"no snapshot within {timeout} s")
        sleep(0.05)
    status = r.info("persistence").get("rdb_last_bgsave_status")
    if status != "ok":
        raise BackupError(f"BGSAVE reported {status}")
