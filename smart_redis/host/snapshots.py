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
        # LASTSAVE counts seconds: ours must end in a later second than the one before it.
        while int(time.time()) <= before and clock() < deadline:
            sleep(0.05)
        try:
            r.call("BGSAVE")
            break
        except RedisError as exc:
            # A save that started in between: wait for it too.
            if ("in progress" not in str(exc) and "child process is active" not in str(exc)) or clock() > deadline:
                raise BackupError(f"BGSAVE refused: {exc}") from None
            sleep(0.2)
    while r.call("LASTSAVE") == before:
        info = r.info("persistence")
        if info.get("rdb_bgsave_in_progress") == "0" and info.get("rdb_last_bgsave_status") != "ok":
            raise BackupError(
                f"BGSAVE failed (rdb_last_bgsave_status {info.get('rdb_last_bgsave_status')}), see the Redis log"
            )
        if clock() > deadline:
            raise BackupError(f"no snapshot within {timeout} s")
        sleep(0.1)
    status = r.info("persistence").get("rdb_last_bgsave_status")
    if status != "ok":
        raise BackupError(f"BGSAVE reported {status}")
