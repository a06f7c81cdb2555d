"""Render the project's Jinja templates: pure functions, unit-tested without a host."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import jinja2

from .auth import users
from .constants import PATHS, SENTINEL_APP_ACL, SENTINEL_PEER_ACL
from .settings import Settings
from .topology import Topology

if TYPE_CHECKING:
    from .tls import TlsFiles


@dataclass(frozen=True)
class AclLine:
    name: str
    hash: str
    rules: str
    also: tuple[str, ...] = ()  # hashes accepted too: the replaced password while a rotation runs


# Package data (smart_redis/templates), found through importlib.resources: also from a wheel.
_env = jinja2.Environment(
    loader=jinja2.PackageLoader("smart_redis", "templates"),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)


def render(template: str, **context) -> str:
    return _env.get_template(template).render(**context)


def redis_conf(
    settings: Settings,
    password_hashes: Mapping[str, str],
    topology: Topology | None = None,
    replicaof: str | None = None,
    replaced: Mapping[str, str] | None = None,
    tls: TlsFiles | None = None,
) -> str:
    """The whole /etc/redis/redis.conf for these settings and the ACL users' password hashes.

    replicaof: "ADDRESS PORT" of the primary on a host that replicates, else None.
    replaced: role -> the hash of the password a running rotation replaces, accepted too until
    it ends, so that a restart in the middle (a crash, a reboot) keeps both.
    tls: the certificate files on the host while redis_tls is not "off".
    """
    replaced = replaced or {}
    acl = [
        AclLine(u.name, password_hashes[u.role], u.rules, tuple(h for h in [replaced.get(u.role)] if h))
        for u in users(settings, topology)
    ]
    replicated = topology is not None and topology.replicated
    return render(
        "redis.conf.j2",
        s=settings,
        t=topology,
        paths=PATHS,
        server=settings.server,
        users=acl,
        replicated=replicated,
        replicaof=replicaof if replicated else None,
        tls=tls,
    )


def sentinel_conf(settings: Settings, password_hashes: Mapping[str, str], topology: Topology, primary: str) -> str:
    """sentinel.conf as first written (no passwords: the host appends auth-pass and sentinel-pass).

    primary: "ADDRESS PORT" that Sentinel starts monitoring.
    """
    acl = [
        AclLine(settings.sentinel_user, password_hashes["SENTINEL"], SENTINEL_PEER_ACL),
        AclLine(settings.admin_user, password_hashes["ADMIN"], SENTINEL_PEER_ACL),
        AclLine(settings.app_user, password_hashes["APP"], SENTINEL_APP_ACL),
    ]
    files = {"cert": PATHS.sentinel_tls_cert, "key": PATHS.sentinel_tls_key, "ca": PATHS.sentinel_tls_ca}
    return render(
        "sentinel.conf.j2", s=settings, t=topology, primary=primary, users=acl, files=files, server=settings.server
    )
