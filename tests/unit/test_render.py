"""redis.conf rendering: the settings reach the file, and nothing else varies."""

from __future__ import annotations

from smart_redis import render
from smart_redis.settings import load

HASHES = {"APP": "a" * 64, "ADMIN": "b" * 64, "EXPORTER": "c" * 64}


def redis_conf(settings, hashes=HASHES) -> str:
    return render.redis_conf(settings, hashes)


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_defaults_render_the_platform_config():
    conf = lines(redis_conf(load({})))
    for expected in (
        "bind 127.0.0.1 -::1",
        "protected-mode yes",
        "port 6379",
        "supervised systemd",
        "daemonize no",
        "maxmemory 512mb",
        "maxmemory-policy allkeys-lru",
        'notify-keyspace-events "Exe"',
        "save 3600 1 300 100 60 10000",
        "dir /var/lib/redis",
        "logfile /var/log/redis/redis-server.log",
        "lazyfree-lazy-eviction yes",
        "latency-monitor-threshold 100",
    ):
        assert expected in conf, expected


def test_each_directive_appears_once():
    directives = [line.split()[0] for line in lines(redis_conf(load({}))) if not line.startswith("user ")]
    assert len(directives) == len(set(directives))


def test_overrides_reach_the_file():
    conf = lines(redis_conf(load({"redis_port": 6380, "redis_maxmemory": "1gb", "redis_save": ""})))
    assert "port 6380" in conf and "maxmemory 1gb" in conf and 'save ""' in conf


def test_rendering_is_deterministic():
    assert redis_conf(load({})) == redis_conf(load({}))


def test_acl_users_carry_hashes_and_rules():
    conf = lines(redis_conf(load({})))
    assert "user default off resetpass resetkeys resetchannels -@all" in conf
    assert (
        f"user smart-trade on #{'a' * 64} resetkeys resetchannels "
        "~* &__keyevent@*__:* &__keyspace@*__:* +@all -@admin -@dangerous +info"
    ) in conf
    assert f"user ops-admin on #{'b' * 64} resetkeys resetchannels ~* &* +@all" in conf


def test_auth_none_renders_no_users():
    conf = lines(redis_conf(load({"redis_auth": "none"}), {}))
    assert not [line for line in conf if line.startswith("user ")]
