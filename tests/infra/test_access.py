"""Who may do what on a provisioned host: ACL users, root-only secrets, hashes in the config."""

from __future__ import annotations

import fnmatch
import hashlib
import shlex

import pytest

from smart_redis.auth import users
from smart_redis.constants import CREDENTIALS_MODE, PATHS


@pytest.fixture
def acl_on(settings):
    if settings.auth == "none":
        pytest.fail('the host was deployed with redis_auth = "none"; run these checks only against ACL hosts')


def _credentials(host) -> dict[str, str]:
    text = host.file(PATHS.credentials).content_string
    pairs = (line.split("=", 1) for line in text.splitlines() if "=" in line and not line.startswith("#"))
    return {key: shlex.split(value)[0] for key, value in pairs}


def test_credentials_file_is_root_only(host, acl_on):
    creds = host.file(PATHS.credentials)
    assert (creds.user, creds.group, creds.mode) == ("root", "root", int(CREDENTIALS_MODE, 8))
    assert host.file(PATHS.credentials.rsplit("/", 1)[0]).mode == 0o700


def test_config_holds_hashes_never_passwords(host, settings, acl_on):
    creds = _credentials(host)
    conf = host.file(settings.server.config).content_string
    for user in users(settings):
        password = creds[f"REDIS_{user.role}_PASSWORD"]
        assert len(password) >= 32
        assert password not in conf
        assert f"user {user.name} on #{hashlib.sha256(password.encode()).hexdigest()} " in conf


def test_default_user_is_refused(host, plain_or_tls, settings, acl_on):
    reply = host.run(f"{settings.server.cli} {plain_or_tls} ping")
    assert "NOAUTH" in reply.stdout + reply.stderr


@pytest.mark.parametrize("command", [("config", "set", "dir", "/tmp"), ("flushall",), ("keys", "*"), ("shutdown",)])
def test_app_user_may_not_administer(app_cli, acl_on, command):
    assert app_cli(*command).startswith("NOPERM")


def test_app_user_may_use_data_and_keyspace_events(app_cli, app_writer_cli, acl_on):
    assert app_writer_cli("set", "infra-check:acl", "1", "ex", "5") == "OK"
    assert app_writer_cli("get", "infra-check:acl") == "1"
    assert app_writer_cli("del", "infra-check:acl") == "1"
    assert "NOPERM" not in app_cli("publish", "__keyevent@0__:expired", "probe")


def _channel_allowed(rules: str, channel: str) -> bool:
    patterns = [r[1:] for r in rules.split() if r.startswith("&")]
    return "allchannels" in rules.split() or any(fnmatch.fnmatchcase(channel, p) for p in patterns)


def _app_rules(host, settings) -> str:
    """The app user's rules as the deploy rendered them (in a Sentinel group its channels are an
    allow-list, narrower than redis_app_acl)."""
    conf = host.file(settings.server.config).content_string
    return next(line for line in conf.splitlines() if line.startswith(f"user {settings.app_user} "))


def test_the_app_user_cannot_publish_on_sentinels_channel_in_a_group(host, app_cli, settings, acl_on):
    """A hello forged there would move a Sentinel group to the address it names."""
    server = settings.server
    if not host.file(server.sentinel_config).exists and not host.file(server.replication_auth).exists:
        assert _channel_allowed(_app_rules(host, settings), "__sentinel__:hello") == _channel_allowed(
            settings.app_acl, "__sentinel__:hello"
        )  # a single server: the rules as given
        return
    assert app_cli("publish", "__sentinel__:hello", "probe").startswith("NOPERM")


def test_app_processes_talk_over_pubsub_on_their_channels(host, app_cli, settings, acl_on):
    """The platform's HTTP server, websocket server and workers pass quotes over pub/sub."""
    channel = "infra-check:quotes"
    if not _channel_allowed(_app_rules(host, settings), channel):
        assert app_cli("publish", channel, "probe").startswith("NOPERM")
        return
    # A subscriber as the app user for a few seconds; PUBLISH answers how many clients received
    # the message, so "1" proves that the app user may both subscribe and publish there.
    script = (
        f"( timeout 5 sh -c {shlex.quote(app_cli.command('subscribe', channel))} > /dev/null 2>&1 & ); "
        f"for _ in $(seq 50); do n=$({app_cli.command('publish', channel, 'DOL 5.234')}); "
        'test "$n" = 1 && { echo received; exit 0; }; sleep 0.1; done; echo "last reply: $n"'
    )
    assert host.run(script).stdout.strip() == "received"


def test_admin_user_may_read_the_config(redis_cli, settings, acl_on):
    plain = "0" if settings.tls == "only" else str(settings.port)  # "only": TLS alone, no plain port
    assert redis_cli("config", "get", "port").splitlines() == ["port", plain]
