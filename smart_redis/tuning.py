"""Kernel settings that Redis asks for at startup. The kernel of a container is not ours."""

from __future__ import annotations

from pyinfra import host, logger

from . import run
from .constants import PATHS, THP_SERVICE
from .facts import HostState
from .operations import managed_file, no_file_changed, reload_units
from .render import render
from .settings import Settings


def thp_unit() -> str:
    return render("redis-disable-thp.service.j2", service=run.server().service)


def sysctl_conf(settings: Settings, current_somaxconn: str) -> str:
    # Never lower a somaxconn that the host already has above the backlog.
    somaxconn = max(settings.tcp_backlog, int(current_somaxconn or 0))
    return f"vm.overcommit_memory = 1\nnet.core.somaxconn = {somaxconn}\n"


def kernel(settings: Settings, facts: HostState) -> None:
    if facts.container:
        host.log(f"Kernel tuning skipped: the host runs in a {facts.container} container", logger.warning)
        return
    if not settings.host_tuning:
        host.log("Kernel tuning skipped: redis_host_tuning = False", logger.warning)
        return
    sysctl = managed_file(
        name="Persist vm.overcommit_memory and net.core.somaxconn",
        dest=PATHS.sysctl,
        content=sysctl_conf(settings, facts.sysctl.get("net.core.somaxconn", "")),
    )
    no_file_changed(name="Apply the sysctl settings", commands=[f"sysctl -q -p {PATHS.sysctl}"], _if=sysctl.did_change)
    thp = managed_file(name="Turn transparent huge pages off at boot", dest=PATHS.thp_unit, content=thp_unit())
    reload_units(THP_SERVICE, thp, facts=facts)
    no_file_changed(
        name="Turn transparent huge pages off now",
        commands=[f"systemctl enable --now {THP_SERVICE}"],
        _if=thp.did_change,
    )
