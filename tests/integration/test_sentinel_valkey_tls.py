"""A Sentinel group with TLS everywhere moved between Redis and Valkey (issue 28), both ways where
Debian's packages allow it: three Debian 12 hosts from Redis 7.0 to Valkey 8.0 (bookworm-
backports), and three Debian 13 hosts from Valkey 8.1 back to Redis 8.0 (Redis 8.0's own format
does not reach Valkey 8.1: that way is refused, test_server_choice). Each in one run, while a
client writes through Sentinel over TLS, each write acknowledged by a replica.

Every link of a move is a TLS one (redis_tls = "only": no plain port anywhere): a moved replica's
full sync from the old primary, the sentinels' hellos between old and new, the handover's
questions, the deploy's own. The certificate files keep their names; their group follows the
server that reads them.
"""

from __future__ import annotations

import time
from typing import NamedTuple

import pytest
from conftest import deploy, group_inventory, sh, three_hosts, wait_for
from redis import Redis
from test_handover import Writer
from test_sentinel_valkey import MASTER, credentials

from smart_redis.auth import cli
from smart_redis.constants import PATHS
from smart_redis.host.server import REDIS, VALKEY, Server

TLS = f"--tls --cacert {PATHS.tls_ca}"


class Way(NamedTuple):
    release: str
    old: Server
    new: Server
    version: str  # how the new server's --version begins


WAYS = {
    "bookworm-redis-to-valkey": Way("bookworm", REDIS, VALKEY, "Valkey server v=8.0."),
    "trixie-valkey-to-redis": Way("trixie", VALKEY, REDIS, "Redis server v=8.0."),
}


@pytest.fixture(scope="module", params=list(WAYS))
def group(request, docker_testbed, run_id, tmp_path_factory):
    way = WAYS[request.param]
    name = f"smart-redis-test-{run_id}-vt{way.release[0]}"
    with three_hosts(docker_testbed, name, release=way.release) as (names, addresses, _):
        work = tmp_path_factory.mktemp(f"tls-group-{request.param}")
        yield {
            "way": way,
            "names": names,
            "addresses": addresses,
            "inventory": group_inventory(work / "inventory.py", names, addresses),
            "work": work,
            "data": {
                "redis_tls": "only",
                "redis_tls_ca_dir": str(work / "secrets" / "tls"),
                "redis_ha_secrets_file": str(work / "secrets" / "redis-ha.env"),
                **({"redis_major_version": 8} if way.release == "trixie" else {}),
            },
        }


def run_deploy(group, server: Server, json_output=False):
    data = {**group["data"], "redis_server": server.name}
    return deploy(group["inventory"], data=data, json_output=json_output, no_apps=False)


def ask(container: str, command: str, server: Server, port: int = 6379, role: str = "ADMIN") -> str:
    return sh(container, f"{cli(port, 'acl', role, program=server.cli)} {TLS} {command}", check=False).stdout.strip()


def sentinel_names(container: str, server: Server) -> str:
    reply = ask(container, f"--raw sentinel get-master-addr-by-name {MASTER}", server, 26379, "APP").split()
    return reply[0] if len(reply) == 2 else ""


def replication(container: str, server: Server) -> dict:
    text = ask(container, "info replication", server)
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


def test_a_tls_group_moves_to_the_other_server_under_writes_and_stays_converged(group):
    way, names, addresses = group["way"], group["names"], group["addresses"]
    old, new = way.old, way.new
    a = names[0]
    first = run_deploy(group, old)
    assert first.rc == 0, first.failure
    wait_for("2 replicas online", lambda: replication(a, old).get("connected_slaves") == "2", 60)
    wait_for("every sentinel names the primary", lambda: {sentinel_names(n, old) for n in names} == {addresses[0]}, 60)
    ids = {n: ask(n, "sentinel myid", old, 26379) for n in names}
    login = credentials(a)
    ca = group["work"] / "published-ca.crt"
    ca.write_text(sh(a, f"cat {PATHS.tls_ca}").stdout)
    admin = {
        "username": login["REDIS_ADMIN_USER"],
        "password": login["REDIS_ADMIN_PASSWORD"],
        "ssl": True,
        "ssl_ca_certs": str(ca),
    }
    pipe = Redis(addresses[0], 6379, db=2, **admin).pipeline(transaction=False)
    for i in range(3000):
        pipe.set(f"before:{i}", i, ex=86400 if i % 2 else None)
    pipe.execute()

    writer = Writer(addresses, login["REDIS_APP_USER"], login["REDIS_APP_PASSWORD"], tls_ca=str(ca))
    writer.start()
    time.sleep(2)
    moved = run_deploy(group, new)
    time.sleep(2)
    writer.stop()
    print(
        f"\nTLS group on Debian {way.release} moved from {old.service} to {new.service}: {len(writer.acked)} "
        f"writes acknowledged, longest write gap {writer.longest_gap:.2f} s, {len(writer.retries)} reconnect "
        f"retries, {len(writer.failures)} failed"
    )
    assert moved.rc == 0, moved.failure
    assert f"Moving to {new.service} as a replica" in moved.output and "hands its role to one of them" in moved.output
    assert "PRIVATE KEY" not in moved.output and login["REDIS_APP_PASSWORD"] not in moved.output
    assert writer.failures == [] and writer.acked, writer.failures[:3]
    for name in names:
        units = sh(name, f"systemctl is-active {new.service} {new.sentinel_service}; {new.service} --version").stdout
        assert units.startswith(f"active\nactive\n{way.version}"), units
        # TLS alone still: no plain port on the server nor on the sentinel
        plain = sh(name, f"grep -cx 'port 0' {new.config} {new.sentinel_config}").stdout.split()
        assert plain == [f"{new.config}:1", f"{new.sentinel_config}:1"], plain
        # the keys the new server and sentinel read are their group's, and nobody else's
        keys = sh(name, f"stat -c '%U %G %a' {PATHS.tls_dir}/*.key").stdout.splitlines()
        assert set(keys) == {f"root {new.group} 640"}, keys
        for package in (old.service, old.sentinel_service):
            status = sh(name, f"dpkg-query -W -f='${{db:Status-Status}}' {package}", check=False).stdout
            assert status in ("", "config-files", "not-installed"), f"{package} left {status}"
    primary = wait_for(
        "every sentinel names one primary",
        lambda: len({sentinel_names(n, new) for n in names}) == 1 and sentinel_names(a, new),
        30,
    )
    assert primary != addresses[0]  # the primary handed its role over before it moved
    wait_for(
        "2 replicas online",
        lambda: replication(names[addresses.index(primary)], new).get("connected_slaves") == "2",
        60,
    )
    # Each sentinel kept its id over TLS too, and counts the other two once.
    assert {n: ask(n, "sentinel myid", new, 26379) for n in names} == ids
    for name in names:
        assert ask(name, f"sentinel sentinels {MASTER}", new, 26379).splitlines().count("name") == 2, name
    pipe = Redis(primary, 6379, **admin).pipeline(transaction=False)
    for key in writer.acked:
        pipe.exists(key)
    assert all(pipe.execute()), "an acknowledged write was lost"
    kept = Redis(primary, 6379, db=2, **admin)
    assert kept.exists(*(f"before:{i}" for i in range(3000))) == 3000
    assert kept.ttl("before:1") > 0 and kept.ttl("before:2") == -1
    again = run_deploy(group, new, json_output=True)
    assert again.rc == 0 and again.changed == 0, again.failure
