"""The README's settings table is the one group_data/all.py generates, and every setting is explained."""

from __future__ import annotations

from pathlib import Path

from smart_redis.docs import documented_settings, settings_table
from smart_redis.settings import defaults

README = Path(__file__).resolve().parents[2] / "README.md"


def test_every_setting_has_a_one_line_comment():
    missing = [name for name, _, comment in documented_settings() if not comment]
    assert not missing


def test_every_default_is_documented():
    assert {name for name, _, _ in documented_settings()} == set(defaults())


def test_readme_table_matches_group_data():
    assert settings_table() in README.read_text(), "regenerate with: .venv/bin/python -m smart_redis.docs"
