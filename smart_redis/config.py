"""redis.conf: keep the packaged original once, then install the rendered file after Redis accepts it."""

from __future__ import annotations

from typing import Mapping

from pyinfra import state
from pyinfra.api import OperationError
from pyinfra.api.operation import OperationMeta
from pyinfra.api.state import StateStage

from . import auth, render
from .constants import CONFIG_GROUP, CONFIG_MODE, CONFIG_USER, PATHS
from .operations import copy_once, managed_file
from .settings import Settings

# Redis loads the whole file, then exits because it may listen nowhere: a good file prints
# that line, a bad one its FATAL CONFIG FILE ERROR. Nothing is bound, no data is loaded.
VALIDATE = (
    "out=$(timeout 20 redis-server {path} --port 0 --tls-port 0 --unixsocket '' --daemonize no "
    "--supervised no --logfile '' --pidfile '' 2>&1); "
    "case \"$out\" in *'not listen anywhere'*) true ;; "
    "*) printf '%s\\n' \"$out\" | grep -A4 FATAL >&2 || printf '%s\\n' \"$out\" >&2; false ;; esac"
)


def _content(settings: Settings, given: Mapping[str, str]) -> str:
    hashes = auth.password_hashes(settings, given)
    missing = [role for role, sha in hashes.items() if not sha]
    if missing and state.current_stage == StateStage.Execute:
        raise OperationError(f"no password for the {', '.join(missing)} user in {PATHS.credentials}")
    # Before the credentials step has run (change detection on a new host) no hash exists yet.
    return render.redis_conf(settings, {role: sha or "0" * 64 for role, sha in hashes.items()})


def redis_conf(settings: Settings, given: Mapping[str, str]) -> OperationMeta:
    copy_once(
        name=f"Keep the original config as {PATHS.config_backup}",
        src=PATHS.config,
        dest=PATHS.config_backup,
    )
    return managed_file(
        name=f"Render {PATHS.config}",
        dest=PATHS.config,
        content=lambda: _content(settings, given),
        user=CONFIG_USER,
        group=CONFIG_GROUP,
        mode=CONFIG_MODE,
        validate=VALIDATE,
        candidate=PATHS.config_candidate,
    )
