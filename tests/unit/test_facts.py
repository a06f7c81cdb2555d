"""The RedisHost fact parser, on output captured from real hosts."""

from __future__ import annotations

from smart_redis.facts import FileState, parse

CONTAINER_BEFORE_INSTALL = """\
os_id=debian
os_version=12
os_codename=bookworm
systemd=yes
container=docker
redis_version=
packages=
enabled=
active=inactive
sysctl.vm.overcommit_memory=0
sysctl.net.core.somaxconn=4096
thp=always [madvise] never
""".splitlines()

SERVER_CONVERGED = """\
os_id=ubuntu
os_version=24.04
os_codename=noble
systemd=yes
container=none
redis_version=7.0.15
packages=redis-server:installed redis-tools:config-files python3:installed sudo:installed
enabled=enabled
active=active
thp=always madvise [never]
file=/etc/redis/redis.conf redis redis 640 abc123
""".splitlines()


def test_fresh_container():
    state = parse(CONTAINER_BEFORE_INSTALL)
    assert state.os == ("debian", "12") and state.systemd and state.container == "docker"
    assert state.redis_version is None and state.redis_major is None
    assert state.missing_packages == ["redis-server", "redis-tools", "python3", "sudo"]
    assert state.thp == "madvise" and state.sysctl["net.core.somaxconn"] == "4096"
    assert state.files == {}


def test_converged_server():
    state = parse(SERVER_CONVERGED)
    assert state.container is None and state.redis_major == 7
    # config-files only: removed but not purged, so it must be installed again
    assert state.missing_packages == ["redis-tools"]
    assert state.thp == "never"
    assert state.files["/etc/redis/redis.conf"] == FileState("redis", "redis", "640", "abc123")
