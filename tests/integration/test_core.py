"""Issue 2 end to end: a fresh systemd container becomes the Smart-Trade Redis server.

The tests share one container and run in file order, as an operator's day goes: provision,
check, re-run, survive restarts and crashes, refuse bad settings. The day is lived once on each
supported Debian release (12, then 13), each with the Redis major its distro ships (and with
Valkey in test_valkey.py, which runs the same tests); the bad settings, checked before any host
is touched, are tried in full on Debian 12 only. The Debian 12 day ends with a move to Valkey.
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
# that trixie ships. test_valkey.py lives the same day with Valkey.
DAYS = {
    "bookworm": Day("bookworm", "12", {}, REDIS),
    "trixie": Day("trixie", "13", {"redis_major_version": 8}, REDIS),
}


@pytest.fixture(scope="module", params=list(DAYS))
def core(request, new_container, docker_testbed):
    # The bare image: this module is the story of a fresh host, python3 and sudo installed by the deploy.
    yield from live_a_day(DAYS[request.param], request.param, new_container, docker_testbed, bare=True)


def live_a_day(day: Day, name: str, new_container, docker_testbed, bare: bool = False):
    """A fresh container of the day's release, deployed with its settings; removed after the day."""
    name = new_container(f"core-{name}", release=day.release, bare=bare)
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
        assert " bookworm-backports main" in backports and "Pin: release o=Debian,n=bookworm-backports" in backports
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
@pytest.mark.parametrize("core", ["trixie"], indirect=True)
def test_hostile_setting_leaves_a_debian_13_host_as_it_was(core):
    assert_refused_and_host_untouched(core, *BAD_SETTINGS[-2])


# Debian 13's Redis 8.0 writes RDB format 12, which its Valkey 8.1 cannot load: a move would not
# keep the data, so it is refused before anything changes (no Valkey beside Redis on port 6379).
@pytest.mark.parametrize("core", ["trixie"], indirect=True)
def test_a_move_the_new_server_cannot_load_is_refused_and_the_host_left_as_it_was(core):
    message = "writes RDB format 12, and valkey-server 8.x loads up to 11: the move would not keep the data"
    assert_refused_and_host_untouched(core, "redis_server", "valkey", message)


def fill(core, server: Server, keys_per_db: int, tls: str | None = None) -> dict[int, str]:
    """keys_per_db keys in each of DBs 0-5 (DB 5's without a TTL, the others' an hour), as the
    platform keeps them; returns each DB's size."""
    for db in range(6):
        ttl = "" if db == 5 else ", 'EX', 3600"
        script = f"for i = 1, {keys_per_db} do redis.call('SET', 'moved:' .. i, i{ttl}) end"
        redis(core["name"], "eval", script, "0", db=db, server=server, tls=tls)
    return {db: redis(core["name"], "dbsize", db=db, server=server, tls=tls) for db in range(6)}


def assert_moved(core, to: Server, sizes: dict[int, str], tls: str | None = None) -> None:
    """The host runs `to` alone, on the same keys with the same TTL classes."""
    name = core["name"]
    assert {db: redis(name, "dbsize", db=db, server=to, tls=tls) for db in range(6)} == sizes
    for db in range(5):
        assert 0 < int(redis(name, "ttl", "moved:1", db=db, server=to, tls=tls)) <= 3600, db
    assert redis(name, "ttl", "moved:1", db=5, server=to, tls=tls) == "-1"
    assert redis(name, "get", "config:risk-limit", db=5, server=to, tls=tls) == "250000"
    old = next(s for s in (REDIS, VALKEY) if s != to)
    assert sh(name, f"systemctl is-active {to.service}").stdout.strip() == "active"
    assert sh(name, f"systemctl is-active {old.service}", check=False).stdout.strip() != "active"
    status = sh(name, f"dpkg-query -W -f='${{db:Status-Status}}' {old.service}", check=False).stdout
    assert status == "config-files"  # removed; its files (the data too) stay, the way back by hand


# Last on the Debian 12 Redis day: Redis 7.0 writes RDB format 10, which Valkey 8.0 loads.
@pytest.mark.parametrize("core", ["bookworm"], indirect=True)
def test_a_redis_host_moves_to_valkey_with_every_key_and_ttl_class(core):
    name, sizes = core["name"], fill(core, REDIS, 16_667)  # 100 000 keys in DBs 0-5
    data = {**core["data"], "redis_server": "valkey"}
    # First a Valkey that does not start: the move is undone, Redis runs again on its own data.
    broken = "/etc/systemd/system/valkey-server.service.d/99-test-does-not-start.conf"
    sh(name, f"mkdir -p {broken.rsplit('/', 1)[0]} && printf '[Service]\\nExecStartPre=/bin/false\\n' > {broken}")
    failed = deploy(core["target"], data=data)
    assert failed.rc == 1
    undone = "Move from redis-server to valkey-server undone: redis-server runs again on its own data"
    assert undone in failed.output, failed.output
    assert sh(name, "systemctl is-active redis-server").stdout.strip() == "active"
    assert sh(name, "systemctl is-enabled valkey-server", check=False).stdout.strip() == "masked"
    assert {db: redis(name, "dbsize", db=db) for db in range(6)} == sizes
    sh(name, f"rm {broken} && systemctl daemon-reload")
    # The next run moves.
    moved = deploy(core["target"], data=data)
    assert moved.rc == 0, moved.output
    assert "Moving from redis-server 7.0" in moved.output
    assert_moved(core, VALKEY, sizes)
    assert " v=8.0" in sh(core["name"], "valkey-server --version").stdout
    again = deploy(core["target"], data=data, json_output=True)
    assert again.rc == 0 and again.changed == 0, again.stdout
