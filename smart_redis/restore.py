"""Rebuild after failure: put an RDB snapshot from the operator's machine under a fresh server.

Only a server with an empty dataset is restored (unless redis_restore_force): an accidental
re-run never overwrites live data with an old snapshot. The snapshot is checked on the host
with redis-check-rdb before the server is touched; after the start, what the counts recorded at
backup time (NAME.rdb.counts.json, when present) still predict is compared: keys without TTL
exactly, keys with one within what can have expired since (redis-monitor restore-check). A
restore that fails after the swap puts the previous dataset back and starts the server on it.
"""

from __future__ import annotations

import json
import shlex
from io import StringIO
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FactBase, FileUploadCommand

from . import auth
from .constants import PATHS, SERVICE
from .operations import operation
from .settings import Settings
from .tools import monitor_program

# Root's own directory: the snapshot, its counts and the check wait there, not in the data
# directory that the redis user controls.
STAGE_DIR = "/var/lib/smart-redis/restore"
STAGED = f"{STAGE_DIR}/snapshot.rdb"
STAGED_COUNTS = f"{STAGE_DIR}/snapshot.rdb.counts.json"
# redis-monitor, as the tools step installs it: its restore-check runs before that step on a fresh host.
CHECKER = f"{STAGE_DIR}/redis-monitor.py"
# The dataset the restore replaces, kept until the restored one has passed its checks.
KEPT = f"{STAGE_DIR}/dump.rdb.before-restore"
DATA = f"{PATHS.data_dir}/dump.rdb"


def check_snapshot(name: str) -> str:
    """redis-check-rdb on the staged snapshot; a corrupt or too new one stops the run here."""
    staged = shlex.quote(STAGED)
    return (
        f"out=$(redis-check-rdb {staged} 2>&1); case \"$out\" in *'RDB looks OK'*) ;; "
        f"*) rm -f {staged}; printf '%s is not a snapshot this Redis can load: %s\\n' {shlex.quote(name)} "
        "\"$(printf '%s' \"$out\" | grep -iE 'error|wrong|version|can.t' | head -n 2 | tr '\\n' ' ')\" >&2; exit 1 ;; esac"
    )


def swap_script(cli: str, name: str, check_counts: bool) -> str:
    """Stop the server, put the snapshot in place, start it and check the keys; on any failure
    put the replaced dataset back and start the server on it, so no half-rebuilt host remains."""
    q = shlex.quote
    log = q(PATHS.logfile)
    if check_counts:
        check = (
            f"result=$( {{ ( {cli} info keyspace ) 2>/dev/null | python3 {q(CHECKER)} restore-check "
            f"{q(STAGED_COUNTS)}; }} 2>&1 ) && ok=1"
        )
    else:
        check = "result='key counts not checked (no counts file next to the snapshot)' && ok=1"
    return "\n".join(
        [
            f"data={q(DATA)}; kept={q(KEPT)}; ok=0",
            f"systemctl stop {SERVICE}",
            # The stop saved the dataset being replaced: it is what a rollback brings back.
            'rm -f "$kept"; if [ -e "$data" ]; then mv -f "$data" "$kept"; fi',
            f'chown redis:redis {q(STAGED)} && chmod 660 {q(STAGED)} && mv -f {q(STAGED)} "$data"',
            f"if systemctl start {SERVICE}; then",
            f"  for _ in $(seq 20); do ( {cli} ping ) 2>/dev/null | grep -q PONG && break; sleep 0.5; done",
            f"  {check}",
            "else",
            f"  result=\"redis-server did not start on the snapshot: $(tail -n 30 {log} | grep -E 'FATAL|Bad|Could not|Failed|rror' "
            "| tail -n 2 | cut -d' ' -f5- | tr '\\n' ' ')\"",
            "fi",
            f"rm -f {q(STAGED_COUNTS)} {q(CHECKER)}",
            'if [ "$ok" = 1 ]; then printf \'%s\\n\' "$result"; exit 0; fi',
            f"systemctl stop {SERVICE}",
            'rm -f "$data"; if [ -e "$kept" ]; then mv -f "$kept" "$data"; fi',
            f"systemctl reset-failed {SERVICE}",
            f"if systemctl start {SERVICE}; then state='the previous dataset is loaded again and redis-server runs on it'; "
            "else state='the previous dataset is back in place, but redis-server does not start on it either'; fi",
            f'printf \'Restore of %s undone, %s. %s\\n\' {q(name)} "$state" "$result" >&2',
            "exit 1",
        ]
    )


class RedisKeyCount(FactBase):
    """Keys in all DBs of the running server; None when it does not answer."""

    def command(self, cli: str) -> str:
        return f"( {cli} info keyspace ) 2>/dev/null; true"

    def process(self, output):
        lines = list(output)
        if not any(line.startswith("# Keyspace") for line in lines):
            return None
        return sum(int(line.split("keys=")[1].split(",")[0]) for line in lines if line.startswith("db"))


class RdbKeyCount(FactBase):
    """Keys in an RDB file (what a stopped server loads at its next start); 0 when there is none."""

    def command(self, path: str) -> str:
        return f"test -s {shlex.quote(path)} && redis-check-rdb {shlex.quote(path)} 2>/dev/null | sed -n 's/.*\\[info\\] \\([0-9]*\\) keys read.*/\\1/p'; true"

    def process(self, output):
        return int(output[0]) if output and output[0].strip().isdigit() else 0

    @staticmethod
    def default() -> int:
        return 0


@operation()
def restore_snapshot(settings: Settings):
    """
    Restore settings.restore_from into an empty server, then check key counts per DB.

    + settings: restore_from (a local .rdb), restore_force, port and auth of the server

    **Example:**

    .. code:: python

        restore_snapshot(name="Restore the snapshot", settings=settings)
    """
    cli = auth.cli(settings.port, settings.auth)
    keys = host.get_fact(RedisKeyCount, cli=cli)
    if keys is None and not settings.restore_force:
        yield "echo 'Restore refused: the server does not answer, so its dataset cannot be checked for being empty' >&2; exit 1"
        return
    if keys and not settings.restore_force:
        host.log(
            f"Restore skipped: the server holds {keys} keys (redis_restore_force=true overwrites them)", logger.warning
        )
        host.noop("dataset is not empty")
        return
    assert settings.restore_from is not None  # from_snapshot() restores only when it is set
    source = Path(settings.restore_from)
    counts = source.with_name(source.name + ".counts.json")
    counts_text = counts.read_text() if counts.exists() else None
    if counts_text is not None:
        try:
            json.loads(counts_text)["keys"]
        except (ValueError, KeyError, TypeError):
            message = f"{counts.name} next to redis_restore_from is not a counts file of redis-monitor backup"
            yield f"printf '%s\\n' {shlex.quote(message)} >&2; exit 1"
            return
    staged = shlex.quote(STAGED)
    yield f"mkdir -p {shlex.quote(STAGE_DIR.rsplit('/', 1)[0])} && install -d -m 700 {shlex.quote(STAGE_DIR)} && rm -f {staged}"
    yield FileUploadCommand(str(source), STAGED)
    # Checked before the server is touched: a corrupt or too-new snapshot stops here.
    yield check_snapshot(source.name)
    # In a Sentinel group the live role counts, not the inventory's: a replica's restored data
    # would be replaced by its primary's at once.
    yield (
        f"( {cli} info replication ) 2>/dev/null | grep -q '^role:slave' && {{ rm -f {staged}; "
        "echo 'Restore refused: this server is a replica now; restore into the primary' >&2; exit 1; }; true"
    )
    if counts_text is not None:
        yield FileUploadCommand(StringIO(counts_text), STAGED_COUNTS)
        yield FileUploadCommand(StringIO(monitor_program()), CHECKER)
    else:
        host.log(f"No {counts.name} next to the snapshot: key counts are not checked", logger.warning)
    yield swap_script(cli, source.name, check_counts=counts_text is not None)


def from_snapshot(settings: Settings) -> None:
    if settings.restore_from is not None:
        restore_snapshot(name=f"Restore {Path(settings.restore_from).name}", settings=settings)
