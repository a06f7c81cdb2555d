"""Off-host copies: the host's snapshots downloaded and checked by checksum (fetch_backups.py).

A snapshot holds the whole dataset: its copies are 0600 in 0700 folders here, and on the host it
is never staged anywhere another user could read it.
"""

from __future__ import annotations

import hashlib
import os
import re
import shlex
from pathlib import Path
from uuid import uuid4

from pyinfra import host
from pyinfra.api import FactBase, FileDownloadCommand, StringCommand
from pyinfra.api.exceptions import PyinfraError
from pyinfra.operations import python

from .operations import operation
from .settings import Settings, operator_path

# Where the copies go without redis_fetch_dir: beside the deploy file (fetch_backups.py here).
DEFAULT_DIR = "./backups"
FILE_MODE = 0o600
DIR_MODE = 0o700


class Snapshots(FactBase[list[tuple[str, str]]]):
    """[(file name, sha256)] of the snapshots in a backup directory, oldest first."""

    def command(self, directory: str) -> str:
        return (
            f"cd {shlex.quote(directory)} 2>/dev/null && sha256sum dump-*.rdb dump-*.rdb.counts.json 2>/dev/null; true"
        )

    def process(self, output):
        found = []
        for line in output:
            parts = line.split()
            # sha256sum's "HASH  NAME"; a name with a space or a newline is no snapshot of ours
            if len(parts) == 2 and re.fullmatch(r"[0-9a-f]{64}", parts[0]) and re.fullmatch(r"dump-[\w.:-]+", parts[1]):
                found.append((parts[1], parts[0]))
        return sorted(found)


def local_dir(into: str | None) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", host.name).strip("-")
    return operator_path(into or DEFAULT_DIR) / name


def private_dir(path: Path, parent_too: bool = True) -> None:
    """path (and its parent, the project's backups folder) as 0700, also when they exist already;
    a redis_fetch_dir the operator chose keeps its own mode."""
    for directory in (path.parent, path) if parent_too else (path,):
        directory.mkdir(mode=DIR_MODE, parents=True, exist_ok=True)
        os.chmod(directory, DIR_MODE)


def _verify(path: Path, sha256: str) -> None:
    os.chmod(path, FILE_MODE)
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        raise PyinfraError(f"{path}: checksum differs from the host's copy after the transfer")


@operation(is_idempotent=False)
def fetch_file(src: str, dest: str):
    """
    Download a root-only file without a readable copy on the host.

    pyinfra's files.get with sudo copies the file to /tmp and makes it world-readable. Here the
    login user creates the staging file 0600 first (noclobber: never one that exists already),
    root only writes into it, and the login user downloads and removes it.

    + src: the file on the host
    + dest: the local path (written 0600)

    **Example:**

    .. code:: python

        fetch_file(name="Fetch dump.rdb", src="/var/backups/redis/dump.rdb", dest="backups/db1/dump.rdb")
    """
    temp = host.get_temp_filename(str(uuid4()))
    q_temp = shlex.quote(temp)
    yield StringCommand(f"umask 077 && set -C && : > {q_temp}", _sudo=False)
    yield f"cat {shlex.quote(src)} > {q_temp} || {{ rm -f {q_temp}; exit 1; }}"
    yield FileDownloadCommand(temp, dest, _sudo=False)
    yield StringCommand(f"rm -f {q_temp}", _sudo=False)


def snapshots(settings: Settings) -> None:
    # Every local file this run writes (the copies, pyinfra's own temporary files) is private.
    os.umask(0o077)
    listed = host.get_fact(Snapshots, directory=settings.backup_dir)
    found = dict(listed)
    rdbs = sorted(name for name in found if name.endswith(".rdb"))
    if not rdbs:
        raise PyinfraError(f"no snapshot in {settings.backup_dir} on {host.name}: run redis-monitor backup there first")
    target = local_dir(settings.fetch_dir)
    private_dir(target, parent_too=settings.fetch_dir is None)
    for name in rdbs if settings.fetch_all else rdbs[-1:]:
        for file_name in (name, name + ".counts.json"):
            if file_name not in found:
                continue
            dest = target / file_name
            if dest.exists():  # an earlier copy, perhaps from before copies were private
                os.chmod(dest, FILE_MODE)
            fetch_file(name=f"Fetch {file_name}", src=f"{settings.backup_dir}/{file_name}", dest=str(dest))
            python.call(name=f"Check {file_name}", function=_verify, path=dest, sha256=found[file_name])
