"""redis.conf (valkey.conf for Valkey): keep the packaged original once, then install the rendered file after Redis accepts it.

A change reaches the running server at runtime (CONFIG SET, ACL SETUSER) whenever Redis can
take it, so the PID and the dataset stay; only settings Redis reads at startup restart it,
after a SAVE, and a restart that fails puts the previous file back and starts on it again.
Drift (a live value that differs from the declared one) is reported and converged.
"""

from __future__ import annotations

import hashlib
import shlex
from collections.abc import Mapping
from io import StringIO

from pyinfra import host, logger, state
from pyinfra.api import OperationError, StringCommand
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import FileContents

from . import auth, handover, live, reconfigure, render, replication, rotation
from .constants import CONFIG_MODE, PATHS
from .facts import ACL_MARK
from .host.server import SERVERS, Server
from .move import Move
from .operations import (
    copy_once,
    expect_live,
    host_state,
    live_config,
    one_round_trip,
    operation,
    place,
    prepare_folder,
    show_diff,
    staging_path,
    upload,
)
from .restore import RdbKeyCount, RedisKeyCount
from .settings import Settings
from .tls import TlsFiles
from .tools import step
from .topology import Topology


def owner(server: Server) -> tuple[str, str, str]:
    """The config's user, group and mode: the server's user reads it (and Sentinel rewrites beside it)."""
    return (server.user, server.group, CONFIG_MODE)


def validate(server: Server) -> str:
    """The check of a candidate config: the server loads the whole file, then exits because it may
    listen nowhere. A good file prints that line, a bad one its FATAL CONFIG FILE ERROR. Nothing is
    bound, no data is loaded.

    It runs as the server's user, never as root: the file includes one in the server user's own
    folder (replication-auth.conf), which that user can replace with a `loadmodule` or a `logfile`
    of root's choosing. The candidate is root's: the shell hands it over on standard input ("-").
    No TLS context either (the TLS port 0, no TLS replication): the check reads the file, not the
    key, which on a host that moves to the other server is still the old server's group's.
    """
    program = " ".join(shlex.quote(word) for word in server.unprivileged(server.service, "-"))
    return (
        f"out=$(timeout 20 {program} --port 0 --tls-port 0 --tls-replication no --tls-cluster no --unixsocket '' "
        "--daemonize no --supervised no "
        "--logfile '' --pidfile '' < {path} 2>&1); "
        "case \"$out\" in *'not listen anywhere'*) true ;; "
        "*) printf '%s\\n' \"$out\" | grep -A4 FATAL >&2 || printf '%s\\n' \"$out\" >&2; false ;; esac"
    )


def _content(
    settings: Settings,
    given: Mapping[str, str],
    topology: Topology,
    replicaof: str | None,
    credentials_written: bool,
    keep_replaced: bool,
    tls: TlsFiles | None = None,
) -> str:
    hashes = auth.password_hashes(settings, given, topology)
    missing = [role for role, sha in hashes.items() if not sha]
    if missing and credentials_written:
        raise OperationError(f"no password for the {', '.join(missing)} user in {PATHS.credentials}")
    # While a rotation runs the file keeps the replaced passwords too, so a restart keeps them.
    previous = host_state().previous_hashes if keep_replaced else {}
    replaced = {role: sha for role, sha in previous.items() if hashes.get(role) and sha != hashes[role]}
    # Until this run's credentials step has run, a new user has no password yet: it will generate
    # one, so only a placeholder can stand in for what change detection compares.
    return render.redis_conf(
        settings, {role: sha or "0" * 64 for role, sha in hashes.items()}, topology, replicaof, replaced, tls
    )


def expect_running(settings: Settings, topology: Topology, tls: TlsFiles | None) -> None:
    """The config step compares the running server with the file it renders: say now what it will
    ask (the port, login and TLS of that file, the settings in it), so that the run's first
    RedisHost answer carries the reply and a run that changes nothing sends no command for it.
    The names do not depend on the password hashes or the primary: placeholders stand in."""
    placeholders = {user.role: "0" * 64 for user in auth.users(settings, topology)}
    replicaof = "127.0.0.1 6379" if topology.replicated else None
    text = render.redis_conf(settings, placeholders, topology, replicaof, None, tls)
    desired = live.directives(text)
    port, tls_options = live.endpoint(desired, settings.port)
    # A plain client needs the plain port only; a TLS one the TLS port, and no plain port.
    assumed = ("port", "tls-port") if tls_options else ("port",)
    guard = tuple(line for line in text.splitlines() if line.split(" ", 1)[0] in assumed)
    login = _login(text)
    # The package's config on a fresh host has no ACL users yet: asked there with the open login.
    open_cli = auth.cli(port, "none", tls=tls_options) if login == "acl" else None
    expect_live(auth.cli(port, login, tls=tls_options), tuple(desired), guard, open_cli)


def _login(text: str) -> str:
    """How the deploy logs in to a server that runs with this redis.conf."""
    return "acl" if ACL_MARK in text else "none"


def _restart(port: int, auth: str, save: bool) -> str:
    """SAVE (when the server runs), put the candidate in place, restart; if it does not come up,
    the previous file goes back and the server starts on that (smart_redis/host/restart.py)."""
    return step("restart", "--port", port, "--auth", auth, *(["--save"] if save else []))


def _runtime_commands(cli: str, plan: live.Plan) -> list[str]:
    commands = []
    if plan.runtime_settings:
        pairs = " ".join(f"{name} {shlex.quote(value)}" for name, value in plan.runtime_settings.items())
        commands.append(
            f'reply=$({cli} config set {pairs}); test "$reply" = OK || {{ echo "CONFIG SET: $reply" >&2; exit 1; }}'
        )
    for change in plan.acl_changes:
        args = " ".join(shlex.quote(word) for word in change.split())
        commands.append(f'reply=$({cli} acl {args}); test "$reply" = OK || {{ echo "ACL: $reply" >&2; exit 1; }}')
    return commands


@operation(
    writes=tuple(server.config for server in SERVERS.values())
)  # besides the candidate's copies: restarts and runtime changes
def apply_redis_config(
    settings: Settings,
    given: Mapping[str, str],
    topology: Topology,
    credentials: OperationMeta,
    joining: bool = False,
    after_handover: bool = False,
    rotating: bool = False,
    after_rotation: bool = False,
    tls: TlsFiles | None = None,
    moving: Move | None = None,
):
    """
    Install redis.conf and bring the running server to it, restarting only when Redis must.

    + settings: what to render
    + given: passwords from the operator's environment (their hashes go into the file)
    + topology: this host's place in the replication topology (standalone by default)
    + credentials: this run's credentials step (auth.credentials), which gives new users their passwords
    + joining: the host enters the replication topology now, so it restarts into it
    + after_handover: the second pass, only in a run where a primary handed its role over (handover.py)
    + rotating: a password rotation runs (rotation.py): the users' passwords are its steps' to change
    + after_rotation: the pass after the rotation retired the replaced passwords: they leave the file
    + tls: the certificate files on the host (tls.host_files) while redis_tls is not "off"
    + moving: the host runs the other server now (move.moving_from): this one starts on its data

    **Example:**

    .. code:: python

        apply_redis_config(name="Configure Redis", settings=settings, given=operator_passwords(),
                           topology=Topology("standalone"), credentials=credentials_op)
    """
    server = settings.server
    if after_handover and not handover.happened():
        host.noop("no primary handed its role over in this run")
        return
    if after_rotation and not rotation.retired_here():
        host.noop("no password rotation ended on this host in this run")
        return
    # In a Sentinel topology: the primary the sentinels report now (at first provisioning the
    # inventory's), written into the file for the next start, never applied to the running server.
    primary = replication.primary_now(settings, topology, member=not joining) if topology.replicated else None
    if topology.replicated and primary is None and not joining:  # sentinels silent: keep the file's
        current_text = "\n".join(host.get_fact(FileContents, path=server.config) or [])
        replicaof = live.directives(current_text).get("replicaof")
    else:
        replicaof = replication.replicaof(settings, topology, primary)
    keep_replaced = rotating and not after_rotation
    content = _content(settings, given, topology, replicaof, credentials.is_complete(), keep_replaced, tls)
    facts = host_state(fresh=True)  # the package creates redis.conf and starts the server
    current = facts.files.get(server.config)
    file_differs = current is None or current.sha256 != hashlib.sha256(content.encode()).hexdigest()
    if moving is not None and not moving.done and facts.active != "active":
        if topology.replicated:  # a member of a Sentinel group moves as a replica, the primary last
            yield from _move_member(settings, content, moving.old, topology, primary, replicaof, after_handover)
        else:
            yield from _move(settings, content, moving.old)
        return
    old_text = "\n".join(host.get_fact(FileContents, path=server.config) or []) if file_differs else content
    old = live.directives(old_text)

    # Ask the server on the port and with the auth (and TLS) it runs with now.
    try:
        live_port, live_tls = live.endpoint(old, settings.port)
    except live.ForeignConfig as exc:
        raise OperationError(f"{exc}; the deploy stops before it runs anything with it") from None
    old_auth = _login(old_text)
    live_cli = auth.cli(live_port, old_auth, tls=live_tls)
    desired = live.directives(content)
    # A later pass asks again: the handover or the rotation changed the running servers since.
    running = live_config(live_cli, tuple(desired), fresh=after_handover or after_rotation)

    old_acl, new_acl = live.acl_lines(old_text), live.acl_lines(content)
    plan = live.plan(desired, running or {}, old_acl, new_acl, passwords_apart=rotating or after_rotation)
    version, whole_group = facts.redis_version, handover.whole_group_in_run()
    situation = reconfigure.Situation(
        file_differs=file_differs,
        mode_right=current is not None and (current.user, current.group, current.mode) == owner(server),
        drift=bool(plan.changed),
        runtime_changes=bool(plan.changed or plan.acl_changes),
        restart_settings=tuple(plan.restart_for),
        answers=running is not None,
        active=facts.active == "active",
        joining=joining,
        binary_replaced=server.service in facts.stale_binaries,
        auth_change=(old_auth, settings.auth) if old_auth != settings.auth else None,
        after_handover=after_handover,
        handover=handover.wanted(topology, primary, joining, version, whole_group),
        has_primary=bool(primary) and not joining,
        follows=bool(replicaof) and (not joining or primary is not None),  # a new group's primary may come later
    )
    decision = reconfigure.decide(situation)

    if decision.action == "noop":
        host.noop("redis.conf and the running server match the settings")
        return
    if decision.log_drift:
        for name, (live_value, declared) in plan.changed.items():
            host.log(f"Drift: {name} is {live_value!r} on the server, declared {declared!r}", logger.warning)
    if joining and replicaof and not settings.replica_replace_data:
        _refuse_to_replace_data(live_cli, replicaof, server)
    if state.config.DIFF and file_differs:
        show_diff(server.config, content)
    # Each command only after the one before succeeded, as pyinfra runs them: in one round trip.
    commands: list[str | StringCommand] = []
    if decision.upload:
        staged = staging_path(PATHS.config_candidate)
        placed = place(staged, PATHS.config_candidate, *owner(server), validate(server))
        commands += upload(StringIO(content), staged, first=prepare_folder(PATHS.config_candidate), then=placed)
    if decision.restart_for and not whole_group and handover.wanted(topology, primary, joining, version, True):
        host.log(
            "The primary restarts in place: not every server of the group is in this run (--limit), and "
            "after a handover their redis.conf would name the old primary",
            logger.warning,
        )
    if decision.group_check:
        assert primary is not None  # has_primary or handover say so
        commands.append(step("group-in-sync", "--port", live_port, "--auth", old_auth, "--primary", primary,
                             "--replicas", topology.members - 1))  # fmt: skip
    if decision.action == "defer":
        assert primary is not None
        yield from one_round_trip(commands)
        handover.defer(handover.Deferred(live_port, old_auth, primary, decision.restart_for))
        return  # the candidate waits on the host; the pass after the handover installs it
    if decision.action == "restart":
        host.log(f"Restarting {server.service} for: {'; '.join(decision.restart_for)}", logger.warning)
        commands.append(_restart(live_port, old_auth, save=True))
        if decision.wait_sync:
            assert replicaof is not None
            commands.append(step("wait-sync", "--port", settings.port, "--auth", settings.auth, "--primary", replicaof))
    elif decision.action == "start":  # not running at all: nothing to SAVE; the previous file stays at hand
        commands.append(_restart(live_port, old_auth, save=False))
    else:
        if situation.runtime_changes:
            applied = ", ".join([*plan.runtime_settings, *(c.split()[1] for c in plan.acl_changes)])
            host.log(f"Applying at runtime, no restart: {applied}", logger.info)
            # While a rotation runs, a user's new rules name both passwords (_content), so the reset keeps both.
            commands += _runtime_commands(live_cli, plan)
        if decision.install:
            # a rename from the root-only folder: a link at redis.conf is replaced, never followed
            commands.append(f"mv -fT {shlex.quote(PATHS.config_candidate)} {shlex.quote(server.config)}")
    yield from one_round_trip(commands)


def _old_server(settings: Settings, old: Server) -> tuple[int, str]:
    """The port and login of the server a move leaves, from its own config."""
    old_text = "\n".join(host.get_fact(FileContents, path=old.config) or [])
    try:
        old_port, _ = live.endpoint(live.directives(old_text), settings.port)
    except live.ForeignConfig as exc:
        raise OperationError(f"{exc}; the deploy stops before it runs anything with it") from None
    return old_port, _login(old_text)


def _stage_candidate(settings: Settings, content: str):
    """The new server's config, validated by that server, in the root-only candidate place."""
    if state.config.DIFF:
        show_diff(settings.server.config, content)
    staged = staging_path(PATHS.config_candidate)
    placed = place(staged, PATHS.config_candidate, *owner(settings.server), validate(settings.server))
    yield from upload(StringIO(content), staged, first=prepare_folder(PATHS.config_candidate), then=placed)


def _move(settings: Settings, content: str, old: Server):
    """The new config staged, then the host's move step: the old server saves and stops, this one
    starts on its data with the new config, or the old one runs again as it was."""
    old_port, old_auth = _old_server(settings, old)
    decision = reconfigure.decide(reconfigure.Situation(file_differs=True, mode_right=False, drift=False,
                                                        runtime_changes=False, moving=True))  # fmt: skip
    if decision.upload:
        yield from _stage_candidate(settings, content)
    host.log(
        f"Moving to {settings.server.service}: {old.service} saves and stops, the data comes along", logger.warning
    )
    yield step("move", "--from", old.name, "--port", old_port, "--auth", old_auth, "--new-auth", settings.auth)


def _move_member(
    settings: Settings, content: str, old: Server, topology: Topology, primary: str | None, replicaof: str | None,
    after_handover: bool,
):  # fmt: skip
    """A group member moves as a replica: the new server starts with the deploy's config and
    syncs from the primary (the primary has the data). The primary's own turn waits for the
    handover (handover.py), then it moves as the new primary's replica. Each one only while the
    primary has the other replicas in sync, and the next one only once this one is in sync."""
    new = settings.server
    if primary is None:
        raise OperationError(
            f"no sentinel names the group's primary: a group moves to {new.service} only while its sentinels "
            "agree on one; look at redis-monitor status"
        )
    old_port, old_auth = _old_server(settings, old)
    facts = host_state()
    if primary.split()[0] == topology.address:
        if not handover.wanted(topology, primary, False, facts.other_version, handover.whole_group_in_run()):
            raise OperationError(
                f"the primary {primary.replace(' ', ':')} moves to {new.service} only after it has handed its role "
                f"to a replica, which {old.service} {facts.other_version or '(unknown version)'} cannot here"
            )
        yield from _stage_candidate(settings, content)
        yield step("group-in-sync", "--port", old_port, "--auth", old_auth, "--primary", primary,
                   "--replicas", topology.members - 1, server=old)  # fmt: skip
        handover.defer(handover.Deferred(old_port, old_auth, primary, (f"it moves to {new.service}",), runs=old))
        return
    assert replicaof is not None and topology.address  # a member that is not the primary follows it
    yield from _stage_candidate(settings, content)
    # The others in sync before this one goes: itself may not be (the old primary, just handed
    # over, cannot load the new primary's format; a run killed in its move left it stopped).
    yield step("group-in-sync", "--port", old_port, "--auth", old_auth, "--primary", primary,
               "--replicas", topology.members - 2, "--besides", topology.address, server=old)  # fmt: skip
    host.log(
        f"Moving to {new.service} as a replica of {primary.replace(' ', ':')}: {old.service} stops", logger.warning
    )
    yield step("move", "--from", old.name, "--port", old_port, "--auth", old_auth, "--new-auth", settings.auth,
               "--replica")  # fmt: skip
    yield step("wait-sync", "--port", settings.port, "--auth", settings.auth, "--primary", replicaof)


def _refuse_to_replace_data(live_cli: str, replicaof: str, server: Server) -> None:
    keys = host.get_fact(RedisKeyCount, cli=live_cli)
    if keys is None:  # not running: what it would load at its next start
        data = f"{server.data_dir}/dump.rdb"
        keys = host.get_fact(RdbKeyCount, path=data, server=server.name)
        if keys is None:
            raise OperationError(
                f"{data} cannot be read as {server.user} to count its keys; as a replica of {replicaof} this server "
                "would replace them with the primary's data: empty it first, or set redis_replica_replace_data=true"
            )
    if keys:
        raise OperationError(
            f"this server holds {keys} keys; as a replica of {replicaof} it would replace them with the primary's "
            "data: empty it first, or set redis_replica_replace_data=true"
        )


def redis_conf(
    settings: Settings,
    given: Mapping[str, str],
    topology: Topology,
    credentials: OperationMeta,
    joining: bool = False,
    rotating: bool = False,
    tls: TlsFiles | None = None,
    moving: Move | None = None,
) -> OperationMeta:
    server = settings.server
    copy_once(
        name=f"Keep the original config as {server.config_backup}",
        src=server.config,
        dest=server.config_backup,
    )
    # With a Sentinel group in the inventory, one host after the other: a restart then never takes
    # more than one server of the group away (pyinfra decides this per operation, for all hosts).
    step_args = dict(
        settings=settings, given=given, topology=topology, credentials=credentials, rotating=rotating, tls=tls,
        _serial=topology.group,
    )  # fmt: skip
    configured = apply_redis_config(
        name=f"Configure {server.name.capitalize()} ({server.config})", joining=joining, moving=moving, **step_args
    )
    if not topology.ha:
        return configured  # a single server restarts in place
    # A primary that must restart does so last, as a replica (handover.py).
    handover.hand_over(
        name="Hand the primary role to a replica before it restarts",
        settings=settings,
        topology=topology,
        _serial=topology.group,
    )
    apply_redis_config(
        name="Follow the new primary, restart the old one as its replica",
        after_handover=True,
        moving=moving,
        **step_args,
    )
    return configured


def forget_replaced_passwords(
    settings: Settings,
    given: Mapping[str, str],
    topology: Topology,
    credentials: OperationMeta,
    rotating: bool,
    tls: TlsFiles | None = None,
) -> None:
    """After a rotation retired the replaced passwords at runtime: redis.conf keeps only the new ones."""
    if not rotation.planned(topology, rotating):
        return
    apply_redis_config(
        name="Keep only the new passwords in redis.conf", settings=settings, given=given, topology=topology,
        credentials=credentials, after_rotation=True, tls=tls, _serial=topology.group,
    )  # fmt: skip
