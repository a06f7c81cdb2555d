"""Every setting, declared once, and its validation, before anything touches a host.

Each field of `Settings` below is one setting: its default, the line of documentation that the
README's table shows (`python -m smart_redis.docs`), and the rule that checks it. The defaults,
pyinfra's `data_defaults` of `deploy_redis()` and the table are all derived from those fields,
so adding a setting is one field here (and the template that uses it).

`load(data)` takes pyinfra's host data (group, host and `--data` values over these defaults) and
returns a frozen `Settings`. A bad value raises `SettingsError` with one line naming the
setting, the value and what is allowed; pyinfra prints it and exits 1.

    >>> load({"redis_port": 70000})
    SettingsError: redis_port = 70000: allowed is a whole number from 1 to 65535
"""

from __future__ import annotations

import copy
import difflib
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from functools import cache, partial
from pathlib import Path
from typing import Any

from pyinfra import context
from pyinfra.api.exceptions import PyinfraError

from .host.server import SERVERS, Server

# Settings in these namespaces belong to this project: an unknown one is a typo.
OWNED_PREFIXES = ("redis_", "pm2_")

SUPPORTED_MAJORS = (7, 8)
EVICTION_POLICIES = (
    "noeviction",
    "allkeys-lru",
    "allkeys-lfu",
    "allkeys-random",
    "volatile-lru",
    "volatile-lfu",
    "volatile-random",
    "volatile-ttl",
)
# notify-keyspace-events letters that Redis 7 knows (see redis.conf's EVENT NOTIFICATION).
NOTIFY_FLAGS = "KEg$lshzxetmdnA"
LOGLEVELS = ("debug", "verbose", "notice", "warning")
AUTH_MODES = ("acl", "none")
TLS_MODES = ("off", "on", "only")
# schedule -> (systemd OnCalendar, seconds between snapshots)
BACKUP_SCHEDULES = {
    "hourly": ("hourly", 3600),
    "daily": ("daily", 86400),
    "30min": ("*:0/30", 1800),
    "15min": ("*:0/15", 900),
}
# ACL categories of Redis 7 (ACL CAT).
ACL_CATEGORIES = (
    "all",
    "keyspace",
    "read",
    "write",
    "set",
    "sortedset",
    "list",
    "hash",
    "string",
    "bitmap",
    "hyperloglog",
    "geo",
    "stream",
    "pubsub",
    "admin",
    "fast",
    "slow",
    "blocking",
    "dangerous",
    "connection",
    "transaction",
    "scripting",
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
        raise _fail(
            name, value, "an http:// or https:// URL of letters, digits and . _ ~ / + - (no quotes, spaces or $)"
        )
    return value


# A webhook URL may carry a token in its path or query: checked, never shown. The alphabet keeps
# it one word in the root-only secrets file (KEY='value').
SECRET_URL_RE = re.compile(r"https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~/+=%-]*)?(\?[A-Za-z0-9._~/+=&%-]*)?")
TELEGRAM_TOKEN_RE = re.compile(r"[0-9]{1,20}:[A-Za-z0-9_-]{20,100}")
TELEGRAM_CHAT_RE = re.compile(r"-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}")
EMAIL_RE = re.compile(r"[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9]([A-Za-z0-9.-]{0,251}[A-Za-z0-9])?")
# The operator's own certificate files: all three, or none (then the project's CA issues them).
TLS_FILES = ("redis_tls_cert", "redis_tls_key", "redis_tls_ca")
# Settings whose values are secrets: an error names the setting and the rule, never the value.
# Each may also come from the environment (SMART_REDIS_ALERT_WEBHOOK_URL, ...), so that it
# need not be written into the deploy's files or a command line.
SECRET_SETTINGS = ("redis_alert_webhook_url", "redis_alert_telegram_token", "redis_alert_heartbeat_url")


def secret_variable(name: str) -> str:
    return "SMART_" + name.upper()


def _secret(pattern: re.Pattern, allowed: str) -> Check:
    def check(data: Mapping[str, Any], name: str) -> str | None:
        value = data[name]
        if _none(value):
            return None
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise SettingsError(f"{name}: allowed is {allowed} (the value is not shown: it is a secret)")
        return value

    return check


def _matching(pattern: re.Pattern, allowed: str) -> Check:
    def check(data: Mapping[str, Any], name: str) -> str | None:
        value = data[name]
        if _none(value):
            return None
        if isinstance(value, int) and not isinstance(value, bool):  # --data gives numbers as numbers
            value = str(value)
        if not isinstance(value, str) or not pattern.fullmatch(value):
            raise _fail(name, value, allowed)
        return value

    return check


def _emails(data: Mapping[str, Any], name: str) -> tuple[str, ...]:
    value = data[name]
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and EMAIL_RE.fullmatch(v) for v in value):
        raise _fail(name, value, 'a list of e-mail addresses (e.g. ["ops@example.com"]), or [] for none')
    return tuple(value)


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
            raise _fail(name, entry, f"each db listed once (db {db} is listed twice)")
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
    for rule in rules:
        if rule[:1] in (">", "<", "#", "!") or rule in ("nopass", "resetpass"):
            raise SettingsError(f"{name}: allowed is rules without passwords (the deploy sets them; see README)")
    for index, rule in enumerate(rules, 1):
        category = rule[2:] if rule[:2] in ("+@", "-@") else None
        if category is not None and category not in ACL_CATEGORIES:
            shown = f"@{category}" if re.fullmatch(r"[a-z]{1,30}", category) else "a category that is not a word"
            raise SettingsError(
                f"{name}: allowed are ACL categories from {', '.join(ACL_CATEGORIES)} (rule {index} names {shown})"
            )
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
        not isinstance(value, str)
        or not HOST_PATH_RE.fullmatch(value)
        or "/../" in value
        or not value.endswith((".js", ".cjs", ".json"))
    ):
        raise _fail(
            "pm2_ecosystem_file",
            value,
            "an absolute path to a .js, .cjs or .json file (letters, digits, . _ / + @ -), or None",
        )
    return value


def _names(data: Mapping[str, Any], name: str, pattern: str, allow_none: bool) -> tuple[str, ...] | None:
    value = data[name]
    if allow_none and _none(value):
        return None
    if isinstance(value, str):
        value = [v for v in value.split(",") if v]
    if (
        not isinstance(value, (list, tuple))
        or not value
        or not all(isinstance(v, str) and re.fullmatch(pattern, v) for v in value)
    ):
        allowed = "a list of names" + (", or None for all" if allow_none else "")
        raise _fail(name, value, allowed)
    return tuple(value)


# The Smart-Trade apps' ports, checked by default on the hosts that run them (platform_ports).
APP_PORTS = {"server": 8080, "websocket": 8081, "frontend": 3000}


def _ports(data: Mapping[str, Any], name: str) -> dict:
    value = data[name]
    if not isinstance(value, Mapping) or not all(
        isinstance(k, str)
        and LABEL_RE.fullmatch(k)
        and isinstance(v, int)
        and not isinstance(v, bool)
        and 1 <= v <= 65535
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
    path = operator_path(value)
    try:
        with open(path, "rb") as f:
            magic = f.read(9)
    except OSError as exc:
        raise _fail("redis_restore_from", value, f"a readable local .rdb file ({exc.strerror})") from None
    if not magic.startswith(b"REDIS") or not magic[5:].isdigit():
        raise _fail(
            "redis_restore_from", value, "an RDB snapshot (the file does not start with REDIS and a format version)"
        )
    return str(path.resolve())


def _unknown(data: Mapping[str, Any], known: Mapping[str, Any]) -> None:
    for key in data:
        if key.startswith(OWNED_PREFIXES) and key not in known:
            close = difflib.get_close_matches(key, known, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise SettingsError(f"{key}: unknown setting{hint}; python -m smart_redis.docs lists the settings")


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
        if name.endswith("_acl") or name in SECRET_SETTINGS:  # may hold a password or token: not shown
            raise SettingsError(f"{name}: allowed is text without control characters (the value is not shown)")
        raise _fail(name, value, "text without control characters (newline, tab, carriage return...)")


def operator_path(path: str) -> Path:
    """A path on the operator's machine, resolved as pyinfra resolves a deploy's local files
    (files.put's src): absolute (or ~) as given; "./..." beside the deploy file being run;
    anything else in the directory pyinfra runs in (state.cwd: where it was started, or --chdir).

    Without a pyinfra state that knows its directory (pyinfra's API without state.cwd, unit
    tests), the process's working directory stands in for state.cwd.
    """
    given = Path(path).expanduser()
    if given.is_absolute():
        return given
    deploy_file = getattr(context.state, "current_exec_filename", None)
    if deploy_file and path.startswith("./"):
        return Path(deploy_file).resolve().parent / given
    return Path(getattr(context.state, "cwd", None) or os.getcwd()) / given


# The rules a setting's declaration names: each takes the merged data and the setting's name
# and returns the typed value, or raises SettingsError.
Check = Callable[[Mapping[str, Any], str], Any]


def _whole(low: int, high: int) -> Check:
    return partial(_int, low=low, high=high)


def _one_of(choices: tuple) -> Check:
    return partial(_choice, choices=choices)


def _server(data: Mapping[str, Any], name: str) -> Server:
    return SERVERS[_choice(data, name, choices=tuple(SERVERS))]


def _value(rule: Callable[[Any], Any]) -> Check:
    """A rule that needs only the value (it names its setting itself)."""
    return lambda data, name: rule(data[name])


def _optional(check: Check) -> Check:
    """None (in any spelling --data may give it) or what check allows."""
    return lambda data, name: None if _none(data[name]) else check(data, name)


_databases = _whole(1, 10000)


def _keyspace_of(data: Mapping[str, Any], name: str) -> tuple[Database, ...]:
    return _keyspace(data[name], _databases(data, "redis_databases"))


@dataclass(frozen=True)
class Declaration:
    default: Any
    doc: str  # one line: the README table's "what it does"
    check: Check


def setting(default: Any, doc: str, check: Check) -> Any:
    """A field of Settings that is a setting of host data (see setting_name)."""
    return field(metadata={"setting": Declaration(default, doc, check)})


@dataclass(frozen=True)
class Settings:
    server: Server = setting(
        "redis",
        'The server: "redis" or "valkey" (Debian\'s valkey-server; the apps\' REDIS_URL and redis-monitor stay).',
        _server,
    )
    major_version: int = setting(
        7,
        "Redis major version to install (the distro package where the distro ships it); Valkey: the distro's.",
        _one_of(SUPPORTED_MAJORS),
    )
    port: int = setting(6379, "TCP port Redis listens on.", _whole(1, 65535))
    bind: str = setting(
        "127.0.0.1 -::1", 'Addresses Redis binds to; a leading "-" marks an address that may be missing.', _value(_bind)
    )
    maxmemory: str = setting(
        "512mb", "Memory limit for the dataset (Redis units: b, k, kb, m, mb, g, gb).", _value(_maxmemory)
    )
    maxmemory_policy: str = setting(
        "allkeys-lru", "What Redis evicts when maxmemory is reached.", _one_of(EVICTION_POLICIES)
    )
    notify_keyspace_events: str = setting(
        "Exe", "Keyspace notifications: E = keyevent channel, x = expired, e = evicted.", _value(_notify)
    )
    keyspace: tuple[Database, ...] = setting(
        [
            {"db": 0, "name": "quotes", "ttl": 60},
            {"db": 1, "name": "order-flow", "ttl": 300},
            {"db": 2, "name": "footprint", "ttl": 600},
            {"db": 3, "name": "calculations", "ttl": 1800},
            {"db": 4, "name": "websocket-sessions", "ttl": 3600},
            {"db": 5, "name": "configuration", "ttl": None},
        ],
        "The platform's logical databases and the TTL (seconds) their keys should carry; None = no TTL.",
        _keyspace_of,
    )
    auth: str = setting(
        "acl",
        '"acl": ACL users with passwords, default user off. "none": no auth at all (warned; loopback only).',
        _one_of(AUTH_MODES),
    )
    app_user: str = setting(
        "smart-trade",
        "ACL user of the apps (REDIS_URL); password from $SMART_REDIS_APP_PASSWORD or generated on the host.",
        _username,
    )
    app_acl: str = setting(
        "~* &* +@all -@admin -@dangerous +info",
        "What the app user may do: data commands and pub/sub on every channel, nothing administrative "
        "(narrow channels with &PATTERN; in a Sentinel group &* means the keyspace events and the &PATTERNs "
        "given, and a pattern that covers __sentinel__:hello is refused).",
        _acl,
    )
    admin_user: str = setting(
        "ops-admin",
        "ACL user of operators and redis-monitor; password from $SMART_REDIS_ADMIN_PASSWORD or generated.",
        _username,
    )
    admin_acl: str = setting("~* &* +@all", "What the admin user may do.", _acl)
    rotate_passwords: bool = setting(
        False,
        "Give this one run new app and admin passwords (in a Sentinel group also replication and Sentinel), "
        "without a restart; pass it with --data.",
        _bool,
    )
    databases: int = setting(16, "Number of logical databases Redis offers.", _databases)
    save: str = setting(
        "3600 1 300 100 60 10000",
        'RDB snapshot points as "seconds changes" pairs, so that DB 5 survives restarts.',
        _value(_save),
    )
    tcp_backlog: int = setting(
        511, "Listen backlog; the host's net.core.somaxconn is raised to at least this.", _whole(1, 65535)
    )
    loglevel: str = setting("notice", "Log verbosity: debug, verbose, notice or warning.", _one_of(LOGLEVELS))
    latency_monitor_threshold_ms: int = setting(
        100, "Events slower than this many milliseconds go to the latency monitor (0 = off).", _whole(0, 10**6)
    )
    slowlog_log_slower_than_us: int = setting(
        10000, "Commands slower than this many microseconds go to the slow log.", _whole(-1, 10**9)
    )
    slowlog_max_len: int = setting(256, "How many entries the slow log keeps.", _whole(0, 10**6))
    apt_repo_url: str = setting(
        "https://packages.redis.io/deb",
        "APT repository for distros that do not ship the requested major (Debian 13, Ubuntu 22.04).",
        _url,
    )
    apt_key_url: str = setting(
        "https://packages.redis.io/gpg", "Signing key of that repository, stored as a signed-by keyring.", _url
    )
    apt_cache_time: int = setting(
        3600,
        "Seconds an apt package index stays fresh before a run that installs something refreshes it.",
        _whole(0, 10**7),
    )
    upgrade: bool = setting(
        False,
        "Install the newest release of the major that the package source offers; servers restart one by one.",
        _bool,
    )
    host_tuning: bool = setting(
        True, "Tune the kernel as Redis asks (overcommit, somaxconn, THP); always skipped in containers.", _bool
    )
    url_host: str = setting("127.0.0.1", "Host name or address the apps use to reach Redis, in REDIS_URL.", _host)
    tls: str = setting(
        "off",
        '"off"; "on": TLS on redis_tls_port beside the plain port; "only": TLS alone, on redis_port (no plain port; '
        'also Sentinel and replication in a Sentinel group, where "on" is refused).',
        _one_of(TLS_MODES),
    )
    tls_port: int = setting(6380, 'Port of TLS beside the plain port while redis_tls = "on".', _whole(1, 65535))
    tls_cert: str | None = setting(
        None,
        "Local PEM file of the server certificate (with its chain); None = issued by the project's own CA.",
        _optional(_local_path),
    )
    tls_key: str | None = setting(
        None, "Local PEM file of that certificate's private key (root:redis 0640 on the host).", _optional(_local_path)
    )
    tls_ca: str | None = setting(
        None,
        "Local PEM file of the CA that clients (and Redis, for client certificates) trust.",
        _optional(_local_path),
    )
    tls_client_auth: str = setting(
        "optional",
        'Client certificates: "optional" (checked when given), "yes" (required), "no" (not asked for).',
        _one_of(("optional", "yes", "no")),
    )
    tls_ca_dir: str = setting(
        "./secrets/tls",
        "Local folder (0700) of the project's CA and the certificates it issued; created on first use.",
        _local_path,
    )
    tls_renew_days: int = setting(
        30, "The project's CA issues a new certificate this many days before the current one expires.", _whole(1, 300)
    )
    pm2_ecosystem_file: str | None = setting(
        "/opt/smart-trade/ecosystem.config.js",
        "The PM2 ecosystem file whose apps get REDIS_URL; None leaves PM2 alone.",
        _value(_ecosystem_file),
    )
    pm2_apps: tuple[str, ...] | None = setting(
        None,
        "Names of the apps that get REDIS_URL; None = every app in the file.",
        partial(_names, pattern=r"[A-Za-z0-9_.@:-]+", allow_none=True),
    )
    pm2_env_blocks: tuple[str, ...] = setting(
        ["env", "env_production"],
        'Env blocks that get REDIS_URL where an app has them; an app with none of them gets "env".',
        partial(_names, pattern=r"env(_[A-Za-z0-9_]+)?", allow_none=False),
    )
    pm2_user: str = setting("smart-trade", "The user whose PM2 daemon runs the apps.", _username)
    pm2_reload: bool = setting(
        True, "Reload the apps (pm2 startOrReload --update-env, pm2 save) after REDIS_URL changed.", _bool
    )
    operator_group: str = setting(
        "redis-operators",
        "Members of this group may run redis-monitor (through sudo, as root holds the admin password).",
        _username,
    )
    backup_dir: str = setting(
        "/var/backups/redis", "Where redis-monitor backup (and the backup job) put RDB snapshots.", _abs_path
    )
    backup_schedule: str = setting(
        "hourly",
        "How often the backup timer snapshots Redis: hourly, daily, 30min or 15min.",
        _one_of(tuple(BACKUP_SCHEDULES)),
    )
    backup_keep_hourly: int = setting(48, "Newest snapshots the backup job keeps.", _whole(1, 10000))
    backup_keep_daily: int = setting(
        14, "Days for which the backup job also keeps that day's newest snapshot.", _whole(0, 10000)
    )
    restore_from: str | None = setting(
        None,
        "A local .rdb to restore on a host whose dataset is empty (rebuild after failure); None = no restore.",
        _value(_restore_from),
    )
    restore_force: bool = setting(False, "Restore redis_restore_from even over a dataset that is not empty.", _bool)
    fetch_dir: str | None = setting(
        None,
        "fetch_backups.py: local folder for the copies (None = backups/ beside the deploy file), one folder per host.",
        _optional(_local_path),
    )
    fetch_all: bool = setting(False, "fetch_backups.py: copy every snapshot on the host, not just the newest.", _bool)
    health_warning_pct: int = setting(
        80, "redis-monitor health: WARNING at this % of maxmemory, disk or RAM used.", _whole(1, 100)
    )
    health_critical_pct: int = setting(
        90, "redis-monitor health: CRITICAL at this % of maxmemory, disk or RAM used.", _whole(1, 100)
    )
    alert_interval: int = setting(
        60, "Seconds between the alert timer's runs of redis-monitor's checks on each host.", _whole(10, 3600)
    )
    alert_repeat: int = setting(
        3600, "Seconds after which an alert that still holds is sent again (0 = never).", _whole(0, 10**7)
    )
    alert_webhook_url: str | None = setting(
        None,
        "Webhook that gets a JSON message on each change of state (a secret: kept root-only on the host); None = none.",
        _secret(
            SECRET_URL_RE, "an http:// or https:// URL of letters, digits and . _ ~ / + = % & - ? (no quotes or spaces)"
        ),
    )
    alert_heartbeat_url: str | None = setting(
        None,
        "URL that gets a POST on every alert run, a dead man's switch (healthchecks.io, a Watchdog): its silence "
        "says the host, its timer or the alert program is gone. A secret, like the webhook URL; None = none.",
        _secret(
            SECRET_URL_RE, "an http:// or https:// URL of letters, digits and . _ ~ / + = % & - ? (no quotes or spaces)"
        ),
    )
    alert_webhook_format: str = setting(
        "json",
        'The webhook\'s payload: "json" (every field) or "slack" ({"text": ...}, also Mattermost).',
        _one_of(("json", "slack")),
    )
    alert_telegram_token: str | None = setting(
        None,
        "Telegram bot token for alerts (a secret, like the webhook URL); None = no Telegram.",
        _secret(TELEGRAM_TOKEN_RE, "a bot token as BotFather gives it (digits, a colon, letters, digits, _ and -)"),
    )
    alert_telegram_chat_id: str | None = setting(
        None,
        "The chat (a number, or @channel) the bot sends alerts to.",
        _matching(TELEGRAM_CHAT_RE, "a chat id (a whole number, maybe negative) or an @channel name"),
    )
    alert_telegram_api: str = setting(
        "https://api.telegram.org", "Telegram's Bot API base URL (a local Bot API server, if you run one).", _url
    )
    alert_email_to: tuple[str, ...] = setting(
        [], "Addresses that get alerts by e-mail through the host's sendmail, if one is installed.", _emails
    )
    platform_ports: dict | None = setting(
        None,
        "Ports redis-monitor health (and the alerts) expect listening on this host; None: the apps' "
        "(server 8080, websocket 8081, frontend 3000) where the deploy manages an ecosystem file, none elsewhere.",
        _optional(_ports),
    )
    exporter_enabled: bool = setting(
        True, "Install prometheus-redis-exporter, on 127.0.0.1 only, with its own least-privilege ACL user.", _bool
    )
    exporter_user: str = setting(
        "metrics", "ACL user of the exporter; password generated on the host like the others.", _username
    )
    exporter_port: int = setting(9121, "Port of the exporter's /metrics on 127.0.0.1.", _whole(1, 65535))
    exporter_acl: str = setting(
        "+@connection +info +client|list +client|info +slowlog|get +slowlog|len +latency|latest +latency|histogram "
        "+memory|usage +dbsize +select +scan +cluster|info",
        "What the exporter may do: read server state, nothing else.",
        _acl,
    )
    # High availability: used only on hosts in the redis_primary, redis_replicas or redis_sentinels groups.
    ha_address: str | None = setting(
        None,
        "Address the other hosts and the apps reach this host by; None = its one address (or its IP name).",
        _optional(_host),
    )
    ha_master_name: str = setting(
        "smart-trade", "The name Sentinel knows the primary by (REDIS_MASTER_NAME for the apps).", _name
    )
    replication_user: str = setting(
        "replicator",
        "ACL user the replicas log in to the primary with; password shared by every host of the group.",
        _username,
    )
    sentinel_user: str = setting(
        "sentinel", "ACL user Sentinel uses on the Redis servers and between sentinels.", _username
    )
    sentinel_port: int = setting(26379, "TCP port of Redis Sentinel.", _whole(1, 65535))
    min_replicas_to_write: int = setting(
        1, "The primary refuses writes when fewer replicas than this are connected (0 = never refuse).", _whole(0, 100)
    )
    min_replicas_max_lag: int = setting(
        10,
        "Replicas count for redis_min_replicas_to_write only while they lag at most this many seconds.",
        _whole(1, 3600),
    )
    sentinel_down_after_ms: int = setting(
        5000, "Sentinel calls the primary down after this many milliseconds without an answer.", _whole(100, 10**7)
    )
    sentinel_failover_timeout_ms: int = setting(
        30000,
        "Sentinel's failover timeout in milliseconds (also the pause before it retries a failed one).",
        _whole(1000, 10**8),
    )
    replica_replace_data: bool = setting(
        False, "Let a server that holds keys join as a replica (the primary's data replaces them).", _bool
    )
    ha_secrets_file: str = setting(
        "./secrets/redis-ha.env",
        "Local file (0600) that keeps the passwords every host of the group shares; generated on first use.",
        _local_path,
    )

    @property
    def checked_ports(self) -> dict:
        """The ports health checks on this host (platform_ports, or the apps' where they run)."""
        if self.platform_ports is not None:
            return self.platform_ports
        return dict(APP_PORTS) if self.pm2_ecosystem_file else {}

    @property
    def maxmemory_bytes(self) -> int:
        return memory_bytes(self.maxmemory)

    @property
    def client_port(self) -> int:
        """The port REDIS_URL names: TLS's while TLS is on."""
        return self.tls_port if self.tls == "on" else self.port

    @property
    def own_certificates(self) -> bool:
        return self.tls_cert is not None

    @property
    def bind_addresses(self) -> list[str]:
        """The addresses without Redis's optional-address marker."""
        return [address.lstrip("-") for address in self.bind.split()]


def setting_name(field_name: str) -> str:
    """The host-data name of a Settings field: pm2_* as they are, the others under redis_."""
    return field_name if field_name.startswith("pm2_") else f"redis_{field_name}"


@cache
def declarations() -> dict[str, Declaration]:
    """Every setting by its host-data name, in the order Settings declares them."""
    return {setting_name(f.name): f.metadata["setting"] for f in fields(Settings)}


def defaults() -> dict[str, Any]:
    """Every setting with its default (a fresh copy: host data may be changed by a deploy)."""
    return {name: copy.deepcopy(declared.default) for name, declared in declarations().items()}


def _relations(values: Mapping[str, Any]) -> None:
    """The rules between settings, once each setting has passed its own."""
    bind = values["redis_bind"]
    if values["redis_auth"] == "none" and any(_is_network_address(a) for a in bind.split()):
        raise _fail(
            "redis_bind", bind, 'loopback addresses only while redis_auth = "none"; set redis_auth = "acl" to open it'
        )
    app_user, admin_user = values["redis_app_user"], values["redis_admin_user"]
    if app_user == admin_user:
        raise _fail("redis_admin_user", admin_user, "a user name other than redis_app_user")
    exporter_user = values["redis_exporter_user"]
    if exporter_user in (app_user, admin_user):
        raise _fail("redis_exporter_user", exporter_user, "a user name other than redis_app_user and redis_admin_user")
    taken = [app_user, admin_user, exporter_user]
    for name in ("redis_replication_user", "redis_sentinel_user"):
        if values[name] in taken:
            raise _fail(name, values[name], "a user name that no other redis_*_user has")
        taken.append(values[name])
    token, chat = values["redis_alert_telegram_token"], values["redis_alert_telegram_chat_id"]
    if (token is None) != (chat is None):
        missing = "redis_alert_telegram_chat_id" if chat is None else "redis_alert_telegram_token"
        raise SettingsError(f"{missing}: allowed is a value whenever the other Telegram setting has one (it is None)")
    given_files = [values[name] is not None for name in TLS_FILES]
    if any(given_files) and not all(given_files):
        missing = next(name for name, given in zip(TLS_FILES, given_files, strict=True) if not given)
        raise SettingsError(
            f"{missing}: allowed is a file whenever redis_tls_cert, redis_tls_key or redis_tls_ca has one (it is None)"
        )
    if values["redis_tls"] == "on" and values["redis_tls_port"] == values["redis_port"]:
        raise _fail(
            "redis_tls_port", values["redis_tls_port"], f"a port other than redis_port ({values['redis_port']})"
        )
    warning, critical = values["redis_health_warning_pct"], values["redis_health_critical_pct"]
    if critical < warning:
        raise _fail("redis_health_critical_pct", critical, f"a value not below redis_health_warning_pct ({warning})")


def load(data: Mapping[str, Any] | Any, environ: Mapping[str, str] = os.environ) -> Settings:
    """Validate pyinfra host data (or any mapping) and return the typed settings."""
    given = data.dict() if hasattr(data, "dict") else dict(data)
    base = defaults()
    _unknown(given, base)
    merged = {**base, **{k: v for k, v in given.items() if k in base}}
    for name in SECRET_SETTINGS:
        if _none(merged[name]) and environ.get(secret_variable(name)):
            merged[name] = environ[secret_variable(name)]
    _printable(merged)
    values = {name: declared.check(merged, name) for name, declared in declarations().items()}
    _relations(values)
    return Settings(**{f.name: values[setting_name(f.name)] for f in fields(Settings)})
