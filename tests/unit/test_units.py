"""The systemd units and drop-ins, rendered from templates, byte for byte as the f-strings wrote them.

A converged host compares these files by content: one changed byte (a blank line, a trailing
newline) would make every host report a change and restart or reload a unit on the next run.
"""

from __future__ import annotations

import pytest

from smart_redis import alerting, backup, exporter, replication, service, tuning
from smart_redis.constants import PATHS
from smart_redis.settings import load
from smart_redis.topology import Topology

HEADER = "# Written by the smart-redis deploy.\n"
BACKUP_SERVICE = (
    HEADER + "[Unit]\nDescription=Snapshot Redis into {dir}\nAfter=redis-server.service\n{on_failure}\n"
    "[Service]\nType=oneshot\nExecStart=/usr/local/bin/redis-monitor backup --rotate --keep-hourly {hourly} --keep-daily {daily}\n"
    "TimeoutStartSec=10min\n"
)
BACKUP_TIMER = (
    HEADER + "[Unit]\nDescription=Snapshot Redis {schedule}\n\n"
    "[Timer]\nOnCalendar={calendar}\nPersistent=true\nRandomizedDelaySec=60\n\n[Install]\nWantedBy=timers.target\n"
)
EXPORTER = (
    HEADER + "[Service]\n{env}ExecStart=\nExecStart=/usr/bin/prometheus-redis-exporter "
    "-web.listen-address 127.0.0.1:{listen} -redis.addr redis://127.0.0.1:{port}\n"
)
ENV_FILE = "EnvironmentFile=-/etc/smart-redis/exporter.env\n"

# (unit, how the deploy renders it, settings as the inventory gives them, the text written today)
ROWS = [
    (
        "backup service, defaults",
        backup.service_unit,
        {},
        BACKUP_SERVICE.format(dir="/var/backups/redis", hourly=48, daily=14, on_failure=""),
    ),
    (
        "backup service, with an alert receiver: a failed snapshot is a message",
        backup.service_unit,
        {"redis_alert_heartbeat_url": "https://hc.example.net/ping/x"},
        BACKUP_SERVICE.format(
            dir="/var/backups/redis", hourly=48, daily=14, on_failure="OnFailure=smart-redis-failed@%N.service\n"
        ),
    ),
    (
        "alert service: no start limit, a message when a run fails, a bounded run",
        lambda s: alerting._units(s, Topology("standalone"))[PATHS.alert_service],
        {"redis_alert_heartbeat_url": "https://hc.example.net/ping/x"},
        HEADER + "[Unit]\nDescription=Redis alerts: send a message when redis-monitor's checks change state\n"
        "After=redis-server.service\nStartLimitIntervalSec=0\nOnFailure=smart-redis-failed@%N.service\n\n"
        "[Service]\nType=oneshot\nExecStart=/usr/local/bin/redis-monitor alert\nSuccessExitStatus=3\nTimeoutStartSec=90s\n",
    ),
    (
        "alert failure handler",
        lambda s: alerting._units(s, Topology("standalone"))[PATHS.alert_failed],
        {"redis_alert_heartbeat_url": "https://hc.example.net/ping/x"},
        HEADER + "[Unit]\nDescription=Redis alerts: tell the receivers that %i failed\n\n"
        "[Service]\nType=oneshot\nExecStart=/usr/local/bin/redis-monitor alert-failed %i\nTimeoutStartSec=60s\n",
    ),
    (
        "backup service, keep counts and folder",
        backup.service_unit,
        {"redis_backup_keep_hourly": 5, "redis_backup_keep_daily": 0, "redis_backup_dir": "/srv/snap"},
        BACKUP_SERVICE.format(dir="/srv/snap", hourly=5, daily=0, on_failure=""),
    ),
    ("backup timer, defaults", backup.timer_unit, {}, BACKUP_TIMER.format(schedule="hourly", calendar="hourly")),
    (
        "backup timer, daily",
        backup.timer_unit,
        {"redis_backup_schedule": "daily"},
        BACKUP_TIMER.format(schedule="daily", calendar="daily"),
    ),
    (
        "backup timer, 15min",
        backup.timer_unit,
        {"redis_backup_schedule": "15min"},
        BACKUP_TIMER.format(schedule="15min", calendar="*:0/15"),
    ),
    (
        "backup timer, 30min",
        backup.timer_unit,
        {"redis_backup_schedule": "30min"},
        BACKUP_TIMER.format(schedule="30min", calendar="*:0/30"),
    ),
    ("exporter drop-in, defaults", exporter.dropin, {}, EXPORTER.format(env=ENV_FILE, listen=9121, port=6379)),
    (
        "exporter drop-in, auth none",
        exporter.dropin,
        {"redis_auth": "none"},
        EXPORTER.format(env="", listen=9121, port=6379),
    ),
    (
        "exporter drop-in, other ports",
        exporter.dropin,
        {"redis_exporter_port": 9200, "redis_port": 6380},
        EXPORTER.format(env=ENV_FILE, listen=9200, port=6380),
    ),
    ("container drop-in", lambda s: service.container_dropin(), {}, "[Service]\nPrivateUsers=false\n"),
    (
        "HA drop-in",
        lambda s: replication.ha_dropin(),
        {},
        "[Service]\n# The deploy owns this file; Sentinel's CONFIG REWRITE must not replace it.\n"
        "ReadOnlyPaths=/etc/redis/redis.conf\n",
    ),
    (
        "THP unit",
        lambda s: tuning.thp_unit(),
        {},
        "[Unit]\nDescription=Disable transparent huge pages for Redis (latency, fork copy-on-write)\n"
        "DefaultDependencies=no\nBefore=redis-server.service\n\n[Service]\nType=oneshot\n"
        "ExecStart=/bin/sh -c 'echo never > /sys/kernel/mm/transparent_hugepage/enabled; "
        "echo never > /sys/kernel/mm/transparent_hugepage/defrag'\n\n[Install]\nWantedBy=multi-user.target\n",
    ),
]


@pytest.mark.parametrize("render, data, expected", [row[1:] for row in ROWS], ids=[row[0] for row in ROWS])
def test_unit_text_is_unchanged(render, data, expected):
    assert render(load(data)) == expected
