"""Read and validate every setting in one place, before anything touches a host.

`load(data)` takes pyinfra's host data (group_data/all.py overlaid by group, host and
`--data` values) and returns a frozen `Settings`. A bad value raises `SettingsError` with
one line naming the setting, the value and what is allowed; pyinfra prints it and exits 1.

    >>> load({"redis_port": 70000})
    SettingsError: redis_port = 70000: allowed is a whole number from 1 to 65535
"""

from __future__ import annotations

import difflib
import ipaddress
import re
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Mapping

from pyinfra.api.exceptions import PyinfraError

DEFAULTS_FILE = Path(__file__).resolve().parent.parent / "group_data" / "all.py"
# Settings in these namespaces belong to this project: an unknown one is a typo.
OWNED_PREFIXES = ("redis_", "pm2_")

SUPPORTED_MAJORS = (7, 8)
EVICTION_POLICIES = (
    "noeviction", "allkeys-lru", "allkeys-lfu", "allkeys-random",
    "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl",
)
# notify-keyspace-events letters that Redis 7 knows (see redis.conf's EVENT NOTIFICATION).
NOTIFY_FLAGS = "KEg$lshzxetmdnA"
LOGLEVELS = ("debug", "verbose", "notice", "warning")
AUTH_MODES = ("acl", "none")
# schedule -> (systemd OnCalendar, seconds between snapshots)
BACKUP_SCHEDULES = {"hourly": ("hourly", 3600), "daily": ("daily", 86400), "30min": ("*:0/30", 1800), "15min": ("*:0/15", 900)}
# ACL categories of Redis 7 (ACL CAT).
ACL_CATEGORIES = (
    "all", "keyspace", "read", "write", "set", "sortedset", "list", "hash", "string", "bitmap",
    "hyperloglog", "geo", "stream", "pubsub", "admin", "fast", "slow", "blocking", "dangerous",
    "connection", "transaction", "scripting",
)
# Rules an operator may give; passwords, on/off and resets are the deploy's business.
# Key and channel patterns: Redis's glob characters, nothing that a config line or a shell
# could read as a quote, an escape or a second word.
PATTERN = r"[A-Za-z0-9_.:*?\[\]^!@#$%{}=/+-]+"
ACL_RULE_RE = re.compile(
    rf"~{PATTERN}|%R?W?~{PATTERN}|&{PATTERN}|[+-]@[a-z]+|[+-][a-z][a-z_-]*(\|[a-z_-]+)?|allkeys|allchannels"
    r"|allcommands|nocommands|resetkeys|resetchannels"
)
# Every regular expression here is used with fullmatch: Python's $ also matches before a
# trailing newline, which let "smart-trade\n" through into the credentials file.
USERNAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
HOSTNAME_RE = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# Paths that reach a shell, a unit file or a config file on the host: no quotes, spaces or $.
HOST_PATH_RE = re.compile(r"/[A-Za-z0-9._/+@-]*")
# The APT repository and its key are fetched over HTTP(S): scheme, host, optional port and path.
URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/+-]*)?")
# Names shown by redis-monitor (DB labels, platform port names).
LABEL_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9 _.-]{0,63}")
# Redis's own memory units: k/m/g are powers of 1000, kb/mb/gb powers of 1024.
MEMORY_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 1000**2, "mb": 1024**2, "g": 1000**3, "gb": 1024**3}
MEMORY_RE = re.compile(r"(\d+)([a-z]*)", re.IGNORECASE)


class SettingsError(PyinfraError):
    """A setting has a value that the deploy refuses to use."""


@dataclass(frozen=True)
class Database:
    db: int
    name: str
    ttl: int | None  # seconds; None: keys live until deleted


@dataclass(frozen=True)
class Settings:
    major_version: int
    port: int
    bind: str
    maxmemory: str
    maxmemory_policy: str
    notify_keyspace_events: str
    keyspace: tuple[Database, ...]
    databases: int
    save: str
    tcp_backlog: int
    loglevel: str
    latency_monitor_threshold_ms: int
    slowlog_log_slower_than_us: int
    slowlog_max_len: int
    apt_repo_url: str
    apt_key_url: str
    apt_cache_time: int
    host_tuning: bool
    auth: str
    app_user: str
    app_acl: str
    admin_user: str
    admin_acl: str
    url_host: str
    pm2_ecosystem_file: str | None
    pm2_apps: tuple[str, ...] | None
    pm2_env_blocks: tuple[str, ...]
    pm2_user: str
    pm2_reload: bool
    operator_group: str
    backup_dir: str
    backup_schedule: str
    backup_keep_hourly: int
    backup_keep_daily: int
    restore_from: str | None
    restore_force: bool
    fetch_dir: str | None
    fetch_all: bool
    health_warning_pct: int
    health_critical_pct: int
    platform_ports: dict
    exporter_enabled: bool
    exporter_user: str
    exporter_port: int
    exporter_acl: str
    ha_address: str | None
    ha_master_name: str
    replication_user: str
    sentinel_user: str
    sentinel_port: int
    min_replicas_to_write: int
    min_replicas_max_lag: int
    sentinel_down_after_ms: int
    sentinel_failover_timeout_ms: int
    ha_secrets_file: str
    replica_replace_data: bool

    @property
    def maxmemory_bytes(self) -> int:
        return memory_bytes(self.maxmemory)

    @property
    def bind_addresses(self) -> list[str]:
        """The addresses without Redis's optional-address marker."""
        return [address.lstrip("-") for address in self.bind.split()]


def defaults() -> dict[str, Any]:
    """The settings as group_data/all.py declares them."""
    return {k: v for k, v in runpy.run_path(str(DEFAULTS_FILE)).items() if k.startswith(OWNED_PREFIXES)}


def memory_bytes(value: str) -> int:
    number, unit = MEMORY_RE.fullmatch(value).groups()  # type: ignore[union-attr]
    return int(number) * MEMORY_UNITS[unit.lower()]


def _fail(name: str, value: Any, allowed: str) -> SettingsError:
    return SettingsError(f"{name} = {value!r}: allowed is {allowed}")


def _int(data: Mapping[str, Any], name: str, low: int, high: int) -> int:
    value = data[name]
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise _fail(name, value, f"a whole number from {low} to {high}")
    return value


def _choice(data: Mapping[str, Any], name: str, choices: tuple) -> Any:
    value = data[name]
    if value not in choices:
        raise _fail(name, value, "one of " + ", ".join(str(c) for c in choices))
    return value


def _url(data: Mapping[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not URL_RE.fullmatch(value):
        raise _fail(name, value, "an http:// or https:// URL of letters, digits and . _ ~ / + - (no quotes, spaces or $)")
    return value


def _local_path(data: Mapping[str, Any], name: str) -> str:
    """A path on the operator's machine: any printable text."""
    value = data[name]
    if not isinstance(value, str) or not value or not value.isprintable():
        raise _fail(name, value, "a path without control characters")
    return value


def _bool(data: Mapping[str, Any], name: str) -> bool:
    value = data[name]
    if not isinstance(value, bool):
        raise _fail(name, value, "true or false")
    return value


def ip_address(value: str) -> str | None:
    """The address in its normal form, or None: zone ids (fe80::1%eth0) are refused, as a zone
    may carry any text at all into a config file or a shell."""
    if "%" in value:
        return None
    try:
        return str(ipaddress.ip_address(value))
    except ValueError:
        return None


def _bind(value: Any) -> str:
    allowed = 'IPv4 or IPv6 addresses without a zone id, separated by spaces, each optionally prefixed with "-" (e.g. "127.0.0.1 -::1")'
    if not isinstance(value, str) or not value.split() or not value.isprintable():
        raise _fail("redis_bind", value, allowed)
    for address in value.split():
        bare = address[1:] if address.startswith("-") else address
        if bare in ("*", "::*"):
            continue
        if ip_address(bare) is None:
            raise _fail("redis_bind", value, allowed)
    return " ".join(value.split())


def _maxmemory(value: Any) -> str:
    match = MEMORY_RE.fullmatch(value) if isinstance(value, str) else None
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return str(value)
    if not match or match.group(2).lower() not in MEMORY_UNITS:
        raise _fail("redis_maxmemory", value, "a size in bytes or with a unit b, k, kb, m, mb, g, gb (e.g. 512mb)")
    return value.lower()


def _notify(value: Any) -> str:
    if not isinstance(value, str) or any(flag not in NOTIFY_FLAGS for flag in value):
        raise _fail("redis_notify_keyspace_events", value, f"letters from {NOTIFY_FLAGS} (or empty to turn events off)")
    if value and not ({"K", "E"} & set(value)):
        # Redis accepts this and then silently delivers nothing.
        raise _fail("redis_notify_keyspace_events", value, "flags that include K (keyspace) or E (keyevent) channel")
    return value


def _save(value: Any) -> str:
    fields = value.split() if isinstance(value, str) else None
    if fields is None or len(fields) % 2 or not all(f.isdigit() and int(f) > 0 for f in fields):
        raise _fail("redis_save", value, 'pairs of "seconds changes" (e.g. "3600 1 300 100"), or "" for no snapshots')
    return " ".join(fields)


def _keyspace(value: Any, databases: int) -> tuple[Database, ...]:
    name = "redis_keyspace"
    if not isinstance(value, (list, tuple)) or not value:
        raise _fail(name, value, 'a list of {"db": N, "name": TEXT, "ttl": SECONDS or None}')
    seen: set[int] = set()
    result = []
    for entry in value:
        if not isinstance(entry, Mapping) or set(entry) != {"db", "name", "ttl"}:
            raise _fail(name, entry, 'entries with exactly the keys "db", "name" and "ttl"')
        db, label, ttl = entry["db"], entry["name"], entry["ttl"]
        if isinstance(db, bool) or not isinstance(db, int) or not 0 <= db < databases:
            raise _fail(name, entry, f"db from 0 to {databases - 1} (redis_databases = {databases})")
        if db in seen:
            raise _fail(name, entry, "each db listed once (db %d is listed twice)" % db)
        if not isinstance(label, str) or not LABEL_RE.fullmatch(label):
            raise _fail(name, entry, "a name of letters, digits, spaces, '.', '_' or '-'")
        if ttl is not None and (isinstance(ttl, bool) or not isinstance(ttl, int) or ttl <= 0):
            raise _fail(name, entry, "a ttl in whole seconds above 0, or None for keys without TTL")
        seen.add(db)
        result.append(Database(db=db, name=label, ttl=ttl))
    return tuple(sorted(result, key=lambda d: d.db))


def _acl(data: Mapping[str, Any], name: str) -> str:
    """ACL rules; an error never shows the value, nor a rule that is not plainly a rule: an
    operator's rules may hold a password (">secret"), or a password pasted by mistake."""
    value = data[name]
    if not isinstance(value, str) or not value.split():
        raise SettingsError(f'{name}: allowed is ACL rules separated by spaces (e.g. "~* +@all -@dangerous")')
    rules = value.split()
    for index, rule in enumerate(rules, 1):
        if rule[:1] in (">", "<", "#", "!") or rule in ("nopass", "resetpass"):
            raise SettingsError(f"{name}: allowed is rules without passwords (the deploy sets them; see README)")
    for index, rule in enumerate(rules, 1):
        category = rule[2:] if rule[:2] in ("+@", "-@") else None
        if category is not None and category not in ACL_CATEGORIES:
            shown = f"@{category}" if re.fullmatch(r"[a-z]{1,30}", category) else "a category that is not a word"
            raise SettingsError(f"{name}: allowed are ACL categories from {', '.join(ACL_CATEGORIES)} (rule {index} names {shown})")
        if category is None and not ACL_RULE_RE.fullmatch(rule):
            raise SettingsError(
                f"{name}: allowed are key (~), channel (&) and command (+/-) rules and the keywords allkeys, allchannels, "
                f"allcommands, nocommands, resetkeys, resetchannels; patterns without quotes or backslashes "
                f"(rule {index} of {len(rules)} is none of these; not shown, as it may be a password)"
            )
    return " ".join(rules)


def _username(data: Mapping[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not USERNAME_RE.fullmatch(value) or value == "default":
        raise _fail(name, value, "a user name of letters, digits, '.', '_' or '-' other than 'default'")
    return value


def _name(data: Mapping[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not USERNAME_RE.fullmatch(value):
        raise _fail(name, value, "a name of letters, digits, '.', '_' or '-'")
    return value


def _is_network_address(address: str) -> bool:
    bare = address.lstrip("-")
    return not (bare.startswith("127.") or bare == "::1")


def _host(data: Mapping[str, Any], name: str) -> str:
    value = data[name]
    if isinstance(value, str) and (ip_address(value) is not None or HOSTNAME_RE.fullmatch(value)):
        return value
    raise _fail(name, value, "an IP address or a host name (an IP address without a zone id)")


def _none(value: Any) -> bool:
    # --data pm2_ecosystem_file=None arrives as the text "None"
    return value is None or value in ("None", "none", "null", "")


def _ecosystem_file(value: Any) -> str | None:
    if _none(value):
        return None
    if (
        not isinstance(value, str) or not HOST_PATH_RE.fullmatch(value) or "/../" in value
        or not value.endswith((".js", ".cjs", ".json"))
    ):
        raise _fail(
            "pm2_ecosystem_file", value,
            "an absolute path to a .js, .cjs or .json file (letters, digits, . _ / + @ -), or None",
        )
    return value


def _names(data: Mapping[str, Any], name: str, pattern: str, allow_none: bool) -> tuple[str, ...] | None:
    value = data[name]
    if allow_none and _none(value):
        return None
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    if not isinstance(value, (list, tuple)) or not value or not all(isinstance(v, str) and re.fullmatch(pattern, v) for v in value):
        allowed = "a list of names" + (", or None for all" if allow_none else "")
        raise _fail(name, value, allowed)
    return tuple(value)


def _ports(data: Mapping[str, Any], name: str) -> dict:
    value = data[name]
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str) and LABEL_RE.fullmatch(k) and isinstance(v, int) and not isinstance(v, bool) and 1 <= v <= 65535
        for k, v in value.items()
    ):
        raise _fail(name, value, 'a mapping of names to ports, e.g. {"server": 8080}')
    return dict(value)


def _abs_path(data: Mapping[str, Any], name: str) -> str:
    value = data[name]
    if not isinstance(value, str) or not HOST_PATH_RE.fullmatch(value) or "/.." in value + "/":
        raise _fail(name, value, "an absolute path of letters, digits and . _ / + @ - (no spaces, quotes, $ or ..)")
    return value.rstrip("/") or "/"


def _restore_from(value: Any) -> str | None:
    if _none(value):
        return None
    if not isinstance(value, str) or not value.isprintable():
        raise _fail("redis_restore_from", value, "a path without control characters")
    path = Path(value).expanduser()
    try:
        with open(path, "rb") as f:
            magic = f.read(9)
    except OSError as exc:
        raise _fail("redis_restore_from", value, f"a readable local .rdb file ({exc.strerror})") from None
    if not magic.startswith(b"REDIS") or not magic[5:].isdigit():
        raise _fail("redis_restore_from", value, "an RDB snapshot (the file does not start with REDIS and a format version)")
    return str(path.resolve())


def _unknown(data: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    for key in data:
        if key.startswith(OWNED_PREFIXES) and key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingsError(f"{key}: unknown setting{hint}; the settings are listed in group_data/all.py")


def _texts(value: Any) -> list[str]:
    """Every text inside a setting's value (lists, mappings and their keys included)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, Mapping):
        return [t for k, v in value.items() for t in (*_texts(k), *_texts(v))]
    if isinstance(value, (list, tuple)):
        return [t for v in value for t in _texts(v)]
    return []


def _printable(merged: Mapping[str, Any]) -> None:
    """No setting carries a control character (a newline ends a line of a credentials, config or
    unit file, and a command): refused before any setting's own rule is even looked at."""
    for name, value in merged.items():
        if all(text.isprintable() for text in _texts(value)):
            continue
        if name.endswith("_acl"):  # may hold a password: not shown
            raise SettingsError(f"{name}: allowed is text without control characters (the value is not shown)")
        raise _fail(name, value, "text without control characters (newline, tab, carriage return...)")


def load(data: Mapping[str, Any] | Any) -> Settings:
    """Validate pyinfra host data (or any mapping) and return the typed settings."""
    given = data.dict() if hasattr(data, "dict") else dict(data)
    base = defaults()
    _unknown(given, base)
    merged = {**base, **{k: v for k, v in given.items() if k in base}}
    _printable(merged)

    databases = _int(merged, "redis_databases", 1, 10000)
    auth = _choice(merged, "redis_auth", AUTH_MODES)
    bind = _bind(merged["redis_bind"])
    if auth == "none" and any(_is_network_address(a) for a in bind.split()):
        raise _fail("redis_bind", bind, 'loopback addresses only while redis_auth = "none"; set redis_auth = "acl" to open it')
    app_user, admin_user = _username(merged, "redis_app_user"), _username(merged, "redis_admin_user")
    exporter_user = _username(merged, "redis_exporter_user")
    if app_user == admin_user:
        raise _fail("redis_admin_user", admin_user, "a user name other than redis_app_user")
    if exporter_user in (app_user, admin_user):
        raise _fail("redis_exporter_user", exporter_user, "a user name other than redis_app_user and redis_admin_user")
    replication_user, sentinel_user = _username(merged, "redis_replication_user"), _username(merged, "redis_sentinel_user")
    taken = [app_user, admin_user, exporter_user]
    for name, value in (("redis_replication_user", replication_user), ("redis_sentinel_user", sentinel_user)):
        if value in taken:
            raise _fail(name, value, "a user name that no other redis_*_user has")
        taken.append(value)
    warning = _int(merged, "redis_health_warning_pct", 1, 100)
    critical = _int(merged, "redis_health_critical_pct", 1, 100)
    if critical < warning:
        raise _fail("redis_health_critical_pct", critical, f"a value not below redis_health_warning_pct ({warning})")
    return Settings(
        major_version=_choice(merged, "redis_major_version", SUPPORTED_MAJORS),
        port=_int(merged, "redis_port", 1, 65535),
        bind=bind,
        maxmemory=_maxmemory(merged["redis_maxmemory"]),
        maxmemory_policy=_choice(merged, "redis_maxmemory_policy", EVICTION_POLICIES),
        notify_keyspace_events=_notify(merged["redis_notify_keyspace_events"]),
        keyspace=_keyspace(merged["redis_keyspace"], databases),
        databases=databases,
        save=_save(merged["redis_save"]),
        tcp_backlog=_int(merged, "redis_tcp_backlog", 1, 65535),
        loglevel=_choice(merged, "redis_loglevel", LOGLEVELS),
        latency_monitor_threshold_ms=_int(merged, "redis_latency_monitor_threshold_ms", 0, 10**6),
        slowlog_log_slower_than_us=_int(merged, "redis_slowlog_log_slower_than_us", -1, 10**9),
        slowlog_max_len=_int(merged, "redis_slowlog_max_len", 0, 10**6),
        apt_repo_url=_url(merged, "redis_apt_repo_url"),
        apt_key_url=_url(merged, "redis_apt_key_url"),
        apt_cache_time=_int(merged, "redis_apt_cache_time", 0, 10**7),
        host_tuning=_bool(merged, "redis_host_tuning"),
        auth=auth,
        app_user=app_user,
        app_acl=_acl(merged, "redis_app_acl"),
        admin_user=admin_user,
        admin_acl=_acl(merged, "redis_admin_acl"),
        url_host=_host(merged, "redis_url_host"),
        pm2_ecosystem_file=_ecosystem_file(merged["pm2_ecosystem_file"]),
        pm2_apps=_names(merged, "pm2_apps", r"[A-Za-z0-9_.@:-]+", allow_none=True),
        pm2_env_blocks=_names(merged, "pm2_env_blocks", r"env(_[A-Za-z0-9_]+)?", allow_none=False),
        pm2_user=_username(merged, "pm2_user"),
        pm2_reload=_bool(merged, "pm2_reload"),
        operator_group=_username(merged, "redis_operator_group"),
        backup_dir=_abs_path(merged, "redis_backup_dir"),
        backup_schedule=_choice(merged, "redis_backup_schedule", tuple(BACKUP_SCHEDULES)),
        backup_keep_hourly=_int(merged, "redis_backup_keep_hourly", 1, 10000),
        backup_keep_daily=_int(merged, "redis_backup_keep_daily", 0, 10000),
        restore_from=_restore_from(merged["redis_restore_from"]),
        restore_force=_bool(merged, "redis_restore_force"),
        fetch_dir=None if _none(merged["redis_fetch_dir"]) else _local_path(merged, "redis_fetch_dir"),
        fetch_all=_bool(merged, "redis_fetch_all"),
        health_warning_pct=warning,
        health_critical_pct=critical,
        platform_ports=_ports(merged, "redis_platform_ports"),
        exporter_enabled=_bool(merged, "redis_exporter_enabled"),
        exporter_user=exporter_user,
        exporter_port=_int(merged, "redis_exporter_port", 1, 65535),
        exporter_acl=_acl(merged, "redis_exporter_acl"),
        ha_address=None if _none(merged["redis_ha_address"]) else _host(merged, "redis_ha_address"),
        ha_master_name=_name(merged, "redis_ha_master_name"),
        replication_user=replication_user,
        sentinel_user=sentinel_user,
        sentinel_port=_int(merged, "redis_sentinel_port", 1, 65535),
        min_replicas_to_write=_int(merged, "redis_min_replicas_to_write", 0, 100),
        min_replicas_max_lag=_int(merged, "redis_min_replicas_max_lag", 1, 3600),
        sentinel_down_after_ms=_int(merged, "redis_sentinel_down_after_ms", 100, 10**7),
        sentinel_failover_timeout_ms=_int(merged, "redis_sentinel_failover_timeout_ms", 1000, 10**8),
        ha_secrets_file=_local_path(merged, "redis_ha_secrets_file"),
        replica_replace_data=_bool(merged, "redis_replica_replace_data"),
    )
