"""TLS certificates on the operator's machine: the project's own CA, the server certificates it
issues, and the checks every certificate passes before it reaches a host.

Pure Python (the `cryptography` package that pyinfra's SSH already needs); nothing here touches
a host. A failed check raises SettingsError: one line naming the setting, and the run stops
before any host changes.

    bundle = host_bundle(Path("secrets/tls"), "redis-1", ["127.0.0.1", "redis-1"], renew_days=30)
    check(bundle, ["127.0.0.1"])      # raises SettingsError("redis_tls_cert: ... does not name 127.0.0.1")
"""

from __future__ import annotations

import datetime
import hashlib
import ipaddress
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from . import run
from .settings import SettingsError, ip_address

CA_DAYS = 3650
# Below the 398 days that browsers' rules allow, so that no client library's policy refuses it.
SERVER_DAYS = 365
CA_NAME = "Smart-Trade Redis CA"


@dataclass(frozen=True)
class Bundle:
    """A server certificate (PEM, chain after it), its key and the CA that clients trust."""

    cert: str
    key: str
    ca: str

    @property
    def fingerprint(self) -> str:
        """Names the files on the host: any change of the three gives new names, so redis.conf
        changes and the server loads them at runtime (CONFIG SET), or at its next start."""
        return hashlib.sha256((self.cert + self.key + self.ca).encode()).hexdigest()[:16]

    @property
    def leaf(self) -> x509.Certificate:
        return x509.load_pem_x509_certificates(self.cert.encode())[0]


def now_utc() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _certificates(text: str, setting: str) -> list[x509.Certificate]:
    try:
        return x509.load_pem_x509_certificates(text.encode())
    except ValueError:
        raise SettingsError(f"{setting}: allowed is a PEM certificate file (this one does not parse)") from None


def _private_key(text: str, setting: str):
    try:
        return serialization.load_pem_private_key(text.encode(), password=None)
    except (ValueError, TypeError):
        raise SettingsError(
            f"{setting}: allowed is an unencrypted PEM private key (this one does not parse or has a passphrase)"
        ) from None


def _spki(public_key) -> bytes:
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _issued_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
        return True
    except (ValueError, TypeError, InvalidSignature):
        return False


def _path(
    leaf: x509.Certificate, chain: list[x509.Certificate], cas: list[x509.Certificate]
) -> list[x509.Certificate] | None:
    """The certificates above the leaf, through the chain of its file, up to the one of the CA
    file that signed the last; None when the chain does not reach the CA file."""
    cert, left, path = leaf, list(chain), list[x509.Certificate]()
    for _ in range(len(chain) + 1):
        root = next((ca for ca in cas if _issued_by(cert, ca)), None)
        if root is not None:
            return [*path, root]
        parent = next((c for c in left if _issued_by(cert, c)), None)
        if parent is None:
            return None
        left.remove(parent)
        path.append(parent)
        cert = parent
    return None


def _is_ca(cert: x509.Certificate) -> bool:
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _usages(cert: x509.Certificate) -> set | None:
    """The extended key usages, None when the certificate does not restrict them."""
    try:
        return set(cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value)
    except x509.ExtensionNotFound:
        return None


def _usage_names(usages: set) -> str:
    """ "serverAuth, codeSigning": the names OpenSSL shows, the dotted number for any other."""
    named = (u._name if u._name != "Unknown OID" else u.dotted_string for u in usages)
    return ", ".join(sorted(named)) or "none"


def _dns_match(pattern: str, name: str) -> bool:
    pattern, name = pattern.lower().rstrip("."), name.lower().rstrip(".")
    if pattern.startswith("*."):
        # "*.com" names no host: a wildcard covers one label under a name of two or more
        return "." in pattern[2:] and "." in name and name.split(".", 1)[1] == pattern[2:]
    return pattern == name


def names_in(cert: x509.Certificate) -> tuple[list[str], list[str]]:
    """(DNS names, IP addresses) of the certificate's subjectAltName."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return [], []
    return san.get_values_for_type(x509.DNSName), [str(a) for a in san.get_values_for_type(x509.IPAddress)]


def names_all(cert: x509.Certificate, names: Sequence[str]) -> str | None:
    """The first of `names` the certificate does not name, or None."""
    dns, ips = names_in(cert)
    for name in names:
        address = ip_address(name)
        if address is not None:
            if address not in ips:
                return name
        elif not any(_dns_match(pattern, name) for pattern in dns):
            return name
    return None


def _day(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%d")


def check(
    bundle: Bundle,
    names: Sequence[str],
    now: datetime.datetime | None = None,
    settings: tuple[str, str, str] = ("redis_tls_cert", "redis_tls_key", "redis_tls_ca"),
    client: bool = True,
    group: bool = False,
) -> x509.Certificate:
    """Refuse a bundle that Redis or its clients would refuse: each failure one line naming the
    setting. names: what clients connect to (REDIS_URL's host), each must be in the SAN.
    client: the certificate is shown as a client's too (the host's tools, replication).
    group: a host of a Sentinel group, where it is always a client's too: with tls-replication
    yes a replica shows it to its primary, a sentinel to the servers and the other sentinels."""
    cert_setting, key_setting, ca_setting = settings
    now = now or now_utc()
    for setting, text in ((cert_setting, bundle.cert), (ca_setting, bundle.ca)):
        if "PRIVATE KEY" in text:
            raise SettingsError(f"{setting}: allowed is a file of certificates only (it holds a private key)")
    leaf, *chain = _certificates(bundle.cert, cert_setting)
    key = _private_key(bundle.key, key_setting)
    cas = _certificates(bundle.ca, ca_setting)
    if _spki(key.public_key()) != _spki(leaf.public_key()):
        raise SettingsError(f"{key_setting}: allowed is the private key of redis_tls_cert's certificate (it is not)")
    path = _path(leaf, chain, cas)
    if path is None:
        raise SettingsError(
            f"{cert_setting}: allowed is a certificate issued by redis_tls_ca (or by a chain in its file that reaches it)"
        )
    for above in path:
        if not _is_ca(above):
            raise SettingsError(
                f"{cert_setting}: allowed is a chain of CA certificates above the server's "
                f"({above.subject.rfc4514_string()[:80]} is no CA: basicConstraints)"
            )
        if not above.not_valid_before_utc <= now < above.not_valid_after_utc:
            setting = ca_setting if above in cas else cert_setting
            raise SettingsError(
                f"{setting}: allowed is a chain valid now ({above.subject.rfc4514_string()[:80]} is valid "
                f"{_day(above.not_valid_before_utc)} to {_day(above.not_valid_after_utc)})"
            )
    usages = _usages(leaf)
    if usages is not None and ExtendedKeyUsageOID.SERVER_AUTH not in usages:
        raise SettingsError(
            f"{cert_setting}: allowed is a certificate for TLS servers (its extended key usage lacks serverAuth)"
        )
    if group and usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        # Checked here, not at the next reconnect: a sentinel restarted on it loses its links.
        raise SettingsError(
            f"{cert_setting}: allowed in a Sentinel group is a certificate whose extended key usage has "
            f"clientAuth besides serverAuth (this one has {_usage_names(usages)}; with tls-replication yes "
            "the servers and sentinels show it to each other as clients)"
        )
    if client and usages is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usages:
        raise SettingsError(
            f"{cert_setting}: allowed is a certificate that allows clientAuth too (the host's tools show it "
            'to the server), or redis_tls_client_auth = "no"'
        )
    if now >= leaf.not_valid_after_utc:
        raise SettingsError(
            f"{cert_setting}: allowed is a certificate that has not expired (it expired {_day(leaf.not_valid_after_utc)})"
        )
    if now < leaf.not_valid_before_utc:
        raise SettingsError(
            f"{cert_setting}: allowed is a certificate valid now (it is valid from {_day(leaf.not_valid_before_utc)})"
        )
    missing = names_all(leaf, names)
    if missing is not None:
        raise SettingsError(
            f"{cert_setting}: allowed is a certificate whose subjectAltName names {missing} (where clients connect)"
        )
    return leaf


def operator_bundle(cert: str, key: str, ca: str, names: Sequence[str], client: bool, group: bool = False) -> Bundle:
    """The operator's files, checked, as the host gets them: certificates and key written anew
    from what parsed, so that nothing else in those files (a stray key) reaches a host.
    group: for a host of a Sentinel group (check)."""
    bundle = Bundle(cert, key, ca)
    check(bundle, names, client=client, group=group)
    return Bundle(
        "".join(_pem(c).decode() for c in x509.load_pem_x509_certificates(cert.encode())),
        _key_pem(serialization.load_pem_private_key(key.encode(), password=None)).decode(),
        "".join(_pem(c).decode() for c in x509.load_pem_x509_certificates(ca.encode())),
    )


# --- The project's own CA ------------------------------------------------------------------


def _keep(path: Path, data: bytes) -> None:
    """Written by the run's first executing operation (run.write_locally): --dry and a declined
    prompt leave the CA folder as it was."""
    run.write_locally(str(path), lambda: _write_private(path, data))


def _write_private(path: Path, data: bytes) -> None:
    """0600 from its first byte (in a folder made 0700), and never through a link someone put there."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    temp = path.with_name(path.name + ".new")
    temp.unlink(missing_ok=True)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    os.replace(temp, path)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _private_dir(directory: Path) -> None:
    """An existing one must be a folder of this user that nobody else may enter (a missing one is
    made 0700 when the run writes into it)."""
    if not directory.exists() and not directory.is_symlink():
        return
    try:
        info = os.lstat(directory)
    except OSError as exc:
        raise SettingsError(
            f"redis_tls_ca_dir: allowed is a folder you may create and use ({directory}: {exc.strerror})"
        ) from None
    if directory.is_symlink() or not directory.is_dir() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise SettingsError(
            f"redis_tls_ca_dir: allowed is a folder of yours that only you may enter ({directory} is "
            f"{'a link' if directory.is_symlink() else oct(info.st_mode & 0o777)}): it holds the CA's key"
        )


def _private_file(path: Path) -> str:
    info = os.lstat(path)
    if path.is_symlink() or info.st_uid != os.getuid() or info.st_mode & 0o077:
        raise SettingsError(f"redis_tls_ca_dir: allowed are files of yours that only you may read ({path} is not)")
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        raise SettingsError(f"redis_tls_ca_dir: allowed are readable PEM files ({path} is not)") from None


def project_ca(directory: Path, now: datetime.datetime | None = None) -> tuple[x509.Certificate, object]:
    """The CA in `directory` (ca.crt, ca.key, both 0600), created on first use."""
    now = now or now_utc()
    cert_path, key_path = directory / "ca.crt", directory / "ca.key"
    _private_dir(directory)
    if cert_path.exists() and key_path.exists():
        cert, key = (
            _certificates(_private_file(cert_path), "redis_tls_ca_dir")[0],
            _private_key(_private_file(key_path), "redis_tls_ca_dir"),
        )
        if _spki(cert.public_key()) != _spki(key.public_key()):
            raise SettingsError(
                f"redis_tls_ca_dir: allowed is a ca.key that belongs to ca.crt ({directory}: it does not)"
            )
        if now >= cert.not_valid_after_utc:
            raise SettingsError(
                f"redis_tls_ca_dir: allowed is a CA that has not expired (it expired {_day(cert.not_valid_after_utc)})"
            )
        return cert, key
    if cert_path.exists() or key_path.exists():
        raise SettingsError(
            f"redis_tls_ca_dir: allowed is a folder with both ca.crt and ca.key, or neither ({directory} has one): "
            "put the other back from your backup, as a new CA would leave every client trusting the old one"
        )
    return run.once(f"ca {directory}", lambda: _new_ca(cert_path, key_path, now))


def _new_ca(cert_path: Path, key_path: Path, now: datetime.datetime) -> tuple[x509.Certificate, object]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, CA_NAME)])
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    _keep(key_path, _key_pem(key))
    _keep(cert_path, _pem(cert))
    return cert, key


def _san(names: Sequence[str]) -> x509.SubjectAlternativeName:
    entries: list[x509.GeneralName] = []
    for name in dict.fromkeys(names):
        address = ip_address(name)
        entries.append(x509.IPAddress(ipaddress.ip_address(address)) if address else x509.DNSName(name))
    return x509.SubjectAlternativeName(entries)


def _authority_key_id(ca_cert: x509.Certificate) -> x509.AuthorityKeyIdentifier:
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_cert.public_key())  # type: ignore[arg-type]


def issue(
    ca_cert: x509.Certificate,
    ca_key,
    names: Sequence[str],
    now: datetime.datetime | None = None,
    days: int = SERVER_DAYS,
    client_only: str | None = None,
    usages: Sequence[x509.ObjectIdentifier] | None = None,
) -> Bundle:
    """A server certificate for `names` (its SAN), usable as a client certificate too: Redis
    presents its own certificate when it logs in to a primary or a sentinel (and in a Sentinel
    group always: tls-replication yes).
    client_only: the common name of a certificate that only a client may show (no SAN).
    usages: other extended key usages (an operator's certificate as the tests need one)."""
    now = now or now_utc()
    key = ec.generate_private_key(ec.SECP256R1())
    usages = usages or (
        [ExtendedKeyUsageOID.CLIENT_AUTH]
        if client_only
        else [ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    builder = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, client_only or names[0])]))
        .issuer_name(ca_cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(True, False, False, False, False, False, False, False, False), critical=True)
        .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_authority_key_id(ca_cert), critical=False)
    )
    if not client_only:
        builder = builder.add_extension(_san(names), critical=False)
    cert = builder.sign(ca_key, hashes.SHA256())
    return Bundle(_pem(cert).decode(), _key_pem(key).decode(), _pem(ca_cert).decode())


def _file_name(host_name: str) -> str:
    """Readable, and apart for every host name (two names that read alike get two files)."""
    readable = re.sub(r"[^A-Za-z0-9._-]", "_", host_name).lstrip(".")[:64] or "host"
    return f"{readable}-{hashlib.sha256(host_name.encode()).hexdigest()[:8]}"


def _reusable(bundle: Bundle, ca_cert: x509.Certificate, names: Sequence[str], renew_days: int, now) -> bool:
    """Issued by this CA, naming every name, with more than renew_days left."""
    try:
        leaf = bundle.leaf
        key = serialization.load_pem_private_key(bundle.key.encode(), password=None)
    except ValueError:
        return False
    return (
        _issued_by(leaf, ca_cert)
        and _spki(key.public_key()) == _spki(leaf.public_key())
        and names_all(leaf, names) is None
        and leaf.not_valid_before_utc <= now
        and leaf.not_valid_after_utc - now > datetime.timedelta(days=renew_days)
    )


def host_bundle(
    directory: Path,
    host_name: str,
    names: Sequence[str],
    renew_days: int,
    now: datetime.datetime | None = None,
    client_only: str | None = None,
) -> tuple[Bundle, bool]:
    """The project CA's certificate for this host: the one issued before while it still names
    every name and has more than renew_days left, else a new one (kept beside the CA, 0600).
    client_only: a client's certificate of that common name instead (the host's exporter).
    Returns (bundle, newly issued)."""
    now = now or now_utc()
    ca_cert, ca_key = project_ca(directory, now)
    hosts = directory / "hosts"
    _private_dir(hosts)
    stem = _file_name(host_name) + (f".{client_only}" if client_only else "")
    cert_path, key_path = hosts / f"{stem}.crt", hosts / f"{stem}.key"
    ca_pem = _pem(ca_cert).decode()
    if cert_path.exists() and key_path.exists():
        stored = Bundle(_private_file(cert_path), _private_file(key_path), ca_pem)
        if _reusable(stored, ca_cert, names, renew_days, now):
            return stored, False  # else (another CA, a name missing, due, unreadable PEM): issue again
    return run.once(
        f"issued {cert_path}", lambda: _issue_kept(cert_path, key_path, ca_cert, ca_key, names, now, client_only)
    ), True


def _issue_kept(cert_path, key_path, ca_cert, ca_key, names, now, client_only) -> Bundle:
    bundle = issue(ca_cert, ca_key, names, now, client_only=client_only)
    _keep(key_path, bundle.key.encode())
    _keep(cert_path, bundle.cert.encode())
    return bundle


def days_left(cert_pem: str, now: datetime.datetime | None = None) -> float:
    leaf = x509.load_pem_x509_certificates(cert_pem.encode())[0]
    return (leaf.not_valid_after_utc - (now or now_utc())).total_seconds() / 86400
