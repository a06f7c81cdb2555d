"""Replication and the sentinels: who is primary, who agrees, whether a failover could happen."""

from __future__ import annotations

import ipaddress

from .credentials import read_credentials
from .levels import CRITICAL, OK, WARNING
from .resp import Redis, RedisError
from .server import tls_context


def replication_view(info: dict) -> dict:
    """This server's side of replication, from INFO: its primary, or its replicas."""
    if info.get("role") == "slave":
        return {
            "primary": f"{info.get('master_host')}:{info.get('master_port')}",
            "link": info.get("master_link_status"),
        }
    replicas = []
    for n in range(int(info.get("connected_slaves", 0))):
        fields = dict(part.split("=", 1) for part in info.get(f"slave{n}", "").split(",") if "=" in part)
        replicas.append(f"{fields.get('ip')}:{fields.get('port')} ({fields.get('state')}, lag {fields.get('lag')}s)")
    return {"connected_replicas": len(replicas), "replicas": ", ".join(replicas) or "none"}


def sentinel_view(config: dict) -> dict:
    """Each sentinel's answer to "where is the primary?", or why it gave none."""
    ha = config["ha"]
    creds = read_credentials(config["credentials"])
    view = {}
    for address in ha["sentinels"]:
        try:
            s = Redis(
                address,
                ha["sentinel_port"],
                creds["REDIS_ADMIN_USER"],
                creds["REDIS_ADMIN_PASSWORD"],
                timeout=2,
                tls=tls_context(ha["sentinel_port"]),
            )
            reply = s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", ha["master_name"])
            view[f"{address}:{ha['sentinel_port']}"] = ":".join(reply) if reply else "does not know the primary"
        except (OSError, RedisError) as exc:
            view[f"{address}:{ha['sentinel_port']}"] = f"no answer ({exc})"
    return view


def replication_checks(view: dict, info: dict, servers: list[str] | None = None, own: str | None = None) -> list[tuple]:
    """The group as a whole, against the inventory's group (not only what answers):

    sentinels: CRITICAL when fewer than a majority agree on the primary (a failover could not
    happen), WARNING when a majority agree and another one does not answer or still names another
    primary (as during a failover; each named), OK when all agree. replication, on the primary: CRITICAL
    without a replica, WARNING when a server of the group is not among its replicas (naming it);
    on a replica: WARNING while its link to the primary is down.

    view: sentinel_view(); info: this server's INFO replication (empty when it does not answer);
    servers, own: the addresses of the group's Redis servers and of this host (monitor.json's ha)
    """
    named = [v for v in view.values() if ":" in v and not v.startswith("no answer")]
    primary = max(set(named), key=named.count) if named else None
    agree = named.count(primary) if primary else 0
    silent = sorted(k for k, v in view.items() if v.startswith("no answer") or v == "does not know the primary")
    stale = sorted(f"{k} names {v}" for k, v in view.items() if v in named and v != primary)
    quorum = len(view) // 2 + 1
    if agree < quorum:
        said = ", ".join(f"{k} says {v}" for k, v in view.items())
        checks = [("sentinels", CRITICAL, f"only {agree} of {len(view)} agree (a failover needs {quorum}): {said}")]
    elif silent or stale:
        apart = [*([f"{', '.join(silent)} not answering"] if silent else []), *stale]
        checks = [("sentinels", WARNING, f"{agree} of {len(view)} agree on {primary}; {'; '.join(apart)}")]
    else:
        checks = [("sentinels", OK, f"{agree} of {len(view)} agree: primary {primary}")]
    if info.get("role") == "master":
        connected = {r.split(":")[0] for r in _replica_addresses(info)}
        missing = sorted(set(servers or ()) - connected - {own}, key=_address_key)
        level = CRITICAL if not connected else WARNING if missing else OK
        said = f"primary with {len(connected)} connected replica(s)"
        checks.append(("replication", level, said + (f"; not connected: {', '.join(missing)}" if missing else "")))
    elif info:
        link = info.get("master_link_status")
        checks.append(
            (
                "replication",
                OK if link == "up" else WARNING,
                f"replica of {info.get('master_host')}:{info.get('master_port')}, link {link}",
            )
        )
    return checks


def _replica_addresses(info: dict) -> list[str]:
    """The replicas a primary's INFO lists, as "IP:PORT"."""
    found = []
    for n in range(int(info.get("connected_slaves", 0))):
        fields = dict(part.split("=", 1) for part in info.get(f"slave{n}", "").split(",") if "=" in part)
        found.append(f"{fields.get('ip')}:{fields.get('port')}")
    return found


def _address_key(address: str) -> tuple:
    """IP addresses in numeric order, names after them."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return (1, 0, 0, address)
    return (0, ip.version, int(ip), address)


def group_reporter(view: dict, own: str) -> bool:
    """Whether this host speaks for the group: the lowest address among the sentinels that answer
    is its own. Every host sees the same answers, so one message per group event, not one per host."""
    answering = sorted(
        (k.rsplit(":", 1)[0] for k, v in view.items() if not v.startswith("no answer")),
        key=_address_key,
    )
    return bool(answering) and answering[0] == own
