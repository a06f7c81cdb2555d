"""Scheduled RDB snapshots: a systemd timer runs `redis-monitor backup --rotate` as root.

A failed snapshot fails the service, so it shows in `systemctl --failed`, in the journal and,
once the newest snapshot grows older than twice the schedule, in `redis-monitor health`.
"""

from __future__ import annotations

from pyinfra.operations import server
from pyinfra.operations.util import any_changed

from .constants import PATHS, SERVICE
from .operations import managed_file
from .settings import BACKUP_SCHEDULES, Settings


def service_unit(settings: Settings) -> str:
    return (
        "# Written by the smart-redis deploy.\n[Unit]\n"
        f"Description=Snapshot Redis into {settings.backup_dir}\n"
        f"After={SERVICE}.service\nRequires={SERVICE}.service\n\n"
        "[Service]\nType=oneshot\n"
        f"ExecStart={PATHS.monitor} backup --rotate --keep-hourly {settings.backup_keep_hourly} "
        f"--keep-daily {settings.backup_keep_daily}\n"
    )


def timer_unit(settings: Settings) -> str:
    calendar = BACKUP_SCHEDULES[settings.backup_schedule][0]
    return (
        "# Written by the smart-redis deploy.\n[Unit]\n"
        f"Description=Snapshot Redis {settings.backup_schedule}\n\n"
        f"[Timer]\nOnCalendar={calendar}\nPersistent=true\nRandomizedDelaySec=60\n\n"
        "[Install]\nWantedBy=timers.target\n"
    )


def snapshots(settings: Settings) -> None:
    unit = managed_file(name="Backup job", dest=PATHS.backup_service, content=service_unit(settings))
    timer = managed_file(name=f"Backup timer ({settings.backup_schedule})", dest=PATHS.backup_timer,
                         content=timer_unit(settings))
    server.shell(
        name="Enable the backup timer and take the first snapshot",
        commands=[
            "systemctl daemon-reload",
            "systemctl enable --now redis-backup.timer",
            # A snapshot right away: health wants one no older than twice the schedule.
            "systemctl start redis-backup.service",
        ],
        _if=any_changed(unit, timer),
    )
