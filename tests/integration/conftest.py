"""Real systemd containers for the integration tests, created and removed by the tests.

The Docker engine is started if none runs (and stopped again at the end), the Debian 12 test
image is built once per run from tests/image/ (the debootstrap root file system is cached in
.cache/), the image of another release only when a test asks for a container of it, and every
container, network and image the run made is removed afterwards, also on failure.
"""

from __future__ import annotations

import contextlib
import json
import os
import shlex
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
INTEGRATION = Path(__file__).resolve().parent
sys.path.insert(0, str(ROOT / "tests"))

import testbed  # noqa: E402

from smart_redis.auth import cli  # noqa: E402
from smart_redis.host.server import REDIS, Server  # noqa: E402
from smart_redis.settings import defaults  # noqa: E402

DEFAULTS = defaults()

PYINFRA = str(Path(sys.executable).parent / "pyinfra")
PYTEST = str(Path(sys.executable).parent / "pytest")


# Every module, the longest first (measured in make test, 2026-12-07: the seconds each took from
# its first test to its last, side by side), so that whole modules per worker (pytest-xdist), handed
# out in this order, end close together: the run does not end waiting for one long module, nor
# for a middle-sized one started last.
LONGEST_FIRST = (
    "test_handover",  # 540
    "test_sentinel",  # 438
    "test_alerts",  # 398
    "test_sentinel_changes",  # 348
    "test_sentinel_tls",  # 311
    "test_sentinel_valkey",  # 271 (301 with TLS, 2026-12-07)
    "test_core",  # 257
    "test_valkey",  # 230
    "test_tls",  # 213
    "test_live_reconfiguration",  # 152
    "test_backup",  # 134
    "test_prometheus",  # 130
    "test_pm2",  # 113
    "test_ssh",  # 113
    "test_security",  # 111
    "test_package",  # 110
    "test_redis_monitor",  # 68
    "test_tls_repair",  # 32
    "test_testbed",  # 10
)


def pytest_collection_modifyitems(config, items):
    # pytest-xdist hands each worker its first module and, at once, a second one (a worker runs a
    # test only once it knows the next), which waits behind the first. So the unit tests (seconds)
    # come right after the first module of each worker: what would wait behind a long module is short.
    workers = getattr(config, "workerinput", {}).get("workercount", 0)  # 0: not side by side
    collected = {item.path.stem for item in items}
    first = [name for name in LONGEST_FIRST if name in collected][:workers]  # make test-fast has fewer

    def rank(item) -> int:
        name = item.path.stem
        longest = LONGEST_FIRST.index(name) if name in LONGEST_FIRST else len(LONGEST_FIRST)
        if name in first:
            return longest
        if INTEGRATION not in item.path.parents:
            return len(LONGEST_FIRST)  # the unit tests: after the first modules, before the rest
        return len(LONGEST_FIRST) + 1 + longest

    items.sort(key=rank)  # stable: within a module, and among the others, the order stays
    for item in items:
        if INTEGRATION in item.path.parents:
            item.add_marker(pytest.mark.integration)


# The controller's note of the engine: (it started it, another run shares it).
_ENGINE = pytest.StashKey[tuple[bool, bool]]()
# The controller's image builds, started before its workers ask for the images.
_BUILDS = pytest.StashKey[list[threading.Thread]]()


def _controller(config) -> bool:
    """pytest-xdist's controlling process of a distributed run (make test: -n): it runs no test."""
    return bool(getattr(config.option, "numprocesses", None)) and not hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_sessionstart(session):
    """In a distributed run the controller starts the engine and cleans up, once, before its
    workers start and after they end; the workers share the engine (SMART_REDIS_SHARED_ENGINE)."""
    if not _controller(session.config):
        return
    shared = bool(os.environ.get("SMART_REDIS_SHARED_ENGINE"))
    started = testbed.ensure_engine()
    if not shared:
        testbed.clean()
    session.config.stash[_ENGINE] = (started, shared)
    os.environ["SMART_REDIS_SHARED_ENGINE"] = "1"  # the workers inherit it
    # The images, the default release's first, while the workers start and run the unit tests: a
    # worker that asks for one waits for this build (testbed.exclusive) instead of starting its own.
    build = threading.Thread(target=_build_quietly, args=(testbed.RELEASES,), daemon=True)
    build.start()
    session.config.stash[_BUILDS] = [build]


def _build_quietly(releases: tuple[str, ...]) -> None:
    for release in releases:
        for cloud in (False, True):
            with contextlib.suppress(testbed.TestbedError, subprocess.CalledProcessError, subprocess.TimeoutExpired):
                testbed.ensure_image(release, cloud)  # a failure shows again, with its reason, where a test asks for it


def pytest_sessionfinish(session):
    if not _controller(session.config) or _ENGINE not in session.config.stash:
        return
    for build in session.config.stash.get(_BUILDS, []):
        build.join()  # before the cleanup removes the images
    started, shared = session.config.stash[_ENGINE]
    if not shared:
        testbed.clean(images=not os.environ.get("SMART_REDIS_KEEP_IMAGE"))
        if started:
            testbed.stop_engine()


@pytest.fixture(scope="session")
def docker_testbed():
    # SMART_REDIS_SHARED_ENGINE=1: other test runs share this engine (a developer running two
    # modules at once): leave their containers, the image and the engine alone.
    shared = bool(os.environ.get("SMART_REDIS_SHARED_ENGINE"))
    started = testbed.ensure_engine()
    if not shared:
        testbed.clean()  # what an interrupted earlier run may have left
    testbed.ensure_image()
    yield testbed
    if not shared:
        testbed.clean(images=not os.environ.get("SMART_REDIS_KEEP_IMAGE"))
        if started:
            testbed.stop_engine()


@pytest.fixture(scope="session")
def run_id() -> str:
    return uuid.uuid4().hex[:6]


@pytest.fixture(scope="session")
def new_container(docker_testbed, run_id):
    """Factory: new_container("core") -> name of a booted systemd container.

    It boots the cloud image (python3 and sudo installed: testbed.image_name); bare=True boots
    the bare one, for the tests of a fresh host. new_container("core-trixie", release="trixie")
    boots one of another Debian release; its image is built on first use, so a run that never
    asks for it never waits for it.
    Containers live until the end of the session (tests of one module share them) unless a
    test removes them earlier with docker_testbed.remove_container(name).
    """
    made: list[str] = []

    def make(role: str, release: str = docker_testbed.DEFAULT_RELEASE, bare: bool = False, **kwargs) -> str:
        docker_testbed.ensure_image(release, cloud=not bare)
        name = f"smart-redis-test-{run_id}-{role}"
        made.append(docker_testbed.start_container(name, release=release, cloud=not bare, **kwargs))
        return name

    yield make
    for name in made:
        docker_testbed.remove_container(name)


@dataclass
class Run:
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        return self.stdout + self.stderr

    @property
    def failure(self) -> str:
        """What to show when a run failed: what came before each of pyinfra's error lines (the end
        of a -vvv output may not hold them), long lines cut, then the end of the output."""
        lines = [line if len(line) < 300 else line[:300] + "..." for line in self.output.splitlines()]
        shown: list[str] = []
        for at, line in enumerate(lines):
            if "] Error" in line or "StepError" in line:
                shown += ["...", *lines[max(0, at - 15) : at + 1]]
        return "\n".join(
            [
                "error lines, with what came before:",
                *shown[-120:],
                *self.changed_operations,
                "end of the output:",
                self.output[-3000:],
            ]
        )

    @property
    def changed_operations(self) -> list[str]:
        """With --json: each operation that changed a host, and on which hosts (what a re-run that
        was to change nothing did instead)."""
        try:
            operations = json.loads(self.stdout)["results"]["operations"]
        except (ValueError, KeyError, TypeError):
            return []
        return [f"changed: {op['name']} on {', '.join(op['success'])}" for op in operations if op["success"]]

    @property
    def changed(self) -> int:
        """Number of operations that changed something (needs json=True)."""
        return json.loads(self.stdout)["results"]["totals"]["success"]


def deploy(
    target: str,
    *args: str,
    data: dict | None = None,
    json_output: bool = False,
    env=None,
    yes: bool = True,
    no_apps: bool = True,
    answer: str | None = None,
) -> Run:
    """Run deploy.py with the pyinfra CLI, exactly as an operator does.

    Test hosts run no apps unless a test says so: pm2_ecosystem_file defaults to None here
    (no_apps=False leaves it to the inventory).
    """
    command = [PYINFRA, *(["-y"] if yes else []), *(["--json"] if json_output else []), *args]
    for key, value in {**({"pm2_ecosystem_file": "None"} if no_apps else {}), **(data or {})}.items():
        command += ["--data", f"{key}={value}"]
    command += [target, "deploy.py"]
    result = subprocess.run(
        command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env, input=answer or ""
    )  # answer: what the operator types at pyinfra's prompt (with yes=False)
    return Run(result.returncode, result.stdout, result.stderr)


def infra_checks(target: str, *args: str) -> subprocess.CompletedProcess:
    """Run the operator's host checks (tests/infra) against a target; a docker:// target's
    commands go through testbed.exec_in (tests/engine_backend.py), as the tests' own do."""
    return subprocess.run(
        [PYTEST, "-q", "-p", "no:cacheprovider", "-p", "engine_backend", "tests/infra", f"--hosts={target}", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        env={
            **os.environ,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "tests"), os.environ.get("PYTHONPATH")])),
        },
    )


# A test's own packages (nodejs, Prometheus, sshd): apt-get update only where the index is older
# than an hour, as the deploy does (the cloud image keeps one of its build's hour).
APT_INSTALL = (
    "{ find /var/lib/apt/lists -maxdepth 1 -name '*Packages*' -mmin -60 | grep -q . || apt-get update -qq; } "
    "&& DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends"
)


def sh(container: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
    """sh -c COMMAND in the container (testbed.exec_in: the test thread's shell session there)."""
    result = testbed.exec_in(container, ["sh", "-c", command])
    if check:
        result.check_returncode()
    return result


def sh_input(container: str, command: str, text: str) -> subprocess.CompletedProcess:
    """sh -c COMMAND in the container with TEXT on its standard input."""
    result = testbed.exec_in(container, ["sh", "-c", command], input=text)
    result.check_returncode()
    return result


def redis(
    container: str,
    *args: str,
    db: int = 0,
    role: str = "ADMIN",
    port: int = 6379,
    auth: str = "acl",
    server: Server = REDIS,
    tls: str | None = None,
) -> str:
    """redis-cli (the server's CLI) inside the container as an ACL user; returns the reply.
    tls: the CLI's TLS options, for a server with TLS alone."""
    command = f"{cli(port, auth, role, tls=tls, program=server.cli)} -n {db} " + " ".join(shlex.quote(a) for a in args)
    return sh(container, command).stdout.strip()


def fingerprint(container: str, server: Server = REDIS) -> str:
    """Paths, sizes and mtimes of every file the deploy could touch, plus the server's PID."""
    return sh(
        container,
        f"find /etc /usr/local {server.data_dir} -xdev -type f -printf '%p %s %T@\\n' 2>/dev/null | sort | sha256sum; "
        f"sha256sum {server.config}; systemctl show -p MainPID --value {server.service}",
    ).stdout


def put(container: str, path: str, text: str) -> None:
    sh_input(container, f"umask 022 && cat > {shlex.quote(path)}", text)


def wait_for(what: str, check, timeout: float, interval: float = 1):
    """check() until it returns something true (which is returned), or fail after timeout."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    pytest.fail(f"{what}: not within {timeout:.0f} s (last: {last!r})")


# How long the sentinels may take to promote a replica with the deploy's defaults: the primary is
# down after redis_sentinel_down_after_ms (5 s), and one election then takes a few seconds: 15 s
# in all. A vote that the sentinels split is tried again only after twice
# redis_sentinel_failover_timeout_ms (2 x 30 s, Sentinel's own rule), so the wait goes on that
# long (plus 25 s for a busy machine), but a promotion after ONE_ELECTION passes only where the
# sentinels' log shows that retry.
ONE_ELECTION = DEFAULTS["redis_sentinel_down_after_ms"] / 1000 + 10
FAILOVER_WITHIN = (
    DEFAULTS["redis_sentinel_down_after_ms"] / 1000 + 2 * DEFAULTS["redis_sentinel_failover_timeout_ms"] / 1000 + 25
)
ELECTION_EVENTS = "try-failover|elected-leader|failover-abort|failover-end|switch-master"


def promoted(lost: str, says, survivors: list[str], server: Server = REDIS) -> tuple[str, float]:
    """Wait until the sentinel of survivors[0] names a primary other than `lost` (an address;
    says(container) is what that container's sentinel names), called right after the primary
    stopped; returns (the new primary, seconds). Later than ONE_ELECTION, the sentinels' log of
    this failover must show an election tried again (an abort, or a second try-failover)."""
    log = shlex.quote(server.sentinel_logfile)
    before = {name: sh(name, f"cat {log} 2>/dev/null | wc -l", check=False).stdout.strip() or "0" for name in survivors}
    started = time.monotonic()
    new = wait_for(
        "a replica promoted",
        lambda: says(survivors[0]) not in ("", lost) and says(survivors[0]),
        FAILOVER_WITHIN,
        interval=0.5,
    )
    took = time.monotonic() - started
    if took > ONE_ELECTION:
        events = {
            name: sh(name, f"tail -n +{int(before[name]) + 1} {log} | grep -E '{ELECTION_EVENTS}'", check=False).stdout
            for name in survivors
        }
        said = "\n".join(f"{name}:\n{lines}" for name, lines in events.items())
        print(f"the failover took {took:.1f} s; the sentinels' log since the primary stopped:\n{said}")
        retried = "failover-abort" in said or said.count("+try-failover") > 1
        assert retried, f"a replica was promoted after {took:.1f} s, without an election tried again:\n{said}"
    return new, took


RECEIVED = "/var/tmp/received.jsonl"
# What a host sends out (alerts, Alertmanager's webhooks) is the evidence: the receiver keeps
# every POST, its path and its JSON body, as one line of RECEIVED, and answers 200.
RECEIVER = f"""
import http.server, json, sys, time

class Receiver(http.server.BaseHTTPRequestHandler):
    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        with open({RECEIVED!r}, "a") as log:
            log.write(json.dumps({{"path": self.path, "body": body, "at": time.time()}}) + "\\n")
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(b'{{"ok": true}}')

    def log_message(self, *args):
        pass

http.server.HTTPServer(("127.0.0.1", int(sys.argv[1])), Receiver).serve_forever()
"""


def start_receiver(container: str, port: int) -> None:
    """A webhook receiver on 127.0.0.1:port inside the container (with the host's python3)."""
    put(container, "/usr/local/lib/test-receiver.py", RECEIVER)
    sh(container, f"systemd-run --unit=test-receiver python3 /usr/local/lib/test-receiver.py {port}")
    wait_for("the webhook receiver listens", lambda: f":{port} " in sh(container, "ss -ltnH").stdout, 10)


def received(container: str) -> list[dict]:
    """Every POST the receiver got, in order: {"path": ..., "body": ..., "at": its time.time()}."""
    log = sh(container, f"cat {RECEIVED} 2>/dev/null || true").stdout
    return [json.loads(line) for line in log.splitlines()]


@contextlib.contextmanager
def three_hosts(docker_testbed, name: str, release: str = testbed.DEFAULT_RELEASE):
    """Three systemd containers on a network of their own, with fixed addresses (a restarted one
    comes back on its own): yields (names, addresses, network); removes all of it afterwards."""
    docker_testbed.ensure_image(release, cloud=True)
    network = docker_testbed.create_network(name, fixed_addresses=True)
    addresses = docker_testbed.network_addresses(network, 3)
    names = [f"{name}{n}" for n in range(1, 4)]
    try:
        for container, address in zip(names, addresses, strict=True):
            docker_testbed.start_container(container, network=network, ip=address, release=release, cloud=True)
        yield names, addresses, network
    finally:
        for container in names:
            docker_testbed.remove_container(container)
        subprocess.run(["docker", "network", "rm", network], capture_output=True)


# A PM2 ecosystem file for the apps of a group's third host: the deploy writes REDIS_URL and the
# sentinels into it (no PM2 runs there).
GROUP_ECOSYSTEM = "/opt/smart-trade/ecosystem.config.js"
GROUP_ECOSYSTEM_TEXT = (
    "module.exports = {\n  apps: [{ name: 'server', script: 'server.js', env: { NODE_ENV: 'production' } }],\n};\n"
)


def group_inventory(path: Path, names: list[str], addresses: list[str]) -> str:
    """An inventory of three_hosts as a Sentinel group: the first the primary, the others its
    replicas, each with a sentinel; the third host's apps have GROUP_ECOSYSTEM. Returns its path."""
    sh_input(names[2], f"mkdir -p {Path(GROUP_ECOSYSTEM).parent} && cat > {GROUP_ECOSYSTEM}", GROUP_ECOSYSTEM_TEXT)

    def host(n: int, ecosystem: str | None) -> str:
        data = {
            "redis_ha_address": addresses[n],
            "redis_bind": f"127.0.0.1 -::1 {addresses[n]}",
            "pm2_ecosystem_file": ecosystem,
        }
        return f'("@docker/{names[n]}", {data!r})'

    path.write_text(
        f"redis_primary = [{host(0, None)}]\n"
        f"redis_replicas = [{host(1, None)}, {host(2, GROUP_ECOSYSTEM)}]\n"
        f"redis_sentinels = [{', '.join(repr('@docker/' + n) for n in names)}]\n"
    )
    return str(path)
