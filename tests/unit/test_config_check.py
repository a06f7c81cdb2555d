"""The check of a candidate config (config.validate), with stand-ins for the server binary and for
setsid/setpriv: they record who was asked to run what, with which input, and then run it."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from smart_redis import config
from smart_redis.host.server import REDIS, VALKEY

# Prints what redis-server prints for a file it accepts when told to listen nowhere, after it
# kept its arguments and its standard input; a "bad" line makes it fail as the real one does.
SERVER = """#!/bin/sh
printf '%s\\n' "$@" > "$RECORD.args"
cat > "$RECORD.stdin"
if grep -q '^bad' "$RECORD.stdin"; then echo '*** FATAL CONFIG FILE ERROR ***'; echo "at line 3"; exit 1; fi
echo '# Configured to not listen anywhere, exiting.'
"""
# setsid --wait PROGRAM...: runs it. setpriv OPTIONS -- PROGRAM...: records the options, runs it.
SETSID = '#!/bin/sh\ntest "$1" = --wait && shift\nexec "$@"\n'
SETPRIV = """#!/bin/sh
: > "$RECORD.setpriv"
while test "$1" != --; do printf '%s\\n' "$1" >> "$RECORD.setpriv"; shift; done
shift
exec "$@"
"""


@pytest.fixture
def bin_dir(tmp_path):
    programs = {server.service: SERVER for server in (REDIS, VALKEY)} | {"setsid": SETSID, "setpriv": SETPRIV}
    for name, text in programs.items():
        program = tmp_path / "bin" / name
        program.parent.mkdir(exist_ok=True)
        program.write_text(text)
        program.chmod(0o755)
    return tmp_path / "bin"


def check(bin_dir: Path, server, text: str) -> subprocess.CompletedProcess:
    candidate = bin_dir.parent / "candidate.conf"
    candidate.write_text(text)
    command = config.validate(server).format(path=candidate)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RECORD": str(bin_dir.parent / "record")}
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("server", [REDIS, VALKEY], ids=lambda s: s.name)
def test_the_check_runs_as_the_servers_user_on_the_file_given_as_input(bin_dir, server):
    """The file includes one in the server user's folder, which that user may replace (with a
    loadmodule, or a logfile of root's choosing): the server parses it as that user, never as root."""
    text = f"port 6379\nlogfile /var/log/{server.name}/{server.service}.log\ninclude /etc/{server.name}/x.conf\n"
    assert check(bin_dir, server, text).returncode == 0
    record = bin_dir.parent / "record"
    assert record.with_suffix(".stdin").read_text() == text  # root's file, handed over on stdin
    args = record.with_suffix(".args").read_text().split("\n")
    assert args[0] == "-" and "--logfile" in args and "--port" in args  # nothing bound, no log of root's
    # no TLS context: the key of a host that moves is still the old server's group's (host/move.py)
    for option in ("--tls-port", "--tls-replication", "--tls-cluster"):
        assert args[args.index(option) + 1] in ("0", "no"), option
    dropped = record.with_suffix(".setpriv").read_text().split()
    assert f"--reuid={server.user}" in dropped and f"--regid={server.group}" in dropped
    assert {"--clear-groups", "--no-new-privs", "--reset-env"} <= set(dropped)


def test_a_bad_config_fails_the_check_with_the_servers_words(bin_dir):
    result = check(bin_dir, VALKEY, "port 6379\nlogfile /x\nbad directive\n")
    assert result.returncode == 1 and "FATAL CONFIG FILE ERROR" in result.stderr and "at line 3" in result.stderr


def test_a_candidate_that_cannot_be_read_fails_the_check(bin_dir):
    command = config.validate(VALKEY).format(path=bin_dir.parent / "missing.conf")
    result = subprocess.run(["sh", "-c", command], env={"PATH": f"{bin_dir}:/usr/bin:/bin"}, capture_output=True)
    assert result.returncode == 1
