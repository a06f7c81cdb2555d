"""node's own view of an edited ecosystem file: it loads the file as PM2 would, as the file's owner."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile

from .owned_files import Owner

# anything on stdout, and node is given no secret at all; the editor compares the values.
NODE_CHECK = r"""
const path = require('path'), fs = require('fs');
const [file, only, blocks, keys, out] = process.argv.slice(1);
const loaded = file.endsWith('.json') ? JSON.parse(fs.readFileSync(file, 'utf8')) : require(path.resolve(file));
const apps = Array.isArray(loaded) ? loaded : loaded.apps;
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


def node_check(path: str, expected: dict[str, str], apps, blocks, owner: Owner | None = None) -> list[str] | None:
    """Blocks and keys whose value node does not see as intended; None when node is not installed.

    node runs as owner (never as root) with a clean environment: the file and all it require()s
    are the app team's code.
    """
    node = shutil.which("node", path=SAFE_PATH) or shutil.which("nodejs", path=SAFE_PATH)
    if node is None:
        return None
    env = {"PATH": SAFE_PATH, "LANG": "C.UTF-8", "HOME": os.environ.get("HOME", "/")}
    # None: Popen keeps this process's user and groups.
    user: int | None = None
    group: int | None = None
    extra_groups: list[int] | None = None
    if owner is not None:
        env.update(HOME=owner.home, USER=owner.name, LOGNAME=owner.name)
        if os.geteuid() != owner.uid:
            user, group, extra_groups = owner.uid, owner.gid, owner.groups
    with tempfile.TemporaryFile() as result, tempfile.TemporaryFile() as errors:
        argv = [
            node,
            "-e",
            NODE_CHECK,
            path,
            ",".join(apps or []),
            ",".join(blocks),
            ",".join(expected),
            str(result.fileno()),
        ]
        proc = subprocess.Popen(
            argv,
            env=env,
            cwd=os.path.dirname(path) or ".",
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errors,
            pass_fds=(result.fileno(),),
            start_new_session=True,
            user=user,
            group=group,
            extra_groups=extra_groups,
        )
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            return ["node did not finish loading the file within 60 s"]
        result.seek(0)
        errors.seek(0)
        lines = [line for line in result.read().decode("utf-8", "replace").splitlines() if line.strip()]
        stderr = errors.read().decode("utf-8", "replace")
    if proc.returncode != 0:
        return [f"node could not load the file: {_error_line(stderr, expected)}"]
    try:
        seen = json.loads(lines[-1])
    except (IndexError, ValueError):
        return ["node printed no readable result"]
    bad = []
    for name, block, values in seen:
        bad += [f"{name}.{block}.{key}" for key, value in expected.items() if values.get(key) != value]
    return bad


SAFE_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def _error_line(stderr: str, hidden: dict[str, str]) -> str:
    """node's own error line, without the values (a syntax error quotes the source line)."""
    lines = [line.strip() for line in stderr.splitlines() if line.strip()]
    line = next((line for line in lines if re.match(r"^\w*Error\b", line)), lines[-1] if lines else "")
    for value in hidden.values():
        line = line.replace(value, "<hidden>")
    return line[:300]
