"""Issue 2 end to end: a fresh systemd container becomes the Smart-Trade Redis server.

The tests share one container and run in file order, as an operator's day goes: provision,
check, re-run, survive restarts and crashes, refuse bad settings. The day is lived once on each
supported Debian release (12, then 13), each with the Redis major its distro ships, and once on
Debian 13 with Valkey as the server (issue 28); the bad settings, checked before any host is
touched, are tried in full on Debian 12 only.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import pytest
from conftest import deploy, fingerprint, infra_checks, redis, sh

from smart_redis.constants import DISTRO_REDIS_MAJOR, DISTRO_VALKEY, PATHS
from smart_redis.host.server import REDIS, VALKEY, Server


class Day(NamedTuple):
    release: str  # the Debian codename of the image
    version: str  # its VERSION_ID
    data: dict  # the settings the day is deployed with
    server: Server


# Debian 12 runs on the defaults as an operator's first try does; Debian 13 asks for the Redis 8
# that trixie ships. Then each asks for Valkey: Debian 13's own, and Debian 12's from backports.
DAYS = {
    "bookworm": Day("bookworm", "12", {}, REDIS),
    "trixie": Day("trixie", "13", {"redis_major_version": 8}, REDIS),
    "trixie-valkey": Day("trixie", "13", {"redis_server": "valkey"}, VALKEY),
    "bookworm-valkey": Day("bookworm", "12", {"redis_server": "valkey"}, VALKEY),
}


@pytest.fixture(scope="module", params=list(DAYS))
def core(request, new_container, docker_testbed):
    day = DAYS[request.param]
    name = new_container(f"core-{request.param}", release=day.release)
    target = f"@docker/{name}"
    yield {
        "name": name,
        "target": target,
        "version": day.version,
        "data": day.data,
        "server": day.server,
        "first": deploy(target, data=day.data),
    }
    docker_testbed.remove_container(name)  # one release's host at a time on two cores


def ping(core) -> bool:
    try:
        return redis(core["name"], "ping", server=core["server"]) == "PONG"
    except Exception:
        return False


def main_pid(core) -> int:
    return int(sh(core["name"], f"systemctl show -p MainPID --value {core['server'].service}").stdout)


def test_fresh_container_is_provisioned(core):
    first = core["first"]
    assert first.rc == 0, first.output
    assert "Kernel tuning skipped" in first.output  # containers get the note, not a failure


def test_the_distro_server_of_the_release_is_installed(core):
    assert sh(core["name"], ". /etc/os-release && echo $ID $VERSION_ID").stdout.split() == ["debian", core["version"]]
    server = core["server"]
    majors = DISTRO_VALKEY if server == VALKEY else DISTRO_REDIS_MAJOR
    major = majors[("debian", core["version"])]
    assert f" v={major}." in sh(core["name"], f"{server.service} --version").stdout
    # Only the server asked for: no Redis beside Valkey (both would want port 6379).
    others = [s.service for s in (REDIS, VALKEY) if s != server]
    installed = sh(
        core["name"], "dpkg-query -W -f='${Package} ${db:Status-Status}\\n' " + " ".join(others), check=False
    )
    assert " installed" not in installed.stdout
    # The distro's own package: Redis's APT repository was not needed, so it was not added.
    repository = [PATHS.apt_source, PATHS.apt_pin, PATHS.apt_keyring]
    assert sh(core["name"], "ls " + " ".join(repository), check=False).stdout == ""
    # Debian 12's Valkey comes from bookworm-backports on the host's own mirror, pinned to Valkey alone.
    backports = sh(core["name"], f"cat {PATHS.backports_source} {PATHS.backports_pin}", check=False).stdout
    if (server, core["version"]) == (VALKEY, "12"):
        assert " bookworm-backports main" in backports and "Pin: release n=bookworm-backports" in backports
        assert "~bpo12" in sh(core["name"], f"dpkg-query -W -f='${{Version}}' {server.service}").stdout
    else:
        assert backports == ""


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
    while not ping(core) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert ping(core)
    assert sh(core["name"], f"systemctl is-enabled {core['server'].service}").stdout.strip() == "enabled"


def test_killed_server_is_restarted_by_systemd_within_5s(core):
    before = main_pid(core)
    sh(core["name"], f"kill -9 {before}")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        pid = main_pid(core)
        if pid not in (0, before) and ping(core):
            return
        time.sleep(0.1)
    pytest.fail(f"{core['server'].service} (pid {before}) was not back within 5 s")


def test_configuration_key_in_db5_survives_a_restart(core):
    server = core["server"]
    assert redis(core["name"], "set", "config:risk-limit", "250000", db=5, server=server) == "OK"
    sh(core["name"], f"systemctl restart {server.service}")
    assert redis(core["name"], "get", "config:risk-limit", db=5, server=server) == "250000"


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
    before = fingerprint(core["name"], core["server"])
    run = deploy(core["target"], data={**core["data"], name: value})
    assert run.rc == 1
    errors = [line for line in run.output.splitlines() if "pyinfra error" in line]
    assert len(errors) == 1 and message in errors[0], run.output
    assert fingerprint(core["name"], core["server"]) == before
    assert sh(core["name"], "test -e /tmp/pwned", check=False).returncode == 1


@pytest.mark.parametrize("core", ["bookworm"], indirect=True)
@pytest.mark.parametrize("name,value,message", BAD_SETTINGS, ids=[f"{n}={v}" for n, v, _ in BAD_SETTINGS])
def test_bad_setting_exits_1_and_leaves_the_host_as_it_was(core, name, value, message):
    assert_refused_and_host_untouched(core, name, value, message)


# Settings are refused before any host is touched, whatever its release: on Debian 13 one
# hostile value shows that a refused run leaves that host alone too.
@pytest.mark.parametrize("core", ["trixie", "trixie-valkey"], indirect=True)
def test_hostile_setting_leaves_a_debian_13_host_as_it_was(core):
    assert_refused_and_host_untouched(core, *BAD_SETTINGS[-2])


# Moving a running host to the other server is not built yet (issue 28): until it is, asking for
# it must not install Valkey beside Redis (both on port 6379), nor touch anything else.
@pytest.mark.parametrize("core", ["trixie"], indirect=True)
def test_asking_a_redis_host_for_valkey_is_refused_and_the_host_left_as_it_was(core):
    message = 'redis_server = "valkey", but this host has redis-server installed'
    assert_refused_and_host_untouched(core, "redis_server", "valkey", message)


@pytest.mark.parametrize("core", ["trixie-valkey"], indirect=True)
def test_a_live_change_reaches_valkey_without_a_restart(core):
    pid = main_pid(core)
    changed = deploy(core["target"], data={**core["data"], "redis_maxmemory": "256mb"})
    assert changed.rc == 0, changed.output
    assert "Applying at runtime, no restart: maxmemory" in changed.output
    assert redis(core["name"], "config", "get", "maxmemory", server=core["server"]).split() == [
        "maxmemory",
        "268435456",
    ]
    assert "maxmemory 256mb" in sh(core["name"], f"cat {core['server'].config}").stdout.splitlines()
    assert main_pid(core) == pid
    again = deploy(core["target"], data={**core["data"], "redis_maxmemory": "256mb"}, json_output=True)
    assert again.rc == 0 and again.changed == 0, again.stdout


@pytest.mark.parametrize("core", ["trixie-valkey"], indirect=True)
def test_no_valkey_password_in_output_or_in_a_file_others_can_read(core):
    name = core["name"]
    shown = deploy(core["target"], "-vvv", "--diff", data={**core["data"], "redis_maxmemory": "128mb"})
    assert shown.rc == 0 and f"Will modify {VALKEY.config}" in shown.output  # the diff was really shown
    text = sh(name, f"cat {PATHS.credentials}").stdout
    passwords = [line.split("=", 1)[1].strip("'") for line in text.splitlines() if "_PASSWORD=" in line]
    assert len(passwords) == 3
    assert not any(password in shown.output for password in passwords)
    found = sh(
        name, "grep -rlF -e " + " -e ".join(passwords) + " /etc /var /tmp /usr/local /run 2>/dev/null; true"
    ).stdout.split()
    assert sorted(found) == sorted([PATHS.credentials, PATHS.exporter_env])
    for path in found:
        assert sh(name, f"stat -c '%U %G %a' {path}").stdout.split() == ["root", "root", "600"]


# Last on the Valkey day: the host ends it with TLS alone, as test_tls proves in depth for Redis.
@pytest.mark.parametrize("core", ["trixie-valkey"], indirect=True)
def test_valkey_with_tls_alone_answers_only_over_tls_and_stays_converged(core, tmp_path):
    name, data = core["name"], {**core["data"], "redis_tls": "only", "redis_tls_ca_dir": str(tmp_path / "tls")}
    switched = deploy(core["target"], data=data)
    assert switched.rc == 0, switched.output
    plain = sh(name, f"{VALKEY.cli} -p 6379 ping", check=False)
    assert "PONG" not in plain.stdout
    over_tls = sh(name, f"{VALKEY.cli} --tls --cacert {PATHS.tls_ca} -p 6379 ping", check=False)
    assert "NOAUTH" in over_tls.stdout + over_tls.stderr  # TLS spoken; the default user is still refused
    health = sh(name, "redis-monitor health", check=False)
    assert health.returncode == 0, health.stdout  # the operator's tool reaches the server over TLS
    settings = [arg for key, value in data.items() for arg in ("--redis-data", f"{key}={value}")]
    checks = infra_checks(f"docker://{name}", *settings)
    assert checks.returncode == 0, checks.stdout + checks.stderr
    again = deploy(core["target"], data=data, json_output=True)
    assert again.rc == 0 and again.changed == 0, again.stdout
