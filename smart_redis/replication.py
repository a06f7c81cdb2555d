"""A Redis server as part of a replication topology that Sentinel runs.

The inventory names the primary for the first provisioning only. From then on Sentinel decides:
the deploy asks the sentinels where the primary is now and writes that into redis.conf for the
next start; it never sends REPLICAOF to a running server, and it keeps Redis (and so Sentinel's
CONFIG REWRITE) from rewriting redis.conf, which would inline masterauth and reformat the file.
"""

from __future__ import annotations

import hashlib
import shlex
from collections import Counter
from collections.abc import Mapping

from pyinfra import host, logger
from pyinfra.api import FactBase, OperationError
from pyinfra.api.operation import OperationMeta

from . import rotation, run, tls
from .constants import PATHS
from .facts import HostState
from .host.secret_files import masterauth
from .operations import file_state, managed_file, operation, reload_units
from .render import render
from .settings import Settings, ip_address
from .tools import step
from .topology import Topology


def ha_dropin() -> str:
    return render("ha-dropin.conf.j2", config=run.server().config)


class SentinelPrimary(FactBase[list[str]]):
    """Each reachable sentinel's answer to "where is the primary?", as "ADDRESS PORT" lines."""

    def command(self, sentinels: tuple[str, ...], port: int, master_name: str, tls: str = "") -> str:
        """tls: redis-cli's TLS options for the sentinels (tls.sentinel_cli)."""
        ask = (
            f'REDISCLI_AUTH="$REDIS_SENTINEL_PASSWORD" timeout 3 {run.server().cli} --no-auth-warning '
            f'--user "$REDIS_SENTINEL_USER" {tls + " " if tls else ""}-h "$s" -p {int(port)} --raw '
            "sentinel get-master-addr-by-name "
            f"{shlex.quote(master_name)}"
        )
        return (
            f"( . {PATHS.credentials} 2>/dev/null || exit 0; for s in {' '.join(map(shlex.quote, sentinels))}; do "
            f'a=$({ask} 2>/dev/null | tr "\\n" " "); echo "answer=$a"; done ) 2>/dev/null; true'
        )

    @staticmethod
    def default() -> list[str]:
        return []  # no credentials file yet: nobody was asked

    def process(self, output) -> list[str]:
        """ "ADDRESS PORT" per answering sentinel, the reply text of a refusing one, nothing for silence."""
        return [" ".join(line.partition("=")[2].split()) for line in output if line.partition("=")[2].strip()]


REFUSED = ("NOAUTH", "WRONGPASS", "NOPERM", "ERR")


def shown(answer: str) -> str:
    """A remote answer as one short printable line."""
    text = "".join(c if c.isprintable() else "?" for c in answer)
    return text[:80] + ("..." if len(text) > 80 else "")


def primary_address(answer: str) -> str | None:
    """ "ADDRESS PORT" in normal form when a sentinel's answer is an IP address and a port, else None.

    The answer is a remote server's: it goes into redis.conf and into commands, so nothing else passes.
    """
    fields = answer.split()
    if len(fields) != 2 or not fields[1].isdigit() or not 1 <= int(fields[1]) <= 65535:
        return None
    address = ip_address(fields[0])
    return f"{address} {int(fields[1])}" if address else None


def decide(answers: list[str], sentinels: int, member: bool = False) -> str | None:
    """The primary the sentinels report: the one they agree on, or else a majority's; None if none answers.

    answers: SentinelPrimary's lines; sentinels: how many the group has; member: the host has
    joined the group before, so it follows nothing less than a majority of the group (a group
    being built may start its sentinels one by one). Raises ValueError (one line) when they
    refuse the group's credentials, answer something that is not an address, or no majority
    agrees: writing any answer then could undo a failover.
    """
    refused = [a for a in answers if a.startswith(REFUSED)]
    if refused:
        raise ValueError(
            f"a sentinel answered with an error ({shown(refused[0])}): are redis_ha_secrets_file and "
            "redis_ha_master_name the group's own?"
        )
    addresses = [primary_address(a) for a in answers]
    valid = [a for a in addresses if a is not None]
    if len(valid) != len(addresses):
        odd = answers[addresses.index(None)]
        raise ValueError(f"a sentinel answered {shown(odd)!r}, which is not an IP address and a port: the run stops")
    if not valid:
        return None
    ((winner, votes),) = Counter(valid).most_common(1)
    if member and votes * 2 <= sentinels:
        raise ValueError(
            f"only {votes} of {sentinels} sentinels name the primary {winner.replace(' ', ':')}: a member of the group "
            "follows a majority only; look at redis-monitor status before deploying"
        )
    if votes != len(valid) and votes * 2 <= sentinels:
        raise ValueError(
            f"the sentinels disagree on the primary ({'; '.join(valid)}) and no majority of {sentinels} "
            "agrees: look at redis-monitor status before deploying"
        )
    return winner


def primary_now(settings: Settings, topology: Topology, quiet: bool = False, member: bool = False) -> str | None:
    """ "ADDRESS PORT" of the primary the sentinels report, or None when none answers.

    Asked at execution time (from inside an operation), so that a host rebuilt after a failover
    already has redis-cli and the credentials when it asks. member: the host has joined before,
    so silence means "keep what redis.conf says", not "a new group".
    """
    if not topology.ha:
        return None
    answers = host.get_fact(
        SentinelPrimary,
        sentinels=topology.sentinels,
        port=settings.sentinel_port,
        master_name=settings.ha_master_name,
        tls=tls.sentinel_cli(settings),
    )
    try:
        winner = decide(answers, len(topology.sentinels), member=member)
    except ValueError as exc:
        raise OperationError(str(exc)) from None
    if winner is not None:
        require_in_group(winner, topology, "the sentinels name")
    if quiet:
        return winner
    if winner is None and member:
        host.log("No sentinel answers: redis.conf keeps the primary it names", logger.warning)
    elif winner is None:
        host.log(
            f"No sentinel answers yet: a new group, so the inventory's primary ({topology.primary}) it is",
            logger.warning,
        )
    elif winner.split()[0] != topology.primary:
        host.log(
            f"Sentinel reports the primary at {winner} (the inventory says {topology.primary}): following Sentinel",
            logger.info,
        )
    return winner


def require_in_group(primary: str, topology: Topology, who: str) -> None:
    """Stop the run (one line) unless "ADDRESS PORT" is a Redis server of the inventory's group.

    Only the inventory is trusted: a hello forged on Sentinel's channel names any address.
    who: whose answer it was, as the line says it ("the sentinels name").
    """
    if not in_group(primary, topology):
        raise OperationError(
            f"{who} the primary {primary.replace(' ', ':')}, which is no Redis server of the group in "
            f"the inventory ({', '.join(topology.servers)}): the run stops; look at redis-monitor status"
        )


def in_group(primary: str, topology: Topology) -> bool:
    """Whether "ADDRESS PORT" is on one of the group's Redis servers, as the inventory names them.
    (Not the port: while a port change rolls through the group, the primary may still use the old.)"""
    return ip_address(primary.split()[0]) in {ip_address(server) for server in topology.servers}


def replicaof(settings: Settings, topology: Topology, primary: str | None) -> str | None:
    """What redis.conf says this host replicates from: Sentinel's primary, else the inventory's."""
    if topology.role == "standalone":
        return None
    current = primary or f"{topology.primary} {settings.port}"
    return None if current.split()[0] == topology.address else current


@operation()
def replication_auth(given: Mapping[str, str], rotating: bool = False):
    """
    Write masterauth into its own root:redis 0640 file, composed on the host from the credentials.

    + given: the shared passwords (only the hash of the expected file is compared here)
    + rotating: a password rotation runs: the running server gets it too (CONFIG SET), first

    **Example:**

    .. code:: python

        replication_auth(given=auth.shared_passwords(settings, topology))
    """
    current = file_state(run.server().replication_auth)
    wanted = hashlib.sha256(masterauth(given["REPLICATION"]).encode()).hexdigest()
    if current is not None and (current.user, current.group, current.mode, current.sha256) == (
        "root",
        run.server().group,
        "640",
        wanted,
    ):
        host.noop("masterauth is in place")
        return
    if rotating:
        rotation.require_group_intact()
    yield step(
        "masterauth", run.server().replication_auth, "--group", run.server().group, *(["--running"] if rotating else [])
    )


def replica_setup(
    topology: Topology, given: Mapping[str, str], facts: HostState, rotating: bool = False, moving: bool = False
) -> bool:
    """masterauth and the read-only config file; True while the host has not joined yet.

    Joined means: redis.conf is the replicated one, which the config step writes last, so a
    run that failed half-way is still joining the next time. moving: the host moves to the other
    server (move.py), whose config is written by the move: the old server's says it.
    """
    if not topology.replicated:
        return False
    replication_auth(name="Let this server log in to the primary (masterauth)", given=given, rotating=rotating)
    dropin: OperationMeta = managed_file(
        name=f"Keep {run.server().service} from rewriting {run.server().config}",
        dest=run.server().ha_dropin,
        content=ha_dropin(),
    )
    reload_units(run.server().service, dropin, facts=facts)
    return not (facts.ha_member or (moving and facts.other_ha_member))
