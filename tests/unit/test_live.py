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


def test_during_a_rotation_a_new_password_alone_is_no_runtime_change():
    old, new = "#" + "a" * 64, "#" + "b" * 64
    same_rules = ({"ops": f"on {old} ~*"}, {"ops": f"on {new} ~*"})
    # The rotation's steps add the new password and retire the old one later; a reset here would
    # take the old one away while the apps still use it.
    assert live.plan({}, LIVE, *same_rules, passwords_apart=True).acl_changes == []
    assert live.plan({}, LIVE, *same_rules).acl_changes == [f"SETUSER ops reset on {new} ~*"]
    # New rules during a rotation: the rendered line names both passwords, so the reset keeps both.
    rules_too = ({"ops": f"on {old} ~*"}, {"ops": f"on {new} {old} ~* +@all"})
    assert live.plan({}, LIVE, *rules_too, passwords_apart=True).acl_changes == [
        f"SETUSER ops reset on {new} {old} ~* +@all"
    ]


def test_config_get_csv():
    assert live.parse_config_get('"port","6379","save",""') == {"port": "6379", "save": ""}
