"""The safety core's pure parts (issue 25): the app's channels in a Sentinel group, the primary a
host may follow, the upload primitive's commands, and one Run record for what a run remembers."""

from __future__ import annotations

import ast
import subprocess
from pathlib import Path

import pytest

from smart_redis import auth, operations, replication
from smart_redis.constants import PATHS
from smart_redis.settings import SettingsError, load
from smart_redis.topology import Topology

ROOT = Path(__file__).resolve().parents[2]
GROUP = Topology(
    "replica", "10.0.0.2", "10.0.0.1", ("10.0.0.1", "10.0.0.2", "10.0.0.3"), ("10.0.0.1", "10.0.0.2", "10.0.0.3"), True
)
SINGLE = Topology("standalone")


def settings(acl: str):
    return load({"redis_bind": "0.0.0.0", "redis_app_acl": acl})


@pytest.mark.parametrize(
    "acl, topology, expected",
    [
        # A single server has no Sentinel channel to protect: the rules as given.
        ("~* &* +@all -@admin", SINGLE, "~* &* +@all -@admin"),
        # In a group "every channel" becomes the keyspace events...
        ("~* &* +@all -@admin", GROUP, "~* +@all -@admin &__keyspace@* &__keyevent@*"),
        ("~* allchannels +@all", GROUP, "~* +@all &__keyspace@* &__keyevent@*"),
        # ... plus the channels the operator names.
        ("~* &orders:* &quotes.* +@all", GROUP, "~* &orders:* &quotes.* +@all &__keyspace@* &__keyevent@*"),
        ("~* &__keyspace@* +@all", GROUP, "~* &__keyspace@* +@all &__keyevent@*"),
    ],
)
def test_the_apps_channels(acl, topology, expected):
    assert auth.app_rules(settings(acl), topology) == expected
    (app,) = [u for u in auth.users(settings(acl), topology) if u.role == "APP"]
    assert app.rules == expected


@pytest.mark.parametrize("pattern", ["&__sentinel__:*", "&__*", "&_?sentinel*", "&[_]_sentinel__:hello", "&*:hello"])
def test_a_channel_pattern_that_covers_sentinels_hello_is_refused_in_a_group(pattern):
    with pytest.raises(SettingsError, match=r"^redis_app_acl: allowed in a Sentinel group are channel patterns"):
        auth.app_rules(settings(f"~* {pattern} +@all"), GROUP)
    assert pattern in auth.app_rules(settings(f"~* {pattern} +@all"), SINGLE)


@pytest.mark.parametrize(
    "primary, trusted",
    [
        ("10.0.0.1 6379", True),
        ("10.0.0.3 6379", True),
        ("10.0.0.9 6379", False),  # what a forged hello names
        ("10.0.0.10 6379", False),
        ("::ffff:10.0.0.2 6379", False),
    ],
)
def test_a_host_follows_only_a_primary_of_the_inventorys_group(primary, trusted):
    assert replication.in_group(primary, GROUP) is trusted


@pytest.mark.parametrize(
    "fields, outcome",
    [
        ({"ip": "10.0.0.1", "port": "6379"}, "10.0.0.1 6379"),
        ({"ip": "10.0.0.3", "port": "6380"}, "10.0.0.3 6380"),  # a port change rolling through the group
        ({"ip": "127.0.0.1", "port": "6390"}, "which is no Redis server of the group"),  # a forged hello's
        ({"ip": "10.0.0.9", "port": "6379"}, "which is no Redis server of the group"),
        ({"ip": "evil.example", "port": "6379"}, "which is not an IP address and a port"),
        ({"quorum": "2"}, "which is not an IP address and a port"),
    ],
)
def test_the_local_sentinel_may_watch_only_a_primary_of_the_inventorys_group(fields, outcome):
    from pyinfra.api import OperationError

    from smart_redis.sentinel import watched_primary

    if outcome[0].isdigit():
        assert watched_primary(fields, GROUP) == outcome
    else:
        with pytest.raises(OperationError, match=f"^this host.s sentinel .*{outcome}"):
            watched_primary(fields, GROUP)


def test_uploads_stage_where_only_root_writes_and_place_by_one_rename():
    for dest in ("/etc/redis/redis.conf", "/etc/redis/sentinel.conf"):
        staged = operations.staging_path(dest)
        assert staged.startswith(f"{PATHS.staging}/.") and staged != operations.staging_path(dest)
        assert f"install -d -m 700 -o root -g root {PATHS.staging}" in operations.prepare_folder(dest)
    staged = operations.staging_path("/usr/local/bin/redis-monitor")
    assert staged.startswith("/usr/local/bin/.redis-monitor.smart-redis-")
    placed = operations.place(staged, "/usr/local/bin/redis-monitor", "root", "root", "755", "check {path}")
    assert placed.index("chown root:root") < placed.index("check ") < placed.index("mv -fT ")
    assert placed.endswith(f"|| {{ rm -f {staged}; exit 1; }}")


@pytest.mark.parametrize(
    "contents",
    [
        ["one file"],
        ["[Unit]\nDescription=a\n", "", "x" * 100_000, "é ü\n\0 binary-ish", "last\n"],  # sizes and bytes of all kinds
    ],
)
def test_texts_sent_in_one_command_each_land_whole_in_their_own_file(tmp_path, contents):
    """Several files in one round trip (managed_files): each text read by its exact length from the
    one stdin, run here by a real shell with the host's own head and base64."""
    texts = [operations.Text(text, str(tmp_path / f"staged-{i}")) for i, text in enumerate(contents)]
    command = operations.text_command(texts)
    subprocess.run(
        ["sh", "-c", command.get_raw_value()], input=command.connector_arguments["_stdin"], text=True, check=True
    )
    assert [(tmp_path / f"staged-{i}").read_text() for i in range(len(contents))] == contents
    assert all((tmp_path / f"staged-{i}").stat().st_mode & 0o077 == 0 for i in range(len(contents)))


def test_a_step_after_placed_files_follows_only_its_own_files():
    """One command places the units before the install; the sandbox restart and the backup timer
    each follow their own files' change, not the others'."""

    class Done:
        def did_change(self) -> bool:
            return True

    placed = operations.Placed(Done(), {PATHS.backup_timer})  # type: ignore[arg-type]
    assert placed.any_of(PATHS.backup_service, PATHS.backup_timer)()
    assert not placed.any_of("/etc/systemd/system/redis-server.service.d/10-container.conf")()


def test_no_module_keeps_run_state_outside_the_run_record():
    """A module-level container that starts empty is a cache: it outlives a run and mixes runs and
    hosts. What a run remembers lives in smart_redis.run.Run (tables of constants are fine)."""
    found = []
    for path in (ROOT / "smart_redis").rglob("*.py"):
        if path.name == "run.py":
            continue
        for node in ast.parse(path.read_text()).body:
            value = node.value if isinstance(node, (ast.Assign, ast.AnnAssign)) else None
            empty = isinstance(value, (ast.Dict, ast.Set, ast.List)) and not getattr(
                value, "keys", getattr(value, "elts", None)
            )
            if isinstance(value, ast.Call):
                called = value.func.id if isinstance(value.func, ast.Name) else getattr(value.func, "attr", "")
                empty = called in ("dict", "set", "list", "WeakKeyDictionary", "defaultdict") and not value.args
            if empty:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert found == []


CONF, TIMER = "/etc/redis/redis.conf", "/etc/systemd/system/redis-backup.timer"


@pytest.mark.parametrize(
    "written, declared, changes, expected",
    [
        (set(), 0, 3, True),  # nothing changed the host since it was asked (at 3 changes)
        ({TIMER}, 1, 4, True),  # one of our steps placed another file
        ({CONF}, 1, 4, False),  # the file itself was placed since: ask again
        ({TIMER}, 1, 5, False),  # and something else changed the host too (apt, a restart)
        (set(), 0, 4, False),  # something else changed the host, nothing of ours
        (None, 1, 4, False),  # one of our steps that did not declare what it writes
        (set(), 1, 4, True),  # one that declared it writes no file (a restart, a daemon-reload)
        ({TIMER, "/etc/group"}, 2, 5, True),  # two that each declared other files
        ({"/etc/redis"}, 1, 4, False),  # one that wrote in the file's folder
        ({CONF + ".previous"}, 1, 4, True),  # a file beside it, whose name starts the same
    ],
)
def test_the_runs_answer_tells_a_file_while_only_other_files_were_placed(written, declared, changes, expected):
    """The RedisHost answer of a run is trusted for a file while every change since came from
    our steps that declared what they write, and none of them wrote it or its folder."""
    answer = operations.Answer(state=None, changes=3, current=False, written=written, declared=declared)  # type: ignore[arg-type]
    assert operations.still_tells(answer, CONF, changes) is expected


def test_a_folder_is_told_while_nothing_in_it_was_written():
    answer = operations.Answer(state=None, changes=0, current=False, written={CONF}, declared=1)  # type: ignore[arg-type]
    assert operations.still_tells(answer, "/etc/ssl/smart-redis", 1) is True
    assert operations.still_tells(answer, "/etc/redis", 1) is False


CLI = ". /etc/smart-redis/credentials && redis-cli -p 6379"


@pytest.mark.parametrize(
    "probe, cli, names, told",
    [
        (None, CLI, ("maxmemory",), False),  # the answer was not asked the question
        (operations.LiveProbe(CLI, ("maxmemory", "port")), CLI, ("maxmemory",), True),
        (operations.LiveProbe(CLI, ("maxmemory",)), CLI, ("maxmemory", "appendonly"), False),  # a name it did not ask
        (
            operations.LiveProbe(CLI, ("maxmemory",)),
            CLI.replace("6379", "6380"),
            ("maxmemory",),
            False,
        ),  # another port or login
    ],
)
def test_the_answer_tells_the_running_server_only_as_asked(probe, cli, names, told):
    """The config step takes the server's settings from the run's RedisHost answer only when that
    answer asked the same server, the same way, for at least these settings; else it asks."""
    assert operations.covers(probe, cli, names) is told


@pytest.mark.parametrize(
    ("opened", "cli", "told"),
    [
        (False, CLI, True),  # asked with the ACL login, as the config step asks
        (True, "redis-cli -p 6379", True),  # asked with the open login: the package's config
        (True, CLI, False),  # the config step logs in, the answer did not
        (False, "redis-cli -p 6379", False),
    ],
)
def test_the_answer_tells_the_running_server_only_with_the_login_it_used(opened, cli, told):
    probe = operations.LiveProbe(CLI, ("maxmemory",), open_cli="redis-cli -p 6379")
    assert operations.covers(probe, cli, ("maxmemory",), opened=opened) is told
