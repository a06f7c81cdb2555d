"""Render the project's Jinja templates: pure functions, unit-tested without a host."""

from __future__ import annotations

from pathlib import Path

import jinja2

from .constants import PATHS
from .settings import Settings

TEMPLATES = Path(__file__).resolve().parent.parent / "templates"
_env = jinja2.Environment(
    loader=jinja2.FileSystemLoader(str(TEMPLATES)),
    undefined=jinja2.StrictUndefined,
    keep_trailing_newline=True,
    autoescape=False,
)


def render(template: str, **context) -> str:
    return _env.get_template(template).render(**context)


def redis_conf(settings: Settings) -> str:
    """The whole /etc/redis/redis.conf for these settings."""
    return render("redis.conf.j2", s=settings, paths=PATHS)
