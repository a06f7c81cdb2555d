"""smart_redis/host: standard library only, and each program shipped as one file that the host's
system python3 runs on its own (no checkout, no site-packages), built the same on every run."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

import smart_redis.host
from smart_redis.host import bundle

HOST = Path(smart_redis.host.__file__).parent
MODULES = sorted(HOST.glob("*.py"))
# The host's own interpreter, as the deploy runs it: /usr/bin/python3 where there is one.
SYSTEM_PYTHON = "/usr/bin/python3" if Path("/usr/bin/python3").exists() else sys.executable
PROGRAMS = {"monitor": "redis-monitor", "ecosystem": "the ecosystem editor", "steps": "smart-redis-step"}


def imports(path: Path) -> list[tuple[int, str]]:
    """(level, top-level name) of every import in the module; level 0 for absolute ones."""
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found += [(0, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            found.append((node.level, (node.module or "").split(".")[0]))
    return found


def test_the_package_has_its_modules():
    assert {p.stem for p in MODULES} >= {"resp", "credentials", "pm2", "info", "quorum", "counts", "ecosystem_text"}


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_every_host_module_imports_only_the_standard_library(path):
    found = imports(path)
    outside = [
        name for level, name in found if level == 0 and name not in sys.stdlib_module_names and name != "__future__"
    ]
    above = [name for level, name in found if level > 1]  # `from ..x`: out of the subpackage
    assert not outside and not above, f"{path.name} imports {outside + above}"


def test_the_check_sees_a_third_party_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("import os\nimport redis\nfrom .resp import Redis\nfrom ..settings import load\n")
    assert imports(bad) == [(0, "os"), (0, "redis"), (1, "resp"), (2, "settings")]
    assert "redis" not in sys.stdlib_module_names


@pytest.mark.parametrize("entry", PROGRAMS)
def test_a_program_is_the_same_text_on_every_build(entry):
    first = bundle.build(entry, PROGRAMS[entry])
    bundle.build.cache_clear()
    assert bundle.build(entry, PROGRAMS[entry]) == first
    assert first.startswith("#!/usr/bin/python3\n")


@pytest.mark.parametrize("path", MODULES, ids=[p.name for p in MODULES])
def test_the_bundle_finds_the_imports_the_parser_finds(path):
    """bundle reads a module's relative imports by lines; the parser's answer is the reference."""
    parsed = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            parsed |= {node.module} if node.module else {alias.name for alias in node.names}
    assert bundle._imports(path.stem) == parsed


def test_the_bundle_reads_every_form_of_a_relative_import(monkeypatch):
    source = (
        "from .a import x\nfrom . import b, c\nfrom .d import (\n    y,\n    z,\n)\n"
        "def f():\n    from .e import w as v\n    from . import (g as i,\n h)\nimport os\nfrom os import path\n"
        "from .j import (  # noqa: a comment\n    k,\n)\nfrom . import (  # why\n    m,  # and why\n)\n"
        "from .  import n, \\\n    o\nfrom . import p; import sys\nfrom .q import *\n"
    )
    monkeypatch.setattr(bundle, "_source", lambda module: source)
    bundle._imports.cache_clear()
    try:
        assert bundle._imports("any") == {"a", "b", "c", "d", "e", "g", "h", "j", "m", "n", "o", "p", "q"}
    finally:
        bundle._imports.cache_clear()


def test_a_program_carries_only_what_it_imports():
    assert "monitor" not in bundle.modules("ecosystem") and "resp" not in bundle.modules("ecosystem")
    assert {"resp", "credentials", "counts", "quorum", "pm2"} <= set(bundle.modules("monitor"))


@pytest.mark.parametrize(
    "source", ["a = '''x'''\n", "b = ''''\n", "c = 'it'\n'", 'd = "\\\\n \\r"\n', "e = 1\r\nf = '''''\n"]
)
def test_sources_survive_the_literal_exactly(source):
    assert ast.literal_eval(bundle._literal(source)) == source


def program(tmp_path: Path, entry: str) -> Path:
    path = tmp_path / "bin" / entry
    path.parent.mkdir()
    path.write_text(bundle.build(entry, PROGRAMS[entry]))
    return path


def run(path: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess:
    # -I: no PYTHONPATH, no user site, not the checkout: only the file and the standard library.
    return subprocess.run(
        [SYSTEM_PYTHON, "-I", "-S", str(path), *args],
        input=stdin,
        capture_output=True,
        text=True,
        cwd=path.parent,
        timeout=60,
    )


def test_redis_monitor_as_one_file_runs_the_restore_check(tmp_path):
    counts = tmp_path / "dump.rdb.counts.json"
    counts.write_text(
        json.dumps({"created_epoch": int(time.time()), "keys": {"0": 4}, "persistent": {"0": 4}, "volatile": {}})
    )
    monitor = program(tmp_path, "monitor")
    ok = run(monitor, "restore-check", str(counts), stdin="# Keyspace\r\ndb0:keys=4,expires=0\r\n")
    assert (ok.returncode, ok.stdout, ok.stderr) == (0, "key counts match the backup: db0=4\n", "")
    short = run(monitor, "restore-check", str(counts), stdin="# Keyspace\r\ndb0:keys=3,expires=0\r\n")
    assert short.returncode == 1 and "db0: 3 keys without TTL, 4 at backup time" in short.stderr
    assert "usage: redis-monitor" in run(monitor, "--help").stdout


def test_the_ecosystem_editor_as_one_file_edits_a_file(tmp_path):
    target = tmp_path / "ecosystem.config.js"
    target.write_text("module.exports = { apps: [{ name: 'api', env: {} }] };\n")
    editor = program(tmp_path, "ecosystem")
    args = ("--auth", "none", "--host", "10.0.0.5", "--port", "6380")
    assert run(editor, "check", str(target), *args).stdout == "needs-change\n"
    applied = run(editor, "apply", str(target), *args)
    assert applied.returncode == 0, applied.stderr
    assert (
        target.read_text()
        == "module.exports = { apps: [{ name: 'api', env: { REDIS_URL: 'redis://10.0.0.5:6380/0' } }] };\n"
    )
    assert run(editor, "check", str(target), *args).stdout == "up-to-date\n"


def test_the_step_program_as_one_file_lists_its_steps_and_fails_in_one_line(tmp_path):
    steps = program(tmp_path, "steps")
    usage = run(steps, "--help").stdout
    for command in ("credentials", "login-file", "masterauth", "sentinel-auth", "restart", "wait-sync", "restore"):
        assert command in usage
    # Without the credentials file (not a provisioned host): one line, no traceback, nothing written.
    failed = run(steps, "login-file", "exporter-env", str(tmp_path / "exporter.env"))
    assert failed.returncode == 1 and failed.stderr.count("\n") == 1 and "Traceback" not in failed.stderr
    assert not (tmp_path / "exporter.env").exists()


def imported_by(path: Path, *args: str) -> set[str]:
    """The modules that running the program `path` with `args` imports."""
    said = subprocess.run(
        [SYSTEM_PYTHON, "-I", "-S", "-X", "importtime", str(path), *args],
        capture_output=True,
        text=True,
        cwd=path.parent,
        timeout=60,
    ).stderr
    return {line.rsplit("|", 1)[-1].strip() for line in said.splitlines() if line.startswith("import time:")}


def test_the_loader_of_a_program_imports_no_more_than_it_needs(tmp_path):
    # Every run of redis-monitor (the alert timer's, each interval) pays for what the loader
    # imports: importlib.abc brings importlib.resources, pathlib and more (about 50 ms).
    names = imported_by(program(tmp_path, "steps"), "--help")
    assert "smart_redis_host.steps" in names
    assert not names & {"importlib.abc", "importlib.resources", "pathlib"}


def test_redis_monitor_imports_the_receivers_only_for_the_alert_commands(tmp_path):
    # backup (hourly), health and the rest do not pay for urllib, email and http.client (about 80 ms)
    monitor = program(tmp_path, "monitor")
    names = imported_by(monitor, "--help")
    assert "smart_redis_host.monitor" in names
    assert not names & {"smart_redis_host.receivers", "urllib.request", "email.message"}
    # still carried in the one file, for the alert commands to import when they run
    assert {"alert_run", "alert_failed", "receivers"} <= set(bundle.modules("monitor"))
