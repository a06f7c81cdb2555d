"""Run deploy.py (or fetch_backups.py) against a made-up host and record every shell command it generates.

No host is contacted: each fact answers from the scenario, and every operation, ours and
pyinfra's, runs its command generator at once instead of queueing it. What the tests get is
the shell text each step would send, for the scenario's path through the deploy (a fresh host,
a restart, a Sentinel replica...), so that all of it can go through a parser and shellcheck.

    commands = record(Scenario(...))   # -> [Command(step, text), ...]
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import importlib
import pkgutil
import re
import runpy
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from pyinfra.api import FileUploadCommand, StringCommand
from pyinfra.api.command import FileDownloadCommand, FunctionCommand
from pyinfra.api.state import StateStage
from pyinfra.context import ctx_host, ctx_inventory, ctx_state
from pyinfra.operations import files, python, server, systemd

import smart_redis
from smart_redis.facts import HostState

ROOT = Path(__file__).resolve().parents[2]
_DEPLOY_REDIS = smart_redis.deploy_redis  # pyinfra's @deploy wrapper, before any run replaced it


@dataclass(frozen=True)
class Command:
    step: str  # the operation (or pyinfra operation) that generated it
    text: str


@dataclass
class Scenario:
    name: str
    facts: HostState
    answers: dict[str, Any] = field(default_factory=dict)  # fact class name -> answer, or a function of its arguments
    data: dict[str, Any] = field(default_factory=dict)  # host data (the settings given)
    groups: dict[str, list[str]] = field(default_factory=dict)  # inventory groups
    host_data: dict[str, dict[str, Any]] = field(default_factory=dict)  # other hosts' data
    host_name: str = "db1"
    script: str = "deploy.py"


class _Meta:
    """What an operation call returns: changed, so that every _if-gated step is recorded too."""

    def did_change(self) -> bool:
        return True

    def will_change(self) -> bool:
        return True

    def is_complete(self) -> bool:
        return True


class _State:
    """What the steps read of pyinfra's State; a new one per run, as the host-state cache is per run."""

    def __init__(self, host: _Host):
        self.config = SimpleNamespace(DIFF=False)
        self.current_stage = StateStage.Execute
        self.is_executing = False  # recorded, not run: cross-host barriers have nothing to wait for
        self.ops: dict = {host: {}}


class _Data(dict):
    def dict(self) -> dict:
        return dict(self)


class _Host:
    def __init__(self, scenario: Scenario, name: str, data: dict[str, Any], recorded: list[Command] | None = None):
        self.scenario, self.name, self.data = scenario, name, _Data(data)
        self.recorded = recorded if recorded is not None else []

    def get_fact(self, fact_cls, **kwargs):
        """The scenario's answer; the fact's own command (a shell command too) is recorded."""
        key = fact_cls.__name__
        if fact_cls.__module__.startswith("smart_redis"):
            self.recorded.append(Command(f"fact {fact_cls.__module__}.{key}", fact_cls().command(**kwargs)))
        if key == "RedisHost":
            live = self.scenario.answers.get("RedisLive") if kwargs.get("live_cli") else None
            if live is None:
                return self.scenario.facts
            # what the scenario's RedisLive answers, asked in the same round trip
            values = live(cli=kwargs["live_cli"], names=kwargs["live_names"]) if callable(live) else live
            return dataclasses.replace(self.scenario.facts, live=values)
        if key not in self.scenario.answers:
            raise KeyError(f"scenario {self.scenario.name!r} has no answer for the fact {key}")
        answer = self.scenario.answers[key]
        return answer(**kwargs) if callable(answer) else answer

    def noop(self, text: str) -> None:
        pass

    def log(self, text: str, level: Any = None) -> None:
        pass

    # The production mode: SSH with sudo, where pyinfra uploads through a temporary file.
    current_op_global_arguments = {"_sudo": True}

    def get_temp_filename(self, hash_key: str | None = None, hash_filename: bool = True) -> str:
        """pyinfra's rule: named after hash_key when one is given, else random."""
        return f"/tmp/pyinfra-{hashlib.sha1((hash_key or uuid.uuid4().hex).encode()).hexdigest()}"


class _Inventory:
    def __init__(self, scenario: Scenario, this: _Host):
        names = {scenario.host_name, *(n for group in scenario.groups.values() for n in group)}
        self.hosts = {
            n: this if n == scenario.host_name else _Host(scenario, n, scenario.host_data.get(n, {})) for n in names
        }
        self.groups = scenario.groups

    def get_group(self, name: str, default=None):
        return [self.hosts[n] for n in self.groups.get(name, [])] if name in self.groups else default

    def __iter__(self):
        return iter(self.hosts.values())


def _text(command) -> str | None:
    if isinstance(command, str):
        return command
    if isinstance(command, StringCommand):
        return command.get_raw_value()
    if isinstance(command, FunctionCommand):  # runs on the operator's machine: recorded as a no-op
        return f": {command.function.__name__}"
    if isinstance(command, (FileUploadCommand, FileDownloadCommand)):
        return None
    raise TypeError(f"unexpected command {command!r}")


class Recorded(list):
    """The commands of a run, in order; uploads: (step, staged path, how) of each upload, where how
    is "stdin" (text on the writing command's stdin) or pyinfra's temporary file of a file upload."""

    def __init__(self):
        super().__init__()
        self.uploads: list[tuple[str, str, str | None]] = []
        self.sent: dict[str, str] = {}  # staged path -> the text that arrived on stdin


# Each text of a command: every one but the last read by its length (operations.text_command).
STDIN_WRITE = re.compile(r"umask 077 && rm -f (\S+) && (?:head -c (\d+) \| )?base64 -d > (\S+)")


def _recorder(step: str, generator_function: Callable, recorded: Recorded) -> Callable:
    def call(*args, **kwargs):
        kwargs = {k: v for k, v in kwargs.items() if k != "name" and not k.startswith("_")}
        for command in generator_function(*args, **kwargs) or ():
            if isinstance(command, FileUploadCommand):
                recorded.uploads.append((step, command.dest, command.remote_temp_filename))
            stdin = command.connector_arguments.get("_stdin") if isinstance(command, StringCommand) else None
            if stdin is not None:
                writes = list(STDIN_WRITE.finditer(command.get_raw_value()))
                assert writes, command.get_raw_value()
                for i, written in enumerate(writes):
                    last = i == len(writes) - 1
                    assert written[1] == written[3] and (written[2] is None) == last, command.get_raw_value()
                    data, stdin = (stdin, "") if last else (stdin[: int(written[2])], stdin[int(written[2]) :])
                    recorded.uploads.append((step, written[3], "stdin"))
                    recorded.sent[written[3]] = base64.b64decode(data).decode()
                assert stdin == "", "bytes on stdin that no write reads"
            text = _text(command)
            if text is not None:
                recorded.append(Command(step, text))
        return _Meta()

    return call


def _shell(recorded: list[Command]) -> Callable:
    def shell(commands, name: str = "server.shell", **_):
        for command in [commands] if isinstance(commands, str) else commands:
            recorded.append(Command(f"server.shell: {name}", _text(command)))
        return _Meta()

    return shell


_OPERATIONS: list[tuple[Any, str, Callable]] = []


def _our_operations() -> list[tuple[Any, str, Callable]]:
    """(module, name, generator function) of every operation of this project, found once, before
    any recorder replaced them."""
    if not _OPERATIONS:
        for info in pkgutil.iter_modules(smart_redis.__path__):
            module = importlib.import_module(f"smart_redis.{info.name}")
            for attr, value in vars(module).items():
                inner = getattr(value, "_inner", None)
                ours = inner is not None and getattr(inner, "__module__", "").startswith("smart_redis")
                if ours and not hasattr(inner, "deploy_name"):  # a @deploy is no operation: it calls them
                    _OPERATIONS.append((module, attr, inner))
    return _OPERATIONS


def record(scenario: Scenario, monkeypatch) -> Recorded:
    """Every shell command the scenario's run generates, in order."""
    recorded = Recorded()
    # pyinfra's own operations: only server.shell runs commands of ours.
    monkeypatch.setattr(server, "shell", _shell(recorded))
    for module, names in (
        (server, ("group",)),
        (systemd, ("daemon_reload", "service")),
        (files, ("get",)),
        (python, ("call",)),
    ):
        for op_name in names:
            monkeypatch.setattr(module, op_name, lambda *a, **k: _Meta())
    # Ours: every name bound to one of this project's operations, in every module that imports it.
    for module, attr, inner in _our_operations():
        monkeypatch.setattr(module, attr, _recorder(f"{inner.__module__}.{inner.__name__}", inner, recorded))
    # pyinfra's @deploy wrapper needs a real host and config; the steps inside are what is recorded.
    monkeypatch.setattr(smart_redis, "deploy_redis", _DEPLOY_REDIS._inner)
    this = _Host(scenario, scenario.host_name, scenario.data, recorded)
    state = _State(this)
    state.activated_hosts = set(_Inventory(scenario, this))  # every host of the scenario is in the run
    with ctx_state.use(state), ctx_inventory.use(_Inventory(scenario, this)), ctx_host.use(this):
        runpy.run_path(str(ROOT / scenario.script), run_name="__pyinfra__")
    return recorded
