"""redis.conf rendering: the settings reach the file, and nothing else varies."""

from __future__ import annotations

from smart_redis.render import redis_conf
from smart_redis.settings import load


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
    directives = [line.split()[0] for line in lines(redis_conf(load({})))]
    assert len(directives) == len(set(directives))


def test_overrides_reach_the_file():
    conf = lines(redis_conf(load({"redis_port": 6380, "redis_maxmemory": "1gb", "redis_save": ""})))
    assert "port 6380" in conf and "maxmemory 1gb" in conf and 'save ""' in conf


def test_rendering_is_deterministic():
    assert redis_conf(load({})) == redis_conf(load({}))
