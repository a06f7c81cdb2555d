"""Rebuild after failure: put an RDB snapshot from the operator's machine under a fresh server.

Only a server with an empty dataset is restored (unless redis_restore_force): an accidental
re-run never overwrites live data with an old snapshot. The snapshot is checked on the host
with redis-check-rdb before the server is touched, and the key counts per DB recorded at
backup time (NAME.rdb.counts.json, when present) are compared after the start.
"""

from __future__ import annotations

import shlex
from io import StringIO
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FactBase, FileUploadCommand, operation

from . import auth
from .constants import PATHS, SERVICE
from .settings import Settings

STAGED = f"{PATHS.data_dir}/restore.rdb"
STAGED_COUNTS = f"{PATHS.data_dir}/restore.counts.json"

COMPARE = """python3 - <<'EOF'
import json, subprocess, sys
expected = json.load(open("{counts}"))["keys"]
info = subprocess.run(["sh", "-c", {cli!r} + " info keyspace"], capture_output=True, text=True).stdout
actual = {{}}
for line in info.splitlines():
    if line.startswith("db"):
        name, _, fields = line.partition(":")
        actual[name[2:]] = int(dict(f.split("=") for f in fields.split(","))["keys"])
wrong = [f"db{{db}}: {{actual.get(db, 0)}} keys, {{n}} at backup time" for db, n in sorted(expected.items()) if actual.get(db, 0) != n]
wrong += [f"db{{db}}: {{n}} keys, none at backup time" for db, n in sorted(actual.items()) if db not in expected]
if wrong:
    sys.exit("restored key counts differ from the backup's: " + "; ".join(wrong))
print("key counts match the backup: " + ", ".join(f"db{{d}}={{n}}" for d, n in sorted(expected.items())))
EOF"""


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
        return (
            f"test -s {path} && redis-check-rdb {path} 2>/dev/null | sed -n 's/.*\\[info\\] \\([0-9]*\\) keys read.*/\\1/p'; true"
        )

    def process(self, output):
        return int(output[0]) if output and output[0].strip().isdigit() else 0

    def default(self):
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
        host.log(f"Restore skipped: the server holds {keys} keys (redis_restore_force=true overwrites them)",
                 logger.warning)
        host.noop("dataset is not empty")
        return
    source = Path(settings.restore_from)
    counts = source.with_name(source.name + ".counts.json")
    staged = shlex.quote(STAGED)
    yield FileUploadCommand(str(source), STAGED)
    # Checked before the server is touched: a corrupt or too-new snapshot stops here.
    yield (
        f"out=$(redis-check-rdb {staged} 2>&1); case \"$out\" in *'RDB looks OK'*) ;; "
        f"*) rm -f {staged}; echo \"{source.name} is not a snapshot this Redis can load: "
        "$(printf '%s' \"$out\" | grep -iE 'error|wrong|version|can.t' | head -n 2 | tr '\\n' ' ')\" >&2; exit 1 ;; esac"
    )
    # In a Sentinel group the live role counts, not the inventory's: a replica's restored data
    # would be replaced by its primary's at once.
    yield (
        f"( {cli} info replication ) 2>/dev/null | grep -q '^role:slave' && {{ rm -f {staged}; "
        "echo 'Restore refused: this server is a replica now; restore into the primary' >&2; exit 1; }; true"
    )
    yield "\n".join(
        [
            f"systemctl stop {SERVICE}",
            # The stop saved the empty dataset: the snapshot replaces that file now.
            f"mv -f {staged} {PATHS.data_dir}/dump.rdb",
            f"chown redis:redis {PATHS.data_dir}/dump.rdb && chmod 660 {PATHS.data_dir}/dump.rdb",
            f"systemctl start {SERVICE}",
        ]
    )
    if counts.exists():
        yield FileUploadCommand(StringIO(counts.read_text()), STAGED_COUNTS)
        yield COMPARE.format(counts=STAGED_COUNTS, cli=cli) + f"\nrc=$?; rm -f {STAGED_COUNTS}; exit $rc"
    else:
        host.log(f"No {counts.name} next to the snapshot: key counts are not checked", logger.warning)


def from_snapshot(settings: Settings) -> None:
    if settings.restore_from is not None:
        restore_snapshot(name=f"Restore {Path(settings.restore_from).name}", settings=settings)

