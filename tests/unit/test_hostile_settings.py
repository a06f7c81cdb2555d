"""Every string setting refuses what could reach a root shell, a config file or a unit file as code.

The deploy runs as root: a setting is hostile until validated. Each case appends a payload to a
valid value (so that only the payload can be the reason for the refusal) and expects one line
naming the setting, exit through SettingsError, and never the value of a setting that may hold a
password.
"""

from __future__ import annotations

from typing import Any

import pytest

from smart_redis.settings import SettingsError, defaults, load

PAYLOADS = {
    "single quote": "'",
    "double quote": '"',
    "command substitution": "$(touch /tmp/pwned)",
    "variable": "${IFS}",
    "backtick": "`id`",
    "newline": "\n",  # see below: between two valid words
    "trailing newline": "\n",
    "carriage return": "\r",
    "semicolon and space": "; reboot",
    "zone id": "%$(id)",
}
CONTROL = ("newline", "trailing newline", "carriage return")

# Paths on the operator's own machine, opened by Python and never given to a shell or a host:
# any printable text is a valid file name there, so only control characters are refused.
LOCAL_PATHS = {
    "redis_ha_secrets_file",
    "redis_fetch_dir",
    "redis_tls_ca_dir",
    "redis_tls_cert",
    "redis_tls_key",
    "redis_tls_ca",
}
ACL = {"redis_app_acl", "redis_admin_acl", "redis_exporter_acl"}
# Given as a valid value, where the default is None or not a plain text.
BASES: dict[str, Any] = {
    "redis_ha_address": "10.0.0.5",
    "redis_fetch_dir": "/tmp/backups",
    "redis_bind": "127.0.0.1",
    "redis_url_host": "fe80::1",
}


def string_settings() -> list[tuple[str, str]]:
    """(setting, a valid text value) for every setting whose value is a text."""
    result = []
    for name, value in defaults().items():
        value = BASES.get(name, value)
        if isinstance(value, str):
            result.append((name, value))
    return result


CASES = [
    (name, base, label)
    for name, base in string_settings()
    for label in PAYLOADS
    if not (name in LOCAL_PATHS and label not in CONTROL)
]


def test_every_string_setting_is_covered():
    covered = {name for name, _, _ in CASES}
    expected = {name for name, value in defaults().items() if isinstance(BASES.get(name, value), str)}
    assert covered == expected
    # the settings this test is about: every one that reaches the host as text
    assert {
        "redis_app_user",
        "redis_backup_dir",
        "redis_apt_key_url",
        "redis_ha_address",
        "redis_url_host",
        "redis_bind",
        "pm2_ecosystem_file",
        "redis_app_acl",
        "redis_ha_master_name",
    } <= covered


@pytest.mark.parametrize("name,base,label", CASES, ids=[f"{n}-{label}" for n, _, label in CASES])
def test_hostile_text_is_refused_in_one_line(name, base, label):
    load({name: base})  # the base alone is valid
    value = base + PAYLOADS[label]
    if label == "newline":  # a newline between two valid words, where a space would be fine
        value = base + "\n" + base.split()[-1]
    with pytest.raises(SettingsError) as error:
        load({name: value})
    message = str(error.value)
    assert message.startswith(name) and "\n" not in message
    if name in ACL:
        assert PAYLOADS[label].strip() not in message or PAYLOADS[label].strip() == ""


@pytest.mark.parametrize(
    "name,value",
    [
        ("redis_keyspace", [{"db": 0, "name": "quotes\n", "ttl": 60}]),
        ("redis_keyspace", [{"db": 0, "name": "quotes$(id)", "ttl": 60}]),
        ("pm2_apps", ["quotes-feed\n"]),
        ("pm2_apps", ["quotes-feed$(id)"]),
        ("pm2_apps", "api,$(id)"),
        ("pm2_env_blocks", ["env\n"]),
        ("pm2_env_blocks", ["env_$(id)"]),
        ("redis_platform_ports", {"server\n": 8080}),
        ("redis_platform_ports", {"server'": 8080}),
        ("redis_maxmemory", "512mb\n"),
        ("redis_restore_from", "/tmp/dump.rdb\n"),
    ],
)
def test_hostile_entries_of_lists_and_mappings_are_refused(name, value):
    with pytest.raises(SettingsError) as error:
        load({name: value})
    assert str(error.value).startswith(name) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "value",
    [
        "~* +@all >VeryS3cretPassw0rdThatMustNeverShow",
        "~* +@nosuchcategory >VeryS3cretPassw0rdThatMustNeverShow",
        "~* +@all VeryS3cretPassw0rdThatMustNeverShow",
        "~* VeryS3cretPassw0rdThatMustNeverShow +@nosuchcategory",
        '~"VeryS3cretPassw0rdThatMustNeverShow +@all',
    ],
)
def test_an_acl_setting_that_fails_never_shows_what_may_be_a_password(value):
    for name in sorted(ACL):
        with pytest.raises(SettingsError) as error:
            load({name: value})
        assert "VeryS3cretPassw0rdThatMustNeverShow" not in str(error.value)
        assert str(error.value).startswith(name)


@pytest.mark.parametrize(
    "name,value",
    [
        ("redis_app_acl", "~quotes:* ~orders:{*} &quotes:* &__keyevent@*__:* +@all -@admin -@dangerous +info"),
        ("redis_bind", "127.0.0.1 -::1 10.0.0.5"),
        ("redis_ha_address", "fd00::5"),
        ("redis_backup_dir", "/srv/redis-backups/host_1"),
        ("pm2_ecosystem_file", "/home/smart-trade/app@2/ecosystem.config.cjs"),
        ("redis_apt_repo_url", "http://mirror.internal:8080/redis/deb"),
        ("redis_ha_secrets_file", "secrets/my group's redis.env"),
    ],
)
def test_ordinary_values_still_pass(name, value):
    load({name: value})
