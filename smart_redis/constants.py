"""Platform internals: package names, paths, owners and modes. Not user settings."""

from __future__ import annotations

from dataclasses import dataclass

from .host import credentials as host_credentials
from .host import monitor as host_monitor
from .host import server as host_server

# python3 runs the host-side tools (with the standard library); sudo lets the operator group run
# redis-monitor. The server's own packages are its Server's (smart_redis/host/server.py).
TOOL_PACKAGES = ("python3", "sudo")
EXPORTER_PACKAGE = "prometheus-redis-exporter"
EXPORTER_SERVICE = "prometheus-redis-exporter"
# The scheduled snapshot: a oneshot service and the timer that starts it.
BACKUP_SERVICE = "redis-backup.service"
BACKUP_TIMER = "redis-backup.timer"
# Alerts: a timer runs redis-monitor's checks; in a Sentinel group a path unit also runs them as
# soon as Sentinel rewrites sentinel.conf, which every sentinel does after a failover.
ALERT_SERVICE = "smart-redis-alert.service"
ALERT_TIMER = "smart-redis-alert.timer"
ALERT_PATH = "smart-redis-alert.path"
# The OnFailure= handler of the alert and backup units (redis-monitor alert-failed %i).
ALERT_FAILED = "smart-redis-failed@.service"
ON_FAILURE = "smart-redis-failed@%N.service"
# How long one run of each may take before systemd stops it (and its OnFailure= speaks): an alert
# run is its checks, every receiver's 25 s delivery budget side by side, and the heartbeat.
ALERT_RUN_TIMEOUT = "90s"
ALERT_FAILED_TIMEOUT = "60s"
BACKUP_RUN_TIMEOUT = "10min"
# Turns transparent huge pages off at boot, before Redis starts (real hosts only).
THP_SERVICE = "redis-disable-thp.service"

CONFIG_MODE = "640"
CREDENTIALS_MODE = "600"
# Roles of the ACL users whose passwords the credentials file keeps (REDIS_<ROLE>_PASSWORD).
ACL_ROLES = ("APP", "ADMIN", "EXPORTER", "REPLICATION", "SENTINEL")
# Roles whose passwords every host of a replication topology shares: any of them may become primary.
SHARED_ROLES = ("APP", "ADMIN", "REPLICATION", "SENTINEL")

# What a replica needs on its primary, and what Sentinel needs on every Redis server
# (the list of Redis's Sentinel documentation, plus REPLICAOF beside its old name SLAVEOF).
REPLICATION_ACL = "-@all +psync +replconf +ping"
SENTINEL_ACL = (
    "allchannels -@all +multi +slaveof +replicaof +ping +exec +subscribe +config|rewrite +role +publish "
    "+info +client|setname +client|kill +script|kill"
)
# On Sentinel itself: the app user may only ask where the primary is; the sentinel user is
# what the other sentinels log in as; the admin user is the operator's (redis-monitor).
SENTINEL_APP_ACL = (
    "allchannels -@all +ping +hello +role +subscribe +psubscribe +unsubscribe +punsubscribe +client|setname "
    "+info +sentinel|get-master-addr-by-name +sentinel|sentinels +sentinel|replicas +sentinel|slaves "
    "+sentinel|master +sentinel|masters"
)
SENTINEL_PEER_ACL = "allchannels +@all"

# (os-release ID, VERSION_ID) -> the Redis major that the distro's own package ships.
DISTRO_REDIS_MAJOR = {
    ("debian", "12"): 7,
    ("debian", "13"): 8,
    ("ubuntu", "22.04"): 6,
    ("ubuntu", "24.04"): 7,
}
SUPPORTED_OS = tuple(DISTRO_REDIS_MAJOR)
# (os-release ID, VERSION_ID) -> the Valkey major the distro ships, and where it has it only in
# its backports: the deploy adds that suite, from the host's own Debian mirror, for Valkey alone.
DISTRO_VALKEY = {("debian", "13"): 8, ("debian", "12"): 8}
VALKEY_BACKPORTS = {("debian", "12"): "bookworm-backports"}


@dataclass(frozen=True)
class Paths:
    """The deploy's own files, whichever server runs (the server's files: its Server)."""

    config_candidate: str = host_server.CANDIDATE
    # Root-only: the only file on the host with plaintext Redis passwords.
    credentials: str = host_credentials.PATH
    credentials_given: str = host_credentials.GIVEN
    # Host-side programs (smart_redis/host), each one file built by smart_redis.host.bundle.
    ecosystem_editor: str = "/usr/local/lib/smart-redis/ecosystem.py"
    step_program: str = "/usr/local/lib/smart-redis/step.py"
    monitor: str = "/usr/local/bin/redis-monitor"
    # What redis-monitor needs to know besides the password (no secret in it).
    monitor_config: str = host_monitor.CONFIG
    monitor_sudoers: str = "/etc/sudoers.d/redis-monitor"
    backup_service: str = "/etc/systemd/system/redis-backup.service"
    backup_timer: str = "/etc/systemd/system/redis-backup.timer"
    alert_service: str = f"/etc/systemd/system/{ALERT_SERVICE}"
    alert_timer: str = f"/etc/systemd/system/{ALERT_TIMER}"
    alert_path: str = f"/etc/systemd/system/{ALERT_PATH}"
    alert_failed: str = f"/etc/systemd/system/{ALERT_FAILED}"
    # Root-only: the receivers' secrets (webhook URL, Telegram token).
    alert_secrets: str = "/etc/smart-redis/alerts.secrets"
    alert_state: str = "/var/lib/smart-redis/alert-state.json"
    exporter_dropin: str = "/etc/systemd/system/prometheus-redis-exporter.service.d/10-smart-redis.conf"
    # Root-only: the exporter's own user and password, composed on the host from the credentials;
    # systemd reads it, the exporter (user prometheus) sees only these two values.
    exporter_env: str = "/etc/smart-redis/exporter.env"
    credentials_previous: str = host_credentials.PREVIOUS
    # Root-only (700), on the same filesystem as /etc/redis: where a file meant for /etc/redis (the
    # redis user's folder) is written, checked and given its owner before one rename puts it there.
    staging: str = host_credentials.PATH.rsplit("/", 1)[0]
    # TLS: the CA that clients trust (the apps read it: NODE_EXTRA_CA_CERTS) and, named by their
    # fingerprint, the server's certificate and key (smart_redis/tls.py).
    tls_dir: str = host_server.TLS_DIR
    tls_ca: str = f"{host_server.TLS_DIR}/ca.crt"
    # Sentinel's copies under fixed names: it loads them only when it starts (no CONFIG SET), and
    # sentinel.conf, which names them, is Sentinel's own file after the first write.
    sentinel_tls_cert: str = host_server.SENTINEL_TLS_CERT
    sentinel_tls_key: str = host_server.SENTINEL_TLS_KEY
    sentinel_tls_ca: str = host_server.SENTINEL_TLS_CA
    sysctl: str = "/etc/sysctl.d/60-redis.conf"
    thp_unit: str = f"/etc/systemd/system/{THP_SERVICE}"
    apt_keyring: str = "/usr/share/keyrings/redis-archive-keyring.gpg"
    apt_source: str = "/etc/apt/sources.list.d/redis.list"
    apt_pin: str = "/etc/apt/preferences.d/redis"
    backports_source: str = "/etc/apt/sources.list.d/smart-redis-backports.list"
    backports_pin: str = "/etc/apt/preferences.d/smart-redis-valkey"


PATHS = Paths()
