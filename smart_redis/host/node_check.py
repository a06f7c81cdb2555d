"""node's own view of the app team's ecosystem file: it loads the file as PM2 would, as the file's owner.

The one place where the host's tools run node on that file, and it never does so as root: the
file and all it require()s are the app team's code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile

from .ecosystem_text import EcosystemError
from .owned_files import Owner

# Loads the file as PM2 would and writes what it sees to a private fd: the file may print
# anything on stdout, and node is given no secret at all; the editor compares the values.
LOAD = r"""
const path = require('path'), fs = require('fs');
const file = process.argv[1];
const loaded = file.endsWith('.json') ? JSON.parse(fs.readFileSync(file, 'utf8')) : require(path.resolve(file));
const apps = Array.isArray(loaded) ? loaded : loaded.apps;
"""
NODE_CHECK = (
    LOAD
    + r"""
const [only, blocks, keys, out] = process.argv.slice(2);
const selected = only ? only.split(',') : null;
const seen = [];
for (const app of apps) {
  if (selected && !selected.includes(app.name)) continue;
  let present = blocks.split(',').filter((b) => app[b] !== undefined);
  if (!present.length) present = ['env'];
  for (const b of present) {
    const values = {};
    for (const k of keys.split(',')) if (app[b] && app[b][k] !== undefined) values[k] = app[b][k];
    seen.push([String(app.name), b, values]);
  }
}
fs.writeSync(Number(out), '\n' + JSON.stringify(seen) + '\n');
"""
)
# The apps as PM2 would get them from the file (functions and the like dropped, as JSON does),
# for a PM2 that runs as root: it is handed this data, never the file.
NODE_APPS = (
    LOAD
    + r"""
fs.writeSync(Number(process.argv[2]), '\n' + JSON.stringify({ apps }) + '\n');
"""
)

SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _node() -> str | None:
    return shutil.which("node", path=SAFE_PATH) or shutil.which("nodejs", path=SAFE_PATH)


def _load(node: str, script: str, path: str, args: list[str], owner: Owner, hidden: dict[str, str]):
    """node -e script path *args fd as owner: (the last line node wrote on fd, or None; an error, or None)."""
    if owner.uid == 0:
        # Structural: whoever calls, root never runs the app team's code (require() runs it).
        raise EcosystemError("node would load the file as root: the host's tools never do that")
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": owner.home, "USER": owner.name, "LOGNAME": owner.name}
    # Already the owner (a worker process that dropped root): Popen keeps this process's user.
    drop = os.geteuid() != owner.uid or os.getuid() != owner.uid
    with tempfile.TemporaryFile() as result, tempfile.TemporaryFile() as errors:
        proc = subprocess.Popen(
            [node, "-e", script, path, *args, str(result.fileno())],
            env=env,
            cwd=os.path.dirname(path) or ".",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            pass_fds=(result.fileno(),),
            start_new_session=True,
            user=owner.uid if drop else None,
            group=owner.gid if drop else None,
            extra_groups=owner.groups if drop else None,
        )
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return None, "node did not finish loading the file within 60 s"
        result.seek(0)
        errors.seek(0)
        lines = [line for line in result.read().decode("utf-8", "replace").splitlines() if line.strip()]
        stderr = errors.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        return None, f"node could not load the file: {_error_line(stderr, hidden)}"
    if not lines:
        return None, "node printed no readable result"
    return lines[-1], None


def node_check(path: str, expected: dict[str, str], apps, blocks, owner: Owner) -> list[str] | None:
    """Blocks and keys whose value node does not see as intended; None when node is not installed.

    node runs as owner (never as root) with a clean environment.
    """
    node = _node()
    if node is None:
        return None
    line, error = _load(
        node, NODE_CHECK, path, [",".join(apps or []), ",".join(blocks), ",".join(expected)], owner, expected
    )
    if error:
        return [error]
    try:
        seen = json.loads(line or "")
    except ValueError:
        return ["node printed no readable result"]
    bad = []
    for name, block, values in seen:
        bad += [f"{name}.{block}.{key}" for key, value in expected.items() if values.get(key) != value]
    return bad


def node_apps(path: str, owner: Owner) -> list[dict]:
    """The file's apps as node sees them, loaded as owner (never as root): plain JSON data."""
    node = _node()
    if node is None:
        raise EcosystemError("node is not installed, so the file's apps cannot be read without PM2 loading it")
    line, error = _load(node, NODE_APPS, path, [], owner, {})
    if error:
        raise EcosystemError(error)
    try:
        apps = json.loads(line or "")["apps"]
    except (ValueError, KeyError, TypeError):
        apps = None
    if not isinstance(apps, list) or not all(isinstance(app, dict) for app in apps):
        raise EcosystemError("node does not see a list of apps in the file")
    return apps


def _error_line(stderr: str, hidden: dict[str, str]) -> str:
    """node's own error line, without the values (a syntax error quotes the source line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    line = next((line for line in lines if re.match(r"^\w*Error\b", line)), lines[-1] if lines else "")
    for value in hidden.values():
        line = line.replace(value, "<hidden>")
    return line[:300]
