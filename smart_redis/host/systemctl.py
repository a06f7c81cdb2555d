"""systemd's word on a unit, as text."""

from __future__ import annotations

import subprocess


def systemctl(*args: str) -> str:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    return result.stdout.strip()
