"""Compare a rendered redis.conf with what the running server uses, and plan how to get there.

Pure functions: `directives(text)` reads a config file, `plan(desired, live, ...)` says which
settings differ, which of them Redis can take at runtime (CONFIG SET, ACL SETUSER) and which
force a restart.

    >>> plan(directives(new_text), live_values, old_acl=..., new_acl=...)
    Plan(changed={'maxmemory': ('536870912', '268435456')}, restart_for=[], ...)
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field

from .host.server import TLS_FILE_RE
from .settings import MEMORY_RE, memory_bytes

# Settings that Redis reads at startup only, or that this deploy chooses to restart for:
# everything else in the template is applied with CONFIG SET.
RESTART_REQUIRED = frozenset(
    {
        "port",
        "databases",
        "supervised",
        "daemonize",
        "unixsocket",
        "unixsocketperm",
        "io-threads",
        "tcp-backlog",
        "rename-command",
        "pidfile",
        "logfile",
        "rdbchecksum",
        "disable-thp",
        "always-show-logo",
        "set-proc-title",
        "syslog-enabled",
        "cluster-enabled",
        "aclfile",
    }
)
# Sentinel owns who replicates from whom: the deploy writes it into the file for the next start,
# and never applies it to a running server.
TOPOLOGY = frozenset({"replicaof", "slaveof", "include"})
# CONFIG GET answers A for all of these at once.
ALL_EVENT_CLASSES = set("g$lshzxetd")


@dataclass
class Plan:
    changed: dict[str, tuple[str, str]] = field(default_factory=dict)  # name -> (live, declared)
    acl_changes: list[str] = field(default_factory=list)  # ACL SETUSER / DELUSER argument lists
    restart_for: list[str] = field(default_factory=list)  # why a restart is needed

    @property
    def runtime_settings(self) -> dict[str, str]:
        return {name: declared for name, (_, declared) in self.changed.items() if name not in RESTART_REQUIRED}


def directives(text: str) -> dict[str, str]:
    """Config directives (not users) as name -> value, quotes removed, as CONFIG GET shows them."""
    result = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        name, _, value = line.partition(" ")
        if name == "user":
            continue
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] == '"':
            value = value[1:-1]
        result[name.lower()] = value
    return result


PORT_RE = re.compile(r"[0-9]{1,5}")


class ForeignConfig(ValueError):
    """redis.conf names something the deploy did not write."""


def _port(value: str | None, default: int) -> int:
    return int(value) if value is not None and PORT_RE.fullmatch(value) and int(value) <= 65535 else default


def endpoint(conf: dict[str, str], default_port: int) -> tuple[int, str | None]:
    """Where a config's server listens for the deploy's redis-cli, and the TLS options it needs:
    with redis_tls = "only" (port 0) its TLS port, logged in with the server's own certificate.

    redis.conf is writable by the redis user: a TLS path that is not one of the deploy's own
    raises ForeignConfig rather than reach a root shell."""
    port = _port(conf.get("port"), default_port)
    tls_port = _port(conf.get("tls-port"), 0)
    if port or not tls_port:
        return port or default_port, None
    files = [conf.get(name, "") for name in ("tls-ca-cert-file", "tls-cert-file", "tls-key-file")]
    strange = next((path for path in files if not TLS_FILE_RE.fullmatch(path)), None)
    if strange is not None:
        raise ForeignConfig(
            f"redis.conf names a TLS file the deploy did not write: {strange[:100]!r} (a server set up by hand: "
            "give it a plain port in redis.conf, restart it, and run the deploy with the redis_tls you want)"
        )
    ca, cert, key = files
    # A certificate only where the server requires one: with "optional" a run stopped in the
    # middle of a CA change (the server already on the new CA) still logs in.
    shown = f" --cert {cert} --key {key}" if conf.get("tls-auth-clients", "yes") == "yes" else ""
    return tls_port, f"--tls --cacert {ca}{shown}"


def acl_lines(text: str) -> dict[str, str]:
    """user name -> the rest of its `user` line."""
    users = {}
    for line in text.splitlines():
        if line.startswith("user "):
            _, name, rules = line.split(" ", 2)
            users[name] = rules
    return users


def parse_config_get(csv_line: str) -> dict[str, str]:
    """`redis-cli --csv CONFIG GET *` output -> name -> value."""
    fields = next(csv.reader([csv_line], escapechar="\\")) if csv_line.strip() else []
    return dict(zip(fields[0::2], fields[1::2], strict=False))


def _normal(name: str, value: str) -> str | frozenset:
    value = " ".join(value.split())
    if name == "notify-keyspace-events":
        flags = set(value)
        if "A" in flags:
            flags = (flags - {"A"}) | ALL_EVENT_CLASSES
        return frozenset(flags)
    if name == "maxmemory" and MEMORY_RE.match(value):
        return str(memory_bytes(value))
    return value.lower() if value.lower() in ("yes", "no") else value


SECRET = re.compile(r" ?#[0-9a-f]{64}")


def plan(
    desired: dict[str, str],
    live: dict[str, str],
    old_acl: dict[str, str],
    new_acl: dict[str, str],
    passwords_apart: bool = False,
) -> Plan:
    """passwords_apart: a user whose line differs only in its password hashes needs no runtime
    change (a rotation's own steps change passwords, the old one kept until nothing uses it)."""
    result = Plan()
    for name, value in desired.items():
        if name in TOPOLOGY or name not in live:
            continue  # not a runtime-visible setting (or unknown to this Redis): the file carries it
        if _normal(name, value) != _normal(name, live[name]):
            result.changed[name] = (live[name], value)
            if name in RESTART_REQUIRED:
                result.restart_for.append(f"{name} ({live[name]} -> {value})")
    for user, rules in new_acl.items():
        old = old_acl.get(user)
        if passwords_apart and old is not None and SECRET.sub("", old) == SECRET.sub("", rules):
            continue
        if old != rules:
            result.acl_changes.append(f"SETUSER {user} reset {rules}")
    for user in old_acl.keys() - new_acl.keys():
        result.acl_changes.append(f"DELUSER {user}")
    return result
