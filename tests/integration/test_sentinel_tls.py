"""Issue 18: a Sentinel group with TLS everywhere, on three containers from one inventory.

redis_tls = "only" on every host: no plain port on the servers nor the sentinels, so every link
that works here (replication, Sentinel to the servers and to the other sentinels, the host's
tools, the deploy's own questions) is a TLS one. The story: provision, replicate, renew every
certificate (Sentinel restarts one host at a time, redis-server keeps its PID), lose the
primary, fail over, get the old primary back, and re-run the deploy to zero changes.
"""

from __future__ import annotations

import json
import shlex
import subprocess

import pytest
from conftest import GROUP_ECOSYSTEM, deploy, fingerprint, group_inventory, promoted, sh, three_hosts, wait_for

from smart_redis import certs
from smart_redis.constants import PATHS
from smart_redis.host.server import REDIS

MASTER = "smart-trade"
# What an operator types: the CA the deploy published for the apps, no client certificate
# (redis_tls_client_auth = "optional").
TLS_CLI = f"redis-cli --tls --cacert {PATHS.tls_ca}"
PRESENTED = (
    "python3 -c \"import socket, ssl; c = ssl.create_default_context(cafile='{ca}'); c.check_hostname = False; "
    "s = c.wrap_socket(socket.create_connection(('127.0.0.1', {port})), server_hostname='127.0.0.1'); "
    "print(s.getpeercert()['serialNumber'])\""
)


def cli(role: str = "ADMIN", port: int = 6379, tls: bool = True) -> str:
    return (
        f'. /etc/smart-redis/credentials && REDISCLI_AUTH="$REDIS_{role}_PASSWORD" '
        f'{TLS_CLI if tls else "redis-cli"} --no-auth-warning --user "$REDIS_{role}_USER" -p {port}'
    )


def ask(container: str, command: str, port: int = 6379, role: str = "ADMIN") -> str:
    return sh(container, f"{cli(role, port)} {command}", check=False).stdout.strip()


def replication(container: str) -> dict:
    text = ask(container, "info replication")
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


def sentinel_says(container: str) -> str:
    """Where the local sentinel sees the primary, asked over TLS as the app user."""
    reply = ask(container, f"--raw sentinel get-master-addr-by-name {MASTER}", port=26379, role="APP").split()
    return reply[0] if len(reply) == 2 else ""


def know_each_other(*containers: str) -> bool:
    """Every sentinel sees the others (over TLS: their hello messages and logins work)."""
    peers = len(containers) - 1
    return all(
        ask(n, f"sentinel sentinels {MASTER}", port=26379).splitlines().count("name") == peers for n in containers
    )


def pid(container: str, unit: str) -> str:
    return sh(container, f"systemctl show -p MainPID --value {unit}").stdout.strip()


def presented(container: str, port: int) -> int:
    return int(sh(container, PRESENTED.format(ca=PATHS.tls_ca, port=port)).stdout.strip(), 16)


@pytest.fixture(scope="module")
def group(docker_testbed, run_id, tmp_path_factory):
    with three_hosts(docker_testbed, f"smart-redis-test-{run_id}-tls") as (names, addresses, network):
        work = tmp_path_factory.mktemp("ha-tls")
        inventory = group_inventory(work / "inventory.py", names, addresses)
        yield {
            "names": names,
            "addresses": addresses,
            "inventory": inventory,
            "data": {
                "redis_tls": "only",
                "redis_tls_ca_dir": str(work / "secrets" / "tls"),
                "redis_ha_secrets_file": str(work / "secrets" / "redis-ha.env"),
            },
            "ca_dir": work / "secrets" / "tls",
        }


def run(group, *args, json_output=False, **data):
    return deploy(group["inventory"], *args, data={**group["data"], **data}, json_output=json_output, no_apps=False)


def test_an_operators_certificate_without_client_auth_is_refused_in_a_group(group, tmp_path):
    """Before the group is built (so it costs one refused run): with tls-replication yes the
    servers and sentinels show the certificate as clients, so serverAuth alone is refused in
    one line, exit 1, every host untouched."""
    ca, ca_key = certs.project_ca(tmp_path / "operator-ca")
    names = ["127.0.0.1", "localhost", *group["addresses"]]
    server_only = certs.issue(ca, ca_key, names, usages=[certs.ExtendedKeyUsageOID.SERVER_AUTH])
    for part in ("cert", "key", "ca"):
        (tmp_path / part).write_text(getattr(server_only, part))
    given = {f"redis_tls_{part}": str(tmp_path / part) for part in ("cert", "key", "ca")}
    before = [fingerprint(n) for n in group["names"]]
    refused = run(group, **given)
    assert refused.rc == 1, refused.output[-3000:]
    errors = {line.strip() for line in refused.output.splitlines() if "redis_tls_cert: allowed in a Sentinel" in line}
    assert errors and all("(this one has serverAuth; with tls-replication yes" in e for e in errors), refused.output
    assert "PRIVATE KEY" not in refused.output
    assert [fingerprint(n) for n in group["names"]] == before


def test_a_tls_group_replicates_renews_and_fails_over(group):
    (a, b, c), (ip_a, ip_b, ip_c) = group["names"], group["addresses"]
    first = run(group)
    assert first.rc == 0, first.failure
    assert "PRIVATE KEY" not in first.output

    # --- TLS alone: the servers and the sentinels have no plain port.
    for n in (a, b, c):
        conf = sh(n, f"cat {REDIS.config}").stdout.splitlines()
        assert "port 0" in conf and "tls-port 6379" in conf and "tls-replication yes" in conf
        sentinel_conf = sh(n, f"cat {REDIS.sentinel_config}").stdout.splitlines()
        assert "port 0" in sentinel_conf and "tls-port 26379" in sentinel_conf
        assert "tls-replication yes" in sentinel_conf
        for port in (6379, 26379):
            plain = sh(n, f"{cli(port=port, tls=False)} ping", check=False)
            assert "PONG" not in plain.stdout, (n, port, plain.stdout)
    listing = sh(a, f"stat -c '%n %U:%G %a' {PATHS.sentinel_tls_key} {PATHS.sentinel_tls_cert}").stdout.split("\n")
    assert f"{PATHS.sentinel_tls_key} root:redis 640" in listing

    # --- Replication and Sentinel work over TLS: two replicas in sync, three sentinels that know
    # each other and agree.
    wait_for("2 replicas online", lambda: replication(a).get("connected_slaves") == "2", 60)
    assert all(replication(n).get("master_link_status") == "up" for n in (b, c))
    wait_for("every sentinel sees 3 sentinels", lambda: know_each_other(a, b, c), 60)
    assert {sentinel_says(n) for n in (a, b, c)} == {ip_a}
    ask(a, "set quote:EURUSD 1.0841", role="APP")
    wait_for("the write on both replicas", lambda: all(ask(n, "get quote:EURUSD") == "1.0841" for n in (b, c)), 30)

    # --- The apps: rediss://, the CA, and the sentinels over TLS.
    eco = sh(c, f"cat {GROUP_ECOSYSTEM}").stdout
    assert "REDIS_URL: 'rediss://" in eco and f"NODE_EXTRA_CA_CERTS: '{PATHS.tls_ca}'" in eco
    sentinels = ",".join(f"{ip}:26379" for ip in (ip_a, ip_b, ip_c))
    assert f"REDIS_SENTINELS: '{sentinels}'" in eco and "REDIS_SENTINEL_TLS: 'true'" in eco

    # --- The host's tools ask the sentinels over TLS.
    health = sh(a, "redis-monitor health", check=False).stdout
    assert "OK       sentinels: 3 of 3 agree" in health and "primary with 2 connected replica(s)" in health, health
    assert "OK       certificate: expires" in health and "OK       sentinel certificate: expires" in health, health

    again = run(group, json_output=True)
    assert again.rc == 0 and again.changed == 0, again.failure

    # --- A run that stopped after writing Sentinel's new certificate (here: the file is newer than
    # the running sentinel) is finished by the next one: that sentinel restarts, no other.
    sentinel_pids = {n: pid(n, REDIS.sentinel_service) for n in (a, b, c)}
    sh(b, f"touch {PATHS.sentinel_tls_cert}")
    repaired = run(group)
    assert repaired.rc == 0, repaired.failure
    assert repaired.output.count("Restarting redis-sentinel: it has a new certificate") == 1
    assert [n for n in (a, b, c) if pid(n, REDIS.sentinel_service) != sentinel_pids[n]] == [b]

    # --- A running group keeps its TLS mode: switching one host back is refused, nothing changes.
    before = sh(b, f"sha256sum {REDIS.config} {REDIS.sentinel_config}").stdout
    plain = run(group, "--limit", f"@docker/{b}", redis_tls="off")
    assert plain.rc == 1 and "this host's Sentinel runs with TLS in a Sentinel group" in plain.output, plain.output
    assert sh(b, f"sha256sum {REDIS.config} {REDIS.sentinel_config}").stdout == before

    # --- Renewal: the project's CA issues every host a new certificate. redis-server loads it
    # at runtime (same PID); Sentinel, which reads its files only at start, restarts one host at
    # a time and the group stays whole.
    servers = {n: pid(n, REDIS.service) for n in (a, b, c)}
    sentinel_pids = {n: pid(n, REDIS.sentinel_service) for n in (a, b, c)}
    for path in (group["ca_dir"] / "hosts").iterdir():
        path.unlink()
    renewed = run(group)
    assert renewed.rc == 0, renewed.failure
    assert renewed.output.count("Restarting redis-sentinel: it has a new certificate") == 3
    for n in (a, b, c):
        serial = certs.Bundle(
            (group["ca_dir"] / "hosts" / f"{certs._file_name('@docker/' + n)}.crt").read_text(), "", ""
        ).leaf.serial_number
        assert presented(n, 6379) == serial and presented(n, 26379) == serial
        assert pid(n, REDIS.service) == servers[n] and pid(n, REDIS.sentinel_service) != sentinel_pids[n]
    wait_for("the sentinels know each other again", lambda: know_each_other(a, b, c), 60)
    assert {sentinel_says(n) for n in (a, b, c)} == {ip_a}
    assert all(replication(n).get("master_link_status") == "up" for n in (b, c))

    # --- Lose the primary: the sentinels promote a replica over TLS.
    subprocess.run(["docker", "stop", "-t", "5", a], check=True, capture_output=True)
    new_ip, took = promoted(ip_a, sentinel_says, [b, c])
    print(f"failover over TLS: {took:.1f} s after the primary stopped")
    new = {ip_b: b, ip_c: c}[new_ip]
    wait_for("a write on the new primary", lambda: ask(new, "set after:failover 1", role="APP") == "OK", 30)
    assert ask(new, "get quote:EURUSD") == "1.0841"

    # --- The old primary comes back and replicates from the new one over TLS.
    subprocess.run(["docker", "start", a], check=True, capture_output=True)
    wait_for(
        "old primary rejoined as a replica",
        lambda: replication(a).get("master_host") == new_ip and replication(a).get("master_link_status") == "up",
        90,
    )
    status = json.loads(sh(a, "redis-monitor status --json").stdout)
    assert set(status["sentinels"].values()) == {f"{new_ip}:6379"}

    # --- The deploy follows Sentinel's primary.
    rerun = run(group)
    assert rerun.rc == 0, rerun.failure
    assert f"replicaof {new_ip} 6379" in sh(a, f"cat {REDIS.config}").stdout
    assert {sentinel_says(n) for n in (a, b, c)} == {new_ip}

    # --- The steps that log in to the sentinels from the host do so over TLS: a rotation of every
    # shared password (each sentinel accepts, switches and retires them) ...
    old_app = sh(a, ". /etc/smart-redis/credentials && echo $REDIS_APP_PASSWORD").stdout.strip()
    rotated = run(group, redis_rotate_passwords="true")
    assert rotated.rc == 0, rotated.failure
    new_app = sh(a, ". /etc/smart-redis/credentials && echo $REDIS_APP_PASSWORD").stdout.strip()
    assert new_app != old_app and new_app not in rotated.output
    for n in (a, b, c):
        assert sentinel_says(n) == new_ip  # the new password, over TLS
        refused = sh(
            n,
            f"REDISCLI_AUTH={shlex.quote(old_app)} {TLS_CLI} --no-auth-warning --user smart-trade -p 26379 ping",
            check=False,
        )
        assert "PONG" not in refused.stdout
    # ... and a change that restarts every server, the primary last after handing its role over.
    restart = run(group, redis_tcp_backlog=1024)
    assert restart.rc == 0, restart.failure
    assert restart.output.count("Restarting redis-server for: tcp-backlog") == 3
    assert "hands its role to one of them" in restart.output
    handed = sentinel_says(b)
    assert handed not in ("", new_ip) and {sentinel_says(n) for n in (a, b, c)} == {handed}

    last = run(group, json_output=True, redis_tcp_backlog=1024)
    assert last.rc == 0 and last.changed == 0, last.failure
