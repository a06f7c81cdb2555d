"""Set REDIS_URL in a PM2 ecosystem file, changing no other byte of it: the editor's command line.

The deploy ships it to the host as one file (smart_redis.host.bundle) and runs it there with
the system Python, so that the password (read from the root-only credentials file) never
leaves the host and never appears on a command line. The edit itself is ecosystem_text's.

    python3 ecosystem.py apply FILE --credentials C --user U --host H --port P [--apps a,b] [--blocks env]
    python3 ecosystem.py check ... [--pm2-user U]   # "up-to-date" or "needs-change", then flags:
                                                    # needs-reload, pm2-not-running, others-can-read
    python3 ecosystem.py verify-pm2 ... --pm2-user U  # PM2's view of the file's apps' REDIS_URL
    python3 ecosystem.py reload ... --pm2-user U      # pm2 startOrReload + pm2 save as U, then verify-pm2

Root never loads the file (node's require() and pm2's run the app team's code): node loads it
as its owner, pm2 as pm2_user, and a PM2 that runs as root is handed the apps as JSON that the
owner's node read, unless the file is root's own.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import tempfile
from urllib.parse import quote

from .credentials import PATH as CREDENTIALS
from .credentials import read_credentials
from .ecosystem_text import KEY, EcosystemError, redis_urls, set_redis_url
from .node_check import node_apps, node_check
from .owned_files import Target, backup_once, chmod_file, read_file, replace_file, run_as, target
from .pm2 import NO_DAEMON, PM2Error, login_listing, login_pm2, run_pm2, stale_apps


def compose_url(args) -> str:
    auth = ""
    if args.auth != "none":
        creds = read_credentials(args.credentials)
        auth = f"{quote(args.user, safe='')}:{quote(creds['REDIS_APP_PASSWORD'], safe='')}@"
    host = f"[{args.host}]" if ":" in args.host else args.host
    return f"{'rediss' if args.tls else 'redis'}://{auth}{host}:{args.port}/0"


def _edit(t: Target, original: str, edited: str, mode: int, expected: dict[str, str], apps, blocks) -> list[str]:
    """As the file's owner (or root in a root-only folder): backup, write, node check, put back on failure."""
    if edited == original:
        chmod_file(t, mode)
        return []
    backup_once(t, original, mode)
    replace_file(t, edited, mode)
    if t.st.st_uid == 0:
        return ["the file belongs to root: node does not load it (REDIS_URL checked at text level)"]
    bad = node_check(t.path, expected, apps, blocks, t.owner)
    if bad is None:
        return ["node is not installed: REDIS_URL checked at text level only"]
    if bad:
        replace_file(t, original, mode)
        raise EcosystemError(f"node does not see the intended REDIS_URL in {', '.join(bad)}; the previous file is back")
    return []


def _wanted(args, url: str) -> dict[str, str]:
    return {KEY: url, **dict(item.split("=", 1) for item in args.set)}


def _options(args) -> tuple[list[str] | None, tuple[str, ...], bool]:
    return (args.apps.split(",") if args.apps else None), tuple(args.blocks.split(",")), args.file.endswith(".json")


def _modes(args, t: Target) -> tuple[int, int]:
    """(mode, mode to set): a file that holds a password loses the others' read bit."""
    mode = t.st.st_mode & 0o7777
    return mode, (mode & ~0o004 if args.auth != "none" else mode)


def apply(args) -> int:
    t = target(args.file)
    url = compose_url(args)
    apps, blocks, json_file = _options(args)
    original = run_as(t.worker, lambda: read_file(t))
    edited = set_redis_url(original, url, apps, blocks, json_file, dict(item.split("=", 1) for item in args.set))
    mode, new_mode = _modes(args, t)
    if args.command == "check":
        print(" ".join(_check_words(args, t, url, original, edited, mode != new_mode)))
        return 0
    if edited == original and mode == new_mode:
        print("REDIS_URL is already set")
        return 0
    if edited != original:
        # Text-level check first: every targeted block holds exactly the URL.
        for name, values in redis_urls(edited, apps, blocks, json_file).items():
            if not values or any(v != [url] for v in values):
                raise EcosystemError(f"after editing, app {name} does not hold exactly one REDIS_URL per block")
    notes = run_as(t.worker, lambda: _edit(t, original, edited, new_mode, _wanted(args, url), apps, blocks))
    if mode != new_mode:
        print(
            f"{args.file} was readable by every local user and holds the Redis password: mode {mode:04o} -> {new_mode:04o}"
        )
    for note in notes:
        print(note)
    print("REDIS_URL set" if edited != original else "REDIS_URL was already set")
    return 0


def _check_words(args, t: Target, url: str, original: str, edited: str, others_can_read: bool) -> list[str]:
    """'up-to-date' or 'needs-change', then what else the deploy must know: needs-reload,
    pm2-not-running, others-can-read."""
    words = ["up-to-date" if edited == original and not others_can_read else "needs-change"]
    if others_can_read:
        words.append("others-can-read")
    if args.pm2_user:
        listing = login_listing(args.pm2_user)
        if listing is None:
            words.append("pm2-not-running")
        elif edited == original and stale_apps(listing, app_names(args, original), _wanted(args, url)):
            words.append("needs-reload")
    return words


def app_names(args, text: str) -> set[str]:
    """The processes the deploy answers for: the targeted apps of the file, not every PM2 process of the user."""
    apps, blocks, json_file = _options(args)
    return set(redis_urls(text, apps, blocks, json_file))


def verify_pm2(args) -> int:
    t = target(args.file)
    url = compose_url(args)
    names = app_names(args, run_as(t.worker, lambda: read_file(t)))
    listing = login_listing(args.pm2_user)
    if listing is None:
        raise EcosystemError(f"PM2 is not running as {args.pm2_user}")
    stale = stale_apps(listing, names, _wanted(args, url))
    if stale:
        raise EcosystemError(f"PM2 still runs {', '.join(stale)} without the new REDIS_URL")
    running = sum(1 for proc in listing if isinstance(proc, dict) and proc.get("name") in names)
    print(f"PM2 runs {running} processes of the file with the new REDIS_URL")
    return 0


def reload(args) -> int:
    """The file's apps reloaded by pm2_user's PM2 with the file's values (startOrReload
    --update-env, then save), then PM2's view checked (verify-pm2)."""
    t = target(args.file)
    found = login_pm2(args.pm2_user)
    if found is None or found[2] is not None:
        why = f" (PM2_HOME {found[1]}: {found[2]})" if found else ""
        print(f"PM2 is not running as {args.pm2_user}{why}: the apps read REDIS_URL when they start")
        return 0
    folder = os.path.dirname(os.path.abspath(args.file))
    if found[0] != 0 or t.st.st_uid == 0:
        # pm2 require()s the file in its own process: here as pm2_user, or as root a file of root's
        # own (target(): then its folder is root's alone too).
        _start_or_reload(args.pm2_user, folder, args.file)
        return verify_pm2(args)
    # PM2 runs as root and the file is the app team's: its owner's node reads the apps, and root's
    # pm2 gets them as plain JSON from a private folder (PM2 reads a .json config as data).
    apps = node_apps(t.path, t.owner)
    with tempfile.TemporaryDirectory(prefix="smart-redis-pm2-") as private:
        config = os.path.join(private, "ecosystem.json")
        with open(config, "x", encoding="utf-8") as f:
            json.dump({"apps": apps}, f)  # ensure_ascii: no character that JSON and JS read apart
        _start_or_reload(args.pm2_user, folder, config)
    return verify_pm2(args)


def _start_or_reload(user: str, folder: str, config: str) -> None:
    script = (
        f'test -S "${{PM2_HOME:-$HOME/.pm2}}/rpc.sock" || exit {NO_DAEMON}; '  # never start a daemon
        f"cd {shlex.quote(folder)} && pm2 startOrReload {shlex.quote(config)} --update-env && pm2 save"
    )
    result = run_pm2(user, script)
    if result.returncode == NO_DAEMON:
        raise PM2Error(f"PM2 stopped running as {user} before the reload")
    if result.returncode != 0:
        said = (result.stderr.strip() or result.stdout.strip())[-300:]
        raise PM2Error(f"pm2 startOrReload as {user} failed: {said}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("command", choices=("apply", "check", "verify-pm2", "reload"))
    parser.add_argument("file")
    parser.add_argument("--credentials", default=CREDENTIALS)
    parser.add_argument("--auth", default="acl")
    parser.add_argument("--user", default="")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", default="6379")
    parser.add_argument("--tls", action="store_true", help="rediss:// (TLS) in REDIS_URL")
    parser.add_argument("--apps", default="")
    parser.add_argument("--blocks", default="env,env_production")
    parser.add_argument(
        "--pm2-user", default="", help="check: also ask PM2 (as this user) whether the apps run the values"
    )
    parser.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", help="another variable to set beside REDIS_URL"
    )
    args = parser.parse_args(argv)
    try:
        if args.command in ("verify-pm2", "reload") and not args.pm2_user:
            raise EcosystemError(f"{args.command} needs --pm2-user")
        return {"verify-pm2": verify_pm2, "reload": reload}.get(args.command, apply)(args)
    except (EcosystemError, PM2Error) as exc:
        print(f"{args.file}: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
