"""TLS in a Sentinel group (issue 18): which modes a group allows, sentinel.conf's TLS lines, the
options the deploy's redis-cli and the host's tools use towards the sentinels, the apps' env."""

from __future__ import annotations

import json
import ssl

import pytest

from smart_redis import certs, pm2, render, tls
from smart_redis.constants import PATHS
from smart_redis.facts import HostState, parse
from smart_redis.host import server
from smart_redis.settings import SettingsError, load
from smart_redis.topology import Topology

SENTINELS = ("10.0.0.1", "10.0.0.2", "10.0.0.3")
REPLICA = Topology(
    "replica", "10.0.0.2", "10.0.0.1", SENTINELS, servers=SENTINELS, runs_sentinel=True, group=True, members=3
)
HASHES = {"APP": "a" * 64, "ADMIN": "b" * 64, "SENTINEL": "e" * 64}
ONLY = load({"redis_bind": "127.0.0.1 10.0.0.2", "redis_tls": "only"})


def lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line and not line.startswith("#")]


def test_sentinel_conf_with_tls_alone_has_no_plain_port_and_names_the_fixed_files():
    conf = lines(render.sentinel_conf(ONLY, HASHES, REPLICA, "10.0.0.1 6379"))
    for expected in (
        "port 0",
        "tls-port 26379",
        f"tls-cert-file {PATHS.sentinel_tls_cert}",
        f"tls-key-file {PATHS.sentinel_tls_key}",
        f"tls-ca-cert-file {PATHS.sentinel_tls_ca}",
        "tls-auth-clients optional",
        "tls-replication yes",
    ):
        assert expected in conf, expected
    plain = lines(render.sentinel_conf(load({"redis_bind": "127.0.0.1 10.0.0.2"}), HASHES, REPLICA, "10.0.0.1 6379"))
    assert "port 26379" in plain and not any(line.startswith("tls-") for line in plain)


@pytest.mark.parametrize(
    ("mode", "topology", "refused"),
    [
        ("on", REPLICA, True),  # a replica and Sentinel know one port per server
        ("only", REPLICA, False),
        ("off", REPLICA, False),
        ("on", Topology("standalone"), False),
    ],
)
def test_a_group_allows_tls_off_or_alone(mode, topology, refused):
    settings = load({"redis_tls": mode})
    if refused:
        with pytest.raises(SettingsError, match='redis_tls = "on": allowed in a Sentinel group are "off" and "only"'):
            tls.refuse_in_group(settings, topology)
    else:
        tls.refuse_in_group(settings, topology)


@pytest.mark.parametrize(
    ("facts", "mode", "refused_for"),
    [
        (HostState(), "only", None),  # a new host: it joins with the group's settings
        (HostState(sentinel_conf_written=True, sentinel_tls=True, ha_member=True, server_tls_only=True), "only", None),
        (HostState(sentinel_conf_written=True, ha_member=True), "off", None),
        (HostState(sentinel_conf_written=True, ha_member=True), "only", "Sentinel runs without TLS"),
        (HostState(sentinel_conf_written=True, sentinel_tls=True), "off", "Sentinel runs with TLS"),
        (HostState(ha_member=True, server_tls_only=True), "off", "redis-server runs with TLS"),
        (HostState(ha_member=True), "only", "redis-server runs without TLS"),
    ],
)
def test_a_running_group_keeps_its_tls_mode(facts, mode, refused_for):
    settings = load({"redis_tls": mode})
    if refused_for:
        with pytest.raises(SettingsError, match=f"this host's {refused_for} in a Sentinel group"):
            tls.refuse_switch_in_group(settings, REPLICA, facts)
    else:
        tls.refuse_switch_in_group(settings, REPLICA, facts)
    tls.refuse_switch_in_group(settings, Topology("standalone"), HostState(ha_member=True))  # not a group


def test_the_facts_read_the_group_s_tls_mode():
    state = parse(["sentinel_conf=yes", "sentinel_tls=yes", "ha_member=yes", "server_tls_only=yes"])
    assert state.sentinel_tls and state.server_tls_only and not state.sentinel_tls_stale
    assert not parse(["sentinel_conf=yes"]).sentinel_tls


def test_the_deploy_s_redis_cli_reaches_the_sentinels_with_the_fixed_files():
    assert tls.sentinel_cli(load({})) == ""
    assert tls.sentinel_cli(ONLY) == (
        f"--tls --cacert {PATHS.sentinel_tls_ca} --cert {PATHS.sentinel_tls_cert} --key {PATHS.sentinel_tls_key}"
    )


def test_the_apps_learn_that_the_sentinels_speak_tls():
    variables = pm2.app_variables(ONLY, REPLICA)
    assert variables["REDIS_SENTINEL_TLS"] == "true" and variables["NODE_EXTRA_CA_CERTS"] == PATHS.tls_ca
    assert "REDIS_SENTINEL_TLS" not in pm2.app_variables(load({}), REPLICA)


def test_host_tools_speak_tls_to_the_sentinels_where_the_group_speaks_tls(tmp_path, monkeypatch):
    """Any port but the server's is a sentinel's: TLS with Sentinel's files when they are on the
    host (every host of a TLS group, with or without a sentinel) and the server has no plain port."""
    ca_cert, ca_key = certs.project_ca(tmp_path / "ca")
    bundle = certs.issue(ca_cert, ca_key, ["127.0.0.1"])
    files = {"SENTINEL_TLS_CERT": bundle.cert, "SENTINEL_TLS_KEY": bundle.key, "SENTINEL_TLS_CA": bundle.ca}
    for name in files:
        monkeypatch.setattr(server, name, str(tmp_path / name.lower()))
    redis_conf = tmp_path / "redis.conf"
    redis_conf.write_text("port 0\ntls-port 6379\n")
    assert server.tls_context(26379, str(redis_conf)) is None  # no files: not a TLS group
    for name, text in files.items():
        (tmp_path / name.lower()).write_text(text)
    context = server.tls_context(26379, str(redis_conf))
    assert isinstance(context, ssl.SSLContext) and context.verify_mode == ssl.CERT_REQUIRED
    redis_conf.write_text("port 6379\ntls-port 0\n")  # a plain server: its group is plain too
    assert server.tls_context(26379, str(redis_conf)) is None
    assert server.tls_context(6379, str(redis_conf)) is None


def test_health_checks_the_sentinel_certificate_only_where_a_sentinel_runs():
    from smart_redis.tools import monitor_config

    without = Topology("replica", "10.0.0.4", "10.0.0.1", SENTINELS, servers=(*SENTINELS, "10.0.0.4"), group=True)
    assert json.loads(monitor_config(ONLY, REPLICA))["ha"]["runs_sentinel"] is True
    assert json.loads(monitor_config(ONLY, without))["ha"]["runs_sentinel"] is False
