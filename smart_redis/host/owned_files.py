"""File work in the app team's folder, done as the file's owner.

Root reads the password and decides; every file operation in the app team's folder, and
loading the file with node, runs as the file's owner (a forked child that dropped root), so
a link or a require() the app team planted reaches only what that user could reach anyway.
"""

from __future__ import annotations

import json
import os
import pwd
import secrets
import stat
import sys
from dataclasses import dataclass

from .ecosystem_text import EcosystemError


@dataclass
class Owner:
    uid: int
    gid: int
    groups: list[int]
    home: str
    name: str


def owner_of(uid: int, gid: int) -> Owner:
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return Owner(uid, gid, [gid], "/", str(uid))
    return Owner(uid, pw.pw_gid, os.getgrouplist(pw.pw_name, pw.pw_gid), pw.pw_dir, pw.pw_name)


def _root_only(st: os.stat_result) -> bool:
    """Only root can add, replace or rename entries in a folder with this owner and mode."""
    return st.st_uid == 0 and not st.st_mode & 0o002 and not (st.st_mode & 0o020 and st.st_gid != 0)


@dataclass
class Target:
    path: str
    name: str  # relative to dir_fd
    dir_fd: int  # the folder, opened once: a link swapped in later changes nothing
    st: os.stat_result
    owner: Owner
    worker: Owner | None  # who does the file work; None: root itself, as the folder is root's alone


def target(path: str) -> Target:
    folder, name = os.path.split(path)
    try:
        dir_fd = os.open(folder or ".", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        raise EcosystemError("the file does not exist") from None
    except NotADirectoryError:
        raise EcosystemError(f"{folder} is not a folder") from None
    if stat.S_ISLNK(st.st_mode):
        raise EcosystemError(
            "is a symbolic link: set pm2_ecosystem_file to the file itself (the deploy does not follow links in the app team's folder)"
        )
    if not stat.S_ISREG(st.st_mode):
        raise EcosystemError("is not a regular file")
    folder_st = os.fstat(dir_fd)
    owner = owner_of(st.st_uid, st.st_gid)
    if _root_only(folder_st):
        return Target(path, name, dir_fd, st, owner, None)
    if st.st_uid == 0:
        raise EcosystemError(
            f"belongs to root, but its folder {folder} can be changed by a non-root user (owner uid {folder_st.st_uid}, "
            f"mode {folder_st.st_mode & 0o7777:o}): root does not edit files there; give the file to the app user"
        )
    return Target(path, name, dir_fd, st, owner, owner)


def run_as(worker: Owner | None, work):
    """work() in a child process with worker's uid, gid and groups; its JSON-able result or its EcosystemError."""
    if worker is None:
        return work()
    sys.stdout.flush()
    sys.stderr.flush()
    read_end, write_end = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.close(read_end)
            try:
                os.setgroups(worker.groups)
                os.setgid(worker.gid)
                os.setuid(worker.uid)
                result = {"ok": work()}
            except EcosystemError as exc:
                result = {"error": str(exc)}
            except Exception as exc:  # the parent reports it as the file's error: one line, no traceback
                result = {"error": f"{type(exc).__name__}: {exc}"}
            with os.fdopen(write_end, "w") as f:
                json.dump(result, f)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end) as f:
        data = f.read()
    os.waitpid(pid, 0)
    result = json.loads(data) if data else {"error": f"the editor's process as {worker.name} died"}
    if "error" in result:
        raise EcosystemError(result["error"])
    return result["ok"]


def read_file(t: Target) -> str:
    fd = os.open(t.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=t.dir_fd)
    with os.fdopen(fd, "rb") as f:
        now = os.fstat(f.fileno())
        if (now.st_dev, now.st_ino) != (t.st.st_dev, t.st.st_ino):
            raise EcosystemError("the file was replaced while the deploy read it; run again")
        data = f.read()
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise EcosystemError("is not UTF-8 text") from None


def _keep_owner(fd: int, st: os.stat_result) -> None:
    now = os.fstat(fd)
    if (now.st_uid, now.st_gid) == (st.st_uid, st.st_gid):
        return
    try:
        os.fchown(fd, st.st_uid if os.geteuid() == 0 else -1, st.st_gid)
    except PermissionError:
        raise EcosystemError(
            f"its group (gid {st.st_gid}) is not one of its owner's groups, so a new file cannot keep it"
        ) from None


def _create(t: Target, name: str, text: str, mode: int) -> None:
    """A new file in the folder; fails if the name exists in any form, a dangling link included."""
    fd = os.open(name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600, dir_fd=t.dir_fd)
    try:
        with os.fdopen(fd, "wb", closefd=False) as f:
            f.write(text.encode("utf-8"))
            f.flush()
            _keep_owner(fd, t.st)  # before the mode: chown clears setgid bits
            os.fchmod(fd, mode)
            os.fsync(fd)
    except BaseException:
        os.unlink(name, dir_fd=t.dir_fd)
        raise
    finally:
        os.close(fd)


def replace_file(t: Target, text: str, mode: int) -> None:
    tmp = f".{t.name}.smart-redis-{secrets.token_hex(6)}"
    _create(t, tmp, text, mode)
    try:
        os.rename(tmp, t.name, src_dir_fd=t.dir_fd, dst_dir_fd=t.dir_fd)
    except BaseException:
        os.unlink(tmp, dir_fd=t.dir_fd)
        raise


def backup_once(t: Target, original: str, mode: int) -> None:
    name = f"{t.name}.backup"
    try:
        _create(t, name, original, mode)
    except FileExistsError:
        if not stat.S_ISREG(os.stat(name, dir_fd=t.dir_fd, follow_symlinks=False).st_mode):
            raise EcosystemError(
                f"{name} exists but is not a regular file (a symbolic link?), so it is not the backup the deploy keeps: "
                "remove it and run again; the file was not changed"
            ) from None


def chmod_file(t: Target, mode: int) -> None:
    fd = os.open(t.name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=t.dir_fd)
    try:
        now = os.fstat(fd)
        if (now.st_dev, now.st_ino) != (t.st.st_dev, t.st.st_ino):
            raise EcosystemError("the file was replaced while the deploy read it; run again")
        os.fchmod(fd, mode)
    finally:
        os.close(fd)


# Loads the file as PM2 would and writes what it sees to a private fd: the file may print
