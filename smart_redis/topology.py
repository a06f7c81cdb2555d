"""Where this host stands in the replication topology, read from the inventory's groups.

Groups: `redis_primary` (one host), `redis_replicas`, `redis_sentinels` (three or more). A host
in none of them is a single server, as before. The inventory names who is primary at first
provisioning only; after a failover Sentinel decides, and the deploy follows it (see config.py).

    >>> build("db2", {"redis_primary": ["db1"], "redis_replicas": ["db2", "db3"],
    ...               "redis_sentinels": ["db1", "db2", "db3"]}, {"db1": "10.0.0.1", ...}, settings)
    Topology(role='replica', address='10.0.0.2', primary='10.0.0.1', sentinels=(...), runs_sentinel=True)
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from .settings import Settings, SettingsError, ip_address

GROUPS = ("redis_primary", "redis_replicas", "redis_sentinels")
MIN_SENTINELS = 3


@dataclass(frozen=True)
class Topology:
    role: str  # "standalone", "primary" or "replica" (as the inventory says: first provisioning)
    address: str | None = None  # how the other hosts and the apps reach this one
    primary: str | None = None  # the inventory's primary
    sentinels: tuple[str, ...] = ()  # addresses of every sentinel
    runs_sentinel: bool = False
    group: bool = False  # the inventory has a Sentinel group (this host may still be outside it)
    members: int = 1  # Redis servers of the group: the primary and the replicas

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
    this: str, groups: Mapping[str, list[str]], addresses: Mapping[str, str | None], settings: Settings
) -> Topology:
    """The topology for host `this`; raises SettingsError (one line) for an inconsistent inventory."""
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

    def address(name: str) -> str:
        value = addresses.get(name) or name
        normal = ip_address(value)
        if normal is None:
            # Sentinel reports and compares addresses, not names.
            raise SettingsError(
                f"redis_ha_address of {name} = {value!r}: allowed is an IP address without a zone id "
                "(set it in the host's data)"
            )
        return normal

    found = {name: address(name) for name in dict.fromkeys(primary + replicas + sentinels)}
    if len(set(found.values())) != len(found):
        raise SettingsError(f"redis_ha_address = {sorted(found.values())}: allowed is one address per host")
    own = found[this]
    if this in primary + replicas and not _listens_on(settings.bind, own):
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
        primary=found[primary[0]],
        sentinels=tuple(found[name] for name in sentinels),
        runs_sentinel=this in sentinels,
        group=True,
        members=1 + len(replicas),
    )


def _listens_on(bind: str, address: str) -> bool:
    bound = [a.lstrip("-") for a in bind.split()]
    return address in bound or any(wildcard in bound for wildcard in ("*", "0.0.0.0", "::*"))


def load(host, inventory, settings: Settings) -> Topology:
    """The topology of the pyinfra host being deployed."""
    groups = {g: [h.name for h in inventory.get_group(g, [])] for g in GROUPS}
    addresses = {h.name: h.data.get("redis_ha_address") for h in inventory}
    addresses = {name: (None if value in (None, "None", "") else str(value)) for name, value in addresses.items()}
    return build(host.name, groups, addresses, settings)
