"""Issue 4: authentication on by default, secrets that never leak, exposure only when asked for.

One Redis host and one client container share a network that the test creates.
"""

from __future__ import annotations

import os
import subprocess
import time

import pytest
from conftest import deploy, fingerprint, infra_checks, put, redis, sh, sh_input

from smart_redis.constants import PATHS

GIVEN = {
    "SMART_REDIS_APP_PASSWORD": "app-" + "Q7x2kP9mWv3Lr8Zt5Nb1Hc6Jd4Fg0Ys" + "-given",
    "SMART_REDIS_ADMIN_PASSWORD": "admin-" + "Tz4Wq8Lm2Rv6Xn0Kp3Bj7Hd1Sf5Gc9Ya" + "-given",
}


@pytest.fixture(scope="module")
def net(docker_testbed, run_id):
    return docker_testbed.create_network(f"smart-redis-test-{run_id}-net")


@pytest.fixture(scope="module")
def server(new_container, net):
    name = new_container("secure", network=net)
    first = deploy(f"@docker/{name}", "-vvv", "--diff")
    assert first.rc == 0, first.output
    return {"name": name, "target": f"@docker/{name}", "outputs": [first.output]}


@pytest.fixture(scope="module")
def client(new_container, net):
    return new_container("client", network=net)


def stored_passwords(container: str) -> list[str]:
    text = sh(container, f"cat {PATHS.credentials}").stdout
    return [line.split("=", 1)[1].strip("'") for line in text.splitlines() if "_PASSWORD=" in line]


def address(docker_testbed, container: str) -> str:
    return docker_testbed.docker(
        "inspect", "-f", "{{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}", container
    ).stdout.strip()


def tcp(client: str, ip: str, *commands: str) -> subprocess.CompletedProcess:
    """Send inline commands to Redis from the client container (bash /dev/tcp, input on stdin)."""
    script = 'exec 3<>"/dev/tcp/$1/6379" || exit 7; cat >&3; timeout 1 cat <&3; true'
    return subprocess.run(
        ["docker", "exec", "-i", client, "bash", "-c", script, "_", ip],
        input="".join(f"{c}\r\n" for c in commands),
        capture_output=True,
        text=True,
        timeout=30,
    )


def test_generated_passwords_are_strong_and_host_checks_pass(server):
    passwords = stored_passwords(server["name"])
    # app, admin and the exporter's user
    assert len(passwords) == 3 and all(len(p) >= 32 for p in passwords) and len(set(passwords)) == 3
    checks = infra_checks(f"docker://{server['name']}")
    assert checks.returncode == 0, checks.stdout + checks.stderr


def test_generated_passwords_never_appear_in_output(server):
    name, target = server["name"], server["target"]
    outputs = server["outputs"] + [
        deploy(target, "-vvv", "--diff", "--dry", data={"redis_maxmemory": "256mb"}).output,
        deploy(target, "-vvv", "--diff", data={"redis_maxmemory": "256mb"}).output,
        deploy(target, "-vvv", "--diff").output,
    ]
    assert "Will modify /etc/redis/redis.conf" in outputs[2]  # the diff was really shown
    for password in stored_passwords(name):
        for output in outputs:
            assert password not in output


def test_a_rerun_keeps_the_passwords_and_changes_nothing(server):
    before = stored_passwords(server["name"])
    again = deploy(server["target"], json_output=True)
    assert again.rc == 0 and again.changed == 0, again.output
    assert stored_passwords(server["name"]) == before


def test_given_passwords_replace_generated_ones_without_leaking(server):
    name, target = server["name"], server["target"]
    # Sample the host's process list for the whole run.
    sh(
        name,
        "rm -f /tmp/ps.log; (while :; do ps -eo args >> /tmp/ps.log; done) >/dev/null 2>&1 & echo $! > /tmp/ps.pid",
    )
    run = deploy(target, "-vvv", "--diff", env={**os.environ, **GIVEN})
    sh(name, "kill $(cat /tmp/ps.pid)")
    assert run.rc == 0, run.output
    stored = stored_passwords(name)
    assert stored[:2] == [GIVEN["SMART_REDIS_APP_PASSWORD"], GIVEN["SMART_REDIS_ADMIN_PASSWORD"]]
    processes = sh(name, "cat /tmp/ps.log").stdout
    assert "redis-server" in processes  # the sampler saw the run
    for password in GIVEN.values():
        assert password not in run.output
        assert password not in processes
    again = deploy(target, json_output=True, env={**os.environ, **GIVEN})
    assert again.rc == 0 and again.changed == 0, again.output


def test_the_config_check_runs_as_the_servers_user(server):
    """The deploy checks a new redis.conf by running the server on it (it loads the file, then
    exits, listening nowhere). A file it includes may be the redis user's to replace (a module
    to load, a log of root's choosing): never root. The server found first in the check's PATH
    records who runs it; systemd starts the real one by its full path."""
    name, target = server["name"], server["target"]
    wrapper = (
        '#!/bin/sh\ncase " $* " in *" --port 0 "*) id -un >> /tmp/config-check/users ;; esac\n'
        'exec /usr/bin/redis-server "$@"\n'
    )
    sh(name, "mkdir -m 1777 -p /tmp/config-check && rm -f /tmp/config-check/users")
    put(name, "/usr/local/bin/redis-server", wrapper)
    sh(name, "chmod 755 /usr/local/bin/redis-server")
    try:
        changed = deploy(target, data={"redis_maxmemory": "600mb"})
        back = deploy(target)
    finally:
        sh(name, "rm -f /usr/local/bin/redis-server")
    assert changed.rc == 0 and back.rc == 0, changed.output + back.output
    assert sh(name, "cat /tmp/config-check/users").stdout.split() == ["redis", "redis"]


def test_no_file_readable_by_others_holds_a_password(server):
    name = server["name"]
    patterns = "\n".join(stored_passwords(name)) + "\n"
    found = sh_input(
        name,
        "umask 077; cat > /root/.patterns; "
        "grep -rlF -f /root/.patterns /etc /var /opt /tmp /home /usr/local /run 2>/dev/null; rm -f /root/.patterns",
        patterns,
    ).stdout.split()
    # The exporter's env file holds its own password only (systemd reads it as root).
    assert sorted(found) == sorted([PATHS.credentials, PATHS.exporter_env])
    for path in found:
        assert sh(name, f"stat -c '%U %G %a' {path}").stdout.split() == ["root", "root", "600"]


def test_other_hosts_are_refused_by_default(docker_testbed, server, client):
    reply = tcp(client, address(docker_testbed, server["name"]), "PING")
    assert reply.returncode != 0 and "refused" in reply.stderr


def test_opened_bind_needs_a_user_and_limits_the_app(docker_testbed, server, client):
    name = server["name"]
    opened = deploy(server["target"], data={"redis_bind": "0.0.0.0"})
    assert opened.rc == 0, opened.output
    ip = address(docker_testbed, name)
    assert "NOAUTH" in tcp(client, ip, "PING").stdout
    app, admin = GIVEN["SMART_REDIS_APP_PASSWORD"], GIVEN["SMART_REDIS_ADMIN_PASSWORD"]
    as_app = tcp(client, ip, f"AUTH smart-trade {app}", "CONFIG SET dir /tmp", "FLUSHALL", "KEYS *", "SET k v").stdout
    assert as_app.count("NOPERM") == 3 and as_app.splitlines()[0] == "+OK" and as_app.splitlines()[-1] == "+OK"
    as_admin = tcp(client, ip, f"AUTH ops-admin {admin}", "CONFIG GET maxmemory").stdout
    assert "maxmemory" in as_admin and "NOPERM" not in as_admin


BAD_INPUT = [
    ({"redis_auth": "none", "redis_bind": "0.0.0.0"}, {}, "redis_bind = '0.0.0.0': allowed is loopback addresses only"),
    # settings.py words the allowed list; what matters here: one line that names the setting
    ({"redis_app_acl": "~* +@all -@superpowers"}, {}, "redis_app_acl"),
    ({}, {"SMART_REDIS_APP_PASSWORD": "short"}, "SMART_REDIS_APP_PASSWORD: allowed is at least 32 characters"),
    ({}, {"SMART_REDIS_ADMIN_PASSWORD": "x" * 20 + " with spaces " + "y" * 20}, "SMART_REDIS_ADMIN_PASSWORD: allowed"),
]


@pytest.mark.parametrize(
    "data,environ,message", BAD_INPUT, ids=["open-without-auth", "acl-category", "short", "spaces"]
)
def test_bad_security_input_exits_1_and_changes_nothing(server, data, environ, message):
    before = fingerprint(server["name"])
    run = deploy(server["target"], data=data, env={**os.environ, **environ})
    assert run.rc == 1
    errors = [line for line in run.output.splitlines() if "pyinfra error" in line]
    assert len(errors) == 1 and message in errors[0], run.output
    for secret in environ.values():
        assert secret not in run.output
    assert fingerprint(server["name"]) == before


def _exporter_environ(container: str) -> list[str]:
    pid = sh(container, "systemctl show -p MainPID --value prometheus-redis-exporter").stdout.strip()
    return sh(container, f"tr '\\000' '\\n' < /proc/{pid}/environ").stdout.splitlines()


def _redis_up(container: str) -> str:
    from smart_redis.settings import load

    port = load({}).exporter_port
    script = f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{port}/metrics').read().decode())"
    for _ in range(20):
        lines = sh(container, f'python3 -c "{script}"', check=False).stdout.splitlines()
        found = [line for line in lines if line.startswith("redis_up ")]
        if found and found[0] == "redis_up 1":
            break
        time.sleep(0.5)
    return found[0] if found else ""


def test_the_exporter_sees_its_own_password_only(server):
    """Issue 14, item 7: the exporter (user prometheus) must not hold the admin's or the app's password."""
    name = server["name"]
    text = sh(name, f"cat {PATHS.credentials}").stdout
    creds = dict(line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    environ = _exporter_environ(name)
    assert f"REDIS_PASSWORD={creds['REDIS_EXPORTER_PASSWORD'].strip(chr(39))}" in environ
    others = [value.strip("'") for key, value in creds.items() if key.endswith("_PASSWORD") and "EXPORTER" not in key]
    assert others and not any(password in line for password in others for line in environ)
    assert sh(name, f"stat -c '%U %G %a' {PATHS.exporter_env}").stdout.split() == ["root", "root", "600"]
    assert _redis_up(name) == "redis_up 1"


def test_an_exporter_left_without_its_login_is_restarted_by_the_next_run(server):
    """Issue 14, item 20: a first run that failed before the restart left the exporter without its
    password; no file differs, only what runs does. The next run repairs it, the one after changes nothing."""
    name, target = server["name"], server["target"]
    sh(
        name,
        f"mv {PATHS.exporter_env} /root/held && systemctl restart prometheus-redis-exporter "
        f"&& mv /root/held {PATHS.exporter_env}",
    )  # mv keeps the mtime: the file looks as before
    assert not any(line.startswith("REDIS_PASSWORD=") for line in _exporter_environ(name))
    repair = deploy(target, json_output=True)
    assert repair.rc == 0 and repair.changed >= 1, repair.output
    assert any(line.startswith("REDIS_PASSWORD=") for line in _exporter_environ(name))
    assert _redis_up(name) == "redis_up 1"
    # A unit file written by a run that stopped before its daemon-reload, one at a time (one
    # reload serves all): the exporter's drop-in, then the backup job's (written before the
    # install, so an apt failure can stop a run there).
    for unit, path in (
        ("prometheus-redis-exporter", PATHS.exporter_dropin),
        ("redis-backup.service", PATHS.backup_service),
    ):
        sh(name, f"touch {path}")
        assert sh(name, f"systemctl show -p NeedDaemonReload --value {unit}").stdout.strip() == "yes"
        assert deploy(target).rc == 0
        assert sh(name, f"systemctl show -p NeedDaemonReload --value {unit}").stdout.strip() == "no", unit
    again = deploy(target, json_output=True)
    assert again.rc == 0 and again.changed == 0, again.output


# Last: it switches the host to redis_auth = none.
def test_auth_none_is_possible_and_warned(server):
    run = deploy(server["target"], data={"redis_auth": "none"})
    assert run.rc == 0, run.output
    assert 'redis_auth = "none"' in run.output
    deadline = time.monotonic() + 5
    while redis(server["name"], "ping", auth="none") != "PONG" and time.monotonic() < deadline:
        time.sleep(0.2)
    assert redis(server["name"], "ping", auth="none") == "PONG"
