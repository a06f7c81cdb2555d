"""A Sentinel group with TLS alone moved from Redis to Valkey, then run on Valkey (issue 28): three
Debian 12 hosts start on Redis 7.0 and its Sentinel with redis_tls = "only" (no plain port
anywhere), and one run moves them to Valkey 8.0 (bookworm-backports) while a client writes over TLS
through Sentinel discovery, each write acknowledged by a replica: the replicas first, each back in
sync, then the primary's handover, then the old primary as a replica. Every link of the move is a
TLS one (a moved replica's sync from the old primary, old and new sentinels, the handover, the
deploy's own questions); the keys stay the old server's group's until each host's own move.

Then the group runs as test_sentinel's and test_handover's Redis groups do: a setting that only
a restart applies goes through the handover under writes, the primary's loss fails over, and
re-runs change nothing. The deploy's code is the same for both servers (the typed Server picks
the unit, files and CLI); this module proves it on Valkey's own Sentinel.
(Debian 13 cannot move a group this way: its Redis 8.0 writes a data format that its Valkey 8.1
does not load, docs/valkey.md. Its Valkey group is built the same way as this one ends.)
"""

from __future__ import annotations

import shlex
import subprocess

import pytest
from conftest import deploy, group_inventory, promoted, redis, sh, three_hosts, wait_for
from redis import Redis
from test_handover import Writer, while_writing

from smart_redis.auth import cli
from smart_redis.constants import PATHS
from smart_redis.host.server import REDIS, VALKEY, Server

MASTER = "smart-trade"
TLS = f"--tls --cacert {PATHS.tls_ca}"  # what the host's CLI needs: the group has no plain port


@pytest.fixture(scope="module")
def group(docker_testbed, run_id, tmp_path_factory):
    with three_hosts(docker_testbed, f"smart-redis-test-{run_id}-vs", release="bookworm") as (names, addresses, _):
        work = tmp_path_factory.mktemp("valkey-group")
        yield {
            "names": names,
            "addresses": addresses,
            "inventory": group_inventory(work / "inventory.py", names, addresses),
            "secrets": work / "redis-ha.env",
            "work": work,
        }


def run_deploy(group, *args, data=None, json_output=False):
    data = {
        "redis_ha_secrets_file": str(group["secrets"]),
        "redis_tls": "only",
        "redis_tls_ca_dir": str(group["work"] / "tls"),
        "redis_server": "valkey",
        **(data or {}),
    }
    return deploy(group["inventory"], *args, data=data, json_output=json_output, no_apps=False)


def sentinel_names(container: str, server: Server = VALKEY) -> str:
    """The primary's address as this host's sentinel names it ("" while it does not answer)."""
    reply = sh(
        container,
        f"{cli(26379, 'acl', 'APP', tls=TLS, program=server.cli)} --raw sentinel get-master-addr-by-name {MASTER}",
        check=False,
    ).stdout.split()
    return reply[0] if len(reply) == 2 else ""


def sentinel(container: str, *args: str, server: Server = VALKEY) -> list[str]:
    """A SENTINEL command to this host's sentinel as the Sentinel user; the reply's lines."""
    return redis(container, "sentinel", *args, role="SENTINEL", port=26379, server=server, tls=TLS).splitlines()


def replication(container: str, server: Server = VALKEY) -> dict:
    """INFO replication as a dict; empty while the server does not answer (a container booting)."""
    text = sh(
        container, f"{cli(6379, 'acl', 'ADMIN', tls=TLS, program=server.cli)} info replication", check=False
    ).stdout
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


def credentials(container: str) -> dict[str, str]:
    text = sh(container, "cat /etc/smart-redis/credentials").stdout
    return dict(line.split("=", 1) for line in shlex.split(text) if "=" in line)


def test_a_redis_group_moves_to_valkey_under_writes_then_hands_over_fails_over_and_stays_converged(group):
    names, addresses = group["names"], group["addresses"]
    a = names[0]
    first = run_deploy(group, data={"redis_server": "redis"})
    assert first.rc == 0, first.failure
    wait_for("2 replicas online", lambda: replication(a, REDIS).get("connected_slaves") == "2", 60)
    wait_for(
        "every sentinel names the primary", lambda: {sentinel_names(n, REDIS) for n in names} == {addresses[0]}, 60
    )
    ids = {n: sentinel(n, "myid", server=REDIS)[0] for n in names}
    # Data from before the move, in two databases, some of it with a TTL (over TLS, with the CA
    # the deploy published for the apps).
    login = credentials(a)
    ca = group["work"] / "published-ca.crt"
    ca.write_text(sh(a, f"cat {PATHS.tls_ca}").stdout)
    tls = {"ssl": True, "ssl_ca_certs": str(ca)}
    for db in (0, 3):
        admin = Redis(
            addresses[0], 6379, db=db, username=login["REDIS_ADMIN_USER"], password=login["REDIS_ADMIN_PASSWORD"], **tls
        )
        pipe = admin.pipeline(transaction=False)
        for i in range(5000):
            pipe.set(f"before:{i}", i, ex=86400 if i % 2 else None)
        pipe.execute()

    # The move, host by host, while an app writes through Sentinel (each write acknowledged by a replica).
    writer = Writer(addresses, login["REDIS_APP_USER"], login["REDIS_APP_PASSWORD"], tls_ca=str(ca))
    moved = while_writing(writer, "TLS group moved from Redis to Valkey", lambda: run_deploy(group))
    assert moved.rc == 0, moved.failure
    assert "Moving to valkey-server as a replica" in moved.output and "hands its role to one of them" in moved.output
    assert login["REDIS_APP_PASSWORD"] not in moved.output and "PRIVATE KEY" not in moved.output
    assert writer.failures == [] and writer.acked, writer.failures[:3]
    for name in names:
        units = sh(name, "systemctl is-active valkey-server valkey-sentinel; valkey-server --version").stdout
        assert units.startswith("active\nactive\nValkey server v=8."), units
        # TLS alone still: no plain port on the server nor on the sentinel
        plain = sh(name, f"grep -cx 'port 0' {VALKEY.config} {VALKEY.sentinel_config}").stdout.split()
        assert plain == [f"{VALKEY.config}:1", f"{VALKEY.sentinel_config}:1"], plain
        # the keys are the new server's group's and nobody else's; the certificates stay public
        keys = sh(name, f"stat -c '%U %G %a' {PATHS.tls_dir}/*.key").stdout.splitlines()
        assert set(keys) == {"root valkey 640"}, keys
        public = sh(name, f"stat -c '%U %G %a' {PATHS.tls_dir}/*.crt").stdout.splitlines()
        assert set(public) == {"root root 644"}, public
        for package in ("redis-server", "redis-sentinel"):
            status = sh(name, f"dpkg-query -W -f='${{db:Status-Status}}' {package}", check=False).stdout
            assert status in ("", "config-files", "not-installed"), f"{package} left {status}"
        # the new server writes its own log (a check of its config as root must not have made it root's)
        assert sh(name, f"stat -c %U {VALKEY.logfile}").stdout.strip() == "valkey"
    primary = wait_for(
        "every sentinel names one primary",
        lambda: len({sentinel_names(n) for n in names}) == 1 and sentinel_names(a),
        30,
    )
    assert primary != addresses[0]  # the primary handed its role over before it moved
    wait_for(
        "2 replicas online", lambda: replication(names[addresses.index(primary)]).get("connected_slaves") == "2", 60
    )
    # Each sentinel kept its id, and counts the other two once (a new id would add a third).
    assert {n: sentinel(n, "myid")[0] for n in names} == ids
    for name in names:
        known = sentinel(name, "sentinels", MASTER)
        assert sum(1 for line in known if line == "name") == 2, known
    admin_login = {"username": login["REDIS_ADMIN_USER"], "password": login["REDIS_ADMIN_PASSWORD"], **tls}
    pipe = Redis(primary, 6379, **admin_login).pipeline(transaction=False)
    for key in writer.acked:
        pipe.exists(key)
    assert all(pipe.execute()), "an acknowledged write was lost"
    for db in (0, 3):
        kept = Redis(primary, 6379, db=db, **admin_login)
        assert kept.exists(*(f"before:{i}" for i in range(5000))) == 5000, db
        assert kept.ttl("before:1") > 0 and kept.ttl("before:2") == -1
    again = run_deploy(group, json_output=True)
    assert again.rc == 0 and again.changed == 0, again.failure
    a = names[addresses.index(primary)]

    # On Valkey: a restart-requiring setting: the replicas restart, then the primary hands its role over.
    writer = Writer(addresses, login["REDIS_APP_USER"], login["REDIS_APP_PASSWORD"], tls_ca=str(ca))
    change = while_writing(
        writer,
        "Valkey group, restart-requiring change",
        lambda: run_deploy(group, "-vvv", data={"redis_databases": 17}),
    )
    assert change.rc == 0, change.failure
    assert "hands its role to one of them" in change.output and "Pausing writes on" in change.output
    assert login["REDIS_APP_PASSWORD"] not in change.output
    new = wait_for(
        "every sentinel names the new primary",
        lambda: (
            len({sentinel_names(n) for n in names}) == 1
            and sentinel_names(a) not in ("", primary)
            and sentinel_names(a)
        ),
        30,
    )
    assert writer.failures == [] and writer.acked, writer.failures[:3]
    client = Redis(new, 6379, username=login["REDIS_APP_USER"], password=login["REDIS_APP_PASSWORD"], **tls)
    pipe = client.pipeline(transaction=False)
    for key in writer.acked:
        pipe.exists(key)
    assert all(pipe.execute()), "an acknowledged write was lost"
    assert all(redis(n, "config", "get", "databases", server=VALKEY, tls=TLS).split()[-1] == "17" for n in names)
    again = run_deploy(group, data={"redis_databases": 17}, json_output=True)
    assert again.rc == 0 and again.changed == 0, again.failure

    # The primary is lost: Valkey's sentinels promote a replica; the old primary rejoins.
    lost = names[addresses.index(new)]
    others = [n for n in names if n != lost]
    subprocess.run(["docker", "stop", "-t", "5", lost], check=True, capture_output=True)
    now_primary, took = promoted(new, sentinel_names, others, VALKEY)
    print(f"Valkey group failover: {took:.1f} s after the primary stopped")
    subprocess.run(["docker", "start", lost], check=True, capture_output=True)
    wait_for(
        "the old primary rejoined as a replica",
        lambda: (
            replication(lost).get("master_host") == now_primary and replication(lost).get("master_link_status") == "up"
        ),
        90,
    )
    # The promoted server's CONFIG REWRITE (Sentinel's, at the failover) may have replaced the
    # deploy's file, with masteruser as primaryuser and masterauth inline: the re-run still knows
    # the host as a member, and puts its own file back, the password only in the root-owned include.
    rerun = run_deploy(group, data={"redis_databases": 17})
    assert rerun.rc == 0, rerun.failure
    assert f"replicaof {now_primary} 6379" in sh(lost, f"cat {VALKEY.config}").stdout
    for name in names:
        assert "primaryauth" not in sh(name, f"cat {VALKEY.config}").stdout, name
    settled = run_deploy(group, data={"redis_databases": 17}, json_output=True)
    assert settled.rc == 0 and settled.changed == 0, settled.failure
