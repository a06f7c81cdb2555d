"""What a provisioned Redis host must look like. Runs against any host (see conftest.py)."""

from __future__ import annotations

import re
import shlex
import time
import uuid

import pytest

from smart_redis.constants import CONFIG_MODE

MANAGED_MARK = "Managed by the smart-redis deploy"


def test_installed_server_is_the_requested_major(host, settings, server_major):
    version = host.check_output(f"{settings.server.service} --version")
    assert re.search(rf" v={server_major}\.\d+\.\d+ ", version), version


def test_service_is_enabled_and_running(host, settings):
    service = host.service(settings.server.service)
    assert service.is_enabled
    assert service.is_running


def test_listens_on_the_configured_addresses_only(host, settings):
    listening = {
        s for s in host.socket.get_listening_sockets() if s.startswith("tcp://") and s.endswith(f":{settings.port}")
    }
    assert listening, f"nothing listens on port {settings.port}"
    allowed = {f"tcp://{a}:{settings.port}" for a in settings.bind_addresses}
    assert listening <= allowed
    assert f"tcp://0.0.0.0:{settings.port}" not in listening


def test_config_file_owner_mode_and_key_lines(host, settings):
    conf = host.file(settings.server.config)
    assert conf.user == settings.server.user and conf.group == settings.server.group
    assert conf.mode == int(CONFIG_MODE, 8)
    lines = set(conf.content_string.splitlines())
    ports = {
        "off": [f"port {settings.port}", "tls-port 0"],
        "on": [f"port {settings.port}", f"tls-port {settings.tls_port}"],
        "only": ["port 0", f"tls-port {settings.port}"],
    }[settings.tls]
    for line in (
        *ports,
        f"bind {settings.bind}",
        "protected-mode yes",
        "supervised systemd",
        f"maxmemory {settings.maxmemory}",
        f"maxmemory-policy {settings.maxmemory_policy}",
        f'notify-keyspace-events "{settings.notify_keyspace_events}"',
    ):
        assert line in lines, line


def test_backup_is_the_packaged_original(host, settings):
    server = settings.server
    backup = host.file(server.config_backup)
    assert backup.exists
    assert backup.user == server.user and backup.group == server.group
    assert backup.mode == int(CONFIG_MODE, 8)
    assert MANAGED_MARK not in backup.content_string
    # dpkg records the checksum of the config file as the package shipped it.
    conffiles = host.check_output(f"dpkg-query -W -f='${{Conffiles}}' {server.service}")
    shipped_md5 = dict(line.split()[:2] for line in conffiles.strip().splitlines())[server.config]
    assert backup.md5sum == shipped_md5


def test_live_values_match_the_settings(redis_cli, settings):
    assert redis_cli("config", "get", "maxmemory").splitlines()[1] == str(settings.maxmemory_bytes)
    assert redis_cli("config", "get", "maxmemory-policy").splitlines()[1] == settings.maxmemory_policy
    flags = redis_cli("config", "get", "notify-keyspace-events").splitlines()[1]
    assert set(flags) == set(settings.notify_keyspace_events)


def test_expired_event_is_delivered_to_a_subscriber(host, writer_cli, settings):
    if "x" not in settings.notify_keyspace_events and "A" not in settings.notify_keyspace_events:
        pytest.fail("redis_notify_keyspace_events does not publish expired events; nothing to check")
    # On a replica: where the apps subscribe, the group's primary.
    key = f"infra-check:event:{uuid.uuid4().hex}"
    subscribe = writer_cli.command("--csv", "subscribe", "__keyevent@0__:expired")
    set_key = writer_cli.command("set", key, "1", "px", "100")
    # Subscribe first, let the key expire while listening, stop as soon as the event arrived.
    output = host.run(
        f"out=$(mktemp); timeout 5 sh -c {shlex.quote(subscribe)} > $out & sleep 0.3; {set_key} > /dev/null; "
        f"for i in $(seq 40); do grep -qF {key} $out && break; sleep 0.1; done; "
        f"kill $! 2>/dev/null; grep -F {key} $out; rc=$?; rm -f $out; exit $rc"
    )
    assert output.rc == 0 and key in output.stdout, output.stderr


def test_round_trip_follows_the_keyspace_policy(redis_cli, writer_cli, keyspace_db, writes_to):
    """Written where writes go, read back here (on a replica: after replication brought it)."""
    policy, db = keyspace_db, keyspace_db.db
    key = f"infra-check:{policy.name}:{uuid.uuid4().hex}"
    ttl_args = ("ex", str(policy.ttl)) if policy.ttl else ()
    assert writer_cli("set", key, "value", *ttl_args, db=db) == "OK"
    try:
        for _ in range(50 if writes_to else 1):
            if redis_cli("get", key, db=db) == "value":
                break
            time.sleep(0.1)
        assert redis_cli("get", key, db=db) == "value"
        ttl = int(redis_cli("ttl", key, db=db))
        if policy.ttl:
            assert 0 < ttl <= policy.ttl
        else:
            assert ttl == -1
    finally:
        writer_cli("del", key, db=db)
