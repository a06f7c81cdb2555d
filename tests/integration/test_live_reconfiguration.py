"""Issue 5: settings change on a live server without a restart where Redis allows it, with rollback.

One container, in file order: drift, a runtime change, a change that needs a restart, and a
restart that fails and is rolled back.
"""

from __future__ import annotations

import pytest
from conftest import deploy, redis, sh

from smart_redis.auth import cli
from smart_redis.constants import PATHS, SERVICE


@pytest.fixture(scope="module")
def live(new_container):
    name = new_container("live")
    first = deploy(f"@docker/{name}")
    assert first.rc == 0, first.output
    return {"name": name, "target": f"@docker/{name}"}


def main_pid(container: str) -> str:
    return sh(container, f"systemctl show -p MainPID --value {SERVICE}").stdout.strip()


def config_get(container: str, name: str, port: int = 6379) -> str:
    return redis(container, "config", "get", name, port=port).splitlines()[1]


def assert_no_change(target: str, data: dict) -> None:
    again = deploy(target, json_output=True, data=data)
    assert again.rc == 0 and again.changed == 0, again.output


def test_drift_is_reported_by_dry_run_and_then_converged(live):
    name, target = live["name"], live["target"]
    redis(name, "config", "set", "maxmemory", "1gb")
    dry = deploy(target, "--dry", yes=False)
    assert dry.rc == 0, dry.output
    assert "Drift: maxmemory is '1073741824' on the server, declared '512mb'" in dry.output
    assert config_get(name, "maxmemory") == "1073741824"  # --dry touched nothing
    pid = main_pid(name)
    fixed = deploy(target)
    assert fixed.rc == 0 and "Drift: maxmemory" in fixed.output, fixed.output
    assert config_get(name, "maxmemory") == "536870912"
    assert main_pid(name) == pid
    assert_no_change(target, {})


def test_memory_and_policy_change_at_runtime_keeping_pid_and_keys(live):
    name, target = live["name"], live["target"]
    sh(name, "seq 1 10000 | sed 's/.*/SET live:key:& value-&/' > /tmp/keys.txt")
    sh(name, f"{cli(6379, 'acl')} --pipe < /tmp/keys.txt > /dev/null")
    assert redis(name, "dbsize") == "10000"
    pid, backup = main_pid(name), sh(name, f"sha256sum {PATHS.config_backup}").stdout
    data = {"redis_maxmemory": "256mb", "redis_maxmemory_policy": "volatile-lru"}
    run = deploy(target, data=data)
    assert run.rc == 0, run.output
    assert "Applying at runtime, no restart: maxmemory, maxmemory-policy" in run.output
    assert main_pid(name) == pid
    assert redis(name, "dbsize") == "10000"
    assert (config_get(name, "maxmemory"), config_get(name, "maxmemory-policy")) == ("268435456", "volatile-lru")
    conf = sh(name, f"cat {PATHS.config}").stdout.splitlines()
    assert "maxmemory 256mb" in conf and "maxmemory-policy volatile-lru" in conf
    assert sh(name, f"sha256sum {PATHS.config_backup}").stdout == backup
    assert_no_change(target, data)


def test_port_change_restarts_after_saving(live):
    name, target = live["name"], live["target"]
    assert redis(name, "set", "config:feed", "b3", db=5) == "OK"
    pid = main_pid(name)
    run = deploy(target, data={"redis_port": 6380})
    assert run.rc == 0, run.output
    assert "Restarting redis-server for: port (6379 -> 6380)" in run.output
    assert main_pid(name) != pid
    assert redis(name, "get", "config:feed", db=5, port=6380) == "b3"
    assert sh(name, "redis-cli -p 6379 ping", check=False).returncode != 0  # nothing listens there
    assert_no_change(target, {"redis_port": 6380})


def test_failed_restart_puts_the_previous_config_back(live):
    name, target = live["name"], live["target"]
    sh(name, "redis-server --port 6381 --daemonize yes --save '' --dir /tmp --logfile /tmp/squatter.log")
    try:
        run = deploy(target, data={"redis_port": 6381})
        assert run.rc == 1
        assert "Address already in use" in run.output and "the previous one is back" in run.output, run.output
        assert redis(name, "ping", port=6380) == "PONG"
        assert "port 6380" in sh(name, f"cat {PATHS.config}").stdout.splitlines()
        assert redis(name, "get", "config:feed", db=5, port=6380) == "b3"
    finally:
        sh(name, "redis-cli -p 6381 shutdown nosave", check=False)
    assert_no_change(target, {"redis_port": 6380})


def test_new_admin_password_restart_saves_first_even_without_snapshots(live):
    """Issue 14, item 18: the credentials hold the new admin password before the restart; the SAVE
    ahead of it still logs in with the one the running server accepts, so redis_save="" loses nothing."""
    import os

    name, target = live["name"], live["target"]
    data = {"redis_port": 6380, "redis_save": '""'}
    assert deploy(target, data=data).rc == 0  # no snapshot points: only the SAVE before the restart keeps keys
    assert redis(name, "set", "survive:restart", "yes", port=6380) == "OK"
    pid = main_pid(name)
    env = {**os.environ, "SMART_REDIS_ADMIN_PASSWORD": "admin-" + "Hq3Vn8Rt2Kw6Zp0Lx4Bm7Jc1Df5Gs9Ya" + "-new"}
    run = deploy(target, data=data, env=env)
    assert run.rc == 0, run.output
    assert "Restarting redis-server for" in run.output and main_pid(name) != pid
    assert redis(name, "get", "survive:restart", port=6380) == "yes"
    assert sh(name, f"test -e {PATHS.credentials_running}", check=False).returncode != 0
    assert_no_change(target, data)


def test_a_failed_save_stops_the_restart_with_the_old_file_in_place(live):
    name, target = live["name"], live["target"]
    data = {"redis_port": 6380, "redis_save": '""', "redis_databases": 17}  # databases: startup only
    pid, conf = main_pid(name), sh(name, f"sha256sum {PATHS.config}").stdout
    mode = sh(name, f"stat -c %a {PATHS.data_dir}").stdout.strip()
    sh(name, f"chmod 555 {PATHS.data_dir}")  # redis (not root) can no longer write its snapshot
    try:
        run = deploy(target, data=data)
        assert run.rc == 1, run.output
        assert "the SAVE before the restart failed" in run.output, run.output
        assert main_pid(name) == pid
        assert sh(name, f"sha256sum {PATHS.config}").stdout == conf
        assert sh(name, f"test -e {PATHS.config_candidate}", check=False).returncode != 0
    finally:
        sh(name, f"chmod {mode} {PATHS.data_dir}")
    fixed = deploy(target, data=data)
    assert fixed.rc == 0 and main_pid(name) != pid, fixed.output
    assert config_get(name, "databases", port=6380) == "17"
