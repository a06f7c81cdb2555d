"""The README's settings table is the one the settings' declarations generate, and every setting is explained."""

from __future__ import annotations

import runpy
from pathlib import Path

from smart_redis.docs import documented_settings, settings_table
from smart_redis.settings import defaults, load

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"


def test_every_setting_has_one_line_of_documentation_that_fits_a_table_cell():
    unfit = [name for name, _, doc in documented_settings() if not doc.strip() or "\n" in doc or "|" in doc]
    assert not unfit


def test_every_default_is_shown_as_the_value_it_is():
    shown = {name: default for name, default, _ in documented_settings()}
    # the table's literal is Python: reading it back gives the default itself
    assert {name: eval(text) for name, text in shown.items()} == defaults()  # noqa: S307 (our own literals)


def test_readme_table_matches_the_declarations():
    assert settings_table() in README.read_text(), "regenerate with: .venv/bin/python -m smart_redis.docs"


def test_this_repositorys_group_data_holds_only_valid_settings():
    given = {k: v for k, v in runpy.run_path(str(ROOT / "group_data" / "all.py")).items() if not k.startswith("__")}
    load(given)
