"""Host checks for any provisioned Redis server.

    pytest tests/infra --hosts=docker://redis-demo
    pytest tests/infra --hosts=ssh://deploy@redis-1 --sudo
    pytest tests/infra --hosts=docker://x --redis-data redis_port=6380   # a host deployed with --data

The expected values come from the same settings the deploy reads (the package's defaults in
smart_redis/settings.py plus --redis-data overrides), so the checks follow whatever the host was
deployed with.
"""

from __future__ import annotations

import shlex
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from pyinfra_cli.util import parse_cli_arg  # noqa: E402  (the deploy's own --data parser)

from smart_redis import live  # noqa: E402
from smart_redis import settings as settings_module  # noqa: E402
from smart_redis.auth import cli  # noqa: E402
from smart_redis.constants import DISTRO_VALKEY  # noqa: E402


def pytest_addoption(parser):
    parser.addoption(
        "--redis-data",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a setting the host was deployed with, as given to pyinfra --data",
    )


def _load_settings(config) -> settings_module.Settings:
    overrides = {}
    for item in config.getoption("--redis-data"):
        key, _, value = item.partition("=")
        overrides[key] = parse_cli_arg(value)
    return settings_module.load(overrides)


def pytest_generate_tests(metafunc):
    if "keyspace_db" in metafunc.fixturenames:
        keyspace = _load_settings(metafunc.config).keyspace
        metafunc.parametrize("keyspace_db", keyspace, ids=[f"db{d.db}-{d.name}" for d in keyspace])


@pytest.fixture(scope="session")
def settings(request) -> settings_module.Settings:
    return _load_settings(request.config)


@pytest.fixture
def server_major(host, settings) -> int:
    """The major version the host's server must have: redis_major_version, or the distro's Valkey."""
    if settings.server.name == "valkey":
        return DISTRO_VALKEY[(host.system_info.distribution, host.system_info.release.split(".")[0])]
    return settings.major_version


class RedisCli:
    """redis-cli on the host under test, as one of the ACL users, so checks see what a local client sees."""

    def __init__(
        self, host, settings, where: tuple[int, str | None], role: str = "ADMIN", server: tuple[str, int] | None = None
    ):
        self.host = host
        port, tls = where
        self.prefix = cli(port, settings.auth, role, tls=tls, program=settings.server.cli)
        if server is not None:  # another server of the group; the last -h/-p wins
            self.prefix += f" -h {server[0]} -p {server[1]}"

    def command(self, *args: str, db: int = 0) -> str:
        return f"{self.prefix} -n {db} " + " ".join(shlex.quote(a) for a in args)

    def __call__(self, *args: str, db: int = 0) -> str:
        return self.host.check_output(self.command(*args, db=db))


@pytest.fixture(scope="module")
def endpoint(host, settings) -> tuple[int, str | None]:
    """Where a local client connects, and redis-cli's TLS options while there is no plain port
    (redis_tls = "only"), from redis.conf as the host has it. Read once per module: the checks
    only read, and each read is a round trip to the host."""
    return live.endpoint(live.directives(host.file(settings.server.config).content_string), settings.port)


@pytest.fixture
def plain_or_tls(endpoint) -> str:
    """redis-cli's connection options, without a login."""
    port, tls = endpoint
    return f"{tls} -p {port}" if tls else f"-p {port}"


@pytest.fixture
def redis_cli(host, settings, endpoint) -> RedisCli:
    return RedisCli(host, settings, endpoint)


@pytest.fixture
def app_cli(host, settings, endpoint) -> RedisCli:
    """The app user on this server: what it may and may not do here."""
    return RedisCli(host, settings, endpoint, role="APP")


@pytest.fixture
def app_writer_cli(host, settings, endpoint, writes_to) -> RedisCli:
    """The app user where the apps' writes go: this server, or on a replica its primary."""
    return RedisCli(host, settings, endpoint, role="APP", server=writes_to)


@pytest.fixture
def writer_cli(host, settings, endpoint, writes_to) -> RedisCli:
    """The admin user where writes go: this server, or on a replica its primary."""
    return RedisCli(host, settings, endpoint, server=writes_to)


@pytest.fixture
def writes_to(redis_cli) -> tuple[str, int] | None:
    """None on a primary or single server; (address, port) of the primary on a replica, which refuses writes."""
    info = dict(line.strip().split(":", 1) for line in redis_cli("info", "replication").splitlines() if ":" in line)
    return (info["master_host"], int(info["master_port"])) if info.get("role") == "slave" else None
