"""Off-host copies: the host's snapshots downloaded and checked by checksum (fetch_backups.py)."""

from __future__ import annotations

import hashlib
import re
from pathlib import Path

from pyinfra import host
from pyinfra.api import FactBase
from pyinfra.api.exceptions import PyinfraError
from pyinfra.operations import files, python

from .settings import Settings

ROOT = Path(__file__).resolve().parent.parent


class Snapshots(FactBase):
    """[(file name, sha256)] of the snapshots in a backup directory, oldest first."""

    def command(self, directory: str) -> str:
        return f"cd {directory} 2>/dev/null && sha256sum dump-*.rdb dump-*.rdb.counts.json 2>/dev/null; true"

    def process(self, output):
        return sorted((line.split()[1], line.split()[0]) for line in output if line.strip())


def local_dir(into: str | None) -> Path:
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", host.name).strip("-")
    return (Path(into) if into else ROOT / "backups") / name


def _verify(path: Path, sha256: str) -> None:
    if hashlib.sha256(path.read_bytes()).hexdigest() != sha256:
        raise PyinfraError(f"{path}: checksum differs from the host's copy after the transfer")


def snapshots(settings: Settings) -> None:
    found = dict(host.get_fact(Snapshots, directory=settings.backup_dir))
    rdbs = sorted(name for name in found if name.endswith(".rdb"))
    if not rdbs:
        raise PyinfraError(f"no snapshot in {settings.backup_dir} on {host.name}: run redis-monitor backup there first")
    target = local_dir(settings.fetch_dir)
    target.mkdir(parents=True, exist_ok=True)
    for name in rdbs if settings.fetch_all else rdbs[-1:]:
        for file_name in (name, name + ".counts.json"):
            if file_name not in found:
                continue
            files.get(name=f"Fetch {file_name}", src=f"{settings.backup_dir}/{file_name}", dest=str(target / file_name))
            python.call(name=f"Check {file_name}", function=_verify, path=target / file_name, sha256=found[file_name])
