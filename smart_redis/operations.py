"""Operations of this project, in pyinfra's style: each yields only the commands a host needs.

They read the host through the RedisHost fact, asked once per run and host, so a converged host
costs no further round trips. `operation` here is pyinfra's, plus what keeps that answer true:
as soon as one of our operations yields a command, the host is about to change, and the next
host_state() asks again.
"""

from __future__ import annotations

import functools
import hashlib
import shlex
from collections.abc import Callable
from io import StringIO
from typing import Any
from weakref import WeakKeyDictionary

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, OperationError, StringCommand
from pyinfra.api import operation as pyinfra_operation
from pyinfra.api.operation import OperationMeta
from pyinfra.context import ctx_state
from pyinfra.facts.files import FileContents
from pyinfra.operations import systemd
from pyinfra.operations.util import any_changed
from pyinfra.operations.util.files import generate_color_diff

from .constants import SERVICE
from .facts import HostState, RedisHost, watched

# The run (pyinfra's State) -> host name -> (what RedisHost answered, how many operations of the
# run had changed the host by then). It belongs to the run: a second run in the same process
# (the benchmark, a test) starts without it.
_answers: WeakKeyDictionary[Any, dict[str, tuple[HostState, int]]] = WeakKeyDictionary()


def _run_cache() -> dict[str, tuple[HostState, int]]:
    return _answers.setdefault(ctx_state.get(), {})


def changes_so_far() -> int:
    """Operations of this run (any, pyinfra's too) that have changed the current host so far."""
    ops = getattr(state, "ops", {}).get(host, {})
    return sum(1 for data in ops.values() if data.operation_meta.is_complete() and data.operation_meta.did_change())


def host_state(fresh: bool = False) -> HostState:
    """What RedisHost says of the current host in this run.

    fresh: for steps that follow what other tools may have changed (apt starting a service, a
    package creating redis.conf): asked again if any operation changed the host since the last
    answer. A run that changes nothing so asks once.
    """
    cache = _run_cache()
    cached = cache.get(host.name)
    if cached is None or (fresh and changes_so_far() > cached[1]):
        cache[host.name] = (host.get_fact(RedisHost), changes_so_far())
    return cache[host.name][0]


def operation(**options: Any) -> Callable:
    """pyinfra's @operation (same options) for this project's steps: the run's RedisHost answer is
    dropped when the step yields its first command, so no step has to remember to."""

    def decorate(func: Callable) -> Callable:
        @functools.wraps(func)
        def commands(*args, **kwargs):
            forgotten = False
            for command in func(*args, **kwargs):
                if not forgotten:
                    _run_cache().pop(host.name, None)
                    forgotten = True
                yield command

        return pyinfra_operation(**options)(commands)

    return decorate


def show_diff(dest: str, content: str) -> None:
    current = host.get_fact(FileContents, path=dest) or []
    host.log(f"Will modify {dest}", logger.info)
    for line in generate_color_diff([line + "\n" for line in current], content.splitlines(True)):
        logger.info("  %s", line)


@operation()
def managed_file(
    dest: str,
    content: str | Callable[[], str],
    user: str = "root",
    group: str = "root",
    mode: str = "644",
    validate: str | None = None,
    candidate: str | None = None,
    private: bool = False,
):
    """
    Put a file in place from text, optionally only after a command has accepted it.

    + dest: path on the host (must be one of facts.WATCHED_FILES)
    + content: the whole file, or a function returning it when the operation runs (for text
      that depends on what earlier operations of the same run did on the host)
    + user, group, mode: ownership and octal mode of the file
    + validate: shell command with ``{path}``, exiting non-zero for a bad file; its output
      is the deploy's error message and the live file stays as it was
    + candidate: where the new text waits for validation (default: ``dest`` + ".candidate")
    + private: a key: the staging file (and over SSH with sudo, pyinfra's upload) is 0600 from
      its first byte, and the diff is never shown

    **Example:**

    .. code:: python

        managed_file(
            name="Render redis.conf",
            dest="/etc/redis/redis.conf",
            content=text,
            user="redis", group="redis", mode="640",
            validate="redis-check-config {path}",
        )
    """
    if not watched(dest):
        raise OperationError(f"{dest} is not gathered by the RedisHost fact")
    if callable(content):
        content = content()
    current = host_state().files.get(dest)
    wanted_sha = hashlib.sha256(content.encode()).hexdigest()

    if current and current.sha256 == wanted_sha:
        if (current.user, current.group, current.mode) == (user, group, mode):
            host.noop(f"{dest} is up to date")
            return
        yield f"chown {user}:{group} {shlex.quote(dest)} && chmod {mode} {shlex.quote(dest)}"
        return

    if state.config.DIFF and not private:
        show_diff(dest, content)

    staging = candidate or f"{dest}.candidate"
    q_staging, q_dest = shlex.quote(staging), shlex.quote(dest)
    yield f"mkdir -p {shlex.quote(dest.rsplit('/', 1)[0])}"
    temp = None
    if private:
        # A random temporary name (pyinfra's default one is derived from the path), created new
        # (noclobber), and checked to be a plain file of this login: nobody else's file, link or
        # FIFO ever receives the key.
        temp = host.get_temp_filename()
        q_temp = shlex.quote(temp)
        yield StringCommand(f"set -C; umask 077 && : > {q_temp} && test -f {q_temp} && test -O {q_temp}", _sudo=False)
        yield f"rm -f {q_staging} && umask 077 && : > {q_staging}"
    yield FileUploadCommand(StringIO(content), staging, remote_temp_filename=temp)
    yield f"chown {user}:{group} {q_staging} && chmod {mode} {q_staging}"
    if validate:
        yield f"{validate.format(path=q_staging)} || {{ rm -f {q_staging}; exit 1; }}"
    yield f"mv -f {q_staging} {q_dest}"


@operation()
def copy_once(src: str, dest: str):
    """
    Copy a file, keeping owner and mode, unless the copy already exists.

    + src: file to copy (it may only appear during this run, e.g. from a package)
    + dest: the copy; never overwritten (must be one of facts.WATCHED_FILES)

    **Example:**

    .. code:: python

        copy_once(src="/etc/redis/redis.conf", dest="/etc/redis/redis.conf.backup")
    """
    if dest in host_state().files:
        host.noop(f"{dest} exists and is kept as it is")
        return
    yield f"test -e {shlex.quote(dest)} || cp -p {shlex.quote(src)} {shlex.quote(dest)}"


@operation()
def service_running(service: str):
    """
    Start a systemd service and enable it at boot, as far as it is not already.

    + service: the unit (the RedisHost fact tells its state)

    **Example:**

    .. code:: python

        service_running(service="redis-server")
    """
    facts = host_state(fresh=True)  # apt may have started the service since
    enabled, active = (facts.enabled, facts.active) if service == SERVICE else facts.units.get(service, ("", ""))
    if enabled == "masked":
        yield f"systemctl unmask {service}"
    if enabled != "enabled":
        yield f"systemctl enable {service}"
    if active != "active":
        yield f"systemctl start {service}"
    if enabled == "enabled" and active == "active":
        host.noop(f"{service} is enabled and running")


def reload_units(unit: str, *changed: OperationMeta, facts: HostState) -> None:
    """The one way this project runs systemctl daemon-reload: when this run changed a unit file
    of `unit` (any of `changed`), or when systemd still waits for one (NeedDaemonReload), so that
    a run that stopped between the two does not lose it."""
    systemd.daemon_reload(
        name=f"Reload systemd units for {unit}", _if=None if unit in facts.need_reload else any_changed(*changed)
    )
