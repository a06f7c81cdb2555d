"""Render the project's Jinja templates: pure functions, unit-tested without a host."""

from __future__ import annotations

from pathlib import Path

import jinja2

from dataclasses import dataclass
from typing import Mapping

from .auth import users
from .constants import PATHS
from .settings import Settings


@dataclass(frozen=True)
class AclLine:
    name: str
    hash: str
    rules: str

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    trim_blocks=True,
    lstrip_blocks=True,
    autoescape=False,
)


def render(template: str, **context) -> str:
    return _env.get_template(template).render(**context)


def redis_conf(settings: Settings, password_hashes: Mapping[str, str]) -> str:
    """The whole /etc/redis/redis.conf for these settings and the ACL users' password hashes."""
    acl = [AclLine(u.name, password_hashes[u.role], u.rules) for u in users(settings)]
    return render("redis.conf.j2", s=settings, paths=PATHS, users=acl)
