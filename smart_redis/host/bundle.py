"""Each host program as one file: its module and the modules it imports from this package.

Not a zipapp: the deploy hashes, diffs and uploads text (managed_file, the RedisHost fact), and
a zip is binary. A bundle is a plain python3 script that carries the sources and imports them
from memory, so the host still needs nothing but its system python3, and an operator can read
what runs. Built from the sources alone, in sorted order: every build gives the same bytes,
and a re-run of the deploy changes nothing.
"""

from __future__ import annotations

import ast
import functools
import re
from importlib import resources

# The package name inside a bundle: relative imports between the modules work unchanged.
PACKAGE = "smart_redis_host"

LOADER = '''
import importlib.util
import sys


class Bundled:
    """Imports {package} and its modules from SOURCES (a finder and loader by its methods:
    importlib.abc would import importlib.resources and pathlib, 50 ms of every run)."""

    def find_spec(self, name, path=None, target=None):
        if name != "{package}" and name not in SOURCES:
            return None
        return importlib.util.spec_from_loader(name, self, origin=sys.argv[0] + ":" + name, is_package=name == "{package}")

    def create_module(self, spec):
        return None

    def exec_module(self, module):
        exec(compile(SOURCES.get(module.__name__, ""), module.__spec__.origin, "exec"), module.__dict__)


sys.meta_path.insert(0, Bundled())
from {package}.{entry} import main  # noqa: E402

sys.exit(main())
'''


def _source(module: str) -> str:
    return resources.files(__package__).joinpath(f"{module}.py").read_text(encoding="utf-8")


# `from .module import ...` and `from . import a, b`, at any indent. Read by lines, not parsed:
# every run of the deploy builds the programs, and parsing the sources cost it 0.08 s of CPU.
# A unit test holds this to what the parser finds in every host module.
_FROM_MODULE = re.compile(r"^[ \t]*from[ \t]+\.(\w+)[ \t]+import\b", re.MULTILINE)
_FROM_PACKAGE = re.compile(r"^[ \t]*from[ \t]+\.[ \t]+import[ \t]+(\([^)]*\)|(?:[^\n\\;]|\\\n)*)", re.MULTILINE)


@functools.cache
def _imports(module: str) -> frozenset[str]:
    """The modules of this package that `module` imports (relative imports only, as all of them are)."""
    source = _source(module)
    found = set(_FROM_MODULE.findall(source))
    for names in _FROM_PACKAGE.findall(source):
        names = re.sub(r"#[^\n]*", "", names).replace("\\\n", " ").strip("()")
        found |= {name.split()[0] for name in names.split(",") if name.strip()}
    return frozenset(found)


def modules(entry: str) -> list[str]:
    """entry and every module of this package it needs, sorted."""
    needed, todo = set(), [entry]
    while todo:
        module = todo.pop()
        if module not in needed:
            needed.add(module)
            todo += _imports(module)
    return sorted(needed)


def _literal(source: str) -> str:
    """source as a '''-string literal that reads like the source: backslashes doubled, a quote
    escaped where it would start a run of three, carriage returns spelled out."""
    body = re.sub(r"'(?='|$)", r"\\'", source.replace("\\", "\\\\")).replace("\r", "\\r")
    literal = f"'''{body}'''"
    if ast.literal_eval(literal) != source:
        raise ValueError("a host module does not survive bundling as text")
    return literal


@functools.cache
def build(entry: str, program: str) -> str:
    """The text of `program`: a python3 script running smart_redis/host/<entry>.py's main()."""
    names = modules(entry)
    sources = "".join(f'    "{PACKAGE}.{name}": {_literal(_source(name))},\n' for name in names)
    return (
        "#!/usr/bin/python3\n"
        f"# {program}: built by the smart-redis deploy from smart_redis/host/ ({', '.join(names)}).\n"
        "# Standard library only. Edit those modules, not this file: the next deploy replaces it.\n"
        f"SOURCES = {{\n{sources}}}\n" + LOADER.format(package=PACKAGE, entry=entry)
    )
