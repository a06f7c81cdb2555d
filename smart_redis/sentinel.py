"""Redis Sentinel beside the Redis server: installed masked, configured once, then left to itself.

Sentinel rewrites its own sentinel.conf (the current primary, the replicas, the other sentinels,
epochs), so the deploy writes the file only when it does not carry the deploy's first line yet:
re-running the deploy never undoes a failover.
"""

from __future__ import annotations

import shlex
from io import StringIO
from typing import Mapping

from pyinfra import host
from pyinfra.api import FileUploadCommand, operation
from pyinfra.operations import server

from . import auth, render, replication
from .constants import CONFIG_GROUP, CONFIG_USER, PATHS, SENTINEL_PACKAGE, SENTINEL_SERVICE
from .facts import SENTINEL_MARKER, HostState
from .operations import host_changes, host_state, managed_file, service_running
from .service import CONTAINER_DROPIN
from .settings import Settings
from .topology import Topology


def before_install(topology: Topology, facts: HostState) -> None:
    """Keep the package from starting its own Sentinel (open to all, no password) before ours exists."""
    if not topology.runs_sentinel:
        return
    if facts.container:
        managed_file(
            name=f"Let {SENTINEL_SERVICE} start inside a {facts.container} container",
            dest=PATHS.sentinel_container_dropin,
            content=CONTAINER_DROPIN,
        )
    if SENTINEL_PACKAGE not in facts.installed_packages and facts.units.get(SENTINEL_SERVICE, ("",))[0] != "masked":
        server.shell(name=f"Keep {SENTINEL_SERVICE} stopped until it is configured", commands=[f"systemctl mask {SENTINEL_SERVICE}"])


@operation()
def first_config(settings: Settings, topology: Topology, given: Mapping[str, str]):
    """
    Write sentinel.conf unless the deploy already did (then Sentinel owns it) and (re)start Sentinel.

    + settings, topology: what to monitor, where to listen, the quorum
    + given: the shared passwords (only their hashes are rendered; the host appends the secrets)

    **Example:**

    .. code:: python

        first_config(settings=settings, topology=topology, given=shared)
    """
    if host_state().sentinel_conf_written:
        host.noop(f"{PATHS.sentinel_config} belongs to Sentinel now")
        return
    # A rebuilt host joins a group that may have failed over: monitor the primary the others report.
    primary = replication.primary_now(settings, topology, quiet=True)
    hashes = {role: auth.sha256(given[role]) for role in ("APP", "ADMIN", "SENTINEL")}
    content = SENTINEL_MARKER + "\n" + render.sentinel_conf(
        settings, hashes, topology, primary or f"{topology.primary} {settings.port}"
    )
    host_changes()
    new = shlex.quote(PATHS.sentinel_config + ".new")
    name = settings.ha_master_name
    yield FileUploadCommand(StringIO(content), PATHS.sentinel_config + ".new")
    # Private before the secrets go in; printf is a shell builtin, so they are in no process's arguments.
    yield f"chown {CONFIG_USER}:{CONFIG_GROUP} {new} && chmod 640 {new}"
    yield (
        f"( . {PATHS.credentials}; printf 'sentinel auth-pass {name} %s\\nsentinel sentinel-pass %s\\n' "
        f'"$REDIS_SENTINEL_PASSWORD" "$REDIS_SENTINEL_PASSWORD" ) >> {new}'
    )
    yield f"mv -f {new} {shlex.quote(PATHS.sentinel_config)}"
    yield f"systemctl unmask {SENTINEL_SERVICE} && systemctl enable {SENTINEL_SERVICE} && systemctl restart {SENTINEL_SERVICE}"


def sentinel(settings: Settings, topology: Topology, given: Mapping[str, str]) -> None:
    if not topology.runs_sentinel:
        return
    first_config(name=f"Configure Redis Sentinel ({PATHS.sentinel_config}, once)", settings=settings,
                 topology=topology, given=given)
    service_running(name=f"Enable and start {SENTINEL_SERVICE}", service=SENTINEL_SERVICE)
