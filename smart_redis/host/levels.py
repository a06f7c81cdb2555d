"""Nagios levels, which redis-monitor health returns as its exit code."""

from __future__ import annotations

OK, WARNING, CRITICAL = 0, 1, 2
UNKNOWN = 3  # the check itself failed, which says nothing about Redis
LEVEL = {OK: "OK", WARNING: "WARNING", CRITICAL: "CRITICAL"}


def level_for(pct: float, warn: float, crit: float) -> int:
    return CRITICAL if pct >= crit else WARNING if pct >= warn else OK
