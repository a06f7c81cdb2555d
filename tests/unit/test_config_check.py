"""The check of a candidate config (config.validate), with a stand-in server binary: it reads the
config the way the real one does, and records what it was given."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from smart_redis import config
from smart_redis.host.server import REDIS, VALKEY

# Prints what redis-server prints for a file it accepts when told to listen nowhere, after it
# kept its arguments and its standard input; a "bad" line makes it fail as the real one does.
STAND_IN = """#!/bin/sh
printf '%s\\n' "$@" > "$RECORD.args"
cat > "$RECORD.stdin"
if grep -q '^bad' "$RECORD.stdin"; then echo '*** FATAL CONFIG FILE ERROR ***'; echo "at line 3"; exit 1; fi
echo '# Configured to not listen anywhere, exiting.'
"""


@pytest.fixture
def bin_dir(tmp_path):
    for server in (REDIS, VALKEY):
        program = tmp_path / "bin" / server.service
        program.parent.mkdir(exist_ok=True)
        program.write_text(STAND_IN)
        program.chmod(0o755)
    return tmp_path / "bin"


def check(bin_dir: Path, server, text: str) -> subprocess.CompletedProcess:
    candidate = bin_dir.parent / "candidate.conf"
    candidate.write_text(text)
    command = config.validate(server).format(path=candidate)
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "RECORD": str(bin_dir.parent / "record")}
    return subprocess.run(["sh", "-c", command], env=env, capture_output=True, text=True)


@pytest.mark.parametrize("server", [REDIS, VALKEY], ids=lambda s: s.name)
def test_the_check_makes_no_log_file_and_keeps_the_line_numbers(bin_dir, server):
    """The server opens its logfile as it reads that line: run by root, the check would create
    the file as root, and the server (its own user) could not write its log and would not start."""
    text = f"port 6379\nlogfile /var/log/{server.name}/{server.service}.log\nmaxmemory 1gb\n"
    assert check(bin_dir, server, text).returncode == 0
    record = bin_dir.parent / "record"
    given = (record.with_suffix(".stdin")).read_text()
    assert given == f"port 6379\n# logfile /var/log/{server.name}/{server.service}.log\nmaxmemory 1gb\n"
    args = (record.with_suffix(".args")).read_text().split("\n")
    assert args[0] == "-" and "--logfile" in args and "--port" in args  # the config on stdin, nothing bound


def test_a_bad_config_fails_the_check_with_the_servers_words(bin_dir):
    result = check(bin_dir, VALKEY, "port 6379\nlogfile /x\nbad directive\n")
    assert result.returncode == 1 and "FATAL CONFIG FILE ERROR" in result.stderr and "at line 3" in result.stderr
