"""redis_server: Redis or Valkey, one typed Server that every step and host program follows (issue 28)."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from smart_redis import backports, move, preflight, render, tools, topology
from smart_redis.facts import RedisHost, parse
from smart_redis.host import steps
from smart_redis.host.server import REDIS, SERVERS, VALKEY
from smart_redis.settings import SettingsError, load
from smart_redis.topology import Topology

VALKEY_HOST = """\
server=valkey
os_id=debian
os_version=13
os_codename=trixie
systemd=yes
container=docker
redis_version=8.1.1
packages=valkey-server:installed valkey-tools:installed redis-server:config-files python3:installed sudo:installed
u.ExecMainStartTimestamp=@1796461445
u.Id=valkey-server.service
u.ActiveState=active
u.UnitFileState=enabled
u.NeedDaemonReload=yes
u.
owner=/etc/valkey/valkey.conf valkey valkey 640
sha256=abababababababababababababababababababababababababababababababab  /etc/valkey/valkey.conf
""".splitlines()


def test_the_setting_gives_the_typed_server_and_refuses_others_with_one_line():
    assert load({}).server is REDIS
    assert load({"redis_server": "valkey"}).server is VALKEY
    with pytest.raises(SettingsError) as error:
        load({"redis_server": "keydb"})
    assert str(error.value) == "redis_server = 'keydb': allowed is one of redis, valkey"


def test_valkey_is_what_debian_packages():
    assert VALKEY.packages == ("valkey-server", "valkey-tools")
    assert (VALKEY.config, VALKEY.data_dir, VALKEY.user) == ("/etc/valkey/valkey.conf", "/var/lib/valkey", "valkey")
    assert VALKEY.container_dropin == "/etc/systemd/system/valkey-server.service.d/10-container.conf"
    assert VALKEY.replication_auth == "/etc/valkey/replication-auth.conf"
    assert set(SERVERS) == {"redis", "valkey"}


def test_the_fact_asks_about_the_chosen_server_and_no_file_of_the_other():
    script = RedisHost.script(server="valkey")
    assert script.startswith("echo server=valkey;")
    assert (
        "systemctl show" in script
        and " valkey-server valkey-sentinel " in script
        and "/etc/valkey/valkey.conf" in script
    )
    assert "/var/lib/valkey/dump.rdb" in script
    # Redis only where it is installed: its version and state, and a group member's config, for a move (move.py)
    start = script.index("command -v redis-server")
    other = script[start : script.index("; }", start) + 3]
    assert "/etc/redis/" not in script.replace(other, "")
    assert script.count("redis-server --version") == 1 and other.startswith("command -v redis-server >/dev/null && {")
    assert "/etc/redis/redis.conf && echo other_ha_member=yes; }" in other
    # both servers' packages: a host that runs the other one is seen
    assert "redis-server" in script.split("dpkg-query", 1)[1].split(";", 1)[0]


def test_a_valkey_host_is_parsed_as_valkey():
    state = parse(VALKEY_HOST)
    assert state.server is VALKEY
    assert (state.enabled, state.active) == ("enabled", "active")
    assert "valkey-server" in state.need_reload
    assert state.missing_packages == [] and state.other_servers == []
    assert state.files["/etc/valkey/valkey.conf"].user == "valkey"


def test_a_host_with_the_other_server_installed_says_so():
    lines = [line.replace("redis-server:config-files", "redis-server:installed") for line in VALKEY_HOST]
    assert parse(lines).other_servers == ["redis-server"]


def test_valkey_config_names_valkeys_files():
    conf = render.redis_conf(
        load({"redis_server": "valkey"}), {"APP": "a" * 64, "ADMIN": "b" * 64, "EXPORTER": "c" * 64}
    )
    lines = conf.splitlines()
    for line in (
        "pidfile /run/valkey/valkey-server.pid",
        "logfile /var/log/valkey/valkey-server.log",
        "dir /var/lib/valkey",
    ):
        assert line in lines
    assert "/redis/" not in conf.replace("/etc/smart-redis/", "")


def test_host_steps_serve_the_server_the_deploy_names(monkeypatch):
    from smart_redis import run

    monkeypatch.setattr(run, "server", lambda: VALKEY)
    assert tools.step("restart", "--port", 6379).split()[3:6] == ["--server", "valkey", "restart"]
    monkeypatch.setattr(run, "server", lambda: REDIS)
    assert "--server" not in tools.step("restart", "--port", 6379)  # as before for Redis hosts
    assert steps.parser().parse_args(["--server", "valkey", "login-file", "exporter-env", "/x"]).server == "valkey"


class Host:
    """The facts preflight reads."""

    def __init__(self, os=("debian", "13"), other=(), version=None):
        self.os, self.systemd, self.other_servers, self.redis_version = os, True, list(other), version
        self.os_id, self.os_version = os
        self.redis_major = int(version.split(".")[0]) if version else None


def test_valkey_where_it_cannot_run_is_refused_before_anything_changes():
    with pytest.raises(preflight.PreflightError) as error:
        preflight.check(load({"redis_server": "valkey"}), Host(os=("ubuntu", "24.04")))
    assert 'redis_server = "valkey": ubuntu 24.04 has no Valkey package' in str(error.value)
    assert "\n" not in str(error.value)


def test_valkey_on_debian_13_passes_preflight():
    preflight.check(load({"redis_server": "valkey"}), Host(version="8.1.1"))


THREE = {"redis_primary": ["db1"], "redis_replicas": ["db2", "db3"], "redis_sentinels": ["db1", "db2", "db3"]}
ADDRESSES = {"db1": "10.0.0.1", "db2": "10.0.0.2", "db3": "10.0.0.3"}


@pytest.mark.parametrize("this", ["db1", "db2", "db3"])
def test_a_sentinel_group_on_two_servers_is_refused_on_every_host(this):
    """A Valkey replica of a Redis primary would load a data file it may not read, and a sentinel
    would watch two protocols: one server per group, whichever host the run reaches first."""
    servers = {"db1": "redis", "db2": "valkey", "db3": "redis"}
    wanted = load({"redis_server": servers[this], "redis_bind": "127.0.0.1 10.0.0.1 10.0.0.2 10.0.0.3"})
    with pytest.raises(SettingsError) as error:
        topology.build(this, THREE, ADDRESSES, wanted, servers=servers)
    assert (
        "allowed is the same server on every host of the Sentinel group, whose hosts name 'redis' and 'valkey'"
        in str(error.value)
    )


def test_a_sentinel_group_on_valkey_alone_is_a_group():
    wanted = load({"redis_server": "valkey", "redis_bind": "127.0.0.1 10.0.0.2"})
    built = topology.build("db2", THREE, ADDRESSES, wanted, servers=dict.fromkeys(ADDRESSES, "valkey"))
    assert built.role == "replica" and built.runs_sentinel


DEB822 = """\
Types: deb
URIs: http://mirror.example/debian
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main
""".splitlines()


@pytest.mark.parametrize(
    "lines,mirror",
    [
        (["deb http://mirror.example/debian bookworm main"], "http://mirror.example/debian"),
        (
            ["deb [arch=amd64 signed-by=/k.gpg] https://m.example:8080/debian/ bookworm main contrib"],
            "https://m.example:8080/debian",
        ),
        (
            ["# deb http://old.example/debian bookworm main", "deb http://m.example/d bookworm main"],
            "http://m.example/d",
        ),
        (DEB822, "http://mirror.example/debian"),
        (
            ["Types: deb", "URIs: http://off.example/debian", "Suites: bookworm", "Components: main", "Enabled: no"],
            None,
        ),
        (["deb http://mirror.example/debian trixie main"], None),  # another release
        (["deb http://mirror.example/debian bookworm contrib"], None),  # not main
        (["deb http://m.example/$(touch${IFS}/tmp/x) bookworm main"], None),  # never into a sources line
        (["deb file:/srv/debian bookworm main"], None),
        (
            ["deb https://repo.example/php bookworm main", "deb http://m.example/debian bookworm main"],
            "http://m.example/debian",
        ),
    ],
)
def test_backports_come_from_the_hosts_own_debian_mirror(lines, mirror):
    assert backports.mirror_of(lines, "bookworm") == mirror


def test_the_pin_takes_valkey_alone_from_backports():
    text = backports.pin(VALKEY, "bookworm-backports")
    assert text.splitlines() == [
        "Package: valkey-server valkey-tools valkey-sentinel",
        "Pin: release o=Debian,n=bookworm-backports",
        "Pin-Priority: 990",
    ]


class Moving(Host):
    """A Debian host that runs the other server."""

    def __init__(
        self, os_version: str, old: str, old_version: str, active="inactive", other_active="active", other_enabled=""
    ):
        super().__init__(os=("debian", os_version))
        self.installed_packages = (old, "python3")
        self.other_version, self.other_active, self.active, self.enabled = old_version, other_active, active, ""
        self.other_enabled = other_enabled or "enabled"


@pytest.mark.parametrize(
    "wanted,facts,done",
    [
        ({"redis_server": "valkey"}, Moving("12", "redis-server", "7.0.15"), False),  # RDB 10 into Valkey 8.0 (11)
        ({"redis_major_version": 8}, Moving("13", "valkey-server", "8.1.1"), False),  # RDB 11 into Redis 8.0 (12)
        # the move masked the old server at its stop and the new one runs: only the packages are left
        ({"redis_server": "valkey"}, Moving("12", "redis-server", "7.0.15", "active", "inactive", "masked"), True),
    ],
)
def test_a_host_that_runs_the_other_server_moves_when_the_new_one_loads_its_data(wanted, facts, done, monkeypatch):
    monkeypatch.setattr(move, "host", type("Host", (), {"log": lambda *args, **kwargs: None})())
    moving = move.moving_from(load(wanted), facts, Topology("standalone"))
    assert moving is not None and moving.old.service == facts.installed_packages[0] and moving.done is done


@pytest.mark.parametrize(
    "wanted,facts,topology,message",
    [
        (
            {"redis_server": "valkey"},
            Moving("13", "redis-server", "8.0.2"),
            Topology("standalone"),
            'redis_server = "valkey": this host\'s redis-server 8.0.2 writes RDB format 12, and valkey-server 8.x '
            "loads up to 11: the move would not keep the data, so it is refused",
        ),
        (
            {"redis_major_version": 7},
            Moving("12", "valkey-server", "8.0.1"),
            Topology("standalone"),
            "valkey-server 8.0.1 writes RDB format 11, and redis-server 7.x loads up to 10",
        ),
        (
            {"redis_server": "valkey", "redis_rotate_passwords": True},
            Moving("12", "redis-server", "7.0.15"),
            Topology("standalone"),
            "redis_rotate_passwords: not in the run that moves this host from redis-server to valkey-server",
        ),
    ],
)
def test_a_move_that_would_not_keep_the_data_is_refused_in_one_line(wanted, facts, topology, message):
    with pytest.raises(preflight.PreflightError) as error:
        move.moving_from(load(wanted), facts, topology)
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize(
    "wanted,whole_group,version,members,message",
    [
        ({"redis_server": "valkey"}, False, "7.0.15", 3, "with every host of it in the run"),
        (
            {"redis_server": "valkey", "redis_rotate_passwords": True},
            True,
            "7.0.15",
            3,
            "redis_rotate_passwords: not in the run that moves this host",
        ),
        # the primary hands its role over first: CLIENT PAUSE WRITE (6.2), and a replica to take it
        ({"redis_server": "valkey"}, True, "6.0.16", 3, "needs redis-server 6.2 or later (this host runs 6.0.16)"),
        ({"redis_server": "valkey"}, True, "7.0.15", 1, "through a handover of its primary"),
    ],
)
def test_a_group_move_is_refused_in_one_line_where_it_is_not_built(
    monkeypatch, wanted, whole_group, version, members, message
):
    """A Sentinel group moves with every host in the run (the primary hands over to a moved
    replica), and without a rotation in the same run."""
    monkeypatch.setattr(move.run, "all_in_run", lambda groups: whole_group)
    with pytest.raises(preflight.PreflightError) as error:
        move.moving_from(load(wanted), Moving("12", "redis-server", version), Topology("primary", members=members))
    assert message in str(error.value) and "\n" not in str(error.value)


@pytest.mark.parametrize("tls", ["off", "only"])
def test_a_whole_group_moves_where_the_format_allows(monkeypatch, tls):
    """In clear or with TLS alone (test_sentinel_valkey_tls moves such a group on real hosts)."""
    monkeypatch.setattr(move.run, "all_in_run", lambda groups: True)
    said = []
    monkeypatch.setattr(move, "host", SimpleNamespace(log=lambda line, *_: said.append(line)))
    moving = move.moving_from(
        load({"redis_server": "valkey", "redis_tls": tls}),
        Moving("12", "redis-server", "7.0.15"),
        Topology("replica", members=3),
    )
    assert moving == move.Move(REDIS, done=False)
    assert said == [
        "Moving from redis-server 7.0.15 to valkey-server: as a replica of the group's primary, the primary last "
        "after its handover, or redis-server runs again as it was"
    ]
    with pytest.raises(preflight.PreflightError, match="writes RDB format 12"):  # Debian 13: Redis 8.0 to Valkey 8.1
        move.moving_from(
            load({"redis_server": "valkey"}), Moving("13", "redis-server", "8.0.2"), Topology("replica", members=3)
        )


@pytest.mark.parametrize("other_active,other_enabled", [("inactive", "disabled"), ("active", "enabled")])
def test_another_server_installed_beside_the_running_one_is_left_alone(other_active, other_enabled):
    """The operator's own Valkey beside the deploy's Redis (stopped, or on another port): no move,
    no removal, nothing stopped; only one that a move masked is the deploy's to remove."""
    facts = Moving("13", "valkey-server", "8.1.1", "active", other_active, other_enabled)
    assert move.moving_from(load({"redis_major_version": 8}), facts, Topology("standalone")) is None
    assert move.moving_from(load({"redis_major_version": 8}), facts, Topology("primary")) is None


def test_a_host_that_runs_its_server_alone_does_not_move():
    facts = Host(version="8.1.1")
    facts.installed_packages = ("valkey-server", "valkey-tools")
    assert move.moving_from(load({"redis_server": "valkey"}), facts, Topology("standalone")) is None


def test_the_fact_tells_the_other_servers_version_and_state():
    state = parse([*VALKEY_HOST, "other=redis-server 7.0.15 inactive masked"])
    assert (state.other_version, state.other_active, state.other_enabled) == ("7.0.15", "inactive", "masked")
    # a binary that names no version: none, and the move is refused for it (moving_from)
    assert parse([*VALKEY_HOST, "other=redis-server active enabled"]).other_version is None
    script = RedisHost.script(server="valkey")
    assert "command -v redis-server >/dev/null && {" in script  # nothing runs where it is not installed
