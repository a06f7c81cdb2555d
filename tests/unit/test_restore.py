"""The restore's and the backup job's generated text: quoting, shell syntax, unit dependencies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from smart_redis import backup, restore
from smart_redis.settings import load

SHELLCHECK = Path(sys.executable).with_name("shellcheck")
HOSTILE = "dump-\"$(touch PWNED)\"'`touch PWNED`'.rdb"
SNIPPETS = {
    "check snapshot": restore.check_snapshot(HOSTILE),
}


@pytest.mark.parametrize("name", SNIPPETS)
def test_restore_shell_parses_and_passes_shellcheck(name):
    assert subprocess.run(["dash", "-n", "-c", SNIPPETS[name]], capture_output=True, text=True).returncode == 0
    # warning level: a hostile name, quoted, is rightly "an expression that does not expand" (info)
    lint = subprocess.run(
        [str(SHELLCHECK), "-s", "dash", "-S", "warning", "-e", "SC1091,SC2154", "-"],
        input=SNIPPETS[name],
        capture_output=True,
        text=True,
    )
    assert lint.returncode == 0, lint.stdout


def test_a_hostile_snapshot_name_and_host_answer_stay_text(tmp_path):
    """The file name (a setting) and redis-check-rdb's output (a host answer) are printed, never run."""
    fake = tmp_path / "redis-check-rdb"
    fake.write_text("#!/bin/sh\ncat > /dev/null; echo '[offset 0] Wrong signature $(touch PWNED) error'\nexit 1\n")
    fake.chmod(0o755)
    # setpriv as the host has it, without the change of user (no redis user here)
    setpriv = tmp_path / "setpriv"
    setpriv.write_text('#!/bin/sh\nwhile [ "$1" != -- ]; do shift; done; shift; exec "$@"\n')
    setpriv.chmod(0o755)
    staged = tmp_path / "snapshot.rdb"
    staged.write_text("REDIS0011 $(touch PWNED)")
    result = subprocess.run(
        ["dash", "-c", restore.check_snapshot(HOSTILE, staged_path=str(staged))],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
    )
    assert result.returncode == 1 and not (tmp_path / "PWNED").exists()
    assert result.stderr == (
        f"{HOSTILE} is not a snapshot this Redis can load: [offset 0] Wrong signature $(touch PWNED) error \n"
    )


def test_the_backup_job_never_starts_a_stopped_redis():
    unit = backup.service_unit(load({}))
    assert "After=redis-server.service" in unit
    assert not any(line.startswith(("Requires=", "Wants=", "BindsTo=", "Requisite=")) for line in unit.splitlines())


def _fake(path: Path, body: str) -> None:
    path.write_text(f"#!/bin/sh\n{body}\n")
    path.chmod(0o755)


@pytest.mark.parametrize(
    "data, checker, keys",
    [
        (None, "echo '[info] 500 keys read'", 0),  # no data file: nothing to lose
        ("REDIS0011", "echo '[offset 0] Checking RDB file'; echo '[info] 500 keys read'", 500),
        ("REDIS0011", "echo '[info] 0 keys read'", 0),
        # a file the checker cannot count (unreadable as the server's user, corrupt, empty): unknown
        ("REDIS0011", "echo 'Fatal error: cannot open' >&2; exit 1", None),
        ("", "echo '--- RDB ERROR DETECTED ---'", None),
    ],
)
def test_a_stopped_servers_keys_are_counted_or_unknown(tmp_path, data, checker, keys):
    from smart_redis.restore import RdbKeyCount

    _fake(tmp_path / "setsid", 'shift; exec "$@"')  # --wait
    _fake(tmp_path / "setpriv", 'while [ "$1" != -- ]; do shift; done; shift; exec "$@"')
    _fake(tmp_path / "redis-check-rdb", checker)
    dump = tmp_path / "dump.rdb"
    if data is not None:
        dump.write_text(data)
    fact = RdbKeyCount()
    out = subprocess.run(
        ["dash", "-c", fact.command(str(dump))],
        capture_output=True,
        text=True,
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
    )
    assert out.returncode == 0
    assert fact.process(out.stdout.splitlines()) == keys


def test_a_stopped_server_whose_keys_are_unknown_is_not_made_a_replica(monkeypatch):
    from pyinfra.api import OperationError

    from smart_redis import config
    from smart_redis.host.server import REDIS

    monkeypatch.setattr(config, "host", type("Host", (), {"get_fact": staticmethod(lambda fact, **kw: None)}))
    with pytest.raises(OperationError, match="cannot be read as redis to count its keys"):
        config._refuse_to_replace_data("redis-cli", "10.0.0.1 6379", REDIS)
