"""redis.conf rendering: the settings reach the file, and nothing else varies."""

from __future__ import annotations

from smart_redis import render
from smart_redis.settings import load
from smart_redis.topology import Topology

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
    assert (f"user smart-trade on #{'a' * 64} resetkeys resetchannels ~* &* +@all -@admin -@dangerous +info") in conf
    assert f"user ops-admin on #{'b' * 64} resetkeys resetchannels ~* &* +@all" in conf


def test_auth_none_renders_no_users():
    conf = lines(redis_conf(load({"redis_auth": "none"}), {}))
    assert not [line for line in conf if line.startswith("user ")]


HA_HASHES = {**HASHES, "REPLICATION": "d" * 64, "SENTINEL": "e" * 64}
REPLICA = Topology("replica", "10.0.0.2", "10.0.0.1", ("10.0.0.1", "10.0.0.2", "10.0.0.3"), True)
HA = load({"redis_bind": "127.0.0.1 10.0.0.2"})


def test_a_replica_follows_its_primary_and_keeps_masterauth_out_of_the_file():
    conf = lines(render.redis_conf(HA, HA_HASHES, REPLICA, "10.0.0.1 6379"))
    assert "replicaof 10.0.0.1 6379" in conf
    assert "masteruser replicator" in conf and "min-replicas-to-write 1" in conf and "min-replicas-max-lag 10" in conf
    assert "include /etc/redis/replication-auth.conf" in conf
    assert not any(line.startswith("masterauth") for line in conf)
    users = {line.split()[1]: line for line in conf if line.startswith("user ")}
    assert users["replicator"].endswith("-@all +psync +replconf +ping")
    assert "+config|rewrite" in users["sentinel"] and "#" + "e" * 64 in users["sentinel"]


def test_the_primary_has_no_replicaof_line_and_announces_its_address():
    primary = Topology("primary", "10.0.0.1", "10.0.0.1", REPLICA.sentinels, True)
    conf = lines(render.redis_conf(load({"redis_bind": "127.0.0.1 10.0.0.1"}), HA_HASHES, primary, None))
    assert not any(line.startswith("replicaof") for line in conf)
    assert "replica-announce-ip 10.0.0.1" in conf and "masteruser replicator" in conf


def test_a_sentinel_only_hosts_redis_does_not_replicate_or_refuse_writes():
    watcher = Topology("standalone", "10.0.0.4", "10.0.0.1", REPLICA.sentinels, True)
    conf = redis_conf_text = render.redis_conf(load({}), HA_HASHES, watcher, None)
    assert "min-replicas-to-write" not in conf and "masteruser" not in conf and "include" not in redis_conf_text


def test_a_single_server_has_no_replication_lines():
    conf = redis_conf(load({}))
    assert "replicaof" not in conf and "masteruser" not in conf and "include" not in conf


def test_sentinel_conf_monitors_the_primary_with_a_majority_and_only_hashes():
    conf = lines(render.sentinel_conf(HA, HA_HASHES, REPLICA, "10.0.0.1 6379"))
    assert "sentinel monitor smart-trade 10.0.0.1 6379 2" in conf
    assert "bind 127.0.0.1 10.0.0.2" in conf and "port 26379" in conf
    assert "sentinel down-after-milliseconds smart-trade 5000" in conf
    assert "sentinel auth-user smart-trade sentinel" in conf and "sentinel sentinel-user sentinel" in conf
    assert not any("auth-pass" in line or "sentinel-pass" in line for line in conf)  # appended on the host
    assert "user default off resetpass resetkeys resetchannels -@all" in conf
    app = next(line for line in conf if line.startswith("user smart-trade "))
    assert "+sentinel|get-master-addr-by-name" in app and "+@all" not in app


def test_templates_are_package_data():
    from importlib.resources import files

    for name in ("redis.conf.j2", "sentinel.conf.j2"):
        assert (files("smart_redis") / "templates" / name).is_file()
