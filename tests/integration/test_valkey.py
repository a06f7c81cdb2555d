"""Issue 28: Valkey as the server. The day of test_core.py (provision, host checks, re-run,
restart, crash) lived with redis_server = "valkey" on Debian 13 (its own Valkey 8.1) and Debian 12
(Valkey 8.0 from bookworm-backports), in a module of its own so that it runs beside test_core.
Debian 13's day then goes on: a change at runtime, no secret in sight, TLS alone, and a move back
to Redis with the data.
"""

from __future__ import annotations

import pytest
import test_core
from conftest import deploy, infra_checks, redis, sh
from test_core import BAD_SETTINGS, Day, assert_moved, assert_refused_and_host_untouched, fill, live_a_day, main_pid

from smart_redis.constants import PATHS
from smart_redis.host.server import REDIS, VALKEY

DAYS = {
    "trixie-valkey": Day("trixie", "13", {"redis_server": "valkey"}, VALKEY),
    "bookworm-valkey": Day("bookworm", "12", {"redis_server": "valkey"}, VALKEY),
}


@pytest.fixture(scope="module", params=list(DAYS))
def core(request, new_container, docker_testbed):
    # Debian 12's day on the bare image: Valkey from backports (its source and pin) installed by the
    # same apt run as python3 and sudo, as on a fresh host.
    bare = request.param == "bookworm-valkey"
    yield from live_a_day(DAYS[request.param], request.param, new_container, docker_testbed, bare=bare)


# test_core's day, collected here with this module's days, in the order it is lived there.
test_fresh_container_is_provisioned = test_core.test_fresh_container_is_provisioned
test_the_distro_server_of_the_release_is_installed = test_core.test_the_distro_server_of_the_release_is_installed
test_host_checks_pass = test_core.test_host_checks_pass
test_second_run_changes_nothing = test_core.test_second_run_changes_nothing
test_docker_restart_brings_redis_back = test_core.test_docker_restart_brings_redis_back
test_killed_server_is_restarted_by_systemd_within_5s = test_core.test_killed_server_is_restarted_by_systemd_within_5s
test_configuration_key_in_db5_survives_a_restart = test_core.test_configuration_key_in_db5_survives_a_restart


@pytest.mark.parametrize("core", ["trixie-valkey"], indirect=True)
def test_hostile_setting_leaves_a_valkey_host_as_it_was(core):
    assert_refused_and_host_untouched(core, *BAD_SETTINGS[-2])


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


# The Valkey day goes on with TLS alone, as test_tls proves in depth for Redis.
@pytest.mark.parametrize("core", ["trixie-valkey"], indirect=True)
def test_valkey_with_tls_alone_answers_only_over_tls_and_stays_converged(core, tmp_path_factory):
    core["tls"] = {"redis_tls": "only", "redis_tls_ca_dir": str(tmp_path_factory.mktemp("operator") / "tls")}
    name, data = core["name"], {**core["data"], **core["tls"]}
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


# Last on the Debian 13 Valkey day: Valkey 8.1 writes RDB format 11, which Redis 8.0 loads; the
# host keeps TLS alone through the move.
@pytest.mark.parametrize("core", ["trixie-valkey"], indirect=True)
def test_a_valkey_host_with_tls_moves_to_redis_with_every_key_and_ttl_class(core):
    tls = f"--tls --cacert {PATHS.tls_ca}"
    sizes = fill(core, VALKEY, 1000, tls=tls)
    data = {**core["data"], **core["tls"], "redis_server": "redis", "redis_major_version": 8}
    moved = deploy(core["target"], data=data)
    assert moved.rc == 0, moved.output
    assert_moved(core, REDIS, sizes, tls=tls)
    assert " v=8.0" in sh(core["name"], "redis-server --version").stdout
    again = deploy(core["target"], data=data, json_output=True)
    assert again.rc == 0 and again.changed == 0, again.stdout
