"""Issue 2 end to end: a fresh systemd container becomes the Smart-Trade Redis server.

The tests share one container and run in file order, as an operator's day goes: provision,
check, re-run, survive restarts and crashes, refuse bad settings. The day is lived once on each
supported Debian release (12, then 13), each with the Redis major its distro ships; the bad
settings, checked before any host is touched, are tried in full on Debian 12 only.
"""

from __future__ import annotations

import time

import pytest
from conftest import deploy, fingerprint, infra_checks, redis, sh

from smart_redis.constants import DISTRO_REDIS_MAJOR, PATHS, SERVICE

# Debian release -> (VERSION_ID, the settings its day is deployed with). Debian 12 runs on the
# defaults as an operator's first try does; Debian 13 asks for the Redis 8 that trixie ships.
RELEASES = {
    "bookworm": ("12", {}),
    "trixie": ("13", {"redis_major_version": 8}),
}


@pytest.fixture(scope="module", params=list(RELEASES))
def core(request, new_container, docker_testbed):
    release = request.param
    version, data = RELEASES[release]
    name = new_container(f"core-{release}", release=release)
    target = f"@docker/{name}"
    yield {"name": name, "target": target, "version": version, "data": data, "first": deploy(target, data=data)}
    docker_testbed.remove_container(name)  # one release's host at a time on two cores


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


def test_the_distro_redis_of_the_release_is_installed(core):
    assert sh(core["name"], ". /etc/os-release && echo $ID $VERSION_ID").stdout.split() == ["debian", core["version"]]
    major = DISTRO_REDIS_MAJOR[("debian", core["version"])]
    assert f" v={major}." in sh(core["name"], "redis-server --version").stdout
    # The distro's own package: Redis's APT repository was not needed, so it was not added.
    repository = [PATHS.apt_source, PATHS.apt_pin, PATHS.apt_keyring]
    assert sh(core["name"], "ls " + " ".join(repository), check=False).stdout == ""


def test_host_checks_pass(core):
    settings = [arg for key, value in core["data"].items() for arg in ("--redis-data", f"{key}={value}")]
    checks = infra_checks(f"docker://{core['name']}", *settings)
    assert checks.returncode == 0, checks.stdout + checks.stderr


def test_second_run_changes_nothing(core):
    second = deploy(core["target"], data=core["data"], json_output=True)
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
    (
        "redis_app_user",
        '"smart-trade\\n"',
        "redis_app_user = 'smart-trade\\n': allowed is text without control characters",
    ),
    ("redis_backup_dir", "/var/backups/$(touch /tmp/pwned)", "redis_backup_dir = '/var/backups/$(touch /tmp/pwned)'"),
    ("redis_bind", "fe80::1%$(touch /tmp/pwned)", "redis_bind = 'fe80::1%$(touch /tmp/pwned)': allowed is"),
    ("redis_apt_key_url", "https://example.invalid/k;touch /tmp/pwned", "redis_apt_key_url = 'https://"),
]


def assert_refused_and_host_untouched(core, name: str, value: str, message: str) -> None:
    before = fingerprint(core["name"])
    run = deploy(core["target"], data={**core["data"], name: value})
    assert run.rc == 1
    errors = [line for line in run.output.splitlines() if "pyinfra error" in line]
    assert len(errors) == 1 and message in errors[0], run.output
    assert fingerprint(core["name"]) == before
    assert sh(core["name"], "test -e /tmp/pwned", check=False).returncode == 1


@pytest.mark.parametrize("core", ["bookworm"], indirect=True)
@pytest.mark.parametrize("name,value,message", BAD_SETTINGS, ids=[f"{n}={v}" for n, v, _ in BAD_SETTINGS])
def test_bad_setting_exits_1_and_leaves_the_host_as_it_was(core, name, value, message):
    assert_refused_and_host_untouched(core, name, value, message)


# Settings are refused before any host is touched, whatever its release: on Debian 13 one
# hostile value shows that a refused run leaves that host alone too.
@pytest.mark.parametrize("core", ["trixie"], indirect=True)
def test_hostile_setting_leaves_a_debian_13_host_as_it_was(core):
    assert_refused_and_host_untouched(core, *BAD_SETTINGS[-2])
