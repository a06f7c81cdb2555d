"""Issue 5: settings change on a live server without a restart where Redis allows it, with rollback.

One container, in file order: drift, a runtime change, a change that needs a restart, and a
restart that fails and is rolled back.
"""

from __future__ import annotations

import os
import shlex

import pytest
from conftest import deploy, put, redis, sh, sh_input, wait_for

from smart_redis.auth import cli
from smart_redis.constants import PATHS
from smart_redis.host.server import REDIS


@pytest.fixture(scope="module")
def live(new_container):
    name = new_container("live")
    first = deploy(f"@docker/{name}")
    assert first.rc == 0, first.output
    return {"name": name, "target": f"@docker/{name}"}


def main_pid(container: str) -> str:
    return sh(container, f"systemctl show -p MainPID --value {REDIS.service}").stdout.strip()


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
    pid, backup = main_pid(name), sh(name, f"sha256sum {REDIS.config_backup}").stdout
    data = {"redis_maxmemory": "256mb", "redis_maxmemory_policy": "volatile-lru"}
    run = deploy(target, data=data)
    assert run.rc == 0, run.output
    assert "Applying at runtime, no restart: maxmemory, maxmemory-policy" in run.output
    assert main_pid(name) == pid
    assert redis(name, "dbsize") == "10000"
    assert (config_get(name, "maxmemory"), config_get(name, "maxmemory-policy")) == ("268435456", "volatile-lru")
    conf = sh(name, f"cat {REDIS.config}").stdout.splitlines()
    assert "maxmemory 256mb" in conf and "maxmemory-policy volatile-lru" in conf
    assert sh(name, f"sha256sum {REDIS.config_backup}").stdout == backup
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
        assert "port 6380" in sh(name, f"cat {REDIS.config}").stdout.splitlines()
        assert redis(name, "get", "config:feed", db=5, port=6380) == "b3"
    finally:
        sh(name, "redis-cli -p 6381 shutdown nosave", check=False)
    assert_no_change(target, {"redis_port": 6380})


# An app through a rotation, as it runs until PM2 reloads it with the new REDIS_URL: one
# connection logged in with the app password read at its start, a command every 5 ms, and a new
# connection with that password every 50 ms, as a reconnecting app opens. A refused login counts
# as a failure unless the rotation is over: the kept previous passwords gone a second later.
# It stops when /root/client.stop appears and writes "<commands> <errors> <logins> <refused>".
CLIENT = r"""
import os, socket, sys, time
values = dict(l.strip().split("=", 1) for l in open("/etc/smart-redis/credentials") if "=" in l and l[0] != "#")
user, password = values["REDIS_APP_USER"].strip("'"), values["REDIS_APP_PASSWORD"].strip("'")
def connect():
    s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
    f = s.makefile("rb")
    def call(*args):
        s.sendall(b"*%d\r\n" % len(args) + b"".join(b"$%d\r\n%s\r\n" % (len(a), a.encode()) for a in args))
        return f.readline()
    return s, call
_, call = connect()
assert call("AUTH", user, password).startswith(b"+OK")
done = errors = logins = refused = 0
over = False
while not os.path.exists("/root/client.stop"):
    reply = call("INCR", "rotation:counter")
    done, errors = done + 1, errors + reply.startswith(b"-")
    if not over and done % 10 == 0:
        s, login = connect()
        ok = login("AUTH", user, password).startswith(b"+OK")
        s.close()
        logins += 1
        if not ok:
            time.sleep(1)
            over = not os.path.exists("/etc/smart-redis/credentials.previous")
            refused += not over
    time.sleep(0.005)
open("/root/client.out", "w").write(f"{done} {errors} {logins} {refused}\n")
"""


def login_works(container: str, user: str, password: str, port: int) -> bool:
    reply = sh_input(
        container,
        f"REDISCLI_AUTH=$(cat) redis-cli --no-auth-warning --user {user} -p {port} ping 2>&1; true",
        password,
    )
    return reply.stdout.strip() == "PONG"


def stored(container: str) -> dict[str, str]:
    text = sh(container, f"cat {PATHS.credentials}").stdout
    return dict(line.split("=", 1) for line in shlex.split(text) if "=" in line)


@pytest.mark.parametrize("how", ["given", "redis_rotate_passwords"])
def test_new_passwords_reach_the_running_server_without_a_restart(live, how):
    """Issue 16, item 2, on a single server: the app and admin passwords change under a connected
    client without a restart or an error; the old ones are refused afterwards."""
    name, target = live["name"], live["target"]
    data = {"redis_port": 6380, "redis_save": '""'}
    assert deploy(target, data=data).rc == 0
    old, pid = stored(name), main_pid(name)
    put(name, "/root/client.py", CLIENT)
    sh(name, "rm -f /root/client.stop /root/client.out; nohup python3 /root/client.py 6380 >/root/client.err 2>&1 &")
    wait_for("the client runs", lambda: redis(name, "get", "rotation:counter", port=6380), 10, 0.2)
    if how == "given":
        env = {
            **os.environ,
            "SMART_REDIS_APP_PASSWORD": "app-" + "Wd5Kp9Xr3Tn7Bq1Lv6Hs2Jm8Fc4Gz0Ye" + "-rotated",
            "SMART_REDIS_ADMIN_PASSWORD": "admin-" + "Hq3Vn8Rt2Kw6Zp0Lx4Bm7Jc1Df5Gs9Ya" + "-rotated",
        }
        run = deploy(target, data=data, env=env)
    else:
        run = deploy(target, data={**data, "redis_rotate_passwords": "true"})
    assert run.rc == 0, run.failure
    sh(name, "touch /root/client.stop")
    done, errors, logins, refused = map(
        int,
        wait_for("the client's count", lambda: sh(name, "cat /root/client.out", check=False).stdout.split(), 10, 0.2),
    )
    new = stored(name)
    print(
        f"\nrotation ({how}): the connected client sent {done} commands, {errors} failed; "
        f"{logins} new logins with the old password, {refused} refused before the rotation ended"
    )
    assert errors == 0 and done > 100
    assert refused == 0 and logins > 10
    assert main_pid(name) == pid and "Restarting" not in run.output
    for role in ("APP", "ADMIN"):
        user = new[f"REDIS_{role}_USER"]
        assert new[f"REDIS_{role}_PASSWORD"] != old[f"REDIS_{role}_PASSWORD"]
        assert login_works(name, user, new[f"REDIS_{role}_PASSWORD"], 6380)
        assert not login_works(name, user, old[f"REDIS_{role}_PASSWORD"], 6380), f"the old {role} password still works"
    assert sh(name, f"test -e {PATHS.credentials_previous}", check=False).returncode != 0
    assert_no_change(target, data)


def test_a_rotation_stopped_halfway_survives_a_restart_and_the_next_run_ends_it(live):
    name, target = live["name"], live["target"]
    data = {"redis_port": 6380, "redis_save": '""'}
    old = stored(name)
    app = old["REDIS_APP_USER"]
    # A step after the new passwords' fails: REDIS_URL cannot be set in an ecosystem file that is
    # no JavaScript.
    sh(name, "mkdir -p /opt/smart-trade && printf 'module.exports = {' > /opt/smart-trade/ecosystem.config.js")
    try:
        env = {**os.environ, "SMART_REDIS_APP_PASSWORD": "app-" + "Qz8Lt3Vn6Rk1Xw4Bp9Hd2Mf7Js5Gc0Ya" + "-halfway"}
        run = deploy(target, data=data, env=env, no_apps=False)
        assert run.rc == 1 and "Set REDIS_URL" in run.failure, run.failure
        new = stored(name)
        conf = sh(name, f"grep '^user {app} ' {REDIS.config}").stdout
        assert conf.count("#") == 2, "redis.conf keeps both passwords while the rotation runs"
        sh(name, f"systemctl restart {REDIS.service}")  # a crash or a reboot in the middle of the rotation
        wait_for("the server", lambda: redis(name, "ping", port=6380) == "PONG", 30, 0.5)
        assert login_works(name, app, old["REDIS_APP_PASSWORD"], 6380)
        assert login_works(name, app, new["REDIS_APP_PASSWORD"], 6380)
    finally:
        sh(name, "rm -r /opt/smart-trade")
    finished = deploy(target, data=data)  # the same deploy, without the new password given again
    assert finished.rc == 0, finished.failure
    assert not login_works(name, app, old["REDIS_APP_PASSWORD"], 6380)
    assert login_works(name, app, new["REDIS_APP_PASSWORD"], 6380)
    assert sh(name, f"grep '^user {app} ' {REDIS.config}").stdout.count("#") == 1
    assert sh(name, f"test -e {PATHS.credentials_previous}", check=False).returncode != 0
    assert_no_change(target, data)


def test_a_failed_save_stops_the_restart_with_the_old_file_in_place(live):
    name, target = live["name"], live["target"]
    data = {"redis_port": 6380, "redis_save": '""', "redis_databases": 17}  # databases: startup only
    pid, conf = main_pid(name), sh(name, f"sha256sum {REDIS.config}").stdout
    mode = sh(name, f"stat -c %a {REDIS.data_dir}").stdout.strip()
    sh(name, f"chmod 555 {REDIS.data_dir}")  # redis (not root) can no longer write its snapshot
    try:
        run = deploy(target, data=data)
        assert run.rc == 1, run.output
        assert "the SAVE before the restart failed" in run.output, run.output
        assert main_pid(name) == pid
        assert sh(name, f"sha256sum {REDIS.config}").stdout == conf
        assert sh(name, f"test -e {PATHS.config_candidate}", check=False).returncode != 0
    finally:
        sh(name, f"chmod {mode} {REDIS.data_dir}")
    fixed = deploy(target, data=data)
    assert fixed.rc == 0 and main_pid(name) != pid, fixed.output
    assert config_get(name, "databases", port=6380) == "17"
