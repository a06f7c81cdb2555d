"""Where this host stands in the replication topology, read from the inventory's groups.

Groups: `redis_primary` (one host), `redis_replicas`, `redis_sentinels` (three or more). A host
in none of them is a single server, as before. The inventory names who is primary at first
provisioning only; after a failover Sentinel decides, and the deploy follows it (see config.py).

    >>> build("db2", {"redis_primary": ["db1"], "redis_replicas": ["db2", "db3"],
    ...               "redis_sentinels": ["db1", "db2", "db3"]}, {"db1": "10.0.0.1", ...}, settings)
    Topology(role='replica', address='10.0.0.2', primary='10.0.0.1', sentinels=(...), runs_sentinel=True)
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

from pyinfra.context import ctx_host

from . import run
from .operations import host_state
from .settings import Settings, SettingsError, defaults, ip_address, operator_path

GROUPS = run.GROUPS
MIN_SENTINELS = 3


@dataclass(frozen=True)
class Topology:
    role: str  # "standalone", "primary" or "replica" (as the inventory says: first provisioning)
    address: str | None = None  # how the other hosts and the apps reach this one
    primary: str | None = None  # the inventory's primary
    sentinels: tuple[str, ...] = ()  # addresses of every sentinel
    servers: tuple[str, ...] = ()  # addresses of the group's Redis servers: the primary and the replicas
    runs_sentinel: bool = False
    group: bool = False  # the inventory has a Sentinel group (this host may still be outside it)
    members: int = 1  # Redis servers of the group: the primary and the replicas
    listen_also: str | None = None  # the host's own address, found on it, that redis_bind lacks

    @property
    def ha(self) -> bool:
        """Part of a Sentinel group: keeps the group's users and passwords."""
        return self.role != "standalone" or self.runs_sentinel

    @property
    def replicated(self) -> bool:
        """This host's Redis replicates (primary or replica); a sentinel-only host's Redis does not."""
        return self.role != "standalone"

    @property
    def quorum(self) -> int:
        """Sentinels that must agree the primary is down: a majority, so two halves never both fail over."""
        return len(self.sentinels) // 2 + 1


def build(
    this: str,
    groups: Mapping[str, list[str]],
    addresses: Mapping[str, str | None],
    settings: Settings,
    found: Mapping[str, tuple[str, ...] | None] | None = None,
    servers: Mapping[str, str] | None = None,
) -> Topology:
    """The topology for host `this`; raises SettingsError (one line) for an inconsistent inventory.

    addresses: each host's redis_ha_address as set; found: for a host without one whose name is
    no IP address, the addresses found on it (None: not asked in this run, nor recorded before);
    servers: each host's redis_server as its data sets it (this host's: settings.server).
    """
    found = found or {}
    primary, replicas, sentinels = (list(groups.get(g, [])) for g in GROUPS)
    if not (primary or replicas or sentinels):
        return Topology("standalone")
    if len(primary) != 1:
        raise SettingsError(
            f"redis_primary = {primary}: allowed is exactly one host when redis_replicas or redis_sentinels is used"
        )
    if primary[0] in replicas:
        raise SettingsError(f"redis_replicas = {replicas}: allowed are hosts other than the primary {primary[0]}")
    if len(sentinels) < MIN_SENTINELS:
        raise SettingsError(
            f"redis_sentinels = {sentinels}: allowed is at least {MIN_SENTINELS} hosts, so that a majority "
            "survives the loss of one"
        )
    if this not in primary + replicas + sentinels:
        return Topology("standalone", group=True)
    if settings.auth != "acl":
        raise SettingsError('redis_auth = "none": allowed is "acl" on hosts of the replication topology')
    members = dict.fromkeys(primary + replicas + sentinels)
    named = {settings.server.name} | {(servers or {}).get(name, settings.server.name) for name in members}
    if len(named) > 1:
        # A replica loads its primary's data file, and a sentinel follows one server's protocol:
        # one server for the whole group (a group moves to the other one in one run, move.py).
        raise SettingsError(
            f"redis_server = {settings.server.name!r}: allowed is the same server on every host of the "
            f"Sentinel group, whose hosts name {' and '.join(repr(name) for name in sorted(named))}"
        )

    def address(name: str) -> str:
        if not addresses.get(name) and ip_address(name) is None and name in found:
            return _found_address(name, found[name])
        value = addresses.get(name) or name
        normal = ip_address(value)
        if normal is None:
            # Sentinel reports and compares addresses, not names.
            raise SettingsError(
                f"redis_ha_address of {name} = {value!r}: allowed is an IP address without a zone id "
                "(set it in the host's data)"
            )
        return normal

    found_addresses = {name: address(name) for name in dict.fromkeys(primary + replicas + sentinels)}
    if len(set(found_addresses.values())) != len(found_addresses):
        raise SettingsError(f"redis_ha_address = {sorted(found_addresses.values())}: allowed is one address per host")
    own = found_addresses[this]
    derived = not addresses.get(this) and ip_address(this) is None and this in found
    listen_also = own if derived and not _listens_on(settings.bind, own) else None
    if this in primary + replicas and not derived and not _listens_on(settings.bind, own):
        raise SettingsError(
            f"redis_bind = {settings.bind!r}: allowed is a list that includes {own} (redis_ha_address), "
            "so that replicas and sentinels reach this host"
        )
    role = "primary" if this in primary else "replica" if this in replicas else "standalone"
    if role == "replica" and settings.restore_from is not None:
        raise SettingsError(
            f"redis_restore_from = {settings.restore_from!r}: allowed on a single server or the primary only; "
            "a replica gets its data from the primary"
        )
    return Topology(
        role=role,
        address=own,
        primary=found_addresses[primary[0]],
        sentinels=tuple(found_addresses[name] for name in sentinels),
        servers=tuple(found_addresses[name] for name in primary + replicas),
        runs_sentinel=this in sentinels,
        group=True,
        members=1 + len(replicas),
        listen_also=listen_also if role != "standalone" else None,
    )


def _found_address(name: str, seen: tuple[str, ...] | None) -> str:
    if seen is None:
        raise SettingsError(
            f"redis_ha_address of {name}: not set, and {name} is not part of this run (--limit) nor seen by an "
            "earlier one: allowed is its IP address, set in the host's data"
        )
    if len(seen) != 1:
        raise SettingsError(
            f"redis_ha_address of {name}: not set, and {name} has {len(seen)} addresses "
            f"({', '.join(seen) or 'none'}): allowed is the one the others reach it by, set in the host's data"
        )
    return seen[0]


def with_own_address(settings: Settings, topology: Topology) -> Settings:
    """The settings with the host's own address (found on it) added to redis_bind, so that the
    replicas, the sentinels and the apps reach it."""
    if topology.listen_also is None:
        return settings
    return replace(settings, bind=f"{settings.bind} {topology.listen_also}")


def _listens_on(bind: str, address: str) -> bool:
    bound = [a.lstrip("-") for a in bind.split()]
    return address in bound or any(wildcard in bound for wildcard in ("*", "0.0.0.0", "::*"))


def load(host, inventory, settings: Settings) -> Topology:
    """The topology of the pyinfra host being deployed."""
    groups = {g: [h.name for h in inventory.get_group(g, [])] for g in GROUPS}
    addresses = {h.name: h.data.get("redis_ha_address") for h in inventory}
    addresses = {name: (None if value in (None, "None", "") else str(value)) for name, value in addresses.items()}
    members = {name for names in groups.values() for name in names}
    unset = sorted(name for name in members if not addresses.get(name) and ip_address(name) is None)
    found = _addresses_found(host, inventory, unset, settings) if unset else {}
    # Another host's setting as its data has it, unset meaning the default; validated on that host.
    default = defaults()["redis_server"]
    servers = {h.name: str(h.data.get("redis_server") or default) for h in inventory if h.name in members}
    servers[host.name] = settings.server.name
    return build(host.name, groups, addresses, settings, found, servers)


def _addresses_found(this, inventory, names: list[str], settings: Settings) -> dict[str, tuple[str, ...] | None]:
    """Each host's own addresses, from its RedisHost answer (asked once per run, so the host's
    own steps ask nothing more); a host outside this run (--limit) from what an earlier run saw,
    kept beside the group's shared secrets."""
    record = operator_path(settings.ha_secrets_file).with_name("redis-ha.addresses.json")
    try:
        loaded = json.loads(record.read_text())
    except (OSError, ValueError):
        loaded = {}
    # Only what this code would have written: a host name and its one address, in normal form.
    known: dict[str, list[str]] = {}
    for name, seen in loaded.items() if isinstance(loaded, dict) else ():
        normal = ip_address(seen[0]) if isinstance(seen, list) and len(seen) == 1 and isinstance(seen[0], str) else None
        if normal:
            known[name] = [normal]
    found: dict[str, tuple[str, ...] | None] = {}
    current = dict(known)
    for name in names:
        other = inventory.get_host(name, None)
        if other is not None and (other.name == this.name or getattr(other, "connected", False)):
            with ctx_host.use(other):
                found[name] = host_state().addresses
            # What the host says now replaces the record: its one address, or nothing to go by.
            if len(found[name] or ()) == 1:
                current[name] = list(found[name] or ())
            else:
                current.pop(name, None)
        else:
            seen = known.get(name)
            found[name] = tuple(seen) if isinstance(seen, list) else None
    if current != known:  # written when the run executes: --dry and a declined prompt leave it
        run.write_locally(str(record), lambda: _write_record(record, current))
    return found


def _write_record(record: Path, addresses: dict[str, list[str]]) -> None:
    record.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    new = record.with_name(f".{record.name}.{os.getpid()}")
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(addresses, f, indent=1, sort_keys=True)
    os.replace(new, record)  # never a half-written record, also with two runs at once
