"""monitoring/alerts.yml: valid Prometheus rules that fire when they should (promtool)."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "prometheus"


@pytest.fixture(scope="module")
def promtool() -> Path:
    """promtool from Debian's prometheus package, unpacked into .cache (no service is installed)."""
    binary = CACHE / "usr" / "bin" / "promtool"
    if not binary.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        download = ["apt-get", "download", "prometheus"]
        if subprocess.run(download, cwd=CACHE.parent, capture_output=True).returncode != 0:
            subprocess.run(["apt-get", "update", "-qq"], check=True, capture_output=True)
            subprocess.run(download, cwd=CACHE.parent, check=True, capture_output=True)
        deb = next(CACHE.parent.glob("prometheus_*.deb"))
        subprocess.run(["dpkg-deb", "-x", str(deb), str(CACHE)], check=True)
        deb.unlink()
    return binary


def test_rules_are_valid(promtool):
    result = subprocess.run(
        [promtool, "check", "rules", "monitoring/alerts.yml"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 6 rules found" in result.stdout


def test_rules_fire_as_the_unit_tests_expect(promtool):
    result = subprocess.run(
        [promtool, "test", "rules", "monitoring/alerts_test.yml"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
