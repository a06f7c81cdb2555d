"""Scheduled RDB snapshots: a systemd timer runs `redis-monitor backup --rotate` as root.

A failed snapshot (also: the server is stopped, which the job never undoes) fails the service, so
it shows in `systemctl --failed`, with its one-line reason in the journal and in `redis-monitor
health` (WARNING), as does a newest snapshot older than twice the schedule. With an alert
receiver, its OnFailure= sends a message at once (redis-monitor alert-failed).
"""

from __future__ import annotations

from . import alerting
from .constants import BACKUP_RUN_TIMEOUT, BACKUP_SERVICE, BACKUP_TIMER, ON_FAILURE, PATHS
from .facts import HostState
from .operations import File, Placed, no_file_changed
from .render import render
from .settings import BACKUP_SCHEDULES, Settings


def service_unit(settings: Settings) -> str:
    return render(
        "redis-backup.service.j2",
        backup_dir=settings.backup_dir,
        service=settings.server.service,
        monitor=PATHS.monitor,
        keep_hourly=settings.backup_keep_hourly,
        keep_daily=settings.backup_keep_daily,
        timeout=BACKUP_RUN_TIMEOUT,
        on_failure=ON_FAILURE if alerting.configured(settings) else None,  # a message when a snapshot fails
    )


def timer_unit(settings: Settings) -> str:
    calendar = BACKUP_SCHEDULES[settings.backup_schedule][0]
    return render("redis-backup.timer.j2", schedule=settings.backup_schedule, calendar=calendar)


def units(settings: Settings) -> tuple[File, File]:
    """The backup job and its timer, placed before the install: systemd loads them with the
    other units in one daemon-reload (service.before_install); snapshots() enables them."""
    return File(PATHS.backup_service, service_unit(settings)), File(PATHS.backup_timer, timer_unit(settings))


def snapshots(facts: HostState, units: Placed) -> None:
    """The timer enabled and a first snapshot taken, once redis-monitor is on the host.

    units: the step that placed the job and the timer (service.before_install)"""
    # Also when a run that wrote the units failed before this step, or its first snapshot failed:
    # decided by what systemd runs, not only by this run's changes.
    converged = (
        facts.units.get(BACKUP_TIMER) == ("enabled", "active")
        and facts.units.get(BACKUP_SERVICE, ("", ""))[1] != "failed"
    )
    no_file_changed(
        name="Enable the backup timer and take the first snapshot",
        # A snapshot right away: health wants one no older than twice the schedule.
        commands=[f"systemctl enable --now {BACKUP_TIMER} && systemctl start {BACKUP_SERVICE}"],
        _if=None if not converged else units.any_of(PATHS.backup_service, PATHS.backup_timer),
    )
