"""PM2's process list (`pm2 jlist`), asked without ever starting a PM2 daemon."""

from __future__ import annotations

import json
import os
import pwd
import stat
import subprocess


class PM2Error(ValueError):
    """PM2 gave no process list; the message says what it said instead."""


def parse_jlist(output: str) -> list:
    """The process list in `pm2 jlist` output, behind whatever PM2 printed first ([PM2] banners)."""
    decoder = json.JSONDecoder()
    start = output.find("[")
    while start != -1:
        try:
            value, _ = decoder.raw_decode(output, start)
        except ValueError:
            value = None
        if isinstance(value, list) and all(isinstance(p, dict) for p in value):
            return value
        start = output.find("[", start + 1)
    raise PM2Error("no process list in the output of pm2 jlist")


def pm2_home(user: str, configured: str | None = None) -> tuple[str, str]:
    """(the user's home, PM2_HOME) without asking PM2 (which would spawn a daemon); KeyError for no such user."""
    home = pwd.getpwnam(user).pw_dir
    return home, configured or os.path.join(home, ".pm2")


def daemon_runs(pm2_dir: str) -> bool:
    """Whether a PM2 daemon listens in pm2_dir: without one, `pm2 jlist` would start it."""
    try:
        return stat.S_ISSOCK(os.stat(os.path.join(pm2_dir, "rpc.sock")).st_mode)
    except OSError:
        return False


def jlist_as(user: str, home: str, pm2_dir: str) -> subprocess.CompletedProcess:
    """`pm2 jlist` as user in a clean environment (health's view: what the daemon in pm2_dir runs)."""
    env = ["env", "-i", f"HOME={home}", f"PM2_HOME={pm2_dir}", "PATH=/usr/local/bin:/usr/bin:/bin"]
    return subprocess.run(
        ["runuser", "-u", user, "--", *env, "pm2", "jlist"], capture_output=True, text=True, timeout=60
    )


def login_listing(user: str) -> list | None:
    """PM2's process list as user's login shell sees it (where the deploy's reload runs pm2);
    None when no PM2 daemon runs as user (asking never starts one)."""
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    if os.path.basename(entry.pw_shell) in ("nologin", "false"):
        return None  # runuser -l cannot run pm2 as this user: no PM2 the deploy could reload
    script = 'test -S "${PM2_HOME:-$HOME/.pm2}/rpc.sock" || exit 64; exec pm2 jlist'
    result = subprocess.run(
        ["runuser", "-l", user, "-c", script], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=120
    )
    if result.returncode == 64:
        return None
    if result.returncode != 0:
        raise PM2Error(f"pm2 jlist as {user} failed: {result.stderr.strip()[-200:]}")
    return parse_jlist(result.stdout)


def stale_apps(listing: list, names: set[str], wanted: dict[str, str]) -> list[str]:
    """The processes among names whose PM2 environment lacks one of the wanted values."""
    stale = set()
    for proc in listing:
        if not isinstance(proc, dict) or proc.get("name") not in names:
            continue
        env = proc.get("pm2_env") or {}
        for key, value in wanted.items():
            if (env.get("env") or {}).get(key, env.get(key)) != value:
                stale.add(proc["name"])
    return sorted(stale)
