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
from pyinfra.api import FactBase

from . import auth
from .host.restore_swap import STAGE_DIR, STAGED, STAGED_COUNTS
from .host.server import REDIS, SERVERS, Server
from .operations import operation, upload
from .settings import Settings
from .tools import step


def check_snapshot(name: str, server: Server = REDIS, staged_path: str = STAGED) -> str:
    """The server's RDB checker (as its user) on the staged snapshot; a corrupt or too new one stops the run here."""
    staged = shlex.quote(staged_path)
    return (
        f"out=$({shlex.join(server.rdb_checker())} 2>&1 < {staged}); case \"$out\" in *'RDB looks OK'*) ;; "
        f"*) rm -f {staged}; printf '%s is not a snapshot this {server.name.capitalize()} can load: %s\\n' {shlex.quote(name)} "
        "\"$(printf '%s' \"$out\" | grep -iE 'error|wrong|version|can.t' | head -n 2 | tr '\\n' ' ')\" >&2; exit 1 ;; esac"
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
    """Keys in an RDB file (what a stopped server loads at its next start): 0 when there is none,
    None when there is one that its checker cannot count (the caller then assumes keys)."""

    def command(self, path: str, server: str = "redis") -> str:
        # As the server's user, from opening the path on: the file is in its data folder, the
        # user's to replace (with a link to a file of root's, which it then cannot read).
        check = SERVERS[server].unprivileged(SERVERS[server].check_rdb, path)
        count = "sed -n 's/.*\\[info\\] \\([0-9]*\\) keys read.*/keys=\\1/p'"
        there = f"[ -e {shlex.quote(path)} ] || [ -L {shlex.quote(path)} ]"
        return f"if {there}; then {shlex.join(check)} 2>/dev/null | {count}; else echo absent; fi"

    def process(self, output):
        lines = [line.strip() for line in output]
        if "absent" in lines:
            return 0
        counted = [line.removeprefix("keys=") for line in lines if line.startswith("keys=")]
        return int(counted[0]) if counted and counted[0].isdigit() else None


@operation()
def restore_snapshot(settings: Settings, tls: str | None = None):
    """
    Restore settings.restore_from into an empty server, then check key counts per DB.

    + settings: restore_from (a local .rdb), restore_force, port and auth of the server
    + tls: redis-cli's TLS options while the server has no plain port (tls.deploy_cli)

    **Example:**

    .. code:: python

        restore_snapshot(name="Restore the snapshot", settings=settings)
    """
    cli = auth.cli(settings.port, settings.auth, tls=tls)
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
    yield from upload(str(source), STAGED, private=True)  # the dataset: nobody else reads it on its way
    # Checked before the server is touched: a corrupt or too-new snapshot stops here.
    yield check_snapshot(source.name, settings.server)
    # In a Sentinel group the live role counts, not the inventory's: a replica's restored data
    # would be replaced by its primary's at once.
    yield (
        f"( {cli} info replication ) 2>/dev/null | grep -q '^role:slave' && {{ rm -f {staged}; "
        "echo 'Restore refused: this server is a replica now; restore into the primary' >&2; exit 1; }; true"
    )
    if counts_text is not None:
        yield from upload(StringIO(counts_text), STAGED_COUNTS)
    else:
        host.log(f"No {counts.name} next to the snapshot: key counts are not checked", logger.warning)
    # Stop, swap, start, check the counts; any failure brings the replaced dataset back.
    yield step(
        "restore", "--port", settings.port, "--auth", settings.auth, "--name", source.name,
        *(["--counts"] if counts_text is not None else []),
    )  # fmt: skip


def from_snapshot(settings: Settings, tls: str | None = None) -> None:
    if settings.restore_from is not None:
        restore_snapshot(name=f"Restore {Path(settings.restore_from).name}", settings=settings, tls=tls)
