"""What `redis-monitor health` prints and `alert` watches: every check as (name, level, detail)."""

from __future__ import annotations

import os
import shutil

from .health import backup_check, certificate_check, listening_ports, pm2_check
from .levels import CRITICAL, OK, level_for
from .output import human
from .quorum import replication_checks, sentinel_view
from .resp import Redis, RedisError
from .server import connect


def memory_data(r: Redis) -> dict:
    info = r.info("memory")
    used, maxmemory = int(info["used_memory"]), int(info.get("maxmemory", 0))
    return {
        "used_memory": used,
        "maxmemory": maxmemory,
        "used_pct": round(100.0 * used / maxmemory, 1) if maxmemory else None,
        "peak_memory": int(info["used_memory_peak"]),
        "fragmentation_ratio": float(info.get("mem_fragmentation_ratio", 0)),
        "evicted_keys": int(r.info("stats").get("evicted_keys", 0)),
        "policy": info.get("maxmemory_policy"),
    }


def health_checks(config, view: dict | None = None) -> list[tuple[str, int, str]]:
    """(name, level, detail) of every check `health` prints and `alert` watches.

    view: the sentinels' answers when the caller has asked them already (sentinel_view)."""
    warn, crit = config["health_warning_pct"], config["health_critical_pct"]
    checks = []
    info: dict = {}
    try:
        client = connect(config)
        mem = memory_data(client)
        info = client.info("replication")
        if mem["maxmemory"]:
            checks.append(
                (
                    "redis",
                    level_for(mem["used_pct"], warn, crit),
                    f"answers, {human(mem['used_memory'])} of {human(mem['maxmemory'])} ({mem['used_pct']}%)",
                )
            )
        else:
            checks.append(("redis", OK, f"answers, {human(mem['used_memory'])} used, no maxmemory"))
    except (OSError, RedisError) as exc:
        checks.append(("redis", CRITICAL, f"does not answer: {exc}"))
    disk = shutil.disk_usage(config["data_dir"] if os.path.isdir(config["data_dir"]) else "/")
    disk_pct = round(100.0 * disk.used / disk.total, 1)
    checks.append(("disk", level_for(disk_pct, warn, crit), f"{disk_pct}% used"))
    meminfo = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, _, value = line.partition(":")
            meminfo[key] = int(value.split()[0])
    ram_pct = round(100.0 * (1 - meminfo["MemAvailable"] / meminfo["MemTotal"]), 1)
    checks.append(("ram", level_for(ram_pct, warn, crit), f"{ram_pct}% used"))
    if config.get("ha"):
        ha = config["ha"]
        checks += replication_checks(view or sentinel_view(config), info, ha.get("servers"), ha.get("address"))
    if config.get("tls_port"):
        checks.append(certificate_check(config))
        if config.get("ha") and config["ha"].get("runs_sentinel"):
            checks.append(certificate_check(config, port=config["ha"]["sentinel_port"], name="sentinel certificate"))
    if config.get("backup_max_age"):
        checks.append(backup_check(config))
    if config.get("ecosystem_file"):  # PM2 where the deploy manages the apps' file: a dedicated host has none
        checks.append(pm2_check(config))
    listening = listening_ports() if config["platform_ports"] else set()
    for name, port in sorted(config["platform_ports"].items(), key=lambda x: x[1]):
        up = port in listening
        checks.append((f"{name} port", OK if up else CRITICAL, f"{port} {'listening' if up else 'not listening'}"))
    return checks
