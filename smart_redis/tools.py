"""redis-monitor on the host: the tool, what it needs to know, and who may run it."""

from __future__ import annotations

import json
import shlex

from pyinfra import host

from . import alerting, run
from .constants import PATHS
from .host.bundle import build
from .host.server import Server
from .operations import GROUP_FILE, File, group_missing, one_round_trip, operation, placing
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
    group = settings.operator_group
    monitor_tool(
        name=f"Install {PATHS.monitor}, tell it about this host, let {group} run it",
        files=[
            File(PATHS.monitor, monitor_program(), mode="755"),
            File(PATHS.monitor_config, monitor_config(settings, topology, host.name)),
            File(
                PATHS.monitor_sudoers,
                f"# Written by the smart-redis deploy.\n%{group} ALL=(root) NOPASSWD: {PATHS.monitor}\n",
                mode="440",
                validate="visudo -cqf {path}",
            ),
        ],
        group=group,
    )


@operation(writes=(PATHS.monitor, PATHS.monitor_config, PATHS.monitor_sudoers, GROUP_FILE))
def monitor_tool(files: list[File], group: str):
    """
    redis-monitor, what it knows of this host and the sudo rule that lets the operator group run
    it, and that group when missing: one command.

    + files: the program, its config and the rule (see File)
    + group: the operator group (redis_operator_group)

    **Example:**

    .. code:: python

        monitor_tool(name="redis-monitor", files=[File(PATHS.monitor, program, mode="755")], group="redis-operators")
    """
    # The group after the rule that names it: sudo looks it up only when someone runs sudo.
    yield from one_round_trip([*placing(files, set()), *group_missing(group)])


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


def step_program() -> File:
    """The deploy's host-side steps as one file, placed before any step calls it (python3, which
    runs it, comes with the packages)."""
    return File(PATHS.step_program, build("steps", "smart-redis-step"))
