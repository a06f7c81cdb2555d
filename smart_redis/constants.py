"""Platform internals: package names, paths, owners and modes. Not user settings."""

from __future__ import annotations

from dataclasses import dataclass

SERVICE = "redis-server"
# python3 runs the deploy's host-side tools (the ecosystem editor) with the standard library.
REDIS_PACKAGES = ("redis-server", "redis-tools")
# python3 runs the host-side tools; sudo lets the operator group run redis-monitor.
PACKAGES = (*REDIS_PACKAGES, "python3", "sudo")
EXPORTER_PACKAGE = "prometheus-redis-exporter"
EXPORTER_SERVICE = "prometheus-redis-exporter"

CONFIG_USER = "redis"
CONFIG_GROUP = "redis"
CONFIG_MODE = "640"
CREDENTIALS_MODE = "600"
# Roles of the ACL users whose passwords the credentials file keeps (REDIS_<ROLE>_PASSWORD).
ACL_ROLES = ("APP", "ADMIN", "EXPORTER")

# (os-release ID, VERSION_ID) -> the Redis major that the distro's own package ships.
DISTRO_REDIS_MAJOR = {
    ("debian", "12"): 7,
    ("debian", "13"): 8,
    ("ubuntu", "22.04"): 6,
    ("ubuntu", "24.04"): 7,
}
SUPPORTED_OS = tuple(DISTRO_REDIS_MAJOR)


@dataclass(frozen=True)
class Paths:
    config: str = "/etc/redis/redis.conf"
    config_backup: str = "/etc/redis/redis.conf.backup"
    # Next to the live file so that the final rename is atomic.
    config_candidate: str = "/etc/redis/redis.conf.candidate"
    # dir, logfile and pidfile sit inside the ReadWritePaths of the packaged unit.
    data_dir: str = "/var/lib/redis"
    logfile: str = "/var/log/redis/redis-server.log"
    pidfile: str = "/run/redis/redis-server.pid"
    # Root-only: the only file on the host with plaintext Redis passwords.
    credentials: str = "/etc/smart-redis/credentials"
    # Host-side tools this deploy copies over.
    ecosystem_editor: str = "/usr/local/lib/smart-redis/ecosystem.py"
    monitor: str = "/usr/local/bin/redis-monitor"
    # What redis-monitor needs to know besides the password (no secret in it).
    monitor_config: str = "/etc/smart-redis/monitor.json"
    monitor_sudoers: str = "/etc/sudoers.d/redis-monitor"
    backup_service: str = "/etc/systemd/system/redis-backup.service"
    backup_timer: str = "/etc/systemd/system/redis-backup.timer"
    exporter_dropin: str = "/etc/systemd/system/prometheus-redis-exporter.service.d/10-smart-redis.conf"
    container_dropin: str = "/etc/systemd/system/redis-server.service.d/10-container.conf"
    sysctl: str = "/etc/sysctl.d/60-redis.conf"
    thp_unit: str = "/etc/systemd/system/redis-disable-thp.service"
    apt_keyring: str = "/usr/share/keyrings/redis-archive-keyring.gpg"
    apt_source: str = "/etc/apt/sources.list.d/redis.list"
    apt_pin: str = "/etc/apt/preferences.d/redis"


PATHS = Paths()
