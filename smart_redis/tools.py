"""redis-monitor on the host: the tool, what it needs to know, and who may run it."""

from __future__ import annotations

import json
import shlex

from pyinfra import host

from . import alerting, run
from .constants import PATHS
from .host.bundle import build
from .host.server import Server
from .operations import group_present, managed_file
from .settings import BACKUP_SCHEDULES, Settings
from .topology import Topology


def monitor_program() -> str:
    """redis-monitor as the one file the host runs (smart_redis/host/monitor.py and what it imports)."""
    return build("monitor", "redis-monitor")


def monitor_config(settings: Settings, topology: Topology | None = None, host_name: str = "") -> str:
    """Everything redis-monitor reads besides the password (which stays in the credentials file)."""
    config = {
        "server": settings.server.name,
        "service": settings.server.service,
        "port": settings.port,
        # redis-monitor health checks the certificate the server presents here
        "tls_port": (settings.port if settings.tls == "only" else settings.tls_port) if settings.tls != "off" else None,
        "auth": settings.auth,
        "credentials": PATHS.credentials,
        "keyspace": [{"db": d.db, "name": d.name, "ttl": d.ttl} for d in settings.keyspace],
        "data_dir": settings.server.data_dir,
        "backup_dir": settings.backup_dir,
        # health warns when the newest snapshot is older than twice the schedule
        "backup_max_age": 2 * BACKUP_SCHEDULES[settings.backup_schedule][1],
        "health_warning_pct": settings.health_warning_pct,
        "health_critical_pct": settings.health_critical_pct,
        "ecosystem_file": settings.pm2_ecosystem_file,
        "pm2_user": settings.pm2_user,
        "platform_ports": settings.checked_ports,
        # where redis-monitor asks the sentinels (status, health) on hosts of a Sentinel topology
        "ha": {
            "master_name": settings.ha_master_name,
            "sentinels": list(topology.sentinels),
            # the group's servers as the inventory has them: a missing one is named (health, alerts)
            "servers": list(topology.servers),
            "sentinel_port": settings.sentinel_port,
            # health checks the certificate of a sentinel on this host
            "runs_sentinel": topology.runs_sentinel,
            # the alert run of the host that has become the primary says so (one message per failover)
            "address": topology.address,
        }
        if topology is not None and topology.ha
        else None,
    }
    config["alerts"] = alerting.monitor_block(settings, host_name)
    return json.dumps(config, indent=2) + "\n"


def redis_monitor(settings: Settings, topology: Topology | None = None) -> None:
    managed_file(name=f"Install {PATHS.monitor}", dest=PATHS.monitor, content=monitor_program(), mode="755")
    managed_file(
        name="Tell redis-monitor about this host",
        dest=PATHS.monitor_config,
        content=monitor_config(settings, topology, host.name),
    )
    group = settings.operator_group
    group_present(name=f"Operator group {group}", group=group)
    managed_file(
        name=f"Let {group} run redis-monitor",
        dest=PATHS.monitor_sudoers,
        content=f"# Written by the smart-redis deploy.\n%{group} ALL=(root) NOPASSWD: {PATHS.monitor}\n",
        mode="440",
        validate="visudo -cqf {path}",
    )


def step(*args: str | int, server: Server | None = None) -> str:
    """The command that runs one of the deploy's host-side steps (smart_redis/host/steps.py) as root.

    server: the one the host runs now, where it is not the run's: a host that moves to the other
    server talks to its group as the old one until its move (its config says how: TLS, the port).

    >>> step("wait-sync", "--port", 6379, "--auth", "acl", "--primary", "10.0.0.2 6379")
    "python3 -I /usr/local/lib/smart-redis/step.py wait-sync --port 6379 --auth acl --primary '10.0.0.2 6379'"
    """
    server = server or run.server()
    where = [] if server.name == "redis" else ["--server", server.name]  # the host's server, when not Redis
    return " ".join(["python3 -I", PATHS.step_program, *where, *(shlex.quote(str(arg)) for arg in args)])


def step_program() -> None:
    # Before any step that calls it; python3 comes with the packages.
    managed_file(
        name=f"Install the deploy's host-side steps ({PATHS.step_program})",
        dest=PATHS.step_program,
        content=build("steps", "smart-redis-step"),
    )
