"""The README's settings table, generated from the settings' declarations (smart_redis/settings.py).

python -m smart_redis.docs     # print the table; tests/unit/test_docs.py keeps the README in step
"""

from __future__ import annotations

import json
from typing import Any

from .settings import declarations


def literal(value: Any) -> str:
    """A default as a deploy file would write it (double-quoted strings, True, None)."""
    if isinstance(value, str):
        return json.dumps(value)
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(literal(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{literal(k)}: {literal(v)}" for k, v in value.items()) + "}"
    return repr(value)


def documented_settings() -> list[tuple[str, str, str]]:
    """(name, default as a literal, its one line of documentation) for each setting."""
    return [(name, literal(declared.default), declared.doc) for name, declared in declarations().items()]


def _cell(default: str) -> str:
    return f"`{default}`" if len(default) <= 40 else "see smart_redis/settings.py"


def settings_table() -> str:
    rows = ["| setting | default | what it does |", "| --- | --- | --- |"]
    rows += [f"| `{name}` | {_cell(default)} | {comment} |" for name, default, comment in documented_settings()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
