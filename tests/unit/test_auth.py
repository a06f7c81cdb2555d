"""Operator passwords are checked without being echoed; the host-side script holds no secret."""

from __future__ import annotations

import pytest

from smart_redis import auth
from smart_redis.settings import SettingsError, load

STRONG = "Zq8" * 12


def test_no_environment_means_generated_on_the_host():
    assert auth.operator_passwords({}) == {}


def test_given_passwords_by_role():
    given = auth.operator_passwords({"SMART_REDIS_APP_PASSWORD": STRONG, "SMART_REDIS_ADMIN_PASSWORD": STRONG + "x"})
    assert given == {"APP": STRONG, "ADMIN": STRONG + "x"}


@pytest.mark.parametrize("value", ["short-password", "a" * 20 + " " + "b" * 20, "a" * 40 + "'", "a" * 40 + "\\"])
def test_weak_or_malformed_passwords_are_refused_without_echo(value):
    with pytest.raises(SettingsError) as error:
        auth.operator_passwords({"SMART_REDIS_ADMIN_PASSWORD": value})
    message = str(error.value)
    assert message.startswith("SMART_REDIS_ADMIN_PASSWORD: allowed is at least 32 characters")
    assert value not in message and "\n" not in message


def test_password_in_acl_rules_is_refused_without_echo():
    with pytest.raises(SettingsError) as error:
        load({"redis_app_acl": f"~* +@all >{STRONG}"})
    assert STRONG not in str(error.value)


def test_cli_passes_the_password_in_the_environment():
    prefix = auth.cli(6379, "acl", "APP")
    assert 'REDISCLI_AUTH="$REDIS_APP_PASSWORD"' in prefix and " -a " not in prefix
    assert auth.cli(6380, "none") == "redis-cli -p 6380"
