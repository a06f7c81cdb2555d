"""The restore's swap: the staged snapshot under a stopped server, checked after the start, and
undone on any failure, so that no half-rebuilt host remains."""

from __future__ import annotations

import grp
import json
import os
import pwd
import time

from .counts import compare_counts
from .info import parse_keyspace
from .resp import RedisError
from .restart import StepError, _poll, _unlink
from .server import admin, failure_reason, log_tail, serving
from .systemctl import run_systemctl

# Root's own directory: the snapshot and its counts wait there, not in the data directory that
# the server's user controls.
STAGE_DIR = "/var/lib/smart-redis/restore"
STAGED = f"{STAGE_DIR}/snapshot.rdb"
STAGED_COUNTS = f"{STAGE_DIR}/snapshot.rdb.counts.json"
# The dataset the restore replaces, kept until the restored one has passed its checks.
KEPT = f"{STAGE_DIR}/dump.rdb.before-restore"
START_WORDS = ("FATAL", "Bad", "Could not", "Failed", "rror")


def _check(port: int, auth: str, counts_file: str | None) -> tuple[bool, str]:
    """Whether the started server holds what the snapshot's counts predict, and the line that says so."""
    if not _poll(120, lambda: admin(port, auth).call("PING") == "PONG"):
        return False, f"{serving().service} does not answer after the start on the snapshot"
    if counts_file is None:
        return True, "key counts not checked (no counts file next to the snapshot)"
    try:
        keyspace = admin(port, auth).call("INFO", "keyspace")
    except (OSError, RedisError) as exc:
        return False, f"INFO keyspace failed: {exc}"
    try:
        with open(counts_file) as f:
            return compare_counts(json.load(f), parse_keyspace(keyspace), time.time())
    except Exception as exc:  # noqa: BLE001 - a counts file we cannot read checks nothing: undo
        return False, f"the counts file cannot be compared ({type(exc).__name__}: {exc})"


def swap(port: int, auth: str, name: str, with_counts: bool) -> str:
    """Stop the server, put the snapshot in place, start it and check the keys; on failure put the
    replaced dataset back and start the server on it. Returns the check's line."""
    server = serving()
    data = f"{server.data_dir}/dump.rdb"
    staging = os.path.dirname(STAGED)
    if os.stat(staging).st_dev != os.stat(server.data_dir).st_dev:
        # The snapshot reaches the data folder by one rename; refused before the server stops.
        raise StepError(
            f"Restore of {name} not started: {server.data_dir} is on another filesystem than {staging}; "
            f"{server.service} runs on as it was"
        )
    run_systemctl("stop", server.service)
    try:
        # The stop saved the dataset being replaced: it is what a rollback brings back. Without
        # one, a KEPT left by a run that broke off here is the dataset, and stays.
        if os.path.exists(data):
            _unlink(KEPT)
            os.replace(data, KEPT)
        os.chown(STAGED, pwd.getpwnam(server.user).pw_uid, grp.getgrnam(server.group).gr_gid)
        os.chmod(STAGED, 0o660)
        os.replace(STAGED, data)
        if run_systemctl("start", server.service):
            ok, result = _check(port, auth, STAGED_COUNTS if with_counts else None)
        else:
            ok, result = (
                False,
                f"{server.service} did not start on the snapshot: " + failure_reason(log_tail(), START_WORDS, 2),
            )
    except Exception as exc:  # noqa: BLE001 - whatever broke, the previous dataset goes back
        ok, result = False, f"the restore broke off: {type(exc).__name__}: {exc}"
    _unlink(STAGED_COUNTS)
    if ok:
        return result
    run_systemctl("stop", server.service)
    _unlink(data)
    if os.path.exists(KEPT):
        os.replace(KEPT, data)
    run_systemctl("reset-failed", server.service)
    if run_systemctl("start", server.service):
        now = f"the previous dataset is loaded again and {server.service} runs on it"
    else:
        now = f"the previous dataset is back in place, but {server.service} does not start on it either"
    raise StepError(f"Restore of {name} undone, {now}. {result}")
