"""An expired server certificate, repaired by one run of the deploy (docs/planned-changes.md, "An
expired certificate").

One container, redis_tls = "only" with the project's CA. The test puts an expired certificate of
that CA where the deploy keeps one (the CA folder, the host's files under their fingerprint
names, redis.conf) and restarts Redis on it, as a host looks a year after its last run. One run
must then install a new certificate; the server presents it; a second run changes nothing.
"""

from __future__ import annotations

import datetime
import shlex

import pytest
from conftest import deploy, sh, sh_input

from smart_redis import certs, tls
from smart_redis.constants import PATHS
from smart_redis.host.server import REDIS

# Python's ssl inside the container: the serial of the certificate the server presents, checked
# against the apps' CA. {flags}: "" verifies the dates as every client does; NO_CHECK_TIME only
# shows what an expired certificate's server presents.
PRESENTED = (
    "python3 -c \"import socket, ssl; c = ssl.create_default_context(cafile='{ca}'); c.check_hostname = False; "
    "c.verify_flags |= {flags}; "
    "s = c.wrap_socket(socket.create_connection(('127.0.0.1', 6379)), server_hostname='127.0.0.1'); "
    "print(s.getpeercert()['serialNumber'])\""
)


def presented(name: str, dates: bool = True) -> str:
    """The serial (hex) the server presents, or the error of the handshake."""
    script = PRESENTED.format(ca=PATHS.tls_ca, flags="0" if dates else "0x200000")
    result = sh(name, script, check=False)
    return result.stdout.strip() or result.stderr.strip().splitlines()[-1]


def conf_value(name: str, directive: str) -> str:
    conf = sh(name, f"cat {REDIS.config}").stdout.splitlines()
    return next(line.split()[1] for line in conf if line.startswith(directive + " "))


@pytest.fixture(scope="module")
def tls_host(new_container, tmp_path_factory):
    name = new_container("tls-expired")
    ca_dir = tmp_path_factory.mktemp("operator") / "secrets" / "tls"
    data = {"redis_tls": "only", "redis_tls_ca_dir": str(ca_dir)}
    first = deploy(f"@docker/{name}", data=data)
    assert first.rc == 0, first.failure
    return {"name": name, "target": f"@docker/{name}", "data": data, "ca_dir": ca_dir}


def install_expired(tls_host) -> certs.Bundle:
    """The project's CA issues this host's certificate with the same names, a year and a month
    ago, for 365 days; it goes where the deploy keeps it (the CA folder, then the host's files
    with their fingerprint names, key root:redis 0640) and redis.conf names it."""
    name = tls_host["name"]
    stored = tls_host["ca_dir"] / "hosts" / f"{certs._file_name(tls_host['target'])}.crt"
    dns, ips = certs.names_in(certs.Bundle(stored.read_text(), "", "").leaf)
    ca_cert, ca_key = certs.project_ca(tls_host["ca_dir"])
    past = certs.now_utc() - datetime.timedelta(days=400)
    expired = certs.issue(ca_cert, ca_key, [*ips, *dns], past, days=certs.SERVER_DAYS)
    stored.write_text(expired.cert)
    stored.with_suffix(".key").write_text(expired.key)
    files = tls.host_files(tls.Certificates(expired))
    assert files is not None
    for path, text, owner, mode in (
        (files.key, expired.key, "root:redis", "640"),
        (files.cert, expired.cert, "root:root", "644"),
        (files.ca, expired.ca, "root:root", "644"),
    ):
        quoted = shlex.quote(path)
        sh_input(name, f"umask 077 && cat > {quoted} && chown {owner} {quoted} && chmod {mode} {quoted}", text)
    for directive, path in (("tls-cert-file", files.cert), ("tls-key-file", files.key), ("tls-ca-cert-file", files.ca)):
        sh(name, f"sed -i 's|^{directive} .*|{directive} {path}|' {REDIS.config}")
    sh(name, f"systemctl restart {REDIS.service}")
    return expired


def test_one_run_installs_a_new_certificate_over_an_expired_one(tls_host):
    name = tls_host["name"]
    expired = install_expired(tls_host)
    until = expired.leaf.not_valid_after_utc.strftime("%Y-%m-%d")

    # --- What the operator sees: every client refuses the server, redis-monitor says why.
    assert int(presented(name, dates=False), 16) == expired.leaf.serial_number
    assert "certificate has expired" in presented(name)
    health = sh(name, "redis-monitor health", check=False).stdout
    assert f"expired {until}" in health, health

    # --- One run: the project's CA issues a new certificate, the server presents it.
    repaired = deploy(tls_host["target"], data=tls_host["data"])
    assert repaired.rc == 0, repaired.failure
    stored = tls_host["ca_dir"] / "hosts" / f"{certs._file_name(tls_host['target'])}.crt"
    new = certs.Bundle(stored.read_text(), "", "").leaf
    assert new.serial_number != expired.leaf.serial_number and new.not_valid_after_utc > certs.now_utc()
    assert int(presented(name), 16) == new.serial_number  # dates verified, as the apps do
    files = tls.host_files(tls.Certificates(expired))
    assert files is not None and conf_value(name, "tls-cert-file") != files.cert
    left = sh(name, f"ls {PATHS.tls_dir}").stdout.split()
    assert not {p.rsplit("/", 1)[1] for p in files.all} & set(left), left  # the expired files are gone
    assert "OK       certificate: expires" in sh(name, "redis-monitor health", check=False).stdout

    again = deploy(tls_host["target"], data=tls_host["data"], json_output=True)
    assert again.rc == 0 and again.changed == 0, again.output
