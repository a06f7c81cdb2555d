"""A planned handover: the primary of a Sentinel group gives its role to an in-sync replica
before it restarts, so the apps lose no acknowledged write and wait about a second, not a failover.

Writes are paused on the primary (CLIENT PAUSE WRITE: clients wait, nothing fails) until every
replica has all of them; Sentinel then promotes one (SENTINEL FAILOVER, so every sentinel agrees
on the result). The apps are let go as soon as they can write on the new primary: it has a
replica, and the sentinels name it that do not run the failover. The clients that waited are
disconnected and ask the sentinels again. The old primary stays paused until the sentinel that
runs the failover names the new primary too (a client that asks it first comes back and waits),
then replicates from the new one.

Where the seconds went before (measured, BENCHMARKS.md): waiting for the replicas' once-a-second
acknowledgement, and for the sentinel that runs the failover to finish reconfiguring every
replica, which it checks with INFO once a second. Now the replicas' own offsets are read, and the
failover is asked of the sentinel the apps ask last: the others take the new primary from its
announcement the moment it sees the promotion.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from .credentials import read_credentials
from .resp import Redis, RedisError
from .restart import StepError, _poll
from .server import admin, login, logins, tls_context

# The pause ends with CLIENT UNPAUSE; this bound only matters if this program dies in between.
PAUSE_MS = 60_000
READY_SECONDS = 35.0  # for the sentinels to see a restarted replica fit again (INFO every 10 s)
CATCH_UP_SECONDS = 5.0  # for the replicas to have every write of the paused primary
PROMOTION_SECONDS = 15.0  # for Sentinel to promote one (its own steps run once a second)
SWITCH_SECONDS = 10.0  # for the sentinels that do not run the failover to name the new primary
AGREE_SECONDS = 20.0  # for the one that runs it to finish
RESTORE_SECONDS = 30.0  # for every member to take its min-replicas-to-write back (one may be busy syncing)


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


def promotable(fields: dict[str, str], down_after_ms: int, members: list[str]) -> bool:
    """A replica, as SENTINEL REPLICAS describes it, that Sentinel would promote: a member of the
    group, reachable, no down flag, a recent INFO that says its link to the primary is up. (A
    replica that just restarted keeps its last INFO for up to ten seconds: asked then, Sentinel
    refuses the failover with NOGOODSLAVE.)"""
    try:
        return (
            fields.get("ip") in members
            and fields.get("flags") == "slave"
            and fields.get("master-link-status") == "ok"
            and int(fields.get("slave-priority", "0")) > 0
            and int(fields.get("last-ok-ping-reply", "-1")) in range(0, 5000)
            and int(fields.get("info-refresh", "-1")) in range(0, 30_000)
            and int(fields.get("master-link-down-time", "0")) <= 10 * down_after_ms
        )
    except ValueError:
        return False


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
            fields = _pairs(reply)
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

    def see_promotable(self, members: list[str]) -> bool:
        """A majority answers, and every sentinel that answers sees a member replica it would promote."""
        answers = 0
        for address in self.addresses:
            try:
                client = self.client(address)
                master = _pairs(client.call("SENTINEL", "MASTER", self.master_name))
                listed = client.call("SENTINEL", "REPLICAS", self.master_name)
            except (OSError, RedisError):
                continue
            down_after = int(master.get("down-after-milliseconds", "0") or 0)
            if not any(promotable(_pairs(entry), down_after, members) for entry in listed or []):
                return False
            answers += 1
        return answers >= self.majority()

    def others_name(self, primary: str, asked: str) -> bool:
        """Every sentinel that answers, but the one running the failover, names `primary`; at
        least one does. (The one running it names the old primary until it has reconfigured every
        replica; the others follow its announcement as soon as it sees the promotion.)"""
        seen = {address: named for address, (named, _) in self.masters().items() if address != asked}
        return bool(seen) and all(named == primary for named in seen.values())

    def failover(self) -> str:
        """Ask the last sentinel that answers, in the order the apps have them (REDIS_SENTINELS):
        the apps ask the first one first, which then names the new primary sooner. Only a sentinel
        that cannot be reached is skipped: any refusal (-INPROG, -NOGOODSLAVE) stops here, so that
        two sentinels never run two failovers."""
        for address in reversed(self.addresses):
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

    if not _poll(READY_SECONDS, lambda: sentinels.see_promotable([ip for ip, _ in online]), every=0.5):
        raise StepError(f"No handover: the sentinels see no replica they would promote after {READY_SECONDS:.0f} s")
    say(f"Pausing writes on {me} until the replicas have all of them")
    primary.call("CLIENT", "PAUSE", str(PAUSE_MS), "WRITE")
    paused = time.monotonic()
    asked = new = needed = ""
    zeroed: list[tuple[str, int]] = []  # the members that took min-replicas-to-write 0
    demoted = False
    try:
        wanted = int(primary.info("replication")["master_repl_offset"])
        # Each replica's own offset: what it has applied. (The primary learns it from an
        # acknowledgement the replicas send once a second, which would make the apps wait.)
        if not _until(CATCH_UP_SECONDS, lambda: all(_applied(ip, p, auth) >= wanted for ip, p in online)):
            raise StepError(f"No handover: the replicas did not reach offset {wanted} in {CATCH_UP_SECONDS:.0f} s")
        # Nothing checks redis_min_replicas_to_write for the moment of the move: a paused primary
        # checks it before the pause and refuses the writes of apps that reconnect to it with
        # NOREPLICAS once its replicas leave, and the promoted one takes writes before its first
        # replica has attached (milliseconds). Clients do not retry NOREPLICAS. A write
        # acknowledged with WAIT still waits for a replica. The values are back below, or (if
        # this program dies first) the deploy's next run finds the drift and sets them again.
        needed = primary.call("CONFIG", "GET", "min-replicas-to-write")[1]
        if needed != "0":
            zeroed = [(ip, p) for ip, p in [("127.0.0.1", port), *online] if _min_replicas(ip, p, auth, "0")]
        asked = sentinels.failover()
        if not asked:
            raise StepError("No handover: Sentinel did not take the failover")
        say(f"Sentinel {asked} promotes a replica")
        found = _until(PROMOTION_SECONDS, lambda: _promoted(online, auth))
        if not isinstance(found, str):
            raise StepError(f"Sentinel did not promote a replica within {PROMOTION_SECONDS:.0f} s")
        new = found
        address, new_port = new.split()
        # As Sentinel will, a moment later: the other replicas follow the new primary now, so that
        # it takes writes (redis_min_replicas_to_write) when the apps arrive.
        for ip, p in online:
            if f"{ip} {p}" != new:
                _follow(ip, p, auth, address, new_port)
        switched = _until(
            SWITCH_SECONDS,
            lambda: sentinels.others_name(new, asked) and _has_good_replica(login(int(new_port), auth, address)),
        )
        # The apps that wait here go: most find the new primary at once. One that asks the
        # sentinel running the failover first (clients reorder their sentinels) is sent back
        # here, where its write waits again (a client retries a timeout slowly, a READONLY fast,
        # and would run out of retries) until that sentinel has finished too.
        primary.call("CLIENT", "KILL", "TYPE", "normal")
        released = time.monotonic()
        agreed = _until(AGREE_SECONDS, lambda: sentinels.agree_on(new))
        _demote(primary, address, new_port)
        demoted = True
        if not switched:
            raise StepError(f"The sentinels do not name the new primary {new} after {SWITCH_SECONDS:.0f} s")
        if not agreed:
            raise StepError(
                f"The sentinels do not all name the new primary {new} after {AGREE_SECONDS:.0f} s: "
                f"{sentinels.masters()}"
            )
        say(
            f"{new} is the primary; {me} replicates from it (writes waited {released - paused:.2f} s, "
            f"or {time.monotonic() - paused:.2f} s for an app that asked sentinel {asked} first)"
        )
    finally:
        # Each member that took 0 gets its value back, once before the pause ends...
        unrestored = [(ip, p) for ip, p in zeroed if not _min_replicas(ip, p, auth, needed)]
        # Not demoted after a promotion: it stays paused (until PAUSE_MS) and Sentinel demotes it.
        if demoted or not new:
            _end_pause(port, auth, me, demoted=demoted, failing_over=bool(asked), sentinels=sentinels)
    # ... and one that did not answer then is asked again: a run that left 0 behind would call itself done.
    left = _restore_min_replicas(unrestored, auth, needed)
    if left:
        raise StepError(
            f"min-replicas-to-write is still 0 on {', '.join(left)} {RESTORE_SECONDS:.0f} s after the "
            f"handover (declared {needed}): the next run sets it again"
        )
    say(f"Every sentinel that answers names {new}")
    return new


def _restore_min_replicas(members: list[tuple[str, int]], auth: str, value: str) -> list[str]:
    """min-replicas-to-write back to value on each member, retried until RESTORE_SECONDS; the
    members ("ip port") that did not take it."""
    left = list(members)
    deadline = time.monotonic() + RESTORE_SECONDS
    while left and time.monotonic() < deadline:
        time.sleep(0.5)
        left = [(ip, p) for ip, p in left if time.monotonic() >= deadline or not _min_replicas(ip, p, auth, value)]
    return [f"{ip} {p}" for ip, p in left]


def _pairs(reply: object) -> dict[str, str]:
    """A flat [key, value, ...] reply as a dict."""
    if not isinstance(reply, list):
        return {}
    return {str(k): str(v) for k, v in zip(reply[0::2], reply[1::2], strict=False)}


def _applied(ip: str, port: int, auth: str) -> int:
    """The replication offset a replica has applied."""
    info = login(port, auth, ip).info("replication")
    return int(info.get("slave_repl_offset", -1))


def _follow(ip: str, port: int, auth: str, address: str, new_port: str) -> None:
    try:
        login(port, auth, ip).call("REPLICAOF", address, new_port)
    except (OSError, RedisError):
        pass  # Sentinel reconfigures it too


def _demote(primary: Redis, address: str, new_port: str) -> None:
    """The old primary follows the new one. Its clients are disconnected first: a WAIT blocked
    here would otherwise fail with -UNBLOCKED, where a closed connection is retried by the apps
    (and the writes it waited for are on the replicas: their offsets were checked)."""
    primary.call("CLIENT", "KILL", "TYPE", "normal")
    primary.call("REPLICAOF", address, new_port)


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


def _min_replicas(ip: str, port: int, auth: str, value: str) -> bool:
    """Whether the server took the value. Not through login(), whose PING a server loading its
    data (a replica after a full sync) refuses: AUTH and CONFIG SET it takes."""
    for path in logins(auth):
        try:
            admin(port, auth, path, address=ip).call("CONFIG", "SET", "min-replicas-to-write", value)
            return True
        except (OSError, RedisError, KeyError):
            continue
    return False


def _has_good_replica(client: Redis) -> bool:
    """A primary with a replica in sync: online, and acknowledging within min-replicas-max-lag."""
    info = client.info("replication")
    if info.get("role") != "master" or not any(state == "online" for _, _, state, _ in replicas(info)):
        return False
    return "min_slaves_good_slaves" not in info or int(info["min_slaves_good_slaves"]) >= 1
