"""TLS without a host: the checks every certificate passes, the project's CA, and what the
settings make of redis.conf, redis-cli, the exporter and REDIS_URL."""

from __future__ import annotations

import datetime
import re
import ssl
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest
from cryptography.hazmat.primitives import serialization

from smart_redis import certs, exporter, live, pm2, tls
from smart_redis.host import server
from smart_redis.render import redis_conf
from smart_redis.settings import SettingsError, load
from smart_redis.tls import TlsFiles
from smart_redis.topology import Topology

NOW = datetime.datetime(2026, 11, 28, tzinfo=datetime.timezone.utc)
HASHES = {role: "a" * 64 for role in ("APP", "ADMIN", "EXPORTER")}
STEM = "/etc/ssl/smart-redis/redis-0123456789abcdef"
FILES = TlsFiles(f"{STEM}.crt", f"{STEM}.key", f"{STEM}-ca.crt")


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    return certs.project_ca(tmp_path_factory.mktemp("ca") / "tls", NOW)


def issued(ca, names=("127.0.0.1", "localhost"), days=365):
    return certs.issue(ca[0], ca[1], list(names), NOW, days=days)


def test_a_certificate_the_ca_issued_passes(ca):
    leaf = certs.check(issued(ca), ["127.0.0.1", "localhost"], NOW)
    assert certs.names_in(leaf) == (["localhost"], ["127.0.0.1"])


def refusal(bundle, names=("127.0.0.1",), now=NOW) -> str:
    with pytest.raises(SettingsError) as error:
        certs.check(bundle, list(names), now)
    message = str(error.value)
    assert "\n" not in message and "PRIVATE" not in message
    return message


def test_each_bad_bundle_is_refused_in_one_line_naming_its_setting(ca, tmp_path):
    good = issued(ca)
    other_ca = certs.project_ca(tmp_path / "other", NOW)
    foreign = issued(other_ca)
    cases = {
        "redis_tls_cert: allowed is a PEM certificate": certs.Bundle("not a certificate", good.key, good.ca),
        "redis_tls_key: allowed is an unencrypted PEM private key": certs.Bundle(good.cert, "junk", good.ca),
        "redis_tls_ca: allowed is a PEM certificate": certs.Bundle(good.cert, good.key, ""),
        "redis_tls_key: allowed is the private key of redis_tls_cert": certs.Bundle(good.cert, foreign.key, good.ca),
        "redis_tls_cert: allowed is a certificate issued by redis_tls_ca": certs.Bundle(
            foreign.cert, foreign.key, good.ca
        ),
    }
    for expected, bundle in cases.items():
        assert refusal(bundle).startswith(expected)


def test_an_expired_certificate_and_a_missing_name_are_refused(ca):
    expired = refusal(issued(ca, days=10), now=NOW + datetime.timedelta(days=11))
    assert expired.startswith("redis_tls_cert: allowed is a certificate that has not expired (it expired 2026-12-08)")
    missing = refusal(issued(ca, names=("localhost",)), names=("10.0.0.5",))
    assert missing == (
        "redis_tls_cert: allowed is a certificate whose subjectAltName names 10.0.0.5 (where clients connect)"
    )
    assert certs.names_all(issued(ca, names=("*.example.com",)).leaf, ["redis.example.com"]) is None
    assert certs.names_all(issued(ca, names=("*.example.com",)).leaf, ["a.b.example.com"]) == "a.b.example.com"


def test_what_the_operator_gives_is_refused_or_reduced_to_certificates(ca, tmp_path):
    good = issued(ca)
    with_key = certs.Bundle(good.cert + good.key, good.key, good.ca)
    assert refusal(with_key) == "redis_tls_cert: allowed is a file of certificates only (it holds a private key)"
    clean = certs.operator_bundle(good.cert + "\n# a comment\n", good.key, good.ca, ["127.0.0.1"], client=True)
    assert clean.cert == good.cert and "comment" not in clean.cert


def test_a_chain_link_that_is_no_ca_and_a_mismatched_ca_key_are_refused(ca, tmp_path):
    not_a_ca = issued(ca, names=("intermediate.example",))
    inter_key = serialization.load_pem_private_key(not_a_ca.key.encode(), password=None)
    leaf = certs.issue(not_a_ca.leaf, inter_key, ["127.0.0.1"], NOW)
    chained = certs.Bundle(leaf.cert + not_a_ca.cert, leaf.key, not_a_ca.ca)
    assert "is no CA: basicConstraints" in refusal(chained)
    one, other = tmp_path / "one", tmp_path / "other"
    certs.project_ca(one, NOW), certs.project_ca(other, NOW)
    (one / "ca.key").write_bytes((other / "ca.key").read_bytes())
    with pytest.raises(SettingsError, match="ca.key that belongs to ca.crt"):
        certs.project_ca(one, NOW)


def test_usages_expired_cas_and_bare_wildcards_are_refused(ca, tmp_path):
    client_only = certs.issue(ca[0], ca[1], ["127.0.0.1"], NOW, client_only="x")
    assert "lacks serverAuth" in refusal(client_only)
    old_ca = certs.project_ca(tmp_path / "old", NOW - datetime.timedelta(days=certs.CA_DAYS + 1))
    from_old = certs.issue(old_ca[0], old_ca[1], ["127.0.0.1"], NOW - datetime.timedelta(days=1))
    assert refusal(from_old).startswith("redis_tls_ca: allowed is a chain valid now")
    assert certs.names_all(issued(ca, names=("*.com",)).leaf, ["example.com"]) == "example.com"


def test_the_project_ca_folder_must_be_private_and_whole(tmp_path):
    open_dir = tmp_path / "open"
    open_dir.mkdir(mode=0o755)
    open_dir.chmod(0o755)
    with pytest.raises(SettingsError, match="redis_tls_ca_dir: allowed is a folder of yours that only you may enter"):
        certs.project_ca(open_dir, NOW)
    (tmp_path / "link").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    (tmp_path / "elsewhere").mkdir(mode=0o700)
    with pytest.raises(SettingsError, match="is a link"):
        certs.project_ca(tmp_path / "link", NOW)
    whole = tmp_path / "whole"
    certs.project_ca(whole, NOW)
    (whole / "ca.key").unlink()
    with pytest.raises(SettingsError, match="both ca.crt and ca.key, or neither"):
        certs.project_ca(whole, NOW)


def test_the_exporter_gets_a_client_certificate_of_its_own(tmp_path):
    directory = tmp_path / "tls"
    server, _ = certs.host_bundle(directory, "db1", ["127.0.0.1"], 30, NOW)
    client, issued_now = certs.host_bundle(directory, "db1", [], 30, NOW, client_only="redis-exporter")
    assert issued_now and client.leaf.serial_number != server.leaf.serial_number
    assert certs._usages(client.leaf) == {certs.ExtendedKeyUsageOID.CLIENT_AUTH}
    assert certs.host_bundle(directory, "db1", [], 30, NOW, client_only="redis-exporter") == (client, False)


def test_a_chain_in_the_certificate_file_reaches_the_ca(ca, tmp_path):
    # An intermediate: a CA certificate of its own, signed by the root.
    intermediate_ca = certs.project_ca(tmp_path / "intermediate", NOW)
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    root_cert, root_key = ca
    inter_cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(x509.oid.NameOID.COMMON_NAME, "intermediate")]))
        .issuer_name(root_cert.subject)
        .public_key(intermediate_ca[1].public_key())
        .serial_number(1)
        .not_valid_before(NOW - datetime.timedelta(days=1))
        .not_valid_after(NOW + datetime.timedelta(days=400))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(root_key, hashes.SHA256())
    )
    leaf = certs.issue(inter_cert, intermediate_ca[1], ["127.0.0.1"], NOW)
    chained = certs.Bundle(leaf.cert + certs._pem(inter_cert).decode(), leaf.key, certs._pem(root_cert).decode())
    certs.check(chained, ["127.0.0.1"], NOW)
    alone = certs.Bundle(leaf.cert, leaf.key, certs._pem(root_cert).decode())
    assert "issued by redis_tls_ca" in refusal(alone)


def test_the_project_ca_issues_once_and_again_only_when_due(tmp_path):
    directory = tmp_path / "secrets" / "tls"
    first, issued_now = certs.host_bundle(directory, "@docker/db1", ["127.0.0.1", "db1"], 30, NOW)
    assert issued_now
    again, issued_again = certs.host_bundle(directory, "@docker/db1", ["127.0.0.1", "db1"], 30, NOW)
    assert not issued_again and again == first
    # 30 days before expiry it is due; a name that the certificate lacks makes it due at once.
    due = NOW + datetime.timedelta(days=366 - 30)
    assert certs.host_bundle(directory, "@docker/db1", ["127.0.0.1", "db1"], 30, due)[1]
    assert certs.host_bundle(directory, "@docker/db1", ["127.0.0.1", "db1", "10.0.0.9"], 30, due)[1]
    assert directory.stat().st_mode & 0o777 == 0o700
    files = [p for p in directory.rglob("*") if p.is_file()]
    stem = certs._file_name("@docker/db1")
    assert stem.startswith("_docker_db1-") and stem != certs._file_name("_docker/db1")
    assert {p.name for p in files} == {"ca.crt", "ca.key", f"{stem}.crt", f"{stem}.key"}
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in files)


def test_the_fingerprint_changes_with_any_of_the_three_files(ca):
    bundle = issued(ca)
    changed = [
        certs.Bundle(bundle.cert + "\n", bundle.key, bundle.ca),
        certs.Bundle(bundle.cert, bundle.key + "\n", bundle.ca),
        certs.Bundle(bundle.cert, bundle.key, bundle.ca + "\n"),
    ]
    assert len({bundle.fingerprint, *(b.fingerprint for b in changed)}) == 4


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"redis_tls": "yes"}, "redis_tls = 'yes': allowed is one of off, on, only"),
        ({"redis_tls_cert": "a.crt"}, "redis_tls_key: allowed is a file whenever"),
        ({"redis_tls": "on", "redis_tls_port": 6379}, "redis_tls_port = 6379: allowed is a port other than redis_port"),
        (
            {"redis_tls_client_auth": "required"},
            "redis_tls_client_auth = 'required': allowed is one of optional, yes, no",
        ),
        ({"redis_tls_renew_days": 0}, "redis_tls_renew_days = 0: allowed is a whole number from 1 to 300"),
    ],
)
def test_tls_settings_are_checked(data, message):
    with pytest.raises(SettingsError) as error:
        load(data)
    assert str(error.value).startswith(message)


def conf(data: dict, tls: TlsFiles | None = FILES) -> list[str]:
    return redis_conf(load(data), HASHES, tls=tls).splitlines()


def test_redis_conf_for_each_mode():
    off = conf({}, tls=None)
    assert "port 6379" in off and "tls-port 0" in off and not any(line.startswith("tls-cert") for line in off)
    on = conf({"redis_tls": "on"})
    assert "port 6379" in on and "tls-port 6380" in on
    only = conf({"redis_tls": "only", "redis_tls_client_auth": "yes"})
    assert "port 0" in only and "tls-port 6379" in only and "tls-auth-clients yes" in only
    assert f"tls-cert-file {FILES.cert}" in only and f"tls-ca-cert-file {FILES.ca}" in only
    assert "tls-replication no" in only and "tls-cluster no" in only


def test_the_deploys_redis_cli_follows_the_running_config():
    assert live.endpoint({"port": "6379", "tls-port": "6380"}, 6379) == (6379, None)
    port, options = live.endpoint(live.directives("\n".join(conf({"redis_tls": "only"}))), 6379)
    assert port == 6379 and options == f"--tls --cacert {FILES.ca}"  # "optional": no certificate shown
    required = live.directives("\n".join(conf({"redis_tls": "only", "redis_tls_client_auth": "yes"})))
    assert live.endpoint(required, 6379) == (6379, FILES.cli_options(show_certificate=True))
    assert live.endpoint({"port": "²", "tls-port": "6380"}, 6390) == (6390, None)
    assert live.endpoint({}, 6390) == (6390, None)
    assert live.endpoint({"port": "x", "tls-port": "6380"}, 6390) == (6390, None)


def test_a_tls_path_the_deploy_did_not_write_never_reaches_its_shell():
    """redis.conf is the redis user's to write: a planted path stops the run."""
    planted = {"port": "0", "tls-port": "6379", "tls-cert-file": FILES.cert, "tls-key-file": FILES.key}
    for path in ("/x; touch /tmp/pwned #", "/etc/ssl/smart-redis/../../tmp/ca.crt", "/tmp/ca.crt"):
        with pytest.raises(live.ForeignConfig):
            live.endpoint({**planted, "tls-ca-cert-file": path}, 6379)


def test_host_tools_use_tls_only_on_the_tls_port(tmp_path, ca, monkeypatch):
    # The deploy's folder stands in tmp_path: the same names, another place.
    monkeypatch.setattr(server, "TLS_DIR", str(tmp_path))
    monkeypatch.setattr(
        server, "TLS_FILE_RE", re.compile(re.escape(str(tmp_path)) + r"/redis-[0-9a-f]{16}(-ca)?\.(crt|key)")
    )
    bundle = issued(ca)
    stem = tmp_path / "redis-0123456789abcdef"
    for suffix, text in ((".crt", bundle.cert), (".key", bundle.key), ("-ca.crt", bundle.ca)):
        Path(f"{stem}{suffix}").write_text(text)
    config = tmp_path / "redis.conf"
    lines = [
        "port 0",
        "tls-port 6390",
        f"tls-cert-file {stem}.crt",
        f"tls-key-file {stem}.key",
        f'tls-ca-cert-file "{stem}-ca.crt"',  # as CONFIG REWRITE writes it
        "tls-auth-clients yes",
    ]
    config.write_text("\n".join(lines) + "\n")
    assert server.configured_port(str(config)) == 6390
    context = server.tls_context(6390, str(config))
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    assert server.tls_context(6379, str(config)) is None
    # A path the deploy did not write (redis.conf is the redis user's): root reads nothing there.
    config.write_text("\n".join([*lines[:4], "tls-ca-cert-file /tmp/attacker-ca.crt", lines[5]]) + "\n")
    with pytest.raises(ssl.SSLError, match="did not write"):
        server.tls_context(6390, str(config))
    config.write_text("port 6379\ntls-port 0\n")
    assert server.tls_context(6379, str(config)) is None and server.configured_port(str(config)) == 6379


def test_the_warnings_and_the_refusal_of_the_certificates_step(monkeypatch, tmp_path, ca):
    """What tls.certificates says before anything changes, per mode and bind."""
    said: list[str] = []
    monkeypatch.setattr(tls, "host", SimpleNamespace(name="db1", log=lambda text, level=None: said.append(text)))
    standalone = Topology("standalone")
    assert tls.certificates(load({"redis_bind": "127.0.0.1 10.0.0.5"}), standalone) is None
    assert len(said) == 1 and 'redis_tls = "only" encrypts them' in said[0]
    said.clear()
    assert tls.certificates(load({}), standalone) is None and not said
    opened = {"redis_bind": "127.0.0.1 10.0.0.5", "redis_tls_ca_dir": str(tmp_path / "tls")}
    made = tls.certificates(load({**opened, "redis_tls": "on"}), standalone)
    assert made is not None and made.exporter is None
    assert any("the plain port is reachable too" in text for text in said)
    required = tls.certificates(load({**opened, "redis_tls": "only", "redis_tls_client_auth": "yes"}), standalone)
    assert required is not None and required.exporter is not None
    own = issued(ca, names=("127.0.0.1",))
    for part in ("cert", "key", "ca"):
        (tmp_path / part).write_text(getattr(own, part))
    given = {f"redis_tls_{part}": str(tmp_path / part) for part in ("cert", "key", "ca")}
    with pytest.raises(SettingsError, match="it would need the server's key"):
        tls.certificates(load({**given, "redis_tls": "only", "redis_tls_client_auth": "yes"}), standalone)


def test_redis_url_and_the_ca_for_node():
    args = pm2._editor_args(load({"redis_tls": "on"}), Topology("standalone"))
    assert "--port 6380 --tls" in args
    assert pm2.app_variables(load({"redis_tls": "only"}), Topology("standalone")) == {
        "NODE_EXTRA_CA_CERTS": "/etc/ssl/smart-redis/ca.crt"
    }
    assert "--tls" not in pm2._editor_args(load({}), Topology("standalone"))


def test_the_exporter_speaks_tls_where_there_is_no_plain_port():
    plain = exporter.dropin(load({"redis_tls": "on"}), FILES)
    assert "-redis.addr redis://127.0.0.1:6379" in plain and "tls" not in plain
    only = exporter.dropin(load({"redis_tls": "only"}), FILES)
    assert f"-redis.addr rediss://127.0.0.1:6379 -tls-ca-cert-file {FILES.ca}" in only
    assert "ExecStartPre" not in only
    own = TlsFiles(
        FILES.cert, FILES.key, FILES.ca, "/etc/ssl/smart-redis/exporter-1.crt", "/etc/ssl/smart-redis/exporter-1.key"
    )
    elsewhere = exporter.dropin(
        load({"redis_tls": "only", "redis_url_host": "redis.internal"}), replace(FILES, loopback_named=False)
    )
    assert "-redis.addr rediss://redis.internal:6379" in elsewhere  # the certificate does not name 127.0.0.1
    required = exporter.dropin(load({"redis_tls": "only", "redis_tls_client_auth": "yes"}), own)
    assert FILES.key not in required  # the exporter never gets the server's key
    assert (
        "ExecStartPre=+/usr/bin/install -m 0400 -o prometheus -g prometheus /etc/ssl/smart-redis/exporter-1.key "
        "/run/smart-redis-exporter/tls.key" in required
    )
    assert (
        "-tls-client-cert-file /run/smart-redis-exporter/tls.crt -tls-client-key-file /run/smart-redis-exporter/tls.key"
        in required
    )


def test_ecosystem_url_scheme(tmp_path: Path):
    from types import SimpleNamespace

    from smart_redis.host.ecosystem import compose_url

    args = SimpleNamespace(auth="none", host="127.0.0.1", port="6380", tls=True)
    assert compose_url(args) == "rediss://127.0.0.1:6380/0"
    assert compose_url(SimpleNamespace(**{**vars(args), "tls": False})) == "redis://127.0.0.1:6380/0"
