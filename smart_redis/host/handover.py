"""A planned handover: the primary of a Sentinel group gives its role to an in-sync replica
before it restarts, so the apps lose no acknowledged write and wait a second, not a failover.

Writes are paused on the primary (CLIENT PAUSE WRITE: clients wait, nothing fails) until every
replica has all of them; Sentinel then promotes one (SENTINEL FAILOVER, so every sentinel
agrees on the result), the old primary replicates from it, and the pause ends. The writes that
waited then get READONLY, which the clients' Sentinel support answers by asking the sentinels
again and retrying on the new primary.
"""

from __future__ import annotations

from collections.abc import Callable

from .credentials import read_credentials
from .resp import Redis, RedisError
from .restart import StepError, _poll
from .server import login, tls_context

# The pause ends with CLIENT UNPAUSE; this bound only matters if this program dies in between.
PAUSE_MS = 60_000
CATCH_UP_SECONDS = 5.0  # for the replicas to acknowledge every write of the paused primary
PROMOTION_SECONDS = 15.0  # for Sentinel to promote one (its own steps run once a second)
AGREE_SECONDS = 20.0  # for every sentinel to name the new primary


def replicas(info: dict[str, str]) -> list[tuple[str, int, str, int]]:
    """(ip, port, state, offset) of each replica that INFO replication of a primary lists."""
    found = []
    for key, value in info.items():
        if key.startswith("slave") and key[5:].isdigit():
            fields = dict(part.split("=", 1) for part in value.split(",") if "=" in part)
            found.append(
                (
                    fields.get("ip", ""),
                    int(fields.get("port", 0)),
                    fields.get("state", ""),
                    int(fields.get("offset", -1)),
                )
            )
    return found


def _until(seconds: float, ask: Callable[[], object]) -> object:
    return _poll(seconds, ask, every=0.05)  # the apps wait while this polls: look often


class Sentinels:
    """The group's sentinels, logged in as the Sentinel user."""

    def __init__(self, addresses: list[str], port: int, master_name: str):
        values = read_credentials()
        self.user, self.password = values["REDIS_SENTINEL_USER"], values["REDIS_SENTINEL_PASSWORD"]
        self.addresses, self.port, self.master_name = addresses, port, master_name

    def client(self, address: str) -> Redis:
        return Redis(address, self.port, self.user, self.password, timeout=3.0, tls=tls_context(self.port))

    def masters(self) -> dict[str, tuple[str, bool]]:
        """address -> ("IP PORT" of the primary, a failover in progress) of each answering sentinel,
        from SENTINEL MASTER: what client libraries read too, and it moves only when a failover ends."""
        seen = {}
        for address in self.addresses:
            try:
                reply = self.client(address).call("SENTINEL", "MASTER", self.master_name)
            except (OSError, RedisError):
                continue
            fields = dict(zip(reply[0::2], reply[1::2], strict=False)) if isinstance(reply, list) else {}
            if "ip" in fields:
                seen[address] = (
                    f"{fields['ip']} {fields.get('port')}",
                    "failover_in_progress" in fields.get("flags", ""),
                )
        return seen

    def agree_on(self, primary: str) -> bool:
        """A majority answers, and every sentinel that answers names `primary`, no failover running."""
        seen = self.masters()
        return len(seen) >= self.majority() and all(named == (primary, False) for named in seen.values())

    def majority(self) -> int:
        return len(self.addresses) // 2 + 1

    def failover(self) -> str:
        """Ask the first sentinel that answers (the apps ask the first one first, too). Only a
        sentinel that cannot be reached is skipped: any refusal (-INPROG, -NOGOODSLAVE) stops here,
        so that two sentinels never run two failovers."""
        for address in self.addresses:
            try:
                reply = self.client(address).call("SENTINEL", "FAILOVER", self.master_name)
            except OSError:
                continue
            except RedisError as exc:
                raise StepError(f"No handover: sentinel {address} refused the failover ({exc})") from None
            return address if reply == "OK" else ""
        raise StepError("No handover: no sentinel answers")


def hand_over(
    port: int, auth: str, me: str, members: list[str], sentinels: Sentinels, say: Callable[[str], None] = print
) -> str:
    """Move the primary role from this server (`me`, "IP PORT") to an in-sync replica; return the
    new primary as "IP PORT".

    members: the addresses of the group's Redis servers (the inventory's). A replica at any other
    address, whatever INFO says, is never logged in to nor followed. Raises StepError before
    anything changed when the group is not ready: a sentinel that answers does not name this
    server or runs a failover, or no member replica is online.
    """
    primary = login(port, auth)
    info = primary.info("replication")
    online = [(ip, p) for ip, p, state, _ in replicas(info) if state == "online" and ip in members]
    named = sentinels.masters()
    if info.get("role") != "master" or not online:
        raise StepError(f"No handover: this server is not a primary with a replica in sync ({len(online)} online)")
    if len(named) < sentinels.majority() or any(answer != (me, False) for answer in named.values()):
        raise StepError(f"No handover: the sentinels do not all name this server as the primary, at rest ({named})")

    say(f"Pausing writes on {me} until a replica has all of them")
    primary.call("CLIENT", "PAUSE", str(PAUSE_MS), "WRITE")
    asked = new = ""
    try:
        wanted = int(primary.info("replication")["master_repl_offset"])

        def caught_up() -> bool:
            # The offsets the replicas acknowledged, as the primary counts them: an app's WAIT
            # that was blocked when the pause began returns on these acknowledgements; after the
            # REPLICAOF below it would fail with -UNBLOCKED instead. Replicas acknowledge once a
            # second, so this takes up to a second.
            acked = {(ip, p): offset for ip, p, _, offset in replicas(primary.info("replication"))}
            return all(acked.get(member, -1) >= wanted for member in online)

        if not _until(CATCH_UP_SECONDS, caught_up):
            raise StepError(
                f"No handover: the replicas did not acknowledge offset {wanted} in {CATCH_UP_SECONDS:.0f} s"
            )
        asked = sentinels.failover()
        if not asked:
            raise StepError("No handover: Sentinel did not take the failover")
        say(f"Sentinel {asked} promotes a replica")
        found = _until(PROMOTION_SECONDS, lambda: _promoted(online, auth))
        if not isinstance(found, str):
            raise StepError(f"Sentinel did not promote a replica within {PROMOTION_SECONDS:.0f} s")
        new = found
        address, new_port = new.split()
        primary.call("REPLICAOF", address, new_port)
        say(f"{new} is the primary; {me} replicates from it")
        # The clients stay paused until every sentinel they may ask names the new primary, and
        # it has a replica (redis_min_replicas_to_write): then they reconnect once and go on.
        if not _until(
            AGREE_SECONDS,
            lambda: sentinels.agree_on(new) and _has_online_replica(login(int(new_port), auth, address)),
        ):
            raise StepError(
                f"The sentinels do not all name the new primary {new} after {AGREE_SECONDS:.0f} s: {sentinels.masters()}"
            )
        say(f"Every sentinel that answers names {new}")
    finally:
        _end_pause(port, auth, me, demoted=bool(new), failing_over=bool(asked), sentinels=sentinels)
    return new


def _promoted(online: list[tuple[str, int]], auth: str) -> str | None:
    """The member replica that reports itself primary now; one that does not answer is skipped."""
    for ip, p in online:
        try:
            if login(p, auth, ip).info("replication").get("role") == "master":
                return f"{ip} {p}"
        except (OSError, RedisError):
            continue
    return None


def _end_pause(port: int, auth: str, me: str, demoted: bool, failing_over: bool, sentinels: Sentinels) -> None:
    """End the pause on a fresh connection. A server that Sentinel may still demote keeps its
    pause (it ends by itself after PAUSE_MS): a write it took now would be lost."""
    try:
        client = login(port, auth)
        if demoted:
            # As Sentinel does when it turns a primary into a replica: its clients reconnect and
            # ask the sentinels again; the writes they were paused on never ran here.
            client.call("CLIENT", "KILL", "TYPE", "normal")
        elif failing_over and not all(answer == (me, False) for answer in sentinels.masters().values()):
            return
        client.call("CLIENT", "UNPAUSE")
    except (OSError, RedisError):
        pass  # the pause ends by itself after PAUSE_MS


def _has_online_replica(client: Redis) -> bool:
    return any(state == "online" for _, _, state, _ in replicas(client.info("replication")))
