"""Settings validation: every bad value is refused with one line naming setting, value and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from smart_redis.settings import Database, SettingsError, defaults, load, memory_bytes


def test_defaults_are_the_platform_settings():
    s = load({})
    assert (s.port, s.bind, s.maxmemory, s.maxmemory_policy) == (6379, "127.0.0.1 -::1", "512mb", "allkeys-lru")
    assert s.maxmemory_bytes == 536870912
    assert s.notify_keyspace_events == "Exe"
    assert s.keyspace == (
        Database(0, "quotes", 60),
        Database(1, "order-flow", 300),
        Database(2, "footprint", 600),
        Database(3, "calculations", 1800),
        Database(4, "websocket-sessions", 3600),
        Database(5, "configuration", None),
    )


@pytest.mark.parametrize(
    "text,expected",
    [("512mb", 512 * 1024**2), ("1gb", 1024**3), ("1g", 10**9), ("100k", 100_000), ("4096", 4096), ("2KB", 2048)],
)
def test_memory_units_follow_redis(text, expected):
    assert memory_bytes(text) == expected


GOOD = [
    ("redis_port", 6380),
    ("redis_bind", "0.0.0.0"),
    ("redis_bind", "10.0.0.5 -::1 127.0.0.1"),
    ("redis_maxmemory", "1gb"),
    ("redis_maxmemory", 1048576),
    ("redis_maxmemory_policy", "volatile-ttl"),
    ("redis_notify_keyspace_events", ""),
    ("redis_notify_keyspace_events", "KEA"),
    ("redis_save", ""),
    ("redis_keyspace", [{"db": 7, "name": "x", "ttl": None}]),
]


@pytest.mark.parametrize("name,value", GOOD)
def test_good_values_are_accepted(name, value):
    load({name: value})


BAD = [
    ("redis_maxmemory", "512XB", "redis_maxmemory = '512XB': allowed is a size in bytes or with a unit"),
    ("redis_maxmemory", "-1mb", "redis_maxmemory = '-1mb': allowed is"),
    ("redis_maxmemory_policy", "lru", "redis_maxmemory_policy = 'lru': allowed is one of noeviction, allkeys-lru"),
    ("redis_port", 70000, "redis_port = 70000: allowed is a whole number from 1 to 65535"),
    ("redis_port", 0, "redis_port = 0: allowed is a whole number from 1 to 65535"),
    ("redis_port", "6379", "redis_port = '6379': allowed is a whole number"),
    ("redis_port", True, "redis_port = True: allowed is a whole number"),
    ("redis_notify_keyspace_events", "ExQ", "redis_notify_keyspace_events = 'ExQ': allowed is letters from"),
    ("redis_notify_keyspace_events", "x", "redis_notify_keyspace_events = 'x': allowed is flags that include K"),
    ("redis_bind", "localhost", "redis_bind = 'localhost': allowed is IPv4 or IPv6 addresses"),
    ("redis_bind", "", "redis_bind = '': allowed is IPv4 or IPv6 addresses"),
    ("redis_save", "3600", "redis_save = '3600': allowed is pairs of"),
    ("redis_major_version", 6, "redis_major_version = 6: allowed is one of 7, 8"),
    ("redis_loglevel", "loud", "redis_loglevel = 'loud': allowed is one of debug, verbose, notice, warning"),
    ("redis_host_tuning", "yes", "redis_host_tuning = 'yes': allowed is true or false"),
    ("redis_keyspace", [], "redis_keyspace = []: allowed is a list of"),
    ("redis_keyspace", [{"db": 0, "name": "q", "ttl": -5}], "allowed is a ttl in whole seconds above 0"),
    ("redis_keyspace", [{"db": 0, "name": "q", "ttl": 0}], "allowed is a ttl in whole seconds above 0"),
    ("redis_keyspace", [{"db": 0, "name": "q"}], 'allowed is entries with exactly the keys "db", "name" and "ttl"'),
    ("redis_keyspace", [{"db": 16, "name": "q", "ttl": 1}], "allowed is db from 0 to 15 (redis_databases = 16)"),
    (
        "redis_keyspace",
        [{"db": 1, "name": "a", "ttl": 1}, {"db": 1, "name": "b", "ttl": 1}],
        "allowed is each db listed once (db 1 is listed twice)",
    ),
    ("redis_maxmemroy", "1gb", "redis_maxmemroy: unknown setting (did you mean redis_maxmemory?)"),
    (
        "pm2_ecosystem_file",
        "ecosystem.config.js",
        "pm2_ecosystem_file = 'ecosystem.config.js': allowed is an absolute path",
    ),
    ("pm2_ecosystem_file", "/opt/app/ecosystem.yaml", "allowed is an absolute path to a .js, .cjs or .json file"),
    ("pm2_env_blocks", ["production"], "pm2_env_blocks = ['production']: allowed is a list of names"),
    ("pm2_env_blocks", [], "pm2_env_blocks = []: allowed is a list of names"),
    ("pm2_apps", [""], "pm2_apps = ['']: allowed is a list of names, or None for all"),
    ("pm2_user", "root user", "pm2_user = 'root user': allowed is a user name"),
    ("redis_url_host", "bad host!", "redis_url_host = 'bad host!': allowed is an IP address or a host name"),
    ("redis_app_user", "ops-admin", "redis_admin_user = 'ops-admin': allowed is a user name other than redis_app_user"),
    ("redis_replication_user", "metrics", "redis_replication_user = 'metrics': allowed is a user name that no other"),
    ("redis_sentinel_user", "replicator", "redis_sentinel_user = 'replicator': allowed is a user name that no other"),
    ("redis_ha_master_name", "smart trade", "redis_ha_master_name = 'smart trade': allowed is a name of letters"),
    (
        "redis_ha_address",
        "not an address!",
        "redis_ha_address = 'not an address!': allowed is an IP address or a host name",
    ),
    ("redis_sentinel_port", 0, "redis_sentinel_port = 0: allowed is a whole number from 1 to 65535"),
    ("redis_min_replicas_to_write", -1, "redis_min_replicas_to_write = -1: allowed is a whole number from 0 to 100"),
    ("redis_sentinel_down_after_ms", 10, "redis_sentinel_down_after_ms = 10: allowed is a whole number from 100"),
]


@pytest.mark.parametrize("name,value,message", BAD, ids=[f"{n}={v!r}" for n, v, _ in BAD])
def test_bad_values_are_refused_with_one_clear_line(name, value, message):
    with pytest.raises(SettingsError) as error:
        load({name: value})
    text = str(error.value)
    assert message in text
    assert "\n" not in text


@pytest.mark.parametrize("value", [None, "None", "null", ""])
def test_no_ecosystem_file_in_any_spelling(value):
    assert load({"pm2_ecosystem_file": value}).pm2_ecosystem_file is None


@pytest.mark.parametrize(
    "data, ports",
    [
        ({}, {"server": 8080, "websocket": 8081, "frontend": 3000}),  # the default manages the apps' file
        ({"pm2_ecosystem_file": None}, {}),  # a dedicated Redis host: no app to expect
        ({"pm2_ecosystem_file": None, "redis_platform_ports": {"web": 3000}}, {"web": 3000}),  # listed: checked
        ({"redis_platform_ports": {}}, {}),  # listed as none on an app host
        ({"redis_platform_ports": "None"}, {"server": 8080, "websocket": 8081, "frontend": 3000}),
    ],
)
def test_the_ports_health_expects_follow_the_apps_or_the_operators_list(data, ports):
    assert load(data).checked_ports == ports


def test_pm2_lists_from_the_command_line():
    s = load({"pm2_apps": "api,ws", "pm2_env_blocks": "env,env_staging"})
    assert s.pm2_apps == ("api", "ws") and s.pm2_env_blocks == ("env", "env_staging")


def test_settings_of_other_tools_are_left_alone():
    load({"ssh_user": "deploy", "_sudo": True})


def test_every_default_is_valid_and_typed():
    assert set(defaults()) >= {"redis_port", "redis_keyspace", "redis_maxmemory"}
    load(defaults())


def test_operator_paths_resolve_as_pyinfra_resolves_a_deploys_local_files(tmp_path, monkeypatch):
    from types import SimpleNamespace

    from pyinfra.context import ctx_state

    from smart_redis.settings import operator_path

    deploys, started_in, elsewhere = tmp_path / "deploys", tmp_path / "started-in", tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # the process's directory must not matter in a run
    state = SimpleNamespace(cwd=str(started_in), current_exec_filename=str(deploys / "redis.py"))
    with ctx_state.use(state):
        assert operator_path("./secrets/redis-ha.env") == deploys / "secrets" / "redis-ha.env"
        assert operator_path("secrets/redis-ha.env") == started_in / "secrets" / "redis-ha.env"
        assert operator_path("/srv/x.env") == Path("/srv/x.env")
        assert operator_path("~/x.env") == Path.home() / "x.env"
    # outside a pyinfra run: the working directory stands in for pyinfra's
    assert operator_path("./secrets/redis-ha.env") == elsewhere / "secrets" / "redis-ha.env"


def test_each_setting_is_one_declaration_that_the_typed_settings_carry():
    from dataclasses import fields

    from smart_redis.settings import Settings, declarations, setting_name

    assert [setting_name(f.name) for f in fields(Settings)] == list(declarations()) == list(defaults())
    typed = load({})
    assert typed.keyspace[0] == Database(0, "quotes", 60) and typed.pm2_env_blocks == ("env", "env_production")


def test_alert_secrets_come_from_the_environment_and_are_never_shown():
    token = "123456:" + "B" * 30
    settings = load({"redis_alert_telegram_chat_id": "-1"}, environ={"SMART_REDIS_ALERT_TELEGRAM_TOKEN": token})
    assert settings.alert_telegram_token == token
    for value in ("https://x.example/$(reboot)", "https://x.example/a b", "ftp://x.example/t0ken"):
        with pytest.raises(SettingsError) as error:
            load({"redis_alert_webhook_url": value}, environ={})
        assert value not in str(error.value) and "not shown" in str(error.value)
    with pytest.raises(SettingsError, match="redis_alert_telegram_chat_id"):
        load({"redis_alert_telegram_token": token}, environ={})


TOKEN = "123456:" + "T" * 32


@pytest.mark.parametrize(
    "data, warned",
    [
        ({"redis_alert_webhook_url": "https://chat.example.com/hooks/tok3n"}, []),
        ({"redis_alert_webhook_url": "http://127.0.0.1:8099/hooks/tok3n"}, []),
        ({"redis_alert_webhook_url": "http://localhost/hooks/tok3n"}, []),
        ({"redis_alert_webhook_url": "http://chat.example.com/hooks/tok3n"}, ["redis_alert_webhook_url"]),
        ({"redis_alert_webhook_url": "http://10.0.0.5:8080/x?key=tok3n"}, ["redis_alert_webhook_url"]),
        (
            {
                "redis_alert_telegram_token": TOKEN,
                "redis_alert_telegram_chat_id": "-1",
                "redis_alert_telegram_api": "http://bots.example.com",
            },
            ["redis_alert_telegram_api"],
        ),  # fmt: skip
        ({"redis_alert_telegram_api": "http://bots.example.com"}, []),  # no token: nothing crosses
    ],
)
def test_a_token_over_plain_http_to_another_host_is_warned_about_without_the_token(data, warned):
    from smart_redis.alerting import clear_text_warnings

    lines = clear_text_warnings(load(data, environ={}))
    assert [line.split(":", 1)[0] for line in lines] == warned
    assert not any("tok3n" in line or TOKEN in line for line in lines)
