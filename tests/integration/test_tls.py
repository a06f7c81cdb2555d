"""Issue 18: TLS alone on a single server, with the project's own CA, proven from the outside.

One container runs Redis, Debian's nodejs and PM2 with the stand-in app. The deploy turns on
redis_tls = "only"; the tests then connect as clients would (redis-cli, the app under PM2,
Python's ssl), renew the certificate under an open connection, and require client certificates.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path

import pytest
from conftest import deploy, fingerprint, infra_checks, sh
from test_pm2 import ECOSYSTEM, pm2_env, pm2_package, start_apps  # noqa: F401  (a fixture)

from smart_redis import certs
from smart_redis.constants import PATHS
from smart_redis.host.server import REDIS

# The stand-in app listens on none of the platform's ports: health would call them down.
TLS = {"redis_tls": "only", "pm2_ecosystem_file": ECOSYSTEM, "pm2_user": "smart-trade", "redis_platform_ports": "{}"}
ADMIN = '. /etc/smart-redis/credentials && REDISCLI_AUTH="$REDIS_ADMIN_PASSWORD" redis-cli --no-auth-warning --user "$REDIS_ADMIN_USER"'
# Python's ssl inside the container: the serial of the certificate the server presents.
PRESENTED = (
    "python3 -c \"import socket, ssl; c = ssl.create_default_context(cafile='{ca}'); c.check_hostname = False; "
    "s = c.wrap_socket(socket.create_connection(('127.0.0.1', 6379)), server_hostname='127.0.0.1'); "
    "print(s.getpeercert()['serialNumber'])\""
)
# A client that logs in over TLS, then waits for /tmp/go before it sends PING on the same connection.
HELD = """
import os, socket, ssl, time
creds = dict(l.strip("'").split("=", 1) for l in open("/etc/smart-redis/credentials").read().split() if "=" in l)
c = ssl.create_default_context(cafile="CA_FILE"); c.check_hostname = False
s = c.wrap_socket(socket.create_connection(("127.0.0.1", 6379)), server_hostname="127.0.0.1")
def call(*args):
    s.sendall(("*%d\\r\\n" % len(args) + "".join("$%d\\r\\n%s\\r\\n" % (len(a), a) for a in args)).encode())
    return s.recv(100).decode().strip()
print(call("AUTH", creds["REDIS_ADMIN_USER"].strip("'"), creds["REDIS_ADMIN_PASSWORD"].strip("'")), flush=True)
while not os.path.exists("/tmp/go"):
    time.sleep(0.1)
print(call("PING"), flush=True)
""".replace("CA_FILE", PATHS.tls_ca)


@pytest.fixture(scope="module")
def tls_host(new_container, pm2_package, tmp_path_factory):  # noqa: F811
    name = new_container("tls")
    start_apps(name, pm2_package)
    ca_dir = tmp_path_factory.mktemp("operator") / "secrets" / "tls"
    data = {**TLS, "redis_tls_ca_dir": str(ca_dir)}
    first = deploy(f"@docker/{name}", data=data, no_apps=False)
    return {"name": name, "target": f"@docker/{name}", "data": data, "ca_dir": ca_dir, "first": first}


def run(tls_host, json_output: bool = False, extra: tuple[str, ...] = (), **data):
    return deploy(tls_host["target"], *extra, json_output=json_output, data={**tls_host["data"], **data}, no_apps=False)


def host_cert(tls_host) -> Path:
    return tls_host["ca_dir"] / "hosts" / f"{certs._file_name(tls_host['target'])}.crt"


def serial_presented(name: str) -> int:
    return int(sh(name, PRESENTED.format(ca=PATHS.tls_ca)).stdout.strip(), 16)


def server_pid(name: str) -> str:
    return sh(name, f"systemctl show -p MainPID --value {REDIS.service}").stdout.strip()


def test_the_first_run_turns_tls_on_alone(tls_host):
    assert tls_host["first"].rc == 0, tls_host["first"].failure
    conf = sh(tls_host["name"], f"cat {REDIS.config}").stdout.splitlines()
    assert "port 0" in conf and "tls-port 6379" in conf and "tls-auth-clients optional" in conf


def test_a_dry_run_with_a_new_ca_folder_writes_nothing_on_the_operators_machine(tls_host, tmp_path):
    """The project's CA and the certificates it issues are written by the run's first executing
    operation: --dry plans with them (new ones) and leaves no folder, no key behind."""
    fresh = tmp_path / "secrets" / "tls"
    dry = run(tls_host, redis_tls_ca_dir=str(fresh), extra=("--dry",))
    assert dry.rc == 0, dry.failure
    assert not (tmp_path / "secrets").exists()


def test_a_plain_connection_is_refused(tls_host):
    reply = sh(tls_host["name"], f"{ADMIN} -p 6379 ping", check=False)
    assert "PONG" not in reply.stdout
    assert reply.returncode != 0 or "Error" in reply.stdout + reply.stderr


def test_tls_with_the_ca_works_and_another_ca_is_refused(tls_host):
    name = tls_host["name"]
    assert sh(name, f"{ADMIN} --tls --cacert {PATHS.tls_ca} -p 6379 ping").stdout.strip() == "PONG"
    other_ca, _ = certs.project_ca(Path(tls_host["ca_dir"]).parent / "other-ca")
    sh(name, f"printf '%s' {shlex.quote(certs._pem(other_ca).decode())} > /tmp/other-ca.crt")
    refused = sh(name, f"{ADMIN} --tls --cacert /tmp/other-ca.crt -p 6379 ping", check=False)
    assert "PONG" not in refused.stdout
    assert "certificate verify failed" in (refused.stdout + refused.stderr).lower(), refused


def test_the_pm2_app_connects_with_rediss_and_the_env_the_deploy_wrote(tls_host):
    name = tls_host["name"]
    env = pm2_env(name, "quotes-feed")
    assert env["REDIS_URL"].startswith("rediss://smart-trade:") and env["REDIS_URL"].endswith("@127.0.0.1:6379/0")
    assert env["NODE_EXTRA_CA_CERTS"] == PATHS.tls_ca
    assert sh(name, f"runuser -u smart-trade -- head -1 {PATHS.tls_ca}").stdout.startswith("-----BEGIN CERTIFICATE")
    # The app was unchanged: Node's TLS verified the server (name included) with the CA from its env.
    written = sh(name, f"{ADMIN} --tls --cacert {PATHS.tls_ca} -p 6379 get pm2-check:quotes-feed").stdout.strip()
    assert written == "connected as smart-trade"


def test_the_key_is_root_and_redis_only_and_the_project_ca_stays_private(tls_host):
    name = tls_host["name"]
    listing = sh(name, f"stat -c '%n %U:%G %a' {PATHS.tls_dir}/*").stdout.splitlines()
    keys = [line for line in listing if line.split()[0].endswith(".key")]
    assert len(keys) == 1 and keys[0].split()[1:] == ["root:redis", "640"], listing
    assert f"{PATHS.tls_ca} root:root 644" in listing
    ca_dir = tls_host["ca_dir"]
    assert ca_dir.stat().st_mode & 0o777 == 0o700
    assert {p.name: p.stat().st_mode & 0o777 for p in ca_dir.iterdir() if p.is_file()} == {
        "ca.crt": 0o600,
        "ca.key": 0o600,
    }
    assert "PRIVATE KEY" not in tls_host["first"].output


def test_host_tools_and_the_operators_checks_work_over_tls(tls_host):
    """redis-monitor (status, self-test, health with the certificate), the first backup, the
    exporter and every check of tests/infra, against a server without a plain port."""
    result = infra_checks(f"docker://{tls_host['name']}", "--redis-data", "redis_tls=only")
    assert result.returncode == 0, result.stdout[-3000:]
    health = sh(tls_host["name"], "redis-monitor health --json").stdout
    certificate = next(c for c in json.loads(health)["checks"] if c["check"] == "certificate")
    days = int(re.search(r"in (\d+) days", certificate["detail"]).group(1))
    assert certificate["status"] == "OK" and 360 <= days <= 365, certificate


def test_a_second_run_changes_nothing_and_issues_no_certificate(tls_host):
    before = host_cert(tls_host).read_bytes()
    again = run(tls_host, json_output=True)
    assert again.rc == 0 and again.changed == 0, again.output
    assert host_cert(tls_host).read_bytes() == before


def test_renewal_loads_the_new_certificate_without_a_restart(tls_host):
    name = tls_host["name"]
    ca_dir = tls_host["ca_dir"]
    # A certificate 10 days from expiry, as if it had been issued a year ago.
    ca_cert, ca_key = certs.project_ca(ca_dir)
    dns, ips = certs.names_in(certs.Bundle(host_cert(tls_host).read_text(), "", "").leaf)
    soon = certs.issue(ca_cert, ca_key, [*ips, *dns], days=10)
    host_cert(tls_host).write_text(soon.cert)
    host_cert(tls_host).with_suffix(".key").write_text(soon.key)
    kept = run(tls_host, redis_tls_renew_days=5)  # not yet due for renewal: it goes to the host
    assert kept.rc == 0, kept.failure
    assert serial_presented(name) == soon.leaf.serial_number
    health = json.loads(sh(name, "redis-monitor health --json", check=False).stdout)
    certificate = next(c for c in health["checks"] if c["check"] == "certificate")
    assert certificate["status"] == "WARNING" and "in 9 days" in certificate["detail"], certificate

    pid = server_pid(name)
    sh(name, "rm -f /tmp/go /tmp/held.out")
    sh(name, f"printf '%s' {shlex.quote(HELD)} > /tmp/held.py && (nohup python3 /tmp/held.py > /tmp/held.out 2>&1 &)")
    held = sh(
        name,
        "for i in $(seq 50); do grep -q OK /tmp/held.out && exit 0; sleep 0.1; done; cat /tmp/held.out; echo no login",
        check=False,
    )
    assert held.returncode == 0 and not held.stdout, held.stdout
    renewed = run(tls_host)  # redis_tls_renew_days = 30: the project's CA issues a new one
    assert renewed.rc == 0, renewed.failure
    assert "issued a new certificate" in renewed.output
    new_serial = certs.Bundle(host_cert(tls_host).read_text(), "", "").leaf.serial_number
    assert new_serial != soon.leaf.serial_number
    assert serial_presented(name) == new_serial
    assert server_pid(name) == pid
    sh(name, "touch /tmp/go; for i in $(seq 50); do grep -q PONG /tmp/held.out && exit 0; sleep 0.1; done; exit 1")
    left = (certs.Bundle(host_cert(tls_host).read_text(), "", "").leaf.not_valid_after_utc - certs.now_utc()).days
    assert left > 300
    # The replaced certificate and key are gone from the host; one pair is left.
    names = sh(name, f"ls {PATHS.tls_dir}").stdout.split()
    assert len([n for n in names if n.startswith("redis-")]) == 3, names  # certificate, key, CA
    again = run(tls_host, json_output=True)
    assert again.rc == 0 and again.changed == 0, again.output


def test_bad_certificate_settings_are_refused_before_anything_changes(tls_host, tmp_path):
    """A certificate from another CA; and the operator's certificates where every client must
    show one while the exporter runs (it would need the server's key)."""
    name = tls_host["name"]
    other, other_key = certs.project_ca(tmp_path / "other")
    foreign = certs.issue(other, other_key, ["127.0.0.1"])
    own_ca = certs.project_ca(tls_host["ca_dir"])[0]
    files = {"cert": foreign.cert, "key": foreign.key, "ca": certs._pem(own_ca).decode()}
    for part, text in files.items():
        (tmp_path / part).write_text(text)
    given = {f"redis_tls_{part}": str(tmp_path / part) for part in files}
    before = fingerprint(name)
    refused = run(tls_host, **given)
    assert refused.rc == 1
    errors = [line for line in refused.output.splitlines() if "redis_tls_cert" in line]
    assert errors and "issued by redis_tls_ca" in errors[0], refused.output[-2000:]
    (tmp_path / "ca").write_text(foreign.ca)
    refused = run(tls_host, redis_tls_client_auth="yes", **given)
    assert refused.rc == 1 and "it would need the server's key" in refused.output, refused.output[-2000:]
    assert "PRIVATE KEY" not in refused.output
    assert fingerprint(name) == before


def test_the_operators_certificates_replace_the_projects_without_a_restart(tls_host, tmp_path):
    """Another certificate from another CA: the server moves to both in one CONFIG SET."""
    name = tls_host["name"]
    ca, ca_key = certs.project_ca(tmp_path / "operator-ca")
    own = certs.issue(ca, ca_key, ["127.0.0.1", "redis.example.internal"])
    for part in ("cert", "key", "ca"):
        (tmp_path / part).write_text(getattr(own, part))
    pid = server_pid(name)
    given = {f"redis_tls_{part}": str(tmp_path / part) for part in ("cert", "key", "ca")}
    result = run(tls_host, **given)
    assert result.rc == 0, result.failure
    assert serial_presented(name) == own.leaf.serial_number
    assert server_pid(name) == pid
    assert sh(name, f"cat {PATHS.tls_ca}").stdout == own.ca
    checks = infra_checks(f"docker://{name}", "--redis-data", "redis_tls=only")
    assert checks.returncode == 0, checks.stdout[-3000:]
    again = run(tls_host, json_output=True, **given)
    assert again.rc == 0 and again.changed == 0, again.output


def test_required_client_certificates(tls_host):
    """redis_tls_client_auth = "yes" (the project's CA again): a client without a certificate is
    refused; the host's tools log in with the server's, the exporter with one of its own."""
    name = tls_host["name"]
    result = run(tls_host, redis_tls_client_auth="yes")
    assert result.rc == 0, result.failure
    refused = sh(name, f"{ADMIN} --tls --cacert {PATHS.tls_ca} -p 6379 ping", check=False)
    assert "PONG" not in refused.stdout
    conf = sh(name, f"cat {REDIS.config}").stdout
    cert = next(line.split()[1] for line in conf.splitlines() if line.startswith("tls-cert-file "))
    key = next(line.split()[1] for line in conf.splitlines() if line.startswith("tls-key-file "))
    accepted = sh(name, f"{ADMIN} --tls --cacert {PATHS.tls_ca} --cert {cert} --key {key} -p 6379 ping")
    assert accepted.stdout.strip() == "PONG"
    assert serial_presented_with_cert(name) == certs.Bundle(host_cert(tls_host).read_text(), "", "").leaf.serial_number
    exporter_keys = sh(name, f"stat -c '%n %U:%G %a' {PATHS.tls_dir}/exporter-*.key").stdout.split()
    assert exporter_keys[1:] == ["root:root", "600"], exporter_keys
    assert key not in sh(name, "systemctl cat prometheus-redis-exporter").stdout  # not the server's key
    checks = infra_checks(
        f"docker://{name}", "--redis-data", "redis_tls=only", "--redis-data", "redis_tls_client_auth=yes"
    )
    assert checks.returncode == 0, checks.stdout[-3000:]
    again = run(tls_host, json_output=True, redis_tls_client_auth="yes")
    assert again.rc == 0 and again.changed == 0, again.output


def serial_presented_with_cert(name: str) -> int:
    """As serial_presented, showing the server's own certificate (client certificates required)."""
    conf = sh(name, f"cat {REDIS.config}").stdout.splitlines()
    cert = next(line.split()[1] for line in conf if line.startswith("tls-cert-file "))
    key = next(line.split()[1] for line in conf if line.startswith("tls-key-file "))
    script = PRESENTED.format(ca=PATHS.tls_ca).replace(
        "c.check_hostname = False;", f"c.check_hostname = False; c.load_cert_chain('{cert}', '{key}');"
    )
    return int(sh(name, script).stdout.strip(), 16)
