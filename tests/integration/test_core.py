"""Issue 2 end to end: a fresh systemd container becomes the Smart-Trade Redis server.

The tests share one container and run in file order, as an operator's day goes: provision,
check, re-run, survive restarts and crashes, refuse bad settings.
"""

from __future__ import annotations

import time

import pytest
from conftest import deploy, fingerprint, infra_checks, redis, sh

from smart_redis.constants import SERVICE


@pytest.fixture(scope="module")
def core(new_container):
    name = new_container("core")
    return {"name": name, "target": f"@docker/{name}", "first": deploy(f"@docker/{name}")}


def ping(container: str) -> bool:
    try:
        return redis(container, "ping") == "PONG"
    except Exception:
        return False


def main_pid(container: str) -> int:
    return int(sh(container, f"systemctl show -p MainPID --value {SERVICE}").stdout)


def test_fresh_container_is_provisioned(core):
    first = core["first"]
    assert first.rc == 0, first.output
    assert "Kernel tuning skipped" in first.output  # containers get the note, not a failure


def test_host_checks_pass(core):
    checks = infra_checks(f"docker://{core['name']}")
    assert checks.returncode == 0, checks.stdout + checks.stderr


def test_second_run_changes_nothing(core):
    second = deploy(core["target"], json_output=True)
    assert second.rc == 0, second.output
    assert second.changed == 0, second.stdout


def test_docker_restart_brings_redis_back(core, docker_testbed):
    docker_testbed.docker("restart", core["name"])
    docker_testbed.wait_for_systemd(core["name"])
    deadline = time.monotonic() + 20
    while not ping(core["name"]) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ping(core["name"])
    assert sh(core["name"], f"systemctl is-enabled {SERVICE}").stdout.strip() == "enabled"


def test_killed_server_is_restarted_by_systemd_within_5s(core):
    before = main_pid(core["name"])
    sh(core["name"], f"kill -9 {before}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pid = main_pid(core["name"])
        if pid not in (0, before) and ping(core["name"]):
            return
        time.sleep(0.1)
    pytest.fail(f"redis-server (pid {before}) was not back within 5 s")


def test_configuration_key_in_db5_survives_a_restart(core):
    assert redis(core["name"], "set", "config:risk-limit", "250000", db=5) == "OK"
    sh(core["name"], f"systemctl restart {SERVICE}")
    assert redis(core["name"], "get", "config:risk-limit", db=5) == "250000"


BAD_SETTINGS = [
    ("redis_maxmemory", "512XB", "redis_maxmemory = '512XB': allowed is a size"),
    ("redis_maxmemory_policy", "most-recent", "redis_maxmemory_policy = 'most-recent': allowed is one of"),
    ("redis_port", "70000", "redis_port = 70000: allowed is a whole number from 1 to 65535"),
    ("redis_notify_keyspace_events", "ExQ", "redis_notify_keyspace_events = 'ExQ': allowed is letters from"),
    (
        "redis_keyspace",
        '[{"db": 0, "name": "quotes", "ttl": -5}]',
        "redis_keyspace = {'db': 0, 'name': 'quotes', 'ttl': -5}: allowed is a ttl in whole seconds above 0",
    ),
    (
        "redis_keyspace",
        '[{"db": 1, "name": "a", "ttl": 60}, {"db": 1, "name": "b", "ttl": 60}]',
        "each db listed once (db 1 is listed twice)",
    ),
    # Hostile values: a newline once wrote a broken credentials file; shell syntax must never run.
    ("redis_app_user", '"smart-trade\\n"', "redis_app_user = 'smart-trade\\n': allowed is text without control characters"),
    ("redis_backup_dir", "/var/backups/$(touch /tmp/pwned)", "redis_backup_dir = '/var/backups/$(touch /tmp/pwned)'"),
    ("redis_bind", "fe80::1%$(touch /tmp/pwned)", "redis_bind = 'fe80::1%$(touch /tmp/pwned)': allowed is"),
    ("redis_apt_key_url", "https://example.invalid/k;touch /tmp/pwned", "redis_apt_key_url = 'https://"),
]


@pytest.mark.parametrize("name,value,message", BAD_SETTINGS, ids=[f"{n}={v}" for n, v, _ in BAD_SETTINGS])
def test_bad_setting_exits_1_and_leaves_the_host_as_it_was(core, name, value, message):
    before = fingerprint(core["name"])
    run = deploy(core["target"], data={name: value})
    assert run.rc == 1
    errors = [line for line in run.output.splitlines() if "pyinfra error" in line]
    assert len(errors) == 1 and message in errors[0], run.output
    assert fingerprint(core["name"]) == before
    assert sh(core["name"], "test -e /tmp/pwned", check=False).returncode == 1
