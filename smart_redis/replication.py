"""A Redis server as part of a replication topology that Sentinel runs.

The inventory names the primary for the first provisioning only. From then on Sentinel decides:
the deploy asks the sentinels where the primary is now and writes that into redis.conf for the
next start; it never sends REPLICAOF to a running server, and it keeps Redis (and so Sentinel's
CONFIG REWRITE) from rewriting redis.conf, which would inline masterauth and reformat the file.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from typing import Mapping

from pyinfra import host, logger
from pyinfra.api import FactBase, OperationError, operation
from pyinfra.api.operation import OperationMeta
from pyinfra.operations import systemd

from .constants import CONFIG_GROUP, PATHS, SERVICE, SHARED_ROLES
from .facts import HostState
from .operations import host_changes, host_state, managed_file
from .settings import Settings, SettingsError
from .topology import Topology

HA_DROPIN = f"[Service]\n# The deploy owns this file; Sentinel's CONFIG REWRITE must not replace it.\nReadOnlyPaths={PATHS.config}\n"


class SentinelPrimary(FactBase):
    """Each reachable sentinel's answer to "where is the primary?", as "ADDRESS PORT" lines."""

    def command(self, sentinels: tuple[str, ...], port: int, master_name: str) -> str:
        ask = (
            f'REDISCLI_AUTH="$REDIS_SENTINEL_PASSWORD" timeout 3 redis-cli --no-auth-warning '
            f'--user "$REDIS_SENTINEL_USER" -h "$s" -p {port} --raw sentinel get-master-addr-by-name {master_name}'
        )
        return (
            f"( . {PATHS.credentials} 2>/dev/null || exit 0; for s in {' '.join(sentinels)}; do "
            f'a=$({ask} 2>/dev/null | tr "\\n" " "); echo "answer=$a"; done ) 2>/dev/null; true'
        )

    def process(self, output) -> list[str]:
        answers = []
        for line in output:
            words = line.partition("=")[2].split()
            if len(words) == 2 and words[1].isdigit():
                answers.append(" ".join(words))
        return answers


def primary_now(settings: Settings, topology: Topology, quiet: bool = False, member: bool = False) -> str | None:
    """ "ADDRESS PORT" of the primary that a majority of the sentinels reports, or None before any runs.

    Asked at execution time (from inside an operation), so that a host rebuilt after a failover
    already has redis-cli and the credentials when it asks. A host that is a member already
    (member=True) gets no fallback: silence from every sentinel stops the run.
    """
    if not topology.ha:
        return None
    answers = host.get_fact(
        SentinelPrimary, sentinels=topology.sentinels, port=settings.sentinel_port, master_name=settings.ha_master_name
    )
    if not answers and member:
        raise OperationError(
            f"none of the sentinels ({', '.join(topology.sentinels)}) answers where the primary is: "
            "bring them back (redis-monitor status) before deploying"
        )
    if not answers:
        return None
    (winner, votes), = Counter(answers).most_common(1)
    if votes * 2 <= len(topology.sentinels):
        # Writing either answer could undo a failover at the next restart: stop instead.
        raise OperationError(
            f"no majority of the {len(topology.sentinels)} sentinels reports one primary ({'; '.join(answers)}): "
            "bring the sentinels back (redis-monitor status) before deploying"
        )
    if winner.split()[0] != topology.primary and not quiet:
        host.log(f"Sentinel reports the primary at {winner} (the inventory says {topology.primary}): following Sentinel", logger.info)
    return winner


def replicaof(settings: Settings, topology: Topology, primary: str | None) -> str | None:
    """What redis.conf says this host replicates from: Sentinel's primary, else the inventory's."""
    if topology.role == "standalone":
        return None
    current = primary or f"{topology.primary} {settings.port}"
    return None if current.split()[0] == topology.address else current


def refuse_rotation(topology: Topology, given: Mapping[str, str], facts: HostState) -> None:
    """Stop before touching a host of the topology whose shared passwords would change.

    A new password would reach the ACL at once, but not the replicas' masterauth in memory nor
    sentinel.conf (which Sentinel owns): replication and failover would break at the next
    reconnect. A host that is only joining adopts the group's passwords.
    """
    if not topology.ha or PATHS.ha_dropin not in facts.files:
        return
    for role in SHARED_ROLES:
        stored = facts.secret_hashes.get(role)
        if stored and role in given and hashlib.sha256(given[role].encode()).hexdigest() != stored:
            raise SettingsError(
                f"the {role} password differs from the one this host of the Sentinel topology uses: allowed is "
                "the group's current password (rotating it is not supported yet, see README)"
            )


def _auth_content(password: str) -> str:
    return f"# Written by the smart-redis deploy from {PATHS.credentials}.\nmasterauth {password}\n"


@operation()
def replication_auth(given: Mapping[str, str]):
    """
    Write masterauth into its own root:redis 0640 file, composed on the host from the credentials.

    + given: the shared passwords (only the hash of the expected file is compared here)

    **Example:**

    .. code:: python

        replication_auth(given=auth.shared_passwords(settings, topology))
    """
    current = host_state().files.get(PATHS.replication_auth)
    wanted = hashlib.sha256(_auth_content(given["REPLICATION"]).encode()).hexdigest()
    if current is not None and (current.user, current.group, current.mode, current.sha256) == ("root", CONFIG_GROUP, "640", wanted):
        host.noop("masterauth is in place")
        return
    host_changes()
    target = PATHS.replication_auth
    # printf is a shell builtin: the password is in no process's arguments.
    yield (
        f"set -e; umask 027; ( . {PATHS.credentials}; printf '# Written by the smart-redis deploy from %s.\\nmasterauth %s\\n' "
        f'{PATHS.credentials} "$REDIS_REPLICATION_PASSWORD" ) > {target}.new; '
        f"chown root:{CONFIG_GROUP} {target}.new; chmod 640 {target}.new; mv -f {target}.new {target}"
    )


def replica_setup(settings: Settings, topology: Topology, given: Mapping[str, str], facts: HostState) -> bool:
    """masterauth and the read-only config file; True when the host joins the topology in this run."""
    if not topology.ha:
        return False
    replication_auth(name="Let this server log in to the primary (masterauth)", given=given)
    dropin: OperationMeta = managed_file(name=f"Keep {SERVICE} from rewriting {PATHS.config}", dest=PATHS.ha_dropin, content=HA_DROPIN)
    systemd.daemon_reload(name="Reload systemd units", _if=dropin.did_change)
    return PATHS.ha_dropin not in facts.files
