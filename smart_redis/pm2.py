"""REDIS_URL in the PM2 ecosystem file of the Smart-Trade apps, and the running apps reloaded with it.

The edit runs on the host (smart_redis/host/ecosystem.py, shipped there as one file) so that the
password is read from the root-only credentials file and never travels or shows; this module
only decides whether it must run.
"""

from __future__ import annotations

import shlex

from pyinfra import host, logger, state
from pyinfra.api import FactBase
from pyinfra.operations import server

from . import rotation, run
from .constants import PATHS
from .host.bundle import build
from .operations import managed_file, operation
from .preflight import PreflightError
from .settings import Settings
from .topology import Topology


def app_variables(settings: Settings, topology: Topology) -> dict[str, str]:
    """What the apps get beside REDIS_URL: with TLS the CA that Node's TLS trusts besides its own
    (NODE_EXTRA_CA_CERTS), and in a Sentinel topology where to ask for the primary.

    ioredis: new Redis({ sentinels, name: REDIS_MASTER_NAME, sentinelUsername, sentinelPassword, ... });
    node-redis: createSentinel({ name: REDIS_MASTER_NAME, sentinelRootNodes, ... }). The user and
    password of REDIS_URL log in to both the servers and the sentinels. REDIS_SENTINEL_TLS: the
    sentinels speak TLS too (ioredis: enableTLSForSentinelMode and sentinelTLS; README).
    """
    tls = {"NODE_EXTRA_CA_CERTS": PATHS.tls_ca} if settings.tls != "off" else {}
    if not topology.ha:
        return tls
    return {
        **tls,
        "REDIS_SENTINELS": ",".join(f"{address}:{settings.sentinel_port}" for address in topology.sentinels),
        "REDIS_MASTER_NAME": settings.ha_master_name,
        **({"REDIS_SENTINEL_TLS": "true"} if settings.tls == "only" else {}),
    }


def _editor_args(settings: Settings, topology: Topology) -> str:
    assert settings.pm2_ecosystem_file is not None  # callers return early when it is None
    args = [
        settings.pm2_ecosystem_file,
        "--auth",
        settings.auth,
        "--user",
        settings.app_user,
        "--host",
        settings.url_host,
        "--port",
        str(settings.client_port),
        *(["--tls"] if settings.tls != "off" else []),
        "--blocks",
        ",".join(settings.pm2_env_blocks),
    ]
    if settings.pm2_apps:
        args += ["--apps", ",".join(settings.pm2_apps)]
    for key, value in app_variables(settings, topology).items():
        args += ["--set", f"{key}={value}"]
    return " ".join(shlex.quote(a) for a in args)


MISSING = "smart-redis:missing"
STATES = ("up-to-date", "needs-change")


class EcosystemCheck(FactBase):
    """The editor's `check` as words: 'up-to-date' or 'needs-change', then any of needs-reload,
    pm2-not-running, others-can-read; MISSING when the file does not exist; otherwise the
    editor's one-line error, or None before the editor is there."""

    def command(self, editor: str, file: str, args: str) -> str:
        path = shlex.quote(file)
        return (
            f"if ! test -e {path} && ! test -L {path}; then echo {MISSING}; "
            f"elif test -f {editor} && command -v python3 >/dev/null; then python3 {editor} check {args} 2>&1 || true; fi"
        )

    def process(self, output):
        return output[-1] if output else None


def _check_args(settings: Settings, topology: Topology) -> str:
    args = _editor_args(settings, topology)
    return f"{args} --pm2-user {shlex.quote(settings.pm2_user)}" if settings.pm2_reload else args


def preflight(settings: Settings, topology: Topology) -> None:
    """Refuse a pm2_ecosystem_file that does not exist, before anything on the host changes."""
    if settings.pm2_ecosystem_file is None:
        return
    args = _check_args(settings, topology)
    answer = host.get_fact(EcosystemCheck, editor=PATHS.ecosystem_editor, file=settings.pm2_ecosystem_file, args=args)
    if answer == MISSING:
        raise PreflightError(
            f"pm2_ecosystem_file = {settings.pm2_ecosystem_file!r}: the file does not exist on the host"
        )
    # Kept for redis_url(): asking again in the same run would cost a no-op run one more command
    # (pyinfra 3.10 gathers a fact anew at every call).
    run.current().pm2_early[host.name] = (args, answer)


def _host_changed() -> bool:
    """Whether an operation of this run has changed the host already (an early answer may be stale then)."""
    return any(
        data.operation_meta.is_complete() and data.operation_meta.did_change() for data in state.ops[host].values()
    )


def _ask(settings: Settings, topology: Topology) -> str | None:
    args = _check_args(settings, topology)
    early = run.current().pm2_early.pop(host.name, None)
    if early is not None and early[0] == args and not _host_changed():
        return early[1]
    return host.get_fact(EcosystemCheck, editor=PATHS.ecosystem_editor, file=settings.pm2_ecosystem_file, args=args)


@operation()
def redis_url(settings: Settings, topology: Topology, rotating: bool = False):
    """
    Put REDIS_URL (and the sentinels) into the ecosystem file on the host, unless it already holds them.

    + settings: file, apps, env blocks and the URL's parts
    + topology: in a Sentinel topology the apps also get REDIS_SENTINELS and REDIS_MASTER_NAME
    + rotating: a password rotation runs: the apps' login moves only once every host of the
      group accepts the new password

    **Example:**

    .. code:: python

        redis_url(name="Set REDIS_URL for the apps", settings=settings, topology=Topology("standalone"))
    """
    answer = _ask(settings, topology)
    words = answer.split() if answer else []
    if words and words[0] not in STATES:
        words = []  # the editor's error line: apply says it again and fails
    run.current().pm2_answers[host.name] = words  # for the reload step, which runs after this one
    file = settings.pm2_ecosystem_file
    if "others-can-read" in words:
        host.log(
            f"{file} is readable by every local user: the deploy removes the others' read bit, "
            "as the file holds the Redis password",
            logger.warning,
        )
    if "pm2-not-running" in words:
        host.log(
            f"PM2 is not running as {settings.pm2_user}: no reload, the apps read REDIS_URL when they start",
            logger.warning,
        )
    if words[:1] == ["up-to-date"]:
        host.noop("REDIS_URL is set in every targeted app")
        return
    if rotating and topology.ha:
        rotation.require_group_intact()
        run.barrier("REDIS_URL moves to the new password")
    yield f"python3 {PATHS.ecosystem_editor} apply {_editor_args(settings, topology)}"


def _reload_needed(name: str, edit) -> bool:
    words = run.current().pm2_answers.get(name, [])
    return "pm2-not-running" not in words and ("needs-reload" in words or edit.did_change())


def _reload_script(settings: Settings, args: str) -> str:
    # The editor runs pm2 as pm2_user and never lets root load a file of the app team's
    # (host/ecosystem.py reload): a PM2 of root's gets the apps as data the owner's node read.
    return f"python3 {PATHS.ecosystem_editor} reload {args} --pm2-user {shlex.quote(settings.pm2_user)}"


def ecosystem(settings: Settings, topology: Topology, rotating: bool = False) -> None:
    if settings.pm2_ecosystem_file is None:
        host.log("pm2_ecosystem_file = None: REDIS_URL is not managed", logger.info)
        return
    managed_file(
        name="Install the ecosystem editor",
        dest=PATHS.ecosystem_editor,
        content=build("ecosystem", "the ecosystem editor"),
    )
    edit = redis_url(
        name=f"Set REDIS_URL in {settings.pm2_ecosystem_file}", settings=settings, topology=topology, rotating=rotating
    )
    if settings.pm2_reload:
        # Decided from PM2's own state too: a run that failed after the edit left apps on the
        # old URL, and the next run (file already right) must still reload them.
        name = host.name
        server.shell(
            name=f"Reload the PM2 apps of {settings.pm2_user} with the new REDIS_URL",
            commands=[_reload_script(settings, _editor_args(settings, topology))],
            _if=lambda: _reload_needed(name, edit),
        )
