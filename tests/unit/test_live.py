"""Planning a config change against the running server: runtime where Redis can, restart where it must."""

from __future__ import annotations

import pytest

from smart_redis import live

LIVE = {
    "port": "6379",
    "maxmemory": "536870912",
    "maxmemory-policy": "allkeys-lru",
    "notify-keyspace-events": "xeE",
    "save": "3600 1 300 100 60 10000",
    "lazyfree-lazy-expire": "yes",
    "databases": "16",
}
CONF = """\
# comment
port 6379
maxmemory 512mb
maxmemory-policy allkeys-lru
notify-keyspace-events "Exe"
save 3600 1 300 100 60 10000
lazyfree-lazy-expire yes
databases 16
user default off resetpass
user app on #aaaa ~*
"""


def test_directives_read_like_config_get():
    d = live.directives(CONF)
    assert d["notify-keyspace-events"] == "Exe" and d["maxmemory"] == "512mb" and "user" not in d
    assert live.acl_lines(CONF) == {"default": "off resetpass", "app": "on #aaaa ~*"}


def test_same_settings_in_other_spelling_are_no_change():
    assert live.plan(live.directives(CONF), LIVE, {}, {}).changed == {}


@pytest.mark.parametrize(
    "line,runtime,restart",
    [
        ("maxmemory 256mb", {"maxmemory": "256mb"}, []),
        ("maxmemory-policy volatile-ttl", {"maxmemory-policy": "volatile-ttl"}, []),
        ('notify-keyspace-events "KEA"', {"notify-keyspace-events": "KEA"}, []),
        ("save 60 1", {"save": "60 1"}, []),
        ("port 6380", {}, ["port (6379 -> 6380)"]),
        ("databases 32", {}, ["databases (16 -> 32)"]),
    ],
)
def test_each_change_goes_where_redis_can_take_it(line, runtime, restart):
    name = line.split()[0]
    text = "\n".join(line if raw.startswith(name + " ") else raw for raw in CONF.splitlines())
    plan = live.plan(live.directives(text), LIVE, {}, {})
    assert plan.runtime_settings == runtime
    assert plan.restart_for == restart


def test_notify_flags_compare_as_sets_with_a_expanded():
    assert live.plan({"notify-keyspace-events": "KEA"}, {"notify-keyspace-events": "AKE"}, {}, {}).changed == {}
    assert (
        live.plan({"notify-keyspace-events": "Kg$lshzxetdE"}, {"notify-keyspace-events": "AKE"}, {}, {}).changed == {}
    )


def test_acl_changes_become_setuser_and_deluser():
    plan = live.plan({}, LIVE, {"app": "on #aaaa ~*", "old": "on #cccc"}, {"app": "on #bbbb ~*"})
    assert plan.acl_changes == ["SETUSER app reset on #bbbb ~*", "DELUSER old"]


def test_admin_password_change_is_detected():
    sha = "#" + "a" * 64
    assert live.changed_admin_secret({"ops": f"on {sha} ~*"}, {"ops": f"on #{'b' * 64} ~*"}, "ops")
    assert not live.changed_admin_secret({"ops": f"on {sha} ~*"}, {"ops": f"on {sha} ~* +@all"}, "ops")


def test_config_get_csv():
    assert live.parse_config_get('"port","6379","save",""') == {"port": "6379", "save": ""}


# --- the restart path saves first, and stops when the SAVE fails (issue 14, item 18) ---


def _run_restart_script(tmp_path, save_reply: str):
    """config's restart script under dash, with a fake redis-cli and systemctl on PATH."""
    import os
    import subprocess

    from smart_redis import config

    bin_dir, log = tmp_path / "bin", tmp_path / "calls"
    bin_dir.mkdir()
    for name, reply in (("redis-cli", save_reply), ("systemctl", "")):
        tool = bin_dir / name
        tool.write_text(f"#!/bin/sh\necho \"{name} $*\" >> {log}\nprintf '%s\\n' '{reply}'\n")
        tool.chmod(0o755)
    # SAVE stops the script before it touches any file; only the candidate's rm is redirected here.
    script = config._restart_with_rollback("redis-cli -p 6379").replace(
        config.PATHS.config_candidate, str(tmp_path / "candidate")
    )
    (tmp_path / "candidate").write_text("port 6380\n")
    env = {**os.environ, "PATH": f"{bin_dir}:{os.environ['PATH']}"}
    result = subprocess.run(["dash", "-c", script], capture_output=True, text=True, env=env)
    return result, (log.read_text() if log.exists() else "")


def test_a_failed_save_stops_the_restart(tmp_path):
    result, calls = _run_restart_script(tmp_path, "(error) ERR Background save already in progress")
    assert result.returncode == 1
    assert "SAVE before the restart failed" in result.stderr and "ERR" in result.stderr
    assert "redis-cli -p 6379 save" in calls and "systemctl" not in calls
    assert not (tmp_path / "candidate").exists()  # the live file was never replaced


def test_the_save_uses_the_running_servers_login_first():
    from smart_redis import config
    from smart_redis.auth import cli

    script = config._restart_with_rollback(cli(6379, "acl"), config.running_admin_cli(6379))
    first, second = script.index(config.PATHS.credentials_running), script.index(config.PATHS.credentials + " &&")
    assert first < second < script.index("systemctl restart")
    assert "|| true" not in script


def test_a_stopped_server_keeps_its_previous_file_and_says_so():
    from smart_redis import config

    script = config._restart_with_rollback(None)
    assert " save" not in script
    assert script.index("cp -p") < script.index("mv -f /etc/redis/redis.conf.candidate")
    assert "does not start on it either" in script
