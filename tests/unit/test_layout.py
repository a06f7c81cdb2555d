"""The test tree itself: pytest imports test modules by their file name (rootdir, no packages),
so two modules of the same name in tests/unit and tests/integration break collection."""

from __future__ import annotations

import ast
from collections import Counter
from pathlib import Path

TESTS = Path(__file__).resolve().parents[1]


def test_every_test_module_has_its_own_name():
    names = Counter(path.name for path in TESTS.rglob("test_*.py"))
    assert [name for name, count in names.items() if count > 1] == []


def test_every_integration_module_has_its_place_in_the_order_of_make_test():
    """make test hands whole modules to its workers in LONGEST_FIRST's order (the integration
    conftest): a module missing there would be handed out last, whatever its length."""
    conftest = (TESTS / "integration" / "conftest.py").read_text()
    (listing,) = [
        node.value
        for node in ast.parse(conftest).body
        if isinstance(node, ast.Assign) and [t.id for t in node.targets if isinstance(t, ast.Name)] == ["LONGEST_FIRST"]
    ]
    ordered = ast.literal_eval(listing)
    modules = sorted(path.stem for path in (TESTS / "integration").glob("test_*.py"))
    assert sorted(ordered) == modules and len(set(ordered)) == len(ordered)
