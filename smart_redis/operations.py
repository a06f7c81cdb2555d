"""Operations of this project, in pyinfra's style: each yields only the commands a host needs.

They read the host through the RedisHost fact, asked once per run and host, so a converged host
costs no further round trips. `operation` here is pyinfra's, plus what keeps that answer true:
as soon as one of our operations yields a command, the host is about to change, and the next
host_state() asks again; file_state() asks again only when something else than one of our
steps placing another file changed the host.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import inspect
import shlex
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from io import StringIO
from typing import Any, NamedTuple
from uuid import uuid4

from pyinfra import host, logger, state
from pyinfra.api import FileUploadCommand, OperationError, StringCommand
from pyinfra.api import operation as pyinfra_operation
from pyinfra.api.operation import OperationMeta
from pyinfra.facts.files import FileContents
from pyinfra.operations.util.files import generate_color_diff

from . import run
from .constants import PATHS
from .facts import FileState, HostState, RedisHost, RedisLive, watched
from .host.server import SERVERS


@dataclass
class Answer:
    """The run's last RedisHost answer for a host, and what our operations changed since."""

    state: HostState
    changes: int  # operations (any, pyinfra's too) that had changed the host when it was asked
    current: bool = True  # none of ours has changed the host since
    # The files that our operations wrote since, each declaring those it writes (None: one that
    # did not declare them changed the host); declared: how many such operations.
    written: set[str] | None = field(default_factory=set)
    declared: int = 0
    # What it asked the running server besides (expect_live): (redis-cli prefix, setting names)
    live_probe: LiveProbe | None = None


def _run_cache() -> dict[str, Answer]:
    """The run's RedisHost answers by host."""
    return run.current().answers


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
    if cached is None or not cached.current or (fresh and changes_so_far() > cached.changes):
        probe = run.current().live_probes.get(host.name)
        server = run.server().name
        asked = (
            host.get_fact(
                RedisHost,
                server=server,
                live_cli=probe.cli,
                live_names=probe.names,
                live_guard=probe.guard,
                **({"live_open_cli": probe.open_cli} if probe.open_cli else {}),
            )
            if probe
            else host.get_fact(RedisHost, server=server)
        )
        cached = cache[host.name] = Answer(asked, changes_so_far(), live_probe=probe)
    return cached.state


class LiveProbe(NamedTuple):
    """What the config step will ask the running server: as `cli`, the values of `names`; asked
    only while redis.conf has the `guard` lines (the port and TLS port that `cli` assumes). With
    `open_cli`, that one where redis.conf has no ACL users (the package's config, before the
    deploy's first)."""

    cli: str
    names: tuple[str, ...]
    guard: tuple[str, ...] = ()
    open_cli: str | None = None


def expect_live(cli: str, names: tuple[str, ...], guard: tuple[str, ...] = (), open_cli: str | None = None) -> None:
    """What the config step will ask the running server: asked with every RedisHost answer of the
    run from now on, so a run that changes nothing needs no round trip of its own for it."""
    run.current().live_probes[host.name] = LiveProbe(cli, tuple(sorted(set(names))), guard, open_cli)


def live_config(cli: str, names: tuple[str, ...], fresh: bool = False) -> dict[str, str] | None:
    """The running server's values of `names` as `cli` gets them (RedisLive): from the run's
    current RedisHost answer when it asked the same way for at least these names and the server
    answered; else asked now (a server that did not answer, or a guard that did not hold).

    fresh: asked now in any case (what this run changed elsewhere may have changed the server)."""
    cached = None if fresh else _run_cache().get(host.name)
    told = cached is not None and covers(cached.live_probe, cli, names, opened=cached.state.live_open)
    if cached is not None and told and cached.state.live is not None:
        return {k: v for k, v in cached.state.live.items() if k == "port" or k in names}
    return host.get_fact(RedisLive, cli=cli, names=names)


def covers(probe: LiveProbe | None, cli: str, names: tuple[str, ...], opened: bool = False) -> bool:
    """An answer asked with `probe` tells what `cli` would get for `names` (opened: the answer
    says the probe asked with its open_cli)."""
    if probe is None:
        return False
    asked = probe.open_cli if opened else probe.cli
    return asked == cli and set(names) <= set(probe.names)


def file_state(dest: str) -> FileState | None:
    """What the host has at `dest` (a watched file): the last answer still tells it while every
    change since came from our operations that declared the files they write, all others (a
    cold run's steps mostly place files, restart or enable: no round trip for each). Else asked again."""
    return state_telling(dest).files.get(dest)


def state_telling(*paths: str) -> HostState:
    """The run's RedisHost answer if it still tells what the host has at each of `paths` (files,
    or folders and what is in them; see still_tells) and what the fact derives from them, else a
    new one."""
    cached = _run_cache().get(host.name)
    if cached is not None and all(still_tells(cached, path, changes_so_far()) for path in paths):
        return cached.state
    return host_state()


def still_tells(answer: Answer, dest: str, changes: int) -> bool:
    """Whether `answer` still tells the file (or folder) at `dest`, the host having been changed
    by `changes` operations of the run so far: each change since it was asked is one of our steps
    that declared what it writes, other files and folders (a change by any other operation may
    have touched any file)."""
    return (
        answer.written is not None
        and not any(_overlap(path, dest) for path in answer.written)
        and changes == answer.changes + answer.declared
    )


def _overlap(a: str, b: str) -> bool:
    """One path is the other, or in it."""
    return a == b or a.startswith(b.rstrip("/") + "/") or b.startswith(a.rstrip("/") + "/")


def operation(writes: str | tuple[str, ...] | None = None, **options: Any) -> Callable:
    """pyinfra's @operation (same options) for this project's steps: the run's RedisHost answer is
    marked out of date when the step yields its first command, so no step has to remember to.

    writes: the watched files the step may change, and no other (file_state() keeps trusting the
    answer for the others): the name of the argument that holds the one file (a str) or the
    Files it places, or the paths themselves (a tuple; empty for a step that changes services, not files). None: any file.

    **Example:**

    .. code:: python

        @operation(writes=())  # restarts a service: every watched file stays as it was
        def restarted(service: str): ...
    """

    def decorate(func: Callable) -> Callable:
        signature = inspect.signature(func)

        @functools.wraps(func)
        def commands(*args, **kwargs):
            forgotten = False
            for command in func(*args, **kwargs):
                if not forgotten:
                    if isinstance(writes, str):
                        _changing(_paths(signature.bind(*args, **kwargs).arguments[writes]))
                    else:
                        _changing(writes)
                    forgotten = True
                yield command

        return pyinfra_operation(**options)(commands)

    return decorate


def _paths(argument: str | Sequence[File]) -> tuple[str, ...]:
    """The files an operation's `writes` argument names: one path, or the Files it places."""
    return (argument,) if isinstance(argument, str) else tuple(file.dest for file in argument)


def _changing(paths: tuple[str, ...] | None) -> None:
    cached = _run_cache().get(host.name)
    if cached is None:
        return
    cached.current = False
    if paths is None or cached.written is None:
        cached.written = None
    else:
        cached.written.update(paths)
        cached.declared += 1


def show_diff(dest: str, content: str) -> None:
    current = host.get_fact(FileContents, path=dest) or []
    host.log(f"Will modify {dest}", logger.info)
    for line in generate_color_diff([line + "\n" for line in current], content.splitlines(True)):
        logger.info("  %s", line)


@dataclass(frozen=True)
class File:
    """
    A file the deploy places from text (managed_file, managed_files).

    + dest: path on the host (must be one of facts.WATCHED_FILES)
    + content: the whole file, or a function returning it when the operation runs (for text
      that depends on what earlier operations of the same run did on the host)
    + user, group, mode: ownership and octal mode of the file
    + validate: shell command with ``{path}``, exiting non-zero for a bad file; its output
      is the deploy's error message and the live file stays as it was
    + private: a key: the staged file (and over SSH with sudo, the login's upload) is 0600 from
      its first byte, and the diff is never shown
    """

    dest: str
    content: str | Callable[[], str]
    user: str = "root"
    group: str = "root"
    mode: str = "644"
    validate: str | None = None
    private: bool = False


@operation(writes="dest")
def managed_file(
    dest: str,
    content: str | Callable[[], str],
    user: str = "root",
    group: str = "root",
    mode: str = "644",
    validate: str | None = None,
    private: bool = False,
):
    """
    Put a file in place from text, optionally only after a command has accepted it (the
    arguments are File's).

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
    yield from placing((File(dest, content, user, group, mode, validate, private),), set())


@operation(writes="files")
def managed_files(files: Sequence[File], changed: set[str]):
    """
    Put several files in place with one command (one round trip, where each managed_file is one).

    + files: what to place (see File); each one as managed_file would, in this order
    + changed: filled with the dests this step changes when it runs (see Placed.any_of: a later step
      that follows one of them only)

    **Example:**

    .. code:: python

        managed_files(name="Units", files=(File(PATHS.backup_service, unit), File(PATHS.backup_timer, timer)),
                      changed=set())
    """
    yield from placing(files, changed)


class Placed(NamedTuple):
    """A managed_files step, and the dests it changed (known once it ran)."""

    op: OperationMeta
    changed: set[str]

    def any_of(self, *dests: str) -> Callable[[], bool]:
        """An _if for a step that follows a change of one of these files only."""
        return lambda: self.op.did_change() and not self.changed.isdisjoint(dests)


def place_files(name: str, files: Sequence[File], **arguments: Any) -> Placed:
    """managed_files(name=name, files=files, **arguments), with what it changes."""
    changed: set[str] = set()
    return Placed(managed_files(name=name, files=tuple(files), changed=changed, **arguments), changed)


def placing(files: Sequence[File], changed: set[str]) -> Iterator[Any]:
    """The commands that put `files` in place: one for all, or none when each is as wanted; the
    dests it changes go into `changed`. For a step of its own that places files (managed_files)."""
    changed.clear()  # pyinfra may run a generator twice (change detection, then execution)
    fixes: list[str] = []
    texts: list[Text] = []
    for file in files:
        if not watched(file.dest):
            raise OperationError(f"{file.dest} is not gathered by the RedisHost fact")
        content = file.content() if callable(file.content) else file.content
        current = file_state(file.dest)
        wanted_sha = hashlib.sha256(content.encode()).hexdigest()
        q_dest = shlex.quote(file.dest)
        # chown by path only where nobody but root can swap the file for a link
        if current and current.sha256 == wanted_sha and file.dest.rsplit("/", 1)[0] not in STAGE_ELSEWHERE:
            if (current.user, current.group, current.mode) == (file.user, file.group, file.mode):
                host.noop(f"{file.dest} is up to date")
                continue
            fixes.append(f"chown {file.user}:{file.group} {q_dest} && chmod {file.mode} {q_dest}")
        else:
            if state.config.DIFF and not file.private:
                show_diff(file.dest, content)
            staged = staging_path(file.dest)
            then = place(staged, file.dest, file.user, file.group, file.mode, file.validate)
            texts.append(Text(content, staged, first=prepare_folder(file.dest), then=then))
        changed.add(file.dest)
    if texts:
        command = text_command(texts)
        if fixes:  # ownership to fix too: still one round trip
            command = StringCommand(" && ".join([*fixes, command.get_raw_value()]), **command.connector_arguments)
        yield command
    elif fixes:
        yield " && ".join(fixes)


# Folders that someone other than root can change, and where the deploy stages a file meant for
# them instead: a root-only folder on the same filesystem, so that the final rename stays one.
STAGE_ELSEWHERE = {server.config_dir: PATHS.staging for server in SERVERS.values()}
SUDO_ARGUMENTS = ("_sudo", "_su_user", "_doas", "_dzdo")


def staging_path(dest: str) -> str:
    """A new name, nobody can guess, in a folder only root can change, where `dest` waits to be placed.

    >>> staging_path("/etc/redis/redis.conf")
    '/etc/smart-redis/.redis.conf.smart-redis-3f2a9c0d1e4b'
    """
    folder, name = dest.rsplit("/", 1)
    return f"{STAGE_ELSEWHERE.get(folder, folder)}/.{name}.smart-redis-{uuid4().hex[:12]}"


def prepare_folder(dest: str) -> str:
    """The command that makes sure dest's folder, and its staging folder if elsewhere, exist
    (the deploy's own root-only folder as root's, mode 700, whatever it was)."""
    folder = dest.rsplit("/", 1)[0]
    made = []
    for where in (folder, STAGE_ELSEWHERE.get(folder)):
        if where == PATHS.staging:
            made.append(f"install -d -m 700 -o root -g root {shlex.quote(where)}")
        elif where is not None:
            made.append(f"mkdir -p {shlex.quote(where)}")
    return " && ".join(made)


def upload(
    source: str | StringIO, staged: str, private: bool = False, first: str | None = None, then: str | None = None
) -> Iterator[Any]:
    """
    The one way this project puts bytes on a host: the commands that land `source` at `staged`.

    + source: the text, or a local file's path (a dataset to restore: any size, any bytes)
    + staged: a path in a folder only root can change (staging_path(), or a root-only folder of
      the step's own); nothing else ever receives the bytes, whatever a local user plants
    + private: a secret: the staged file is 0600 from its first byte (text always is)
    + first, then: shell commands to run before the bytes land (making the folder) and after
      (placing the file); for text all three are one command, so one round trip per file

    Text travels base64-encoded on the stdin of the command that writes it, as root: no file of
    the login user on its way (over SSH with sudo), not in any process list or log.

    A file goes through pyinfra's upload (docker cp, SFTP). Over SSH with sudo that lands the
    bytes in a file of the login user first and copies it as root; pyinfra would name it after the
    destination (predictable: a local user could create it first and swap its content, or read
    it). Here it has a random name, is created new (noclobber) and 0600 by the login user, and is
    checked to be the login's own plain file.

    **Example:**

    .. code:: python

        yield from upload(StringIO(text), staged, first=prepare_folder(dest), then=place(staged, dest, ...))
    """
    q_staged = shlex.quote(staged)
    if isinstance(source, StringIO):
        yield text_command([Text(source.getvalue(), staged, first, then)])
        return
    if first:
        yield first
    if private:
        yield f"rm -f {q_staged} && umask 077 && : > {q_staged}"
    arguments: dict[str, Any] = dict(host.current_op_global_arguments or {})
    temp = None
    if any(arguments.get(key) for key in SUDO_ARGUMENTS):
        temp = host.get_temp_filename()  # a uuid's hash: nobody can plant it in advance
        q_temp = shlex.quote(temp)
        yield StringCommand(f"set -C; umask 077 && : > {q_temp} && test -f {q_temp} && test -O {q_temp}", _sudo=False)
    yield FileUploadCommand(source, staged, remote_temp_filename=temp)
    if then:
        yield then


class Text(NamedTuple):
    """Text for upload(): where it lands (a root-only folder's staged path), and the commands
    before the bytes land (making the folder) and after (placing the file)."""

    content: str
    staged: str
    first: str | None = None
    then: str | None = None


def text_command(texts: Sequence[Text]) -> StringCommand:
    """upload()'s command for text: each text base64-encoded, one after the other on its stdin;
    every text but the last is read by its exact length (GNU head -c reads no byte beyond it)."""
    parts: list[str] = []
    stdin: list[str] = []
    for i, text in enumerate(texts):
        q_staged = shlex.quote(text.staged)
        data = base64.encodebytes(text.content.encode()).decode()
        read = "base64 -d" if i == len(texts) - 1 else f"head -c {len(data)} | base64 -d"
        write = f"( umask 077 && rm -f {q_staged} && {read} > {q_staged} )"
        # The stdin is the texts': the commands around each one (a validator) read none of it.
        first = [f"{{ {text.first}; }} </dev/null"] if text.first else []
        then = [f"{{ {text.then}; }} </dev/null"] if text.then else []
        parts += [*first, write, *then]
        stdin.append(data)
    return StringCommand(" && ".join(parts), _stdin="".join(stdin))


def one_round_trip(commands: Sequence[str | StringCommand]) -> Iterator[str | StringCommand]:
    """A step's commands as one: each still runs only when the one before succeeded, as pyinfra
    runs them apart, in one round trip. Only the first may have stdin (an upload's text): the
    others would wait for the same stream; with stdin on a later one they go apart.

    >>> list(one_round_trip(["systemctl stop a", "systemctl start b"]))
    [StringCommand({ systemctl stop a; } && { systemctl start b; })]
    """
    later_stdin = any(isinstance(c, StringCommand) and c.connector_arguments for c in commands[1:])
    if len(commands) < 2 or later_stdin:
        yield from commands
        return
    first = commands[0]
    arguments = first.connector_arguments if isinstance(first, StringCommand) else {}
    texts = [c.get_raw_value() if isinstance(c, StringCommand) else c for c in commands]
    yield StringCommand(" && ".join(f"{{ {text}; }}" for text in texts), **arguments)


def place(staged: str, dest: str, user: str, group: str, mode: str, validate: str | None = None) -> str:
    """The command that gives the staged file its owner and mode, validates it, and renames it
    over dest: in its root-only folder nobody can swap it meanwhile, and the rename replaces
    whatever dest is (a link included) without following it (-T: nor into a folder)."""
    q_staged = shlex.quote(staged)
    check = f" && {{ {validate.format(path=q_staged)}; }}" if validate else ""
    return (
        f"{{ chown {user}:{group} {q_staged} && chmod {mode} {q_staged}{check} && mv -fT {q_staged} {shlex.quote(dest)}; }}"
        f" || {{ rm -f {q_staged}; exit 1; }}"
    )


@operation(writes="dest")
def copy_once(src: str, dest: str):
    """
    Copy a file, keeping owner and mode, unless the copy already exists.

    + src: file to copy (it may only appear during this run, e.g. from a package)
    + dest: the copy; never overwritten (must be one of facts.WATCHED_FILES)

    **Example:**

    .. code:: python

        copy_once(src="/etc/redis/redis.conf", dest="/etc/redis/redis.conf.backup")
    """
    if file_state(dest) is not None:
        host.noop(f"{dest} exists and is kept as it is")
        return
    yield copy_command(src, dest)


def copy_command(src: str, dest: str) -> str:
    """copy_once's command, also for a step that copies in its own command (the install keeps the
    package's config): copied where only root writes, then renamed, so a link planted at dest is
    replaced, never written through; nothing when dest exists."""
    staged, q_dest = shlex.quote(staging_path(dest)), shlex.quote(dest)
    return (
        f"test -e {q_dest} || test -L {q_dest} || {{ {prepare_folder(dest)} && cp -pP {shlex.quote(src)} {staged} "
        f"&& mv -fT {staged} {q_dest}; }}"
    )


@operation(writes=())
def service_running(service: str, restart_if: Callable[[HostState], str | None] | None = None):
    """
    Start a systemd service and enable it at boot, as far as it is not already.

    + service: the unit (the RedisHost fact tells its state)
    + restart_if: for a service that runs: why it must restart (from the host's state), or None

    **Example:**

    .. code:: python

        service_running(service="redis-server")
        service_running(service="prometheus-redis-exporter", restart_if=lambda facts: None)
    """
    facts = host_state(fresh=True)  # apt may have started the service since
    enabled, active = (
        (facts.enabled, facts.active) if service == facts.server.service else facts.units.get(service, ("", ""))
    )
    if enabled == "masked":
        yield f"systemctl unmask {service}"
    if enabled != "enabled":
        yield f"systemctl enable {service}"
    reason = restart_if(facts) if restart_if is not None and active == "active" else None
    if active != "active":
        yield f"systemctl start {service}"
    elif reason:
        host.log(f"Restarting {service}: {reason}", logger.info)
        yield f"systemctl restart {service}"
    elif enabled == "enabled":
        host.noop(f"{service} is enabled and running")


def reload_units(
    units: str | tuple[str, ...], *changed: OperationMeta | Callable[[], bool] | None, facts: HostState
) -> None:
    """The one way this project runs systemctl daemon-reload: when this run changed a unit file
    of `units` (any of `changed`: a step, or a gate such as Placed.any_of; None: a step that did
    not run), or when systemd still waits for one (NeedDaemonReload), so that a run that stopped
    between the two does not lose it."""
    units = (units,) if isinstance(units, str) else units
    steps = [op for op in changed if op is not None]
    if not steps and not facts.need_reload.intersection(units):
        return
    daemon_reload(
        name=f"Reload systemd units for {', '.join(units)}",
        _if=None
        if facts.need_reload.intersection(units)
        else lambda: any(step() if callable(step) else step.did_change() for step in steps),
    )


@operation(writes=())
def daemon_reload():
    """
    systemctl daemon-reload (see reload_units(): when to).

    **Example:**

    .. code:: python

        daemon_reload(name="Reload systemd units", _if=dropin_op.did_change)
    """
    yield "systemctl daemon-reload"


@operation(writes=())
def no_file_changed(commands: list[str]):
    """
    Shell commands that change the host but none of the watched files (a restart, a timer, sysctl):
    steps after them that place files still trust the run's answer.

    + commands: each one round trip; the values in them quoted by the caller

    **Example:**

    .. code:: python

        no_file_changed(name="Apply the sysctl settings", commands=["sysctl -q -p /etc/sysctl.d/30-redis.conf"])
    """
    yield from commands


GROUP_FILE = "/etc/group"


def group_missing(group: str) -> list[str]:
    """The command that creates a local system group (its name validated by the settings), for
    a step that declares GROUP_FILE among its writes; none when /etc/group has it.

    >>> group_missing("redis-operators")  # on a host without it
    ['groupadd -r redis-operators']
    """
    if group in state_telling(GROUP_FILE).groups:
        host.noop(f"group {group} exists")
        return []
    return [f"groupadd -r {shlex.quote(group)}"]
