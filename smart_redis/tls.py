"""TLS: the certificate each host gets, checked before anything changes, and its files on the host.

    certificates = tls.certificates(settings, topology)   # None while redis_tls = "off"
    files = tls.host_files(certificates)                  # what redis.conf and the host's tools name
    tls.install(certificates, runs)                       # key (root:redis 0640), certificate, CA
    ...                                                   # redis.conf names them: CONFIG SET loads them
    tls.publish_ca(certificates)                          # the CA where the apps look for it
    tls.forget_old(certificates)                          # the files no configuration names any more

The certificate, key and CA carry a fingerprint of the three files in their names on the host. A new
certificate (renewed, or the operator's next one) therefore changes redis.conf, and the config
step applies that with CONFIG SET tls-cert-file ...: Redis loads the new files, keeps its
connections and its PID. A run that stops in between finds redis.conf and the server apart again.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyinfra import host, logger

from .constants import PATHS
from .facts import HostState
from .host.server import Server
from .operations import managed_file, operation, state_telling
from .settings import HOSTNAME_RE, Settings, SettingsError, ip_address, operator_path
from .topology import Topology

LOOPBACK = ("127.0.0.1", "::1", "localhost")
# The common name of the exporter's own client certificate (redis_tls_client_auth = "yes").
EXPORTER_CLIENT = "redis-exporter"

if TYPE_CHECKING:
    from . import certs


@dataclass(frozen=True)
class Certificates:
    """What a host gets: the server's bundle, and where every client must show a certificate,
    one of the exporter's own (it only ever logs in, so it never holds the server's key)."""

    server: certs.Bundle
    exporter: certs.Bundle | None = None


@dataclass(frozen=True)
class TlsFiles:
    """The TLS files on the host."""

    cert: str
    key: str
    ca: str
    exporter_cert: str | None = None
    exporter_key: str | None = None
    loopback_named: bool = True  # the certificate names 127.0.0.1, where the exporter connects

    def cli_options(self, show_certificate: bool) -> str:
        """redis-cli's; where the server requires one, with the server's own certificate (it
        allows clientAuth then: certs.check)."""
        shown = f" --cert {self.cert} --key {self.key}" if show_certificate else ""
        return f"--tls --cacert {self.ca}{shown}"

    @property
    def all(self) -> tuple[str, ...]:
        return tuple(p for p in (self.cert, self.key, self.ca, self.exporter_cert, self.exporter_key) if p)


def deploy_cli(settings: Settings, files: TlsFiles | None) -> str | None:
    """redis-cli's TLS options for the deploy's own commands once redis.conf is in place."""
    if files is None or settings.tls != "only":
        return None
    return files.cli_options(show_certificate=settings.tls_client_auth == "yes")


def host_files(certificates: Certificates | None) -> TlsFiles | None:
    """The files as Redis and the host's tools use them, each named by its bundle's fingerprint:
    a new CA then reaches the server in the same CONFIG SET as its certificate, while the
    replaced files stay readable until the server has moved on (forget_old)."""
    if certificates is None:
        return None
    from . import certs  # cryptography: only where TLS is on (its import costs every run 40 ms)

    stem = f"{PATHS.tls_dir}/redis-{certificates.server.fingerprint}"
    exporter = certificates.exporter
    client = f"{PATHS.tls_dir}/exporter-{exporter.fingerprint}" if exporter else None
    return TlsFiles(
        f"{stem}.crt",
        f"{stem}.key",
        f"{stem}-ca.crt",
        f"{client}.crt" if client else None,
        f"{client}.key" if client else None,
        certs.names_all(certificates.server.leaf, ["127.0.0.1"]) is None,
    )


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
        return operator_path(path).read_text()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "not a text file"
        raise SettingsError(f"{setting} = {path!r}: allowed is a readable PEM file ({reason})") from None


def _network_bind(settings: Settings) -> bool:
    return any(not (a in LOOPBACK or a.startswith("127.")) for a in settings.bind_addresses)


def _exporter_needs_its_own(settings: Settings) -> bool:
    return settings.tls == "only" and settings.tls_client_auth == "yes" and settings.exporter_enabled


def certificates(settings: Settings, topology: Topology) -> Certificates | None:
    """The host's certificates, checked (a bad one stops the run before any host changes): the
    operator's files, or the project CA's certificate for this host, issued when it has none
    that still names every client name with more than redis_tls_renew_days left."""
    if settings.tls == "off":
        if _network_bind(settings) and not topology.ha:
            host.log(
                'redis_bind has a network address and redis_tls = "off": passwords and data cross the network '
                'in clear; redis_tls = "only" encrypts them',
                logger.warning,
            )
        return None
    from . import certs  # cryptography: only where TLS is on (its import costs every run 40 ms)

    names = client_names(settings, topology)
    client = settings.tls_client_auth == "yes"  # then the host's tools show it
    exporter = None
    if settings.own_certificates:
        assert settings.tls_cert and settings.tls_key and settings.tls_ca  # settings: all three or none
        if _exporter_needs_its_own(settings):
            raise SettingsError(
                'redis_tls_client_auth = "yes": allowed with your own certificates only without the exporter '
                "(it would need the server's key); set redis_exporter_enabled = false, or leave the certificates "
                "to the project's CA, which gives the exporter one of its own"
            )
        bundle = certs.operator_bundle(
            _read("redis_tls_cert", settings.tls_cert),
            _read("redis_tls_key", settings.tls_key),
            _read("redis_tls_ca", settings.tls_ca),
            names,
            client,
            group=topology.ha,  # replication and Sentinel show it as a client's (certs.check)
        )
    else:
        directory = operator_path(settings.tls_ca_dir)
        bundle, issued = certs.host_bundle(
            directory, host.name, _issued_names(settings, topology), settings.tls_renew_days
        )
        if issued:
            until = bundle.leaf.not_valid_after_utc.strftime("%Y-%m-%d")
            host.log(f"The project's CA issued a new certificate for this host (valid until {until})", logger.info)
        if _exporter_needs_its_own(settings):
            exporter, _ = certs.host_bundle(
                directory, host.name, [], settings.tls_renew_days, client_only=EXPORTER_CLIENT
            )
    left = certs.days_left(bundle.cert)
    if left < settings.tls_renew_days:
        host.log(f"redis_tls_cert expires in {left:.0f} days: give the host its next certificate", logger.warning)
    if settings.tls == "on" and _network_bind(settings):
        host.log(
            'redis_tls = "on" with a network address in redis_bind: the plain port is reachable too; '
            'redis_tls = "only" closes it',
            logger.warning,
        )
    return Certificates(bundle, exporter)


def _install_for_redis(bundle: certs.Bundle, key: str, cert: str, ca: str, whose: str, runs: Server) -> None:
    """A bundle for a process of the server's user: the key root:<its group> 0640, then the public parts.

    runs: the server that reads them now. Where the host moves to the other one, that is the old
    one until its move step gives them to the new one (host/move.py), so that an old server or
    sentinel that restarts meanwhile still reads its key."""
    managed_file(
        name=f"Install the key of {whose}'s certificate (root:{runs.group} 0640)",
        dest=key,
        content=bundle.key,
        group=runs.group,
        mode="640",
        private=True,
    )
    managed_file(name=f"Install {whose}'s certificate", dest=cert, content=bundle.cert)
    managed_file(name=f"Install the CA {whose} trusts", dest=ca, content=bundle.ca)


def install(certificates: Certificates | None, runs: Server) -> None:
    """The key first, readable by root and Redis only (so that its name, which the others show,
    is not known before it is in place), then the certificate and the CA (public).
    runs: the server the host runs until this run's move step (move.runs_now)."""
    files = host_files(certificates)
    if files is None:
        return
    assert certificates is not None
    _install_for_redis(certificates.server, files.key, files.cert, files.ca, "the server", runs)
    if certificates.exporter is not None and files.exporter_cert and files.exporter_key:
        managed_file(
            name="Install the exporter's client key (root only)",
            dest=files.exporter_key,
            content=certificates.exporter.key,
            mode="600",
            private=True,
        )
        managed_file(
            name="Install the exporter's client certificate",
            dest=files.exporter_cert,
            content=certificates.exporter.cert,
        )


def publish_ca(certificates: Certificates | None) -> None:
    """The CA at the path the apps know (NODE_EXTRA_CA_CERTS), once the server presents a
    certificate it verifies: written before, a new CA would fail the apps' next connection."""
    if certificates is not None:
        managed_file(
            name=f"Let the apps trust the server's CA ({PATHS.tls_ca})",
            dest=PATHS.tls_ca,
            content=certificates.server.ca,
        )


@operation(writes=(PATHS.tls_dir,))
def _remove_unused(keep: tuple[str, ...]):
    """
    Remove the certificates and keys that no configuration names any more.

    + keep: paths that stay

    **Example:**

    .. code:: python

        _remove_unused(name="Remove replaced certificates", keep=("/etc/ssl/smart-redis/redis-0123.crt",))
    """
    prefixes = (f"{PATHS.tls_dir}/redis-", f"{PATHS.tls_dir}/exporter-", f"{PATHS.tls_dir}/sentinel")
    files = state_telling(PATHS.tls_dir).files
    unused = [path for path in sorted(files) if path.startswith(prefixes) and path not in keep]
    if not unused:
        host.noop("no replaced certificate or key is left")
        return
    yield "rm -f " + " ".join(shlex.quote(path) for path in unused)


def forget_old(certificates: Certificates | None, topology: Topology) -> None:
    """After redis.conf names the new files (or none, with TLS off): the server has loaded them."""
    files = host_files(certificates)
    keep = (*(files.all if files else ()), *_sentinel_files(certificates, topology))
    _remove_unused(name="Remove replaced TLS certificates and keys", keep=keep)


def refuse_in_group(settings: Settings, topology: Topology) -> None:
    if settings.tls == "on" and topology.ha:
        raise SettingsError(
            'redis_tls = "on": allowed in a Sentinel group are "off" and "only" (Sentinel and the replicas '
            "know one port per server, and the group's traffic crosses the network)"
        )


def refuse_switch_in_group(settings: Settings, topology: Topology, facts: HostState) -> None:
    """A host that has joined a group keeps the group's TLS mode: its sentinel.conf is Sentinel's
    own, and one server or sentinel switched alone would no longer reach the others."""
    if not topology.ha:
        return
    wanted = settings.tls == "only"
    for joined, tls, what in (
        (facts.sentinel_conf_written, facts.sentinel_tls, "Sentinel"),
        (facts.ha_member, facts.server_tls_only, facts.server.service),
    ):
        if joined and tls != wanted:
            raise SettingsError(
                f"redis_tls = {settings.tls!r}: this host's {what} runs {'with' if tls else 'without'} TLS in a "
                "Sentinel group, and the deploy does not switch a running group (README: TLS in a Sentinel group)"
            )


def sentinel_cli(settings: Settings) -> str:
    """redis-cli's TLS options for the sentinels of a group with redis_tls = "only", else ""."""
    if settings.tls != "only":
        return ""
    return f"--tls --cacert {PATHS.sentinel_tls_ca} --cert {PATHS.sentinel_tls_cert} --key {PATHS.sentinel_tls_key}"


def _sentinel_files(certificates: Certificates | None, topology: Topology) -> tuple[str, ...]:
    if certificates is None or not topology.ha:
        return ()
    return (PATHS.sentinel_tls_key, PATHS.sentinel_tls_cert, PATHS.sentinel_tls_ca)


def install_sentinel(certificates: Certificates | None, topology: Topology, runs: Server) -> None:
    """Sentinel's copies of the host's certificate, key first, on every host of the group: a
    sentinel reads them only when it starts, so a new one reaches it by a restart
    (sentinel.restart_if_needed), one host at a time; the deploy and the host's tools show them
    to the sentinels, also from a server that runs none."""
    if certificates is None or not topology.ha:
        return
    key, cert, ca = _sentinel_files(certificates, topology)
    _install_for_redis(certificates.server, key, cert, ca, "Sentinel", runs)
