"""systemd's word on a unit, as text, and its verbs."""

from __future__ import annotations

import subprocess


def systemctl(*args: str) -> str:
    result = subprocess.run(["systemctl", *args], capture_output=True, text=True)
    return result.stdout.strip()


def run_systemctl(*args: str) -> bool:
    """systemctl VERB UNIT; True when it succeeded (its complaints go to our stderr)."""
    return subprocess.run(["systemctl", *args], stdout=subprocess.DEVNULL).returncode == 0
