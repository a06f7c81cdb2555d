"""The shell the deploy generates parses (dash, /bin/sh on Debian): a syntax error would only show on a host."""

from __future__ import annotations

import shutil
import subprocess

import pytest

from smart_redis import config, facts, replication, restore, sentinel
from smart_redis.auth import cli

CLI = cli(6379, "acl")
SNIPPETS = {
    "restart with rollback": config._restart_with_rollback(CLI),
    "wait for sync": config._wait_for_sync(CLI, "10.0.0.1 6379"),
    "group in sync": config._group_in_sync(CLI, "10.0.0.1 6379", 2),
    "validate": config.VALIDATE.format(path="/etc/redis/redis.conf.candidate"),
    "host fact": facts._script(),
    "sentinel answers": replication.SentinelPrimary().command(("10.0.0.1", "10.0.0.2"), 26379, "smart-trade"),
    "sentinel master": sentinel.SentinelMaster().command(26379, "smart-trade"),
    "rdb keys": restore.RdbKeyCount().command("/var/lib/redis/dump.rdb"),
}


@pytest.mark.parametrize("name", SNIPPETS)
def test_generated_shell_parses(name):
    shell = shutil.which("dash") or "sh"
    result = subprocess.run([shell, "-n", "-c", SNIPPETS[name]], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
