"""redis-monitor and the exporter on a provisioned host: read-only checks, safe on production."""

from __future__ import annotations

import json

import pytest


def monitor_json(host, *args):
    return json.loads(host.check_output("redis-monitor " + " ".join(args) + " --json"))


def test_status_reports_a_running_enabled_server(host, settings, server_major):
    status = monitor_json(host, "status")
    assert status["service"] == "active" and status["enabled_at_boot"] is True
    # the server's own version (Valkey's, not the Redis version it reports for compatibility)
    assert status["port"] == settings.port and status["version"].startswith(f"{server_major}.")


def test_databases_are_the_configured_keyspace(host, settings):
    rows = monitor_json(host, "databases")
    assert [(r["db"], r["name"]) for r in rows] == [(d.db, d.name) for d in settings.keyspace]


def test_memory_limit_is_the_setting(host, settings):
    assert monitor_json(host, "memory")["maxmemory"] == settings.maxmemory_bytes


def test_self_test_passes(host):
    assert all(r["result"] == "OK" for r in monitor_json(host, "test"))


def test_health_is_ok(host):
    result = host.run("redis-monitor health")
    assert result.rc == 0, result.stdout


def test_exporter_reports_redis_up(host, settings):
    if not settings.exporter_enabled:
        pytest.fail("redis_exporter_enabled is False for this host; nothing to check")
    script = f"import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:{settings.exporter_port}/metrics').read().decode())"
    metrics = host.check_output(f'python3 -c "{script}"')
    assert "\nredis_up 1" in "\n" + metrics
