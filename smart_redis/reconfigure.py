"""What the config step does to a server, decided apart from doing it: a pure function of what
the host answered (redis.conf, the live values, the unit's state) and of the run's phase.

    decide(Situation(...)) -> Decision("runtime", ...)   # config.apply_redis_config yields its commands

Actions:
    noop      nothing differs
    fix-mode  the file is right, its owner or mode is not: it is put in place anew
    runtime   CONFIG SET / ACL SETUSER, then the new file replaces the old (no restart)
    defer     the primary's restart waits until it has handed its role over (handover.py)
    restart   SAVE, the new file, restart (in a group: the group in sync before, this replica after)
    start     the server does not run: the new file and a start, nothing to SAVE
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Situation:
    file_differs: bool  # redis.conf is missing or not the rendered text
    mode_right: bool  # redis.conf has the owner, group and mode it should
    drift: bool  # a live value differs from the declared one
    runtime_changes: bool  # what the running server takes at runtime (settings or ACL users)
    restart_settings: tuple[str, ...] = ()  # settings Redis reads only at startup, changed
    answers: bool = True  # the server answers the deploy's admin user
    active: bool = True  # systemd runs redis-server
    joining: bool = False  # the host enters the replication group now
    binary_replaced: bool = False  # the package replaced the binary the server runs
    auth_change: tuple[str, str] | None = None  # (running, wanted) redis_auth when they differ
    after_handover: bool = False  # the pass after a primary handed its role over
    handover: bool = False  # this host is the group's primary with replicas to hand over to (handover.wanted)
    has_primary: bool = False  # the sentinels name a primary this host does not join now
    follows: bool = False  # after a restart this host replicates from a primary that already runs
    moving: bool = False  # the host runs the other server: this one starts on its data (move.py)


@dataclass(frozen=True)
class Decision:
    action: str
    restart_for: tuple[str, ...] = ()
    upload: bool = False  # stage and validate the new redis.conf first
    group_check: bool = False  # the group's replicas in sync before this server goes away
    wait_sync: bool = False  # after the restart, wait until this replica is in sync again
    install: bool = False  # runtime: the new file then replaces the old one
    log_drift: bool = field(default=False)


def restart_reasons(s: Situation) -> tuple[str, ...]:
    reasons = list(s.restart_settings)
    if not s.answers:
        reasons.append("the server does not answer the deploy's admin user")
    if s.joining:
        reasons.append("the host joins the replication topology")
    if s.binary_replaced:
        reasons.append("the package replaced the binary it runs (an upgrade or a reinstall)")
    if s.auth_change is not None:
        reasons.append(f"redis_auth ({s.auth_change[0]} -> {s.auth_change[1]})")
    return tuple(reasons)


def decide(s: Situation) -> Decision:
    """The one thing the config step does to this host now, and what goes with it."""
    if s.moving:
        return Decision("move", ("the host moves to the other server",), upload=True)
    reasons = restart_reasons(s)
    if not s.file_differs and not s.drift and not reasons:
        # A wrong owner or mode: the file is put in place anew (chown by path in the redis
        # user's folder would follow a link it planted there).
        return Decision("noop") if s.mode_right else Decision("fix-mode", upload=True, install=True)
    upload = s.file_differs or bool(reasons)
    log_drift = not s.file_differs and s.drift
    if reasons and s.answers and not s.after_handover and s.handover:
        # Refused before any host of the group restarts, as any restart would be.
        return Decision("defer", reasons, upload, group_check=True, log_drift=log_drift)
    if reasons and (s.answers or s.active):
        # A serial run goes on after a failed host: never take a second server of the group away.
        return Decision("restart", reasons, upload, group_check=s.has_primary, wait_sync=s.follows, log_drift=log_drift)
    if reasons:
        return Decision("start", reasons, upload, log_drift=log_drift)
    return Decision("runtime", (), upload, install=s.file_differs, log_drift=log_drift)
