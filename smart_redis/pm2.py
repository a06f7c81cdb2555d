"""REDIS_URL in the PM2 ecosystem file of the Smart-Trade apps, and the running apps reloaded with it.

The edit runs on the host (smart_redis/ecosystem.py, copied there) so that the password is read
from the root-only credentials file and never travels or shows; this module only decides
whether it must run.
"""

from __future__ import annotations

import shlex
from pathlib import Path

from pyinfra import host, logger
from pyinfra.api import FactBase, operation
from pyinfra.operations import server

from .constants import PATHS
from .operations import managed_file
from .settings import Settings
from .topology import Topology

EDITOR_SOURCE = Path(__file__).with_name("ecosystem.py")


def app_variables(settings: Settings, topology: Topology) -> dict[str, str]:
    """What the apps get beside REDIS_URL: in a Sentinel topology, where to ask for the primary.

    ioredis: new Redis({ sentinels, name: REDIS_MASTER_NAME, sentinelUsername, sentinelPassword, ... });
    node-redis: createSentinel({ name: REDIS_MASTER_NAME, sentinelRootNodes, ... }). The user and
    password of REDIS_URL log in to both the servers and the sentinels.
    """
    if not topology.ha:
        return {}
    return {
        "REDIS_SENTINELS": ",".join(f"{address}:{settings.sentinel_port}" for address in topology.sentinels),
        "REDIS_MASTER_NAME": settings.ha_master_name,
    }


def _editor_args(settings: Settings, topology: Topology) -> str:
    args = [
        settings.pm2_ecosystem_file, "--auth", settings.auth, "--user", settings.app_user,
        "--host", settings.url_host, "--port", str(settings.port), "--blocks", ",".join(settings.pm2_env_blocks),
    ]
    if settings.pm2_apps:
        args += ["--apps", ",".join(settings.pm2_apps)]
    for key, value in app_variables(settings, topology).items():
        args += ["--set", f"{key}={value}"]
    return " ".join(shlex.quote(a) for a in args)


class EcosystemCheck(FactBase):
    """'up-to-date', 'needs-change', or the editor's one-line error; None before the editor is there."""

    def command(self, editor: str, args: str) -> str:
        return f"test -f {editor} && command -v python3 >/dev/null && python3 {editor} check {args} 2>&1 || true"

    def process(self, output):
        return output[-1] if output else None


@operation()
def redis_url(settings: Settings, topology: Topology):
    """
    Put REDIS_URL (and the sentinels) into the ecosystem file on the host, unless it already holds them.

    + settings: file, apps, env blocks and the URL's parts
    + topology: in a Sentinel topology the apps also get REDIS_SENTINELS and REDIS_MASTER_NAME

    **Example:**

    .. code:: python

        redis_url(name="Set REDIS_URL for the apps", settings=settings, topology=Topology("standalone"))
    """
    args = _editor_args(settings, topology)
    state = host.get_fact(EcosystemCheck, editor=PATHS.ecosystem_editor, args=args)
    if state == "up-to-date":
        host.noop("REDIS_URL is set in every targeted app")
        return
    yield f"python3 {PATHS.ecosystem_editor} apply {args}"


def _reload_script(settings: Settings, args: str) -> str:
    user, file = shlex.quote(settings.pm2_user), shlex.quote(settings.pm2_ecosystem_file)
    pm2 = f"cd {shlex.quote(str(Path(settings.pm2_ecosystem_file).parent))} && pm2 startOrReload {file} --update-env && pm2 save"
    return (
        f"if id -u {user} >/dev/null 2>&1 && runuser -l {user} -c 'test -S \"$HOME/.pm2/rpc.sock\"'; then "
        f"runuser -l {user} -c {shlex.quote(pm2)} > /dev/null && "
        f"python3 {PATHS.ecosystem_editor} verify-pm2 {args} --pm2-user {user}; "
        f"else echo 'PM2 is not running as {settings.pm2_user}: the apps read REDIS_URL when they start'; fi"
    )


def ecosystem(settings: Settings, topology: Topology) -> None:
    if settings.pm2_ecosystem_file is None:
        host.log("pm2_ecosystem_file = None: REDIS_URL is not managed", logger.info)
        return
    managed_file(
        name="Install the ecosystem editor",
        dest=PATHS.ecosystem_editor,
        content=EDITOR_SOURCE.read_text(),
    )
    edit = redis_url(name=f"Set REDIS_URL in {settings.pm2_ecosystem_file}", settings=settings, topology=topology)
    if settings.pm2_reload:
        server.shell(
            name=f"Reload the PM2 apps of {settings.pm2_user} with the new REDIS_URL",
            commands=[_reload_script(settings, _editor_args(settings, topology))],
            _if=edit.did_change,
        )
