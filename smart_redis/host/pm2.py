"""PM2's process list (`pm2 jlist`), asked without ever starting a PM2 daemon, and pm2 run as its user.

pm2 as root only in a PM2_HOME that is root's alone: there pm2 reads and writes its files
(dump.pm2 by `pm2 save`, module_conf.json...) and talks to the daemon behind rpc.sock, so a
PM2_HOME another user controls would hand root's pm2 that user's links and that user's daemon.
"""

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


def not_roots_alone(pm2_dir: str) -> str | None:
    """Why root must not run pm2 in pm2_dir (None: it may): the folder and every folder above it must be
    real folders that only root can change, and the daemon's socket there root's."""
    if not os.path.isabs(pm2_dir):
        return f"{pm2_dir} is not an absolute path"
    parts = os.path.normpath(pm2_dir).split(os.sep)[1:]
    for depth in range(len(parts) + 1):
        folder = os.sep + os.path.join(*parts[:depth]) if depth else os.sep
        try:
            st = os.lstat(folder)
        except OSError as exc:
            return f"{folder}: {exc.strerror}"
        if not stat.S_ISDIR(st.st_mode):
            return f"{folder} is not a folder (a symbolic link?)"
        others_write = st.st_mode & 0o002 or (st.st_mode & 0o020 and st.st_gid != 0)
        # Above PM2_HOME a sticky folder (/tmp) is fine: only root renames root's entries there.
        if st.st_uid != 0 or (others_write and (depth == len(parts) or not st.st_mode & stat.S_ISVTX)):
            return f"{folder} can be changed by a non-root user (owner uid {st.st_uid}, mode {st.st_mode & 0o7777:o})"
    try:
        sock = os.lstat(os.path.join(pm2_dir, "rpc.sock"))
    except OSError:
        return None  # no daemon: nothing of another user's to talk to (asking never starts one)
    if sock.st_uid != 0:
        return f"its daemon's socket belongs to uid {sock.st_uid}"
    return None


def _uid(user: str) -> int | None:
    try:
        return pwd.getpwnam(user).pw_uid
    except KeyError:
        return None


def jlist_as(user: str, home: str, pm2_dir: str) -> subprocess.CompletedProcess:
    """`pm2 jlist` as user in a clean environment (health's view: what the daemon in pm2_dir runs)."""
    if _uid(user) == 0 and (problem := not_roots_alone(pm2_dir)):
        raise PM2Error(f"root does not run pm2 in {pm2_dir}: {problem}")
    env = ["env", "-i", f"HOME={home}", f"PM2_HOME={pm2_dir}", "PATH=/usr/local/bin:/usr/bin:/bin"]
    return subprocess.run(
        ["runuser", "-u", user, "--", *env, "pm2", "jlist"], capture_output=True, text=True, timeout=60
    )


HOME_LINE = "smart-redis-pm2-home="
NO_DAEMON = 64  # what the scripts here exit with when no daemon's socket is there


def login_pm2(user: str) -> tuple[int, str, str | None] | None:
    """(user's uid, the PM2_HOME user's login shell names, why the deploy must not run pm2 there
    or None) when a PM2 daemon listens there; None when none does (asking never starts one).

    Only root gets a why: its PM2_HOME must be root's alone (not_roots_alone), as a login profile
    that points root at a PM2 another user started is no PM2 that runs as root.
    """
    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        return None
    if os.path.basename(entry.pw_shell) in ("nologin", "false"):
        return None  # runuser -l cannot run pm2 as this user: no PM2 the deploy could reload
    # The profile may print on stdout: the answer is the last line that starts with HOME_LINE.
    script = (
        f'h="${{PM2_HOME:-$HOME/.pm2}}"; test -S "$h/rpc.sock" || exit {NO_DAEMON}; printf "\\n{HOME_LINE}%s\\n" "$h"'
    )
    result = run_pm2(user, script)
    if result.returncode == NO_DAEMON:
        return None
    homes = [line[len(HOME_LINE) :] for line in result.stdout.splitlines() if line.startswith(HOME_LINE)]
    if result.returncode != 0 or not homes:
        raise PM2Error(f"asking the login shell of {user} for PM2_HOME failed: {result.stderr.strip()[-200:]}")
    return entry.pw_uid, homes[-1], not_roots_alone(homes[-1]) if entry.pw_uid == 0 else None


def run_pm2(user: str, script: str, timeout: float = 120) -> subprocess.CompletedProcess:
    """A shell script in user's login shell, where PM2_HOME and PATH are the user's own."""
    return subprocess.run(
        ["runuser", "-l", user, "-c", script], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout
    )


def login_listing(user: str) -> list | None:
    """PM2's process list as user's login shell sees it (where the deploy's reload runs pm2);
    None when no PM2 daemon runs as user (asking never starts one), and for root when its PM2_HOME
    is not root's alone (login_pm2): root does not run pm2 there, and that PM2 is not root's."""
    found = login_pm2(user)
    if found is None or found[2] is not None:
        return None
    result = run_pm2(user, f'test -S "${{PM2_HOME:-$HOME/.pm2}}/rpc.sock" || exit {NO_DAEMON}; exec pm2 jlist')
    if result.returncode == NO_DAEMON:
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
