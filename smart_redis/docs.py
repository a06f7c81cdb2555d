"""The README's settings table, generated from group_data/all.py.

    python -m smart_redis.docs     # print the table; tests/unit/test_docs.py keeps the README in step
"""

from __future__ import annotations

import ast

from .settings import DEFAULTS_FILE


def documented_settings() -> list[tuple[str, str, str]]:
    """(name, default as written, the comment line above it) for each setting in group_data/all.py."""
    source = DEFAULTS_FILE.read_text()
    lines = source.splitlines()
    rows = []
    for node in ast.parse(source).body:
        if isinstance(node, ast.Assign) and isinstance(node.targets[0], ast.Name):
            above = lines[node.lineno - 2].strip()
            comment = above[1:].strip() if above.startswith("#") else ""
            default = ast.get_source_segment(source, node.value) or ""
            rows.append((node.targets[0].id, default, comment))
    return rows


def _cell(default: str) -> str:
    flat = " ".join(default.split())
    return f"`{flat}`" if len(flat) <= 40 else "see group_data/all.py"


def settings_table() -> str:
    rows = ["| setting | default | what it does |", "| --- | --- | --- |"]
    rows += [f"| `{name}` | {_cell(default)} | {comment} |" for name, default, comment in documented_settings()]
    return "\n".join(rows) + "\n"


if __name__ == "__main__":
    print(settings_table(), end="")
