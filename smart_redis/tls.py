"""TLS: the certificate each host gets, checked before anything changes, and its files on the host.

    bundle = tls.certificate(settings, topology)      # None while redis_tls = "off"
    files = tls.host_files(bundle, settings)          # what redis.conf and the host's tools name
    tls.install(settings, bundle)                     # CA, certificate, key (root:redis 0640)
    ...                                               # redis.conf names them: CONFIG SET loads them
    tls.publish_ca(bundle)                            # the CA where the apps look for it
    tls.forget_old(settings, bundle)                  # the files no configuration names any more

The certificate, key and CA carry a fingerprint of the three files in their names on the host. A new
certificate (renewed, or the operator's next one) therefore changes redis.conf, and the config
step applies that with CONFIG SET tls-cert-file ...: Redis loads the new files, keeps its
connections and its PID. A run that stops in between finds redis.conf and the server apart again.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path

from pyinfra import host, logger

from . import certs
from .constants import CONFIG_GROUP, PATHS
from .operations import host_state, managed_file, operation
from .settings import HOSTNAME_RE, Settings, SettingsError, ip_address
from .topology import Topology

LOOPBACK = ("127.0.0.1", "::1", "localhost")


@dataclass(frozen=True)
class TlsFiles:
    """The TLS files on the host."""

    cert: str
    key: str
    ca: str

    def cli_options(self) -> str:
        """redis-cli's, logged in with the server's own certificate (it allows clientAuth)."""
        return f"--tls --cacert {self.ca} --cert {self.cert} --key {self.key}"


def deploy_cli(settings: Settings, files: TlsFiles | None) -> str | None:
    """redis-cli's TLS options for the deploy's own commands once redis.conf is in place."""
    return files.cli_options() if files is not None and settings.tls == "only" else None


def host_files(bundle: certs.Bundle | None, settings: Settings) -> TlsFiles | None:
    """The three files as Redis and the host's tools use them, each named by the bundle's
    fingerprint: a new CA then reaches the server in the same CONFIG SET as its certificate,
    while the replaced files stay readable until the server has moved on (forget_old)."""
    if bundle is None:
        return None
    stem = f"{PATHS.tls_dir}/redis-{bundle.fingerprint}"
    return TlsFiles(f"{stem}.crt", f"{stem}.key", f"{stem}-ca.crt")


def client_names(settings: Settings, topology: Topology) -> list[str]:
    """What a client connects to, so what the certificate must name: REDIS_URL's host, and in
    a Sentinel group the address the others reach this host by."""
    return list(dict.fromkeys([settings.url_host, *([topology.address] if topology.ha and topology.address else [])]))


def _issued_names(settings: Settings, topology: Topology) -> list[str]:
    """Every name the project's CA puts in a host's certificate: the host's own name and
    addresses besides what clients use now, so that another REDIS_URL host needs no new one."""
    own = [host.name] if HOSTNAME_RE.fullmatch(host.name) or ip_address(host.name) else []
    bound = [a for a in settings.bind_addresses if ip_address(a)]
    return list(dict.fromkeys([*client_names(settings, topology), *own, *bound, *LOOPBACK]))


def _read(setting: str, path: str) -> str:
    try:
        return Path(path).expanduser().read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a text file"
        raise SettingsError(f"{setting} = {path!r}: allowed is a readable PEM file ({reason})") from None


def certificate(settings: Settings, topology: Topology) -> certs.Bundle | None:
    """The host's certificate bundle, checked (a bad one stops the run before any host changes):
    the operator's files, or the project CA's certificate for this host, issued when it has none
    that still names every client name with more than redis_tls_renew_days left."""
    if settings.tls == "off":
        return None
    names = client_names(settings, topology)
    if settings.own_certificates:
        assert settings.tls_cert and settings.tls_key and settings.tls_ca  # settings: all three or none
        bundle = certs.Bundle(
            _read("redis_tls_cert", settings.tls_cert),
            _read("redis_tls_key", settings.tls_key),
            _read("redis_tls_ca", settings.tls_ca),
        )
        certs.check(bundle, names)
    else:
        bundle, issued = certs.host_bundle(
            Path(settings.tls_ca_dir).expanduser(),
            host.name,
            _issued_names(settings, topology),
            settings.tls_renew_days,
        )
        if issued:
            until = bundle.leaf.not_valid_after_utc.strftime("%Y-%m-%d")
            host.log(f"The project's CA issued a new certificate for this host (valid until {until})", logger.info)
    left = certs.days_left(bundle.cert)
    if left < settings.tls_renew_days:
        host.log(f"redis_tls_cert expires in {left:.0f} days: give the host its next certificate", logger.warning)
    if settings.tls == "on" and any(
        not (a.lstrip("-") in LOOPBACK or a.startswith("127.")) for a in settings.bind.split()
    ):
        host.log(
            'redis_tls = "on" with a network address in redis_bind: the plain port is reachable too; '
            'redis_tls = "only" closes it',
            logger.warning,
        )
    return bundle


def install(settings: Settings, bundle: certs.Bundle | None) -> None:
    """The CA and the certificate (world-readable: public), and the key readable by root and
    Redis only."""
    files = host_files(bundle, settings)
    if files is None:
        return
    assert bundle is not None
    managed_file(name="Install the CA the server trusts", dest=files.ca, content=bundle.ca)
    managed_file(name="Install the server's certificate", dest=files.cert, content=bundle.cert)
    managed_file(
        name="Install the certificate's key (root:redis 0640)",
        dest=files.key,
        content=bundle.key,
        group=CONFIG_GROUP,
        mode="640",
        private=True,
    )


def publish_ca(bundle: certs.Bundle | None) -> None:
    """The CA at the path the apps know (NODE_EXTRA_CA_CERTS), once the server presents a
    certificate it verifies: written before, a new CA would fail the apps' next connection."""
    if bundle is not None:
        managed_file(name=f"Let the apps trust the server's CA ({PATHS.tls_ca})", dest=PATHS.tls_ca, content=bundle.ca)


@operation()
def _remove_unused(keep: tuple[str, ...]):
    """
    Remove the certificates and keys that no configuration names any more.

    + keep: paths that stay

    **Example:**

    .. code:: python

        _remove_unused(name="Remove replaced certificates", keep=("/etc/ssl/smart-redis/redis-0123.crt",))
    """
    unused = [
        path for path in sorted(host_state().files) if path.startswith(f"{PATHS.tls_dir}/redis-") and path not in keep
    ]
    if not unused:
        host.noop("no replaced certificate or key is left")
        return
    yield "rm -f " + " ".join(shlex.quote(path) for path in unused)


def forget_old(settings: Settings, bundle: certs.Bundle | None) -> None:
    """After redis.conf names the new files (or none, with TLS off): the server has loaded them."""
    files = host_files(bundle, settings)
    _remove_unused(
        name="Remove replaced TLS certificates and keys", keep=(files.cert, files.key, files.ca) if files else ()
    )


def refuse_in_group(settings: Settings, topology: Topology) -> None:
    if settings.tls != "off" and topology.ha:
        raise SettingsError(
            f'redis_tls = {settings.tls!r}: allowed in a Sentinel group is only "off" for now '
            "(TLS for replication and Sentinel is not built yet)"
        )
