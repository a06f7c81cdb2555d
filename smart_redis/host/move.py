"""A server moved to the other program (Redis to Valkey, or back): a single one with its data,
a replica of a Sentinel group by a sync from its primary (move_replica).

The old server saves and its keys are counted; the new server's RDB checker must accept the data
file; then the old server stops, the new one starts on a copy of the file with the deploy's
config, and must hold the same keys. On any failure the new one stops again and the old one
starts on its own, untouched files: the host is as it was, and the next run tries again. The old
server's files stay where they were (its data dir is the way back by hand).
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
import time

from .counts import backup_counts, compare_counts, keyspace_counts
from .resp import RedisError
from .restart import START_WORDS, StepError, _keep_copy, _poll, _save, _unlink
from .server import (
    CANDIDATE,
    SERVERS,
    TLS_FILE_RE,
    Server,
    check_rdb,
    configured_port,
    directives,
    failure_reason,
    log_tail,
    login,
    select,
    serving,
)
from .systemctl import run_systemctl, systemctl

# Root's own folder (0700), on the same filesystem as the data folders: the copy is made here,
# where neither server's user can swap it, then renamed into the new server's folder.
STAGE_DIR = "/var/lib/smart-redis/move"
# Writes wait from the SAVE until the old server stops (its clients then reconnect to the new
# one), so that no write is acknowledged that the copy does not hold. Bounded: a SAVE of a large
# dataset takes seconds, the copy and its check as long again.
PAUSE_MS = 600_000


def move(old_name: str, port: int, auth: str, new_auth: str, candidate: str = CANDIDATE) -> str:
    """Move this host's server from `old_name` (on `port`, logged in as `auth` says) to the one this
    program serves (its login: `new_auth`); returns the check's line."""
    new, old = serving(), SERVERS[old_name]
    if systemctl("is-active", old.service) != "active" and systemctl("is-active", new.service) != "active":
        # A move killed between the old server's stop and the new one's start: where it began.
        run_systemctl("unmask", old.service)
        run_systemctl("start", old.service)
    _same_filesystem(new, old, candidate)
    counts = _saved(old, new, port, auth, candidate)
    staged = os.path.join(STAGE_DIR, "dump.rdb")
    try:
        _stage_copy(f"{old.data_dir}/dump.rdb", staged, new)
        _check_loads(new, staged, old)
        _nothing_written_since(old, new, port, auth)
    except Exception as exc:  # noqa: BLE001 - a full disk, a missing user: nothing stopped, writes go on
        _unlink(staged)
        _unlink(candidate)
        _unpause(old, new, port, auth)
        _tls_group(old)
        reason = str(exc) if isinstance(exc, StepError) else f"{type(exc).__name__}: {exc}"
        raise StepError(f"{old.service} was not moved to {new.service}, it runs on as it was: {reason}") from None
    run_systemctl("stop", old.service)
    run_systemctl("mask", old.service)  # a reboot now must not start both on the port
    previous = new.config + ".previous"
    try:
        ok, result = _start(new, staged, candidate, previous, new_auth, counts)
    except Exception as exc:  # noqa: BLE001 - whatever broke after the stop, the old server comes back
        ok, result = False, f"the move broke off: {type(exc).__name__}: {exc}"
    if ok:
        _unlink(previous)
        run_systemctl("disable", old.service)  # masked since its stop; the deploy removes its packages next
        return f"{new.service} runs on {old.service}'s data; {result}"
    _undo(new, old, previous)
    raise StepError(
        f"Move from {old.service} to {new.service} undone: {old.service} runs again on its own data. {result}"
    )


def move_replica(old_name: str, new_auth: str, candidate: str = CANDIDATE) -> str:
    """Move a replica of a Sentinel group to the program this program serves: the old server
    stops, the new one starts with the deploy's config and syncs from the primary (its data is the
    primary's); if it does not start and answer, the old server runs again as it was."""
    new, old = serving(), SERVERS[old_name]
    run_systemctl("stop", old.service)
    run_systemctl("mask", old.service)  # a reboot now must not start both on the port
    previous = new.config + ".previous"
    try:
        if os.path.exists(new.config):
            _keep_copy(new.config, previous)
        os.replace(candidate, new.config)
        port = configured_port(new.config)
        _tls_group(new)
        run_systemctl("unmask", new.service)
        run_systemctl("enable", new.service)
        if not run_systemctl("start", new.service):
            ok, result = False, f"{new.service} did not start: " + failure_reason(log_tail(new.logfile), START_WORDS, 2)
        elif not _poll(120, lambda: login(port, new_auth).call("PING") == "PONG"):
            ok, result = False, f"{new.service} does not answer after its start"
        else:
            ok, result = True, ""
    except Exception as exc:  # noqa: BLE001 - whatever broke after the stop, the old server comes back
        ok, result = False, f"the move broke off: {type(exc).__name__}: {exc}"
    if not ok:
        _undo(new, old, previous)
        raise StepError(f"Move from {old.service} to {new.service} undone: {old.service} runs again. {result}")
    _unlink(previous)
    run_systemctl("disable", old.service)  # masked since its stop; the deploy removes its packages later
    return f"{new.service} runs in place of {old.service}, as a replica"


def _saved(old: Server, new: Server, port: int, auth: str, candidate: str) -> dict:
    """The old server's writes paused, its SAVE and its key counts (its config says how to log
    in), or stop here with nothing changed."""
    select(old.name)
    try:
        client = login(port, auth, timeout=600)
        client.call("CLIENT", "PAUSE", str(PAUSE_MS), "WRITE")
        reply = _save(client)
        if reply != "OK":
            raise RedisError(reply)
        return backup_counts(client, "move", time.time())
    except (OSError, RedisError, KeyError) as exc:
        _unlink(candidate)
        _unpause(old, new, port, auth)
        raise StepError(
            f"{old.service} was not moved to {new.service}: the SAVE before the move failed "
            f"({exc or type(exc).__name__}); {old.service} runs on as it was"
        ) from None
    finally:
        select(new.name)


def _unpause(old: Server, new: Server, port: int, auth: str) -> None:
    """The old server takes writes again: the move stopped before it did."""
    select(old.name)
    try:
        login(port, auth).call("CLIENT", "UNPAUSE")
    except (OSError, RedisError, KeyError):
        pass  # not running, or not paused: nothing waits
    finally:
        select(new.name)


def _same_filesystem(new: Server, old: Server, candidate: str) -> None:
    """The copy reaches the new data folder by one rename: root's folder must be on its filesystem."""
    os.makedirs(STAGE_DIR, mode=0o700, exist_ok=True)
    os.chmod(STAGE_DIR, 0o700)
    if os.stat(STAGE_DIR).st_dev != os.stat(new.data_dir).st_dev:
        _unlink(candidate)
        raise StepError(
            f"{old.service} was not moved: {new.data_dir} is on another filesystem than {STAGE_DIR}, "
            "where the data file is copied first; nothing changed"
        )


def _nothing_written_since(old: Server, new: Server, port: int, auth: str) -> None:
    """The copy still holds every acknowledged write: the pause has not run out meanwhile."""
    select(old.name)
    try:
        changes = login(port, auth).info("persistence").get("rdb_changes_since_last_save", "?")
    finally:
        select(new.name)
    if changes != "0":
        raise StepError(
            f"{old.service} took {changes} writes after its SAVE (the pause ran out): the copy is not whole"
        )


def _tls_group(server: Server) -> None:
    """The TLS key that the server's config names, readable by its group (root:GROUP 0640, as
    tls.install gives it; the certificate is public): the new server's right before it starts
    (until then the old one reads it: it may restart), the old one's again where a move is undone."""
    path = directives(server.config).get("tls-key-file", "")
    if TLS_FILE_RE.fullmatch(path) and os.path.isfile(path):  # the deploy's files, in root's own folder
        os.chown(path, -1, grp.getgrnam(server.group).gr_gid)


def _stage_copy(source: str, staged: str, new: Server) -> None:
    """The old data file copied into root's folder, owned by the new server's user. The old
    server's user controls its folder: a link there is not followed, and only a plain file is read."""
    _unlink(staged)
    user = pwd.getpwnam(new.user)
    try:
        src = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        raise StepError(f"{source} cannot be read as a plain file ({exc.strerror}); nothing was moved") from None
    try:
        if not stat.S_ISREG(os.fstat(src).st_mode):
            raise StepError(f"{source} is not a plain file; nothing was moved")
        dst = os.open(staged, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        try:
            while chunk := os.read(src, 1 << 20):
                os.write(dst, chunk)
            os.fchown(dst, user.pw_uid, user.pw_gid)
            os.fchmod(dst, 0o660)
        finally:
            os.close(dst)
    finally:
        os.close(src)


def _check_loads(new: Server, staged: str, old: Server) -> None:
    """The new server's own checker on the data file, before anything stops."""
    check = check_rdb(new, staged)
    if check.returncode != 0 or "RDB looks OK" not in check.stdout:
        said = " ".join(
            line for line in check.stdout.splitlines() if "rror" in line or "version" in line or "setpriv" in line
        )[-200:]
        raise StepError(f"{new.check_rdb} cannot load its data file ({said or 'no reason given'})")


def _start(new: Server, staged: str, candidate: str, previous: str, auth: str, counts: dict) -> tuple[bool, str]:
    """The new server's config and data in place, the server started and its keys compared."""
    if os.path.exists(new.config):
        _keep_copy(new.config, previous)
    os.replace(candidate, new.config)
    port = configured_port(new.config)
    os.replace(staged, f"{new.data_dir}/dump.rdb")  # a rename: a link planted there is replaced, not followed
    _tls_group(new)
    run_systemctl("unmask", new.service)
    run_systemctl("enable", new.service)
    if not run_systemctl("start", new.service):
        return False, f"{new.service} did not start on the data: " + failure_reason(
            log_tail(new.logfile), START_WORDS, 2
        )
    if not _poll(120, lambda: login(port, auth).call("PING") == "PONG"):
        return False, f"{new.service} does not answer after its start"
    try:
        return compare_counts(counts, keyspace_counts(login(port, auth)), time.time())
    except (OSError, RedisError) as exc:
        return False, f"INFO keyspace failed on {new.service}: {exc}"


def _undo(new: Server, old: Server, previous: str) -> None:
    """The new server stopped and kept from starting, its copy of the data gone, the old one running."""
    run_systemctl("stop", new.service)
    run_systemctl("disable", new.service)
    run_systemctl("mask", new.service)
    _unlink(f"{new.data_dir}/dump.rdb")
    if os.path.exists(previous):
        os.replace(previous, new.config)
    _tls_group(old)
    run_systemctl("unmask", old.service)
    run_systemctl("reset-failed", old.service)
    if not run_systemctl("start", old.service):
        raise StepError(f"Move from {old.service} to {new.service} undone, but {old.service} does not start again")
