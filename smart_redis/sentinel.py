"""Redis Sentinel beside the Redis server: installed masked, configured once, then left to itself.

Sentinel rewrites its own sentinel.conf (the current primary, the replicas, the other sentinels,
epochs), so the deploy writes the file only when it does not carry the deploy's first line yet:
re-running the deploy never undoes a failover. Later changes of quorum and timing reach the
running Sentinel with SENTINEL SET, which Sentinel itself records in its file.
"""

from __future__ import annotations

import shlex
from collections.abc import Mapping
from io import StringIO

from pyinfra import host, logger
from pyinfra.api import FactBase, OperationError
from pyinfra.operations import server

from . import auth, render, replication, run, tls
from .constants import PATHS
from .facts import SENTINEL_MARKER, HostState
from .host.server import Server
from .move import Move
from .operations import (
    host_state,
    managed_file,
    operation,
    place,
    prepare_folder,
    reload_units,
    service_running,
    staging_path,
    upload,
)
from .service import container_dropin
from .settings import Settings
from .tools import step
from .topology import Topology


def before_install(topology: Topology, facts: HostState) -> None:
    """Keep the package from starting its own Sentinel (open to all, no password) before ours exists."""
    if not topology.runs_sentinel:
        return
    if facts.container:
        dropin = managed_file(
            name=f"Let {run.server().sentinel_service} start inside a {facts.container} container",
            dest=run.server().sentinel_container_dropin,
            content=container_dropin(),
        )
        reload_units(run.server().sentinel_service, dropin, facts=facts)
    if (
        run.server().sentinel_service not in facts.installed_packages
        and facts.units.get(run.server().sentinel_service, ("",))[0] != "masked"
    ):
        server.shell(
            name=f"Keep {run.server().sentinel_service} stopped until it is configured",
            commands=[f"systemctl mask {run.server().sentinel_service}"],
        )


@operation()
def first_config(settings: Settings, topology: Topology, given: Mapping[str, str], replaces: Server | None = None):
    """
    Write sentinel.conf unless the deploy already did (then Sentinel owns it) and (re)start Sentinel.

    + settings, topology: what to monitor, where to listen, the quorum
    + given: the shared passwords (only their hashes are rendered; the host appends the secrets)
    + replaces: the server this host moves from (move.py): its sentinel leaves the port, and this
      one takes its id, so that the other sentinels count it once

    **Example:**

    .. code:: python

        first_config(settings=settings, topology=topology, given=shared)
    """
    if host_state().sentinel_conf_written:
        host.noop(f"{run.server().sentinel_config} belongs to Sentinel now")
        return
    # A rebuilt host joins a group that may have failed over: monitor the primary the others report.
    primary = replication.primary_now(settings, topology, quiet=True)
    hashes = {role: auth.sha256(given[role]) for role in ("APP", "ADMIN", "SENTINEL")}
    content = (
        SENTINEL_MARKER
        + "\n"
        + render.sentinel_conf(settings, hashes, topology, primary or f"{topology.primary} {settings.port}")
    )
    staged = staging_path(run.server().sentinel_config)  # private before the secrets go in
    yield from upload(StringIO(content), staged, private=True, first=prepare_folder(run.server().sentinel_config))
    yield step(
        "sentinel-auth",
        staged,
        settings.ha_master_name,
        *(["--myid-from", replaces.sentinel_config] if replaces else []),
    )
    if replaces is not None and replaces.sentinel_service in host_state().installed_packages:
        # Disabled too: both packages' units take the name sentinel.service, which the new one's enable needs.
        old = replaces.sentinel_service
        yield f"systemctl stop {old} && systemctl disable {old} && systemctl mask {old}"
    if replaces is not None and settings.tls == "only":
        # The old sentinel read its key until now (tls.install_sentinel); a root-only folder, so by path.
        yield f"chgrp {run.server().group} {PATHS.sentinel_tls_key}"
    yield place(staged, run.server().sentinel_config, run.server().user, run.server().group, "640")
    service = run.server().sentinel_service
    started = f"systemctl unmask {service} && systemctl enable {service} && systemctl restart {service}"
    # In place of another sentinel, the next host's goes only once this one answers: a majority stays up.
    yield f"{started} && {_answers(settings.sentinel_port, tls.sentinel_cli(settings))}" if replaces else started


def _cli(port: int, tls: str) -> str:
    """redis-cli to the local sentinel as the Sentinel user; tls: tls.sentinel_cli's options."""
    return (
        f'. {PATHS.credentials} && REDISCLI_AUTH="$REDIS_SENTINEL_PASSWORD" {run.server().cli} --no-auth-warning '
        f'--user "$REDIS_SENTINEL_USER" {tls + " " if tls else ""}-p {int(port)}'
    )


class SentinelMaster(FactBase[dict[str, str] | None]):
    """The local sentinel's SENTINEL MASTER fields for the group; None when it does not answer."""

    def command(self, port: int, master_name: str, tls: str = "") -> str:
        return f"( {_cli(port, tls)} --raw sentinel master {shlex.quote(master_name)} ) 2>/dev/null; true"

    def process(self, output):
        fields = [line.strip() for line in output]
        values = dict(zip(fields[0::2], fields[1::2], strict=False))
        return values if "quorum" in values else None


def tunables(settings: Settings, topology: Topology) -> dict[str, str]:
    """What the deploy keeps in step on a running Sentinel (SENTINEL SET), as SENTINEL MASTER names them."""
    return {
        "quorum": str(topology.quorum),
        "down-after-milliseconds": str(settings.sentinel_down_after_ms),
        "failover-timeout": str(settings.sentinel_failover_timeout_ms),
        "parallel-syncs": "1",
    }


def watched_primary(running: Mapping[str, str], topology: Topology) -> str:
    """ "ADDRESS PORT" of the primary the local sentinel watches (its SENTINEL MASTER fields).

    Checked again here, on the answer of this host's own sentinel, which has no timeout: the
    config step's question to all sentinels may find them silent on a busy machine, and then a
    sentinel made to watch a foreign server would be told its timing and the run would end well.
    Raises OperationError (one line) unless it is a Redis server of the inventory's group.
    """
    answer = f"{running.get('ip', '')} {running.get('port', '')}"
    primary = replication.primary_address(answer)
    if primary is None:
        raise OperationError(
            f"this host's sentinel watches {replication.shown(answer)!r}, which is not an IP address and a port: "
            "the run stops"
        )
    replication.require_in_group(primary, topology, "this host's sentinel names")
    return primary


@operation()
def sentinel_settings(settings: Settings, topology: Topology):
    """
    Bring the running Sentinel's timing and quorum to the settings with SENTINEL SET (which it persists).

    + settings, topology: the wanted values (quorum: a majority of redis_sentinels)

    **Example:**

    .. code:: python

        sentinel_settings(settings=settings, topology=topology)
    """
    tls_cli = tls.sentinel_cli(settings)
    running = host.get_fact(
        SentinelMaster, port=settings.sentinel_port, master_name=settings.ha_master_name, tls=tls_cli
    )
    if running is None and not host_state().sentinel_conf_written:
        host.noop("Sentinel starts with the settings from its first sentinel.conf")  # --dry on a new host
        return
    if running is None:
        raise OperationError(f"{run.server().sentinel_service} does not answer on port {settings.sentinel_port}")
    watched_primary(running, topology)
    changed = {k: v for k, v in tunables(settings, topology).items() if running.get(k) != v}
    if not changed:
        host.noop("Sentinel runs with the settings")
        return
    host.log(
        "Applying to Sentinel at runtime: " + ", ".join(f"{k} ({running.get(k)} -> {v})" for k, v in changed.items())
    )
    pairs = " ".join(f"{k} {v}" for k, v in changed.items())
    yield (
        f"reply=$( {_cli(settings.sentinel_port, tls_cli)} sentinel set {shlex.quote(settings.ha_master_name)} "
        f'{pairs} ); test "$reply" = OK || {{ echo "SENTINEL SET: $reply" >&2; exit 1; }}'
    )


@operation()
def restart_if_needed(port: int, tls: str = ""):
    """
    Restart Sentinel when the package replaced its binary since it started, or when it got a new
    certificate (it reads its TLS files only when it starts); one host at a time.

    Sentinel keeps its state in sentinel.conf, so a restart loses nothing; the group keeps a
    majority of sentinels because the hosts take turns (_serial) and each waits until it answers.

    + port: the Sentinel port
    + tls: redis-cli's TLS options for it (tls.sentinel_cli)

    **Example:**

    .. code:: python

        restart_if_needed(port=26379, _serial=True)
    """
    # Asked now, after this run's steps: a run that stopped after the new files reaches here again.
    state = host_state(fresh=True)
    why = [
        *(["the package replaced the binary it runs"] if run.server().sentinel_service in state.stale_binaries else []),
        *(["it has a new certificate"] if state.sentinel_tls_stale else []),
    ]
    if not why:
        host.noop(f"{run.server().sentinel_service} runs the installed binary and certificate")
        return
    host.log(f"Restarting {run.server().sentinel_service}: {' and '.join(why)}", logger.warning)
    # The next host's sentinel restarts only once this one answers again: a majority stays up.
    yield f"systemctl restart {run.server().sentinel_service} && {_answers(port, tls)}"


def _answers(port: int, tls: str) -> str:
    """A command that waits until the local sentinel answers PING, up to 30 s, else fails in one line."""
    ping = f"( {_cli(port, tls)} ping ) 2>/dev/null"
    return (
        f'i=0; until test "$( {ping} )" = PONG; do i=$((i+1)); '
        f"if [ $i -ge 30 ]; then echo '{run.server().sentinel_service} does not answer 30 s after its restart' >&2; "
        "exit 1; fi; sleep 1; done"
    )


def configure(settings: Settings, topology: Topology, given: Mapping[str, str], moving: Move | None = None) -> None:
    """sentinel.conf once, and Sentinel started on it; on a host that moves to the other server, in
    place of the old server's sentinel, one host after the other."""
    if not topology.runs_sentinel:
        return
    first_config(
        name=f"Configure Redis Sentinel ({run.server().sentinel_config}, once)",
        settings=settings,
        topology=topology,
        given=given,
        replaces=moving.old if moving is not None else None,
        # One host after the other: a group that moves keeps a majority of sentinels up. (The same
        # value on every host: pyinfra shares it; a sentinel that exists already sends nothing here.)
        _serial=topology.group,
    )


def running(settings: Settings, topology: Topology) -> None:
    """Sentinel enabled and running, restarted on a new binary or certificate, its timing in step."""
    if not topology.runs_sentinel:
        return
    service_running(name=f"Enable and start {run.server().sentinel_service}", service=run.server().sentinel_service)
    restart_if_needed(
        name=f"Restart {run.server().sentinel_service} on a replaced binary or certificate",
        port=settings.sentinel_port,
        tls=tls.sentinel_cli(settings),
        _serial=True,
    )
    sentinel_settings(name="Keep Sentinel's quorum and timing in step", settings=settings, topology=topology)
