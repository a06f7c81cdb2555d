"""Planned changes on a Sentinel group under load (issue 16): the primary hands its role over first.

Three containers, a primary with 600 000 keys of 1 KB (so that a SAVE and a load take seconds, as
in production), and a client outside the containers that writes through Sentinel discovery the
whole time, each write acknowledged by a replica (WAIT 1), retrying as ioredis and node-redis do.
Three scenarios: a setting that only a restart applies, on every host; a rotation of every shared
password; and packages replaced under the running servers, which the deploy rolls onto the new
binary. The inventory gives no
addresses: the deploy finds each host's own.
"""

from __future__ import annotations

import json
import shlex
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest
from conftest import deploy, put, sh, three_hosts, wait_for
from redis import Redis
from redis.backoff import ExponentialBackoff, NoBackoff
from redis.exceptions import AuthenticationError, ConnectionError, NoPermissionError, TimeoutError
from redis.retry import Retry
from redis.sentinel import Sentinel, SentinelManagedConnection

MASTER = "smart-trade"
KEYS = 600_000
# Each app writes at most once per PACE: 100 writes a second, enough to time a write gap to 20 ms
# (the handover's goal is 2 s). Unpaced, the two clients and the servers serving them took most of
# a core for the whole test, which the other modules' containers need in make test.
PACE = 0.01
VALUE_BYTES = 1024
ADMIN_CLI = (
    '. /etc/smart-redis/credentials && REDISCLI_AUTH="$REDIS_ADMIN_PASSWORD" '
    'redis-cli --no-auth-warning --user "$REDIS_ADMIN_USER"'
)
# The dataset as RESP for redis-cli --pipe, made by the container's own python3.
LOAD_SCRIPT = f"""import sys
value = "x" * {VALUE_BYTES}
for i in range({KEYS}):
    key = f"data:{{i}}"
    sys.stdout.write(f"*3\\r\\n$3\\r\\nSET\\r\\n${{len(key)}}\\r\\n{{key}}\\r\\n${VALUE_BYTES}\\r\\n{{value}}\\r\\n")
"""


def info(container: str) -> dict:
    text = sh(container, f"{ADMIN_CLI} info replication", check=False).stdout
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


# Keeps the package's scripts from restarting anything, as unattended-upgrades on a host with
# needrestart in list mode would: the new binary is on disk, the old one runs.
NO_RESTARTS = (
    "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d && "
    "trap 'rm -f /usr/sbin/policy-rc.d' EXIT && DEBIAN_FRONTEND=noninteractive"
)


def main_pid(container: str) -> str:
    return sh(container, "systemctl show -p MainPID --value redis-server").stdout.strip()


@pytest.fixture(scope="module")
def group(docker_testbed, run_id, tmp_path_factory):
    with three_hosts(docker_testbed, f"smart-redis-test-{run_id}-ho") as (names, addresses, _):
        work = tmp_path_factory.mktemp("handover")
        inventory = work / "inventory.py"
        # No redis_ha_address, no redis_bind: each host has one address, which the deploy finds.
        hosts = [repr("@docker/" + n) for n in names]
        inventory.write_text(
            f"redis_primary = [{hosts[0]}]\nredis_replicas = [{hosts[1]}, {hosts[2]}]\n"
            f"redis_sentinels = [{', '.join(hosts)}]\n"
        )
        yield {"names": names, "addresses": addresses, "inventory": str(inventory), "secrets": work / "redis-ha.env"}


def run_deploy(group, *args, data=None, json_output=False):
    data = {"redis_ha_secrets_file": str(group["secrets"]), "redis_maxmemory": "1gb", **(data or {})}
    return deploy(group["inventory"], *args, data=data, json_output=json_output)


T = TypeVar("T")


class Writer(threading.Thread):
    """Writes one key after the other through Sentinel discovery, each acknowledged by a replica.

    A write that meets a connection error (the server went away, or it is a replica now) is
    retried on a new connection, which asks the sentinels again, with a backoff of up to 0.5 s
    for 30 s: what ioredis and node-redis do by default. (redis-py's own retries are off here;
    SentinelClientWriter below is the app that uses them.)
    """

    def __init__(self, sentinels: list[str], user: str, password: str, tls_ca: str | None = None):
        super().__init__(daemon=True)
        login = {"username": user, "password": password, "socket_timeout": 2.0, "socket_connect_timeout": 1.0}
        if tls_ca:  # a TLS group: the servers and sentinels, verified against this CA
            login.update(ssl=True, ssl_ca_certs=tls_ca)
        self.sentinel = Sentinel([(ip, 26379) for ip in sentinels], sentinel_kwargs=login)
        self.client = self.sentinel.master_for(MASTER, retry=Retry(NoBackoff(), 0), **{**login, "socket_timeout": 5.0})
        self.acked: list[str] = []
        self.unacked: list[str] = []
        self.failures: list[str] = []
        self.retries: list[str] = []
        self.longest_gap = 0.0
        self.gap_ended = ""
        self.stopping = threading.Event()

    def write(self, key: str, n: int) -> int:
        deadline, backoff = time.monotonic() + 30, 0.02
        while True:
            pipe = self.client.pipeline(transaction=False)
            pipe.set(key, n)
            pipe.execute_command("WAIT", 1, 2000)
            try:
                return pipe.execute()[1]
            except (ConnectionError, TimeoutError) as exc:
                self.retries.append(f"{time.strftime('%H:%M:%S')} {key}: {exc}")
                self.client.connection_pool.disconnect()
                if time.monotonic() > deadline:
                    raise
                time.sleep(backoff)
                backoff = min(backoff * 2, 0.5)

    def run(self) -> None:
        last = time.monotonic()
        n = 0
        while not self.stopping.is_set():
            n += 1
            key = f"load:{n}"
            try:
                replicas = self.write(key, n)
            except Exception as exc:  # noqa: BLE001 - every failure the app would see is the result
                self.failures.append(f"{key}: {type(exc).__name__}: {exc}")
                continue
            if replicas < 1:
                self.unacked.append(key)
                continue
            now = time.monotonic()
            if now - last > self.longest_gap:
                self.longest_gap, self.gap_ended = now - last, time.strftime("%H:%M:%S")
            last = now
            self.acked.append(key)
            self.stopping.wait(PACE)

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)
        assert not self.is_alive(), "the writer hangs"


def while_writing(writer: Writer, label: str, deploy_run: Callable[[], T]) -> T:
    """deploy_run (a deploy) while `writer` writes, from 2 s before it to 2 s after; prints what
    the writer saw under `label`."""
    writer.start()
    time.sleep(2)
    try:
        result = deploy_run()
    finally:
        time.sleep(2)
        writer.stop()
    print(
        f"\n{label}: {len(writer.acked)} writes acknowledged, longest write gap {writer.longest_gap:.2f} s, "
        f"{len(writer.retries)} reconnect retries, {len(writer.failures)} failed"
    )
    return result


class AsksAgain(SentinelManagedConnection):
    """redis-py's Sentinel connection, asking the sentinels on every reconnect. redis-py 8.1 does
    so only for a connection taken from the pool: a command's own retries reconnect to the
    address the connection had (redis/redis-py#3874, open), so a command in flight when the
    primary moves fails whatever the servers do. This is the change that issue proposes."""

    def connect_check_health(self, check_health: bool = True, retry_socket_connect: bool = True):
        if not self._sock and self.connection_pool.is_master:
            self.host, self.port = self.connection_pool.get_master_address()
        return super().connect_check_health(check_health=check_health, retry_socket_connect=retry_socket_connect)


class SentinelClientWriter(threading.Thread):
    """The same writes as an app on redis-py's own Sentinel client would make them: SET, then
    WAIT 1, each command with redis-py's retries (8, backoff capped at 0.5 s; a read times out
    after 0.5 s). A command that still fails after them is a failed command for the app. With
    AsksAgain, the fix of redis-py's open bug."""

    def __init__(self, sentinels: list[str], user: str, password: str):
        super().__init__(daemon=True)
        login = {"username": user, "password": password, "socket_timeout": 0.5, "socket_connect_timeout": 0.5}
        sentinel = Sentinel([(ip, 26379) for ip in sentinels], sentinel_kwargs=login)
        retry = Retry(ExponentialBackoff(cap=0.5, base=0.01), 8)
        self.client = sentinel.master_for(MASTER, retry=retry, connection_class=AsksAgain, **login)
        # Where redis-py's discovery sent it, for a failure's message.
        self.discovered: list[str] = []
        ask = sentinel.discover_master

        def discover(name):
            try:
                found = ask(name)
            except Exception as exc:
                self.discovered.append(f"{time.strftime('%H:%M:%S')} {type(exc).__name__}")
                raise
            self.discovered.append(f"{time.strftime('%H:%M:%S')} {found[0]}")
            return found

        sentinel.discover_master = discover
        self.acked: list[str] = []
        self.failures: list[str] = []
        self.unacked = 0
        self.longest_gap = 0.0
        self.gap_ended = ""
        self.stopping = threading.Event()

    def run(self) -> None:
        last = time.monotonic()
        n = 0
        while not self.stopping.is_set():
            n += 1
            key = f"app:{n}"
            try:
                self.client.set(key, n)
                replicas = self.client.execute_command("WAIT", 1, 400)
            except Exception as exc:  # noqa: BLE001 - every failure the app would see is the result
                self.failures.append(
                    f"{time.strftime('%H:%M:%S')} {key}: {type(exc).__name__}: {exc} (discovered: {self.discovered[-12:]})"
                )
                continue
            if replicas < 1:
                self.unacked += 1
                continue
            now = time.monotonic()
            if now - last > self.longest_gap:
                self.longest_gap, self.gap_ended = now - last, time.strftime("%H:%M:%S")
            last = now
            self.acked.append(key)
            self.stopping.wait(PACE)

    def stop(self) -> None:
        self.stopping.set()
        self.join(60)
        assert not self.is_alive(), "the redis-py writer hangs"


def stored_credentials(container: str) -> dict[str, str]:
    text = sh(container, "cat /etc/smart-redis/credentials").stdout
    return dict(line.split("=", 1) for line in shlex.split(text) if "=" in line)


def logs_in(ip: str, port: int, user: str, password: str) -> bool:
    """The login is accepted (whether the user may PING there or not). Asked once: redis-py
    retries a refused login as a connection error, with a backoff of seconds."""
    try:
        return bool(
            Redis(ip, port, username=user, password=password, socket_timeout=3, retry=Retry(NoBackoff(), 0)).ping()
        )
    except AuthenticationError:
        return False
    except NoPermissionError:
        return True


def primary_of(group) -> tuple[str, str]:
    """(container, address) of the server that is primary now."""
    for name, address in zip(group["names"], group["addresses"], strict=True):
        if info(name).get("role") == "master":
            return name, address
    raise AssertionError("no primary")


def under_load(group, credentials, scenario: str, *deploy_args, data=None):
    """Run the deploy while two apps write: this test's client, and redis-py's Sentinel client
    with its retries and the fix of its open bug (AsksAgain; redis-py 8.1 as it is fails the one
    command in flight at every handover: BENCHMARKS.md). Print what they saw; return (run, writers)."""
    login = (group["addresses"], credentials["REDIS_APP_USER"], credentials["REDIS_APP_PASSWORD"])
    writer, app = Writer(*login), SentinelClientWriter(*login)
    for thread in (writer, app):
        thread.start()
    time.sleep(2)
    started = time.monotonic()
    run = run_deploy(group, *deploy_args, data=data)
    took = time.monotonic() - started
    time.sleep(2)
    for thread in (writer, app):
        thread.stop()
    print(
        f"{scenario}: deploy {took:.1f} s\n"
        f"  this test's client: {len(writer.acked)} writes acknowledged, longest write gap "
        f"{writer.longest_gap:.2f} s (ended {writer.gap_ended}), {len(writer.retries)} reconnect retries, "
        f"{len(writer.unacked)} not acknowledged within 2 s, {len(writer.failures)} failed\n"
        f"  redis-py's Sentinel client: {len(app.acked)} writes acknowledged, longest write gap "
        f"{app.longest_gap:.2f} s (ended {app.gap_ended}), {app.unacked} not acknowledged within 0.4 s, "
        f"{len(app.failures)} failed"
    )
    for line in run.output.splitlines():
        if "writes waited" in line:
            print(f"  the handover: {line.strip()}")
    return run, [writer, app]


def assert_nothing_lost(writers: list, address: str, credentials) -> None:
    """No failed command, and every acknowledged write is on the primary."""
    for writer in writers:
        assert writer.failures == [], writer.failures[:3]
        assert writer.acked, "no write went through at all"
    acked = [key for writer in writers for key in writer.acked]
    client = Redis(address, 6379, username=credentials["REDIS_APP_USER"], password=credentials["REDIS_APP_PASSWORD"])
    missing = []
    for start in range(0, len(acked), 5000):
        batch = acked[start : start + 5000]
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.exists(key)
        missing += [key for key, there in zip(batch, pipe.execute(), strict=True) if not there]
    assert missing == [], f"{len(missing)} acknowledged writes lost, e.g. {missing[:5]}"
    assert client.dbsize() >= KEYS


def load_dataset(primary: str) -> None:
    """The dataset, through redis-cli --pipe: setup, not the behaviour under test. While it loads,
    the primary takes writes without waiting for its replicas (min-replicas-to-write 0): on a busy
    machine (make test runs modules side by side) 600 MB make them lag past min-replicas-max-lag,
    and the primary would refuse writes (NOREPLICAS). The deploy's value is back before any test
    step, and the replicas have all of it (the caller waits for their offsets)."""
    put(primary, "/root/load.py", LOAD_SCRIPT)
    kept = sh(primary, f"{ADMIN_CLI} config get min-replicas-to-write").stdout.split()[-1]
    sh(primary, f"{ADMIN_CLI} config set min-replicas-to-write 0")
    try:
        loaded = sh(primary, f"python3 /root/load.py | {{ {ADMIN_CLI} --pipe --pipe-timeout 300; }} 2>&1 | tail -n 3")
    finally:
        sh(primary, f"{ADMIN_CLI} config set min-replicas-to-write {int(kept)}")
    assert "errors: 0," in loaded.stdout, loaded.stdout


def assert_converged(group, data=None) -> None:
    """Every replica's redis.conf names the primary, and a re-run changes nothing."""
    _, address = primary_of(group)
    for name in group["names"]:
        if info(name).get("role") == "slave":
            assert f"replicaof {address} 6379" in sh(name, "cat /etc/redis/redis.conf").stdout
    again = run_deploy(group, data=data, json_output=True)
    if again.rc != 0 or again.changed != 0:
        # What ran on the hosts meanwhile, for whoever reads the failure (the hourly snapshot may
        # have met a restart: the re-run takes it again).
        for name in group["names"]:
            print(name, sh(name, "journalctl -q -u redis-backup.service -n 8 --no-pager", check=False).stdout)
    assert again.rc == 0 and again.changed == 0, again.failure


def test_planned_changes_under_load(group):
    (a, b, c) = group["names"]
    first = run_deploy(group)
    assert first.rc == 0, first.failure
    wait_for("2 replicas online", lambda: info(a).get("connected_slaves") == "2", 60)
    # Each host's address was found on it, listened on, and kept for a later --limit run.
    for name, address in zip(group["names"], group["addresses"], strict=True):
        assert f"bind 127.0.0.1 -::1 {address}" in sh(name, "cat /etc/redis/redis.conf").stdout
    recorded = json.loads((group["secrets"].parent / "redis-ha.addresses.json").read_text())
    assert recorded == {f"@docker/{n}": [ip] for n, ip in zip(group["names"], group["addresses"], strict=True)}

    started = time.monotonic()
    load_dataset(a)
    wanted = int(info(a)["master_repl_offset"])
    wait_for(
        "the replicas have the dataset",
        lambda: all(int(info(n).get("master_repl_offset", 0)) >= wanted for n in (b, c)),
        120,
    )
    print(f"\n{KEYS} keys of {VALUE_BYTES} B loaded and replicated in {time.monotonic() - started:.1f} s")
    credentials = stored_credentials(a)
    # The app's way in works before anything changes (without retries: an error shows as it is).
    probe = Writer(group["addresses"], credentials["REDIS_APP_USER"], credentials["REDIS_APP_PASSWORD"]).client
    assert probe.set("probe", "1") and probe.execute_command("WAIT", 1, 2000) >= 1

    # --- 1. A setting only a restart applies, on every host: the primary restarts last, as a replica.
    pids = {n: main_pid(n) for n in (a, b, c)}
    change, writers = under_load(group, credentials, "restart-requiring change", "-vvv", data={"redis_databases": 17})
    assert change.rc == 0, change.failure
    for line in (
        "hands its role to one of them",
        "Pausing writes on",
        "promotes a replica",
        "Every sentinel that answers names",
    ):
        assert line in change.output
    assert credentials["REDIS_APP_PASSWORD"] not in change.output
    assert all(main_pid(n) != pids[n] for n in (a, b, c))
    assert all(sh(n, f"{ADMIN_CLI} config get databases").stdout.split()[-1] == "17" for n in (a, b, c))
    new, address = primary_of(group)
    assert new != a and info(a)["master_host"] == address and info(a)["master_link_status"] == "up"
    assert_nothing_lost(writers, address, credentials)
    assert_converged(group, data={"redis_databases": 17})

    # --- 2. Every shared password rotated (redis_rotate_passwords): each server and sentinel accepts
    # the new one beside the old first, masterauth and Sentinel's logins move, the old are retired.
    old = credentials
    # Not with a host of the group left out: it could not accept the passwords the others move to.
    secrets_before = group["secrets"].read_text()
    limited = run_deploy(
        group, "--limit", f"@docker/{b}", data={"redis_databases": 17, "redis_rotate_passwords": "true"}
    )
    assert limited.rc == 1 and "allowed only in a run of every host of the Sentinel group" in limited.output
    assert group["secrets"].read_text() == secrets_before
    assert stored_credentials(b)["REDIS_APP_PASSWORD"] == old["REDIS_APP_PASSWORD"]
    pids = {n: main_pid(n) for n in (a, b, c)}
    sentinel_pids = {n: sh(n, "systemctl show -p MainPID --value redis-sentinel").stdout for n in (a, b, c)}
    rotated, writers = under_load(
        group,
        credentials,
        "rotation of every shared password",
        data={"redis_databases": 17, "redis_rotate_passwords": "true"},
    )
    assert rotated.rc == 0, rotated.failure
    credentials = stored_credentials(a)
    shared_keys = [
        f"REDIS_{role}_{part}" for role in ("APP", "ADMIN", "REPLICATION", "SENTINEL") for part in ("USER", "PASSWORD")
    ]
    assert all(
        {k: stored_credentials(n)[k] for k in shared_keys} == {k: credentials[k] for k in shared_keys} for n in (b, c)
    )
    shared = dict(line.split("=", 1) for line in group["secrets"].read_text().split())
    for role in ("APP", "ADMIN", "REPLICATION", "SENTINEL"):
        key = f"REDIS_{role}_PASSWORD"
        assert credentials[key] != old[key] and shared[key] == credentials[key], role
        assert credentials[key] not in rotated.output and old[key] not in rotated.output
    assert all(main_pid(n) == pids[n] for n in (a, b, c)), "a server restarted"
    assert all(sh(n, "systemctl show -p MainPID --value redis-sentinel").stdout == sentinel_pids[n] for n in (a, b, c))
    assert primary_of(group)[0] == new, "the primary moved"
    assert_nothing_lost(writers, address, credentials)
    for ip in group["addresses"]:
        for role, port in [(r, 6379) for r in ("APP", "ADMIN", "REPLICATION", "SENTINEL")] + [
            (r, 26379) for r in ("APP", "ADMIN", "SENTINEL")
        ]:
            user = credentials[f"REDIS_{role}_USER"]
            assert logs_in(ip, port, user, credentials[f"REDIS_{role}_PASSWORD"]), f"{role} on {ip}:{port}"
            assert not logs_in(ip, port, user, old[f"REDIS_{role}_PASSWORD"]), f"old {role} on {ip}:{port} still works"
    # Replication and Sentinel log in with the new passwords: replicas that reconnect are back in
    # sync (masterauth), and a sentinel that forgets what it knew finds the servers (auth-pass) and
    # the other sentinels (sentinel-pass) again.
    for n in (a, b, c):
        if n != new:
            sh(n, f"{ADMIN_CLI} client kill type master >/dev/null")
    wait_for(
        "the replicas back in sync",
        lambda: all(info(n).get("master_link_status") == "up" for n in (a, b, c) if n != new),
        60,
    )
    sentinel_cli = ADMIN_CLI + " -p 26379"
    sh(a, f"{sentinel_cli} sentinel reset {MASTER} >/dev/null")
    wait_for(
        "the reset sentinel knows the group again",
        lambda: "\n2\nnum-other-sentinels\n2\n" in sh(a, f"{sentinel_cli} --raw sentinel master {MASTER}").stdout,
        60,
    )
    assert_converged(group, data={"redis_databases": 17})

    # --- 3. The packages replaced under the running servers (as unattended-upgrades leaves them):
    # the deploy restarts each server and sentinel on the new binary, the primary after a handover.
    for n in (a, b, c):
        sh(n, f"{NO_RESTARTS} apt-get install -y -q --reinstall redis-server redis-tools redis-sentinel >/dev/null")
    pids = {n: main_pid(n) for n in (a, b, c)}
    sentinel_pids = {n: sh(n, "systemctl show -p MainPID --value redis-sentinel").stdout for n in (a, b, c)}
    rolled, writers = under_load(group, credentials, "rolling package reinstall", data={"redis_databases": 17})
    assert rolled.rc == 0, rolled.failure
    assert "the package replaced the binary it runs" in rolled.output
    assert all(main_pid(n) != pids[n] for n in (a, b, c))
    assert all(sh(n, "systemctl show -p MainPID --value redis-sentinel").stdout != sentinel_pids[n] for n in (a, b, c))
    newer, address = primary_of(group)
    assert newer != new
    assert_nothing_lost(writers, address, credentials)
    assert_converged(group, data={"redis_databases": 17})
