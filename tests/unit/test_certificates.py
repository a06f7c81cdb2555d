"""TLS without a host: the checks every certificate passes, the project's CA, and what the
settings make of redis.conf, redis-cli, the exporter and REDIS_URL."""

from __future__ import annotations

import contextlib
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


# --- Issue A: the operator's certificate in a Sentinel group must allow clientAuth -------------

SERVER_AUTH, CLIENT_AUTH = certs.ExtendedKeyUsageOID.SERVER_AUTH, certs.ExtendedKeyUsageOID.CLIENT_AUTH
GROUP_REPLICA = Topology(
    "replica", "10.0.0.2", "10.0.0.1", ("10.0.0.1", "10.0.0.2", "10.0.0.3"), runs_sentinel=True, group=True, members=3
)
SENTINEL_ONLY = Topology(
    "standalone", "10.0.0.3", "10.0.0.1", ("10.0.0.1", "10.0.0.2", "10.0.0.3"), runs_sentinel=True, group=True
)


def with_usages(ca, usages: list | None) -> certs.Bundle:
    """An operator's certificate from `ca` with exactly these extended key usages (None: no EKU
    extension at all, which allows every usage)."""
    names = ["127.0.0.1", "localhost", "10.0.0.2", "10.0.0.3"]
    bundle = certs.issue(ca[0], ca[1], names, usages=usages or [SERVER_AUTH])
    if usages is not None:
        return bundle
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    leaf = bundle.leaf
    builder = (
        x509.CertificateBuilder()
        .subject_name(leaf.subject)
        .issuer_name(leaf.issuer)
        .public_key(leaf.public_key())
        .serial_number(leaf.serial_number)
        .not_valid_before(leaf.not_valid_before_utc)
        .not_valid_after(leaf.not_valid_after_utc)
    )
    for extension in leaf.extensions:
        if not isinstance(extension.value, x509.ExtendedKeyUsage):
            builder = builder.add_extension(extension.value, extension.critical)
    cert = builder.sign(ca[1], hashes.SHA256())
    return certs.Bundle(certs._pem(cert).decode(), bundle.key, bundle.ca)


@pytest.fixture
def now_ca(tmp_path):
    """A CA valid today: tls.certificates checks against the clock."""
    return certs.project_ca(tmp_path / "now-ca")


@pytest.mark.parametrize(
    ("topology", "usages", "client_auth", "refused"),
    [
        # In a group the servers and sentinels show it to each other (tls-replication yes).
        (GROUP_REPLICA, [SERVER_AUTH], "optional", "allowed in a Sentinel group is a certificate whose extended"),
        (GROUP_REPLICA, [SERVER_AUTH], "no", "allowed in a Sentinel group is a certificate whose extended"),
        (SENTINEL_ONLY, [SERVER_AUTH], "optional", "allowed in a Sentinel group is a certificate whose extended"),
        (GROUP_REPLICA, [SERVER_AUTH, CLIENT_AUTH], "optional", None),
        (GROUP_REPLICA, None, "optional", None),  # no EKU: every usage
        # A single server only presents it as a server, unless its own tools must show it.
        (Topology("standalone"), [SERVER_AUTH], "optional", None),
        (Topology("standalone"), [SERVER_AUTH], "yes", "allowed is a certificate that allows clientAuth too"),
        (Topology("standalone"), [SERVER_AUTH, CLIENT_AUTH], "yes", None),
    ],
)
def test_the_operators_certificate_in_a_group_must_allow_client_auth(
    monkeypatch, tmp_path, now_ca, topology, usages, client_auth, refused
):
    """Through the deploy's own check (tls.certificates), before any host changes."""
    monkeypatch.setattr(tls, "host", SimpleNamespace(name="db2", log=lambda text, level=None: None))
    bundle = with_usages(now_ca, usages)
    for part in ("cert", "key", "ca"):
        (tmp_path / part).write_text(getattr(bundle, part))
    settings = load(
        {
            **{f"redis_tls_{part}": str(tmp_path / part) for part in ("cert", "key", "ca")},
            "redis_tls": "only",
            "redis_tls_client_auth": client_auth,
            "redis_exporter_enabled": False,  # "yes" with the operator's files needs it off
            "redis_bind": "127.0.0.1 10.0.0.2",
        }
    )
    if refused is None:
        made = tls.certificates(settings, topology)
        assert made is not None and made.server.leaf.serial_number == bundle.leaf.serial_number
        return
    with pytest.raises(SettingsError) as error:
        tls.certificates(settings, topology)
    message = str(error.value)
    assert message.startswith(f"redis_tls_cert: {refused}") and "\n" not in message, message
    if topology.ha:  # what it carries, and why a group needs more
        assert "(this one has serverAuth; with tls-replication yes" in message


def test_the_project_ca_gives_a_group_host_server_and_client_use(monkeypatch, tmp_path):
    monkeypatch.setattr(tls, "host", SimpleNamespace(name="db2", log=lambda text, level=None: None))
    settings = load({"redis_tls": "only", "redis_bind": "127.0.0.1 10.0.0.2", "redis_tls_ca_dir": str(tmp_path / "t")})
    made = tls.certificates(settings, GROUP_REPLICA)
    assert made is not None and certs._usages(made.server.leaf) == {SERVER_AUTH, CLIENT_AUTH}
    certs.check(made.server, ["127.0.0.1", "10.0.0.2"], group=True)


# --- Issue B: the deploy's own logins reach a server whose certificate has expired -----------


def presented_through(context: ssl.SSLContext, bundle: certs.Bundle, tmp_path: Path) -> int:
    """The serial a real TLS server presenting `bundle` shows to `context` (one handshake on
    127.0.0.1); raises ssl.SSLError when the context refuses it."""
    import socket
    import threading

    (tmp_path / "served.crt").write_text(bundle.cert)
    (tmp_path / "served.key").write_text(bundle.key)
    served = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    served.load_cert_chain(tmp_path / "served.crt", tmp_path / "served.key")
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def accept() -> None:
            conn, _ = listener.accept()
            with contextlib.suppress(OSError), served.wrap_socket(conn, server_side=True) as tls_conn:
                tls_conn.recv(1)

        thread = threading.Thread(target=accept, daemon=True)
        thread.start()
        try:
            with socket.create_connection(listener.getsockname(), timeout=5) as raw:
                with context.wrap_socket(raw, server_hostname="127.0.0.1") as conn:
                    return int(conn.getpeercert()["serialNumber"], 16)
        finally:
            thread.join(5)


def test_the_host_tools_log_in_to_a_server_whose_certificate_expired(ca, tmp_path, monkeypatch):
    """SAVE, restart, rotation (server.tls_context) and the questions to the sentinels
    (server.sentinel_tls_context) verify the chain against the deploy's CA but not the dates: a
    run can replace an expired certificate."""
    past = certs.now_utc() - datetime.timedelta(days=400)
    expired = certs.issue(ca[0], ca[1], ["127.0.0.1"], past, days=365)
    assert expired.leaf.not_valid_after_utc < certs.now_utc()
    # The deploy's files and redis.conf as it writes them, in tmp_path (the existing test's way).
    monkeypatch.setattr(server, "TLS_DIR", str(tmp_path))
    monkeypatch.setattr(
        server, "TLS_FILE_RE", re.compile(re.escape(str(tmp_path)) + r"/redis-[0-9a-f]{16}(-ca)?\.(crt|key)")
    )
    stem = tmp_path / "redis-0123456789abcdef"
    for suffix, text in ((".crt", expired.cert), (".key", expired.key), ("-ca.crt", expired.ca)):
        Path(f"{stem}{suffix}").write_text(text)
    config = tmp_path / "redis.conf"
    config.write_text(
        f"port 0\ntls-port 6390\ntls-cert-file {stem}.crt\ntls-key-file {stem}.key\ntls-ca-cert-file {stem}-ca.crt\n"
    )
    monkeypatch.setattr(server, "SENTINEL_TLS_CA", f"{stem}-ca.crt")
    monkeypatch.setattr(server, "SENTINEL_TLS_CERT", f"{stem}.crt")
    monkeypatch.setattr(server, "SENTINEL_TLS_KEY", f"{stem}.key")
    for management in (server.tls_context(6390, str(config)), server.sentinel_tls_context("0")):
        assert management is not None
        assert presented_through(management, expired, tmp_path) == expired.leaf.serial_number
        # The chain is still checked: another CA's certificate, expired or not, is refused.
        other = certs.project_ca(tmp_path / "other", NOW)
        for stranger in (
            certs.issue(other[0], other[1], ["127.0.0.1"]),
            certs.issue(other[0], other[1], ["127.0.0.1"], past, days=365),
        ):
            with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer certificate"):
                presented_through(management, stranger, tmp_path)
    # What every other client does (and these logins did before): the dates refuse it.
    strict = ssl.create_default_context(cafile=f"{stem}-ca.crt")
    strict.check_hostname = False
    with pytest.raises(ssl.SSLCertVerificationError, match="certificate has expired"):
        presented_through(strict, expired, tmp_path)
