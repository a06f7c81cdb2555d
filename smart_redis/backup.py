"""Scheduled RDB snapshots: a systemd timer runs `redis-monitor backup --rotate` as root.

A failed snapshot (also: the server is stopped, which the job never undoes) fails the service, so
it shows in `systemctl --failed`, with its one-line reason in the journal and in `redis-monitor
health` (WARNING), as does a newest snapshot older than twice the schedule. With an alert
receiver, its OnFailure= sends a message at once (redis-monitor alert-failed).
"""

from __future__ import annotations

from pyinfra.api.operation import OperationMeta
from pyinfra.operations.util import any_changed

from . import alerting
from .constants import BACKUP_RUN_TIMEOUT, BACKUP_SERVICE, BACKUP_TIMER, ON_FAILURE, PATHS
from .facts import HostState
from .operations import managed_file, no_file_changed
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


def units(settings: Settings) -> tuple[OperationMeta, OperationMeta]:
    """The backup job and its timer, written before the install: systemd loads them with the
    other units in one daemon-reload (service.units_before_install); snapshots() enables them."""
    unit = managed_file(name="Backup job", dest=PATHS.backup_service, content=service_unit(settings))
    timer = managed_file(
        name=f"Backup timer ({settings.backup_schedule})", dest=PATHS.backup_timer, content=timer_unit(settings)
    )
    return unit, timer


def snapshots(facts: HostState, units: tuple[OperationMeta, OperationMeta]) -> None:
    """The timer enabled and a first snapshot taken, once redis-monitor is on the host."""
    unit, timer = units
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
        _if=None if not converged else any_changed(unit, timer),
    )
