"""The RedisHost fact parser, on output captured from real hosts."""

from __future__ import annotations

import pytest

from smart_redis.facts import FileState, RedisHost, parse

CONTAINER_BEFORE_INSTALL = """\
os_id=debian
os_version=12
os_codename=bookworm
systemd=yes
container=docker
packages=redis-server:not-installed: redis-tools:not-installed:
u.ExecMainStartTimestamp=
u.Id=redis-server.service
u.ActiveState=inactive
u.UnitFileState=
u.NeedDaemonReload=no
u.
sysctl.vm.overcommit_memory=0
sysctl.net.core.somaxconn=4096
thp=always [madvise] never
""".splitlines()

SERVER_CONVERGED = """\
os_id=ubuntu
os_version=24.04
os_codename=noble
systemd=yes
container=none
packages=redis-server:installed:5:7.0.15-1~deb12u7 redis-tools:config-files:5:7.0.15-1~deb12u7 python3:installed:3.12.3-0ubuntu1 sudo:installed:1.9.15p5-3ubuntu5
groups=root daemon redis redis-operators
u.ExecMainStartTimestamp=@1796461445
u.Id=redis-server.service
u.ActiveState=active
u.UnitFileState=enabled
u.NeedDaemonReload=no
u.
thp=always madvise [never]
owner=/etc/redis/redis.conf redis redis 640
sha256=abababababababababababababababababababababababababababababababab  /etc/redis/redis.conf
""".splitlines()


def test_fresh_container():
    state = parse(CONTAINER_BEFORE_INSTALL)
    assert state.os == ("debian", "12") and state.systemd and state.container == "docker"
    assert state.redis_version is None and state.redis_major is None
    assert state.missing_packages == ["redis-server", "redis-tools", "python3", "sudo"]
    assert state.thp == "madvise" and state.sysctl["net.core.somaxconn"] == "4096"
    assert state.files == {}
    assert (state.enabled, state.active) == ("", "inactive")


def test_converged_server():
    state = parse(SERVER_CONVERGED)
    assert state.container is None and state.redis_major == 7
    # config-files only: removed but not purged, so it must be installed again
    assert state.missing_packages == ["redis-tools"]
    assert state.thp == "never"
    assert state.files["/etc/redis/redis.conf"] == FileState("redis", "redis", "640", "ab" * 32)
    assert (state.enabled, state.active) == ("enabled", "active")
    assert "redis-operators" in state.groups


@pytest.mark.parametrize(
    "packages, version",
    [
        ("redis-server:installed:5:7.0.15-1~deb12u7", "7.0.15"),  # Debian 12
        ("redis-server:installed:6:7.4.2-1rl1~bookworm1", "7.4.2"),  # Redis's own repository
        ("redis-server:half-configured:5:7.0.15-1~deb12u7", "7.0.15"),  # an install that stopped: its files are there
        ("redis-server:config-files:5:7.0.15-1~deb12u7", None),  # removed: no binary
        ("redis-server:not-installed: valkey-server:installed:8.0.2+dfsg1-1~bpo12+1", None),  # the other server's
        ("redis-tools:installed:5:7.0.15-1~deb12u7", None),
        ("redis-server:installed:", None),
    ],
)
def test_the_servers_version_is_its_packages_upstream_version(packages, version):
    assert parse(["server=redis", f"packages={packages}"]).redis_version == version


def test_a_valkey_hosts_version_is_valkeys():
    state = parse(["server=valkey", "packages=redis-server:installed:5:7.0.15-1 valkey-server:installed:8.1.1+dfsg1-2"])
    assert state.redis_version == "8.1.1" and state.redis_major == 8


def test_the_fact_script_names_the_local_groups_of_the_host():
    """The operator group is created from this answer (operations.group_missing): the groups the
    script prints are those of /etc/group on this machine."""
    import grp
    import shutil
    import subprocess

    from smart_redis import facts

    out = subprocess.run([shutil.which("dash") or "sh", "-c", facts._script()], capture_output=True, text=True).stdout
    with open("/etc/group") as f:
        local = {line.split(":", 1)[0] for line in f if line.strip()}
    assert set(parse(out.splitlines()).groups) == local
    assert grp.getgrgid(0).gr_name in local


@pytest.mark.parametrize(
    "packages, hold, locked",
    [
        ("redis-server:not-installed: ", True, True),  # unattended-upgrades at a cloud host's first boot
        ("redis-server:not-installed: ", False, False),
        ("redis-server:config-files:5:7.0.15-1 ", True, True),  # removed: installed again, so waits
        ("redis-server:installed:5:7.0.15-1 ", True, None),  # installed: no install to wait for, not asked
    ],
)
def test_the_dpkg_lock_rides_on_the_answer_where_the_server_is_missing(tmp_path, packages, hold, locked):
    """The install's wait (install.wait_for_dpkg_lock) reads the lock from the run's first answer:
    held by another process as apt holds it (fcntl), asked only where the server's package is missing."""
    import shutil
    import subprocess
    import sys

    from smart_redis import facts

    lock = tmp_path / "lock-frontend"
    lock.write_text("")
    (tmp_path / "dpkg-query").write_text(f"#!/bin/sh\nprintf '%s' '{packages}'\n")
    (tmp_path / "dpkg-query").chmod(0o755)
    script = facts._script().replace("/var/lib/dpkg/lock-frontend", str(lock))
    holder = None
    if hold:
        holder = subprocess.Popen(
            [
                sys.executable,
                "-c",
                f"import fcntl, sys; f = open({str(lock)!r}, 'w'); fcntl.lockf(f, fcntl.LOCK_EX); "
                "print('held', flush=True); sys.stdin.read()",
            ],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
    try:
        env = {"PATH": f"{tmp_path}:/usr/bin:/bin"}
        out = subprocess.run([shutil.which("dash") or "sh", "-c", script], capture_output=True, text=True, env=env)
    finally:
        if holder is not None:
            holder.communicate("")
    assert parse(out.stdout.splitlines()).dpkg_locked is locked


# --- odd host values never crash the parser (issue 14, item 10) ---

SHA = "a" * 64


def test_malformed_lines_are_skipped_not_fatal():
    state = parse(
        [
            "owner=/etc/redis/redis.conf redis",  # too few fields
            "sha256=" + SHA + "  /etc/redis/redis.conf",  # a hash without its owner line
            "owner=/etc/redis/credentials root root 600",
            "sha256=short  /etc/redis/credentials",  # no hash
            "secret=APP",  # no hash
            "secret=APP " + SHA + " app user",  # a user name with a space stays whole
            "secret=ADMIN nothex",  # not a hash
            " trading\tdesk",  # the rest of a user name that had a newline
            "u.Id",
            "u.",
            "u.NeedDaemonReload=yes",  # a block without its Id: no unit is reloaded for it
            "ctime=/usr/bin/redis-server soon",
            "exporter_env=- ",
            "exporter_auth=-",
            "=",
            "",
            "thp=[",
        ]
    )
    assert state.files == {}
    assert state.secret_users == {"APP": "app user"} and state.secret_hashes == {"APP": SHA}
    assert state.need_reload == set() and state.stale_binaries == set()
    assert state.exporter_env == ("", "") and state.exporter_auth == ""


def _unit(unit: str, enabled: str, active: str, started: str = "", reload: str = "no") -> list[str]:
    """A block of `systemctl show` as the fact prints it (systemd's own order of the properties)."""
    name = unit if "." in unit else f"{unit}.service"
    return [f"u.ExecMainStartTimestamp={started}", f"u.Id={name}", f"u.ActiveState={active}"] + [
        f"u.UnitFileState={enabled}",
        f"u.NeedDaemonReload={reload}",
        "u.",
    ]


def test_units_come_in_their_order_with_what_systemd_says_of_them():
    from smart_redis.facts import units
    from smart_redis.host.server import REDIS

    UNITS = units(REDIS)

    states = {unit: ("enabled", "active") for unit in UNITS} | {"redis-sentinel": ("masked", "inactive")}
    lines = [line for unit in UNITS for line in _unit(unit, *states[unit], reload="yes")]
    state = parse(lines)
    assert (state.enabled, state.active) == ("enabled", "active")
    assert state.units == {unit: states[unit] for unit in UNITS[1:]}
    # Only the units whose files the deploy writes are reloaded for it.
    assert state.need_reload == {
        "redis-server",
        "prometheus-redis-exporter",
        "redis-sentinel",
        "redis-backup.service",
        "redis-backup.timer",
        "smart-redis-alert.timer",
    }
    # A block out of its place (systemd answered for fewer units) is no unit's.
    assert parse(_unit("redis-sentinel", "enabled", "active")).units == {}


@pytest.mark.parametrize(
    "ctimes, stale, tls_stale",
    [
        ({"/usr/bin/redis-server": 100, "/usr/bin/redis-sentinel": 100}, set(), False),
        ({"/usr/bin/redis-server": 300, "/usr/bin/redis-sentinel": 100}, {"redis-server"}, False),
        ({"/usr/bin/redis-sentinel": 300}, {"redis-sentinel"}, False),
        ({"/etc/redis/tls/sentinel.key": 300}, set(), True),
        ({"/etc/redis/tls/sentinel.key": 150}, set(), False),
    ],
)
def test_a_service_started_before_its_binary_or_certificate_was_written_is_stale(ctimes, stale, tls_stale):
    from smart_redis.facts import SENTINEL_TLS_FILES

    renamed = {p.replace("/etc/redis/tls/sentinel.key", SENTINEL_TLS_FILES[1]): t for p, t in ctimes.items()}
    lines = _unit("redis-server", "enabled", "active", "@200") + _unit("redis-sentinel", "enabled", "active", "@200")
    state = parse(lines + [f"ctime={path} {seconds}" for path, seconds in renamed.items()])
    assert state.stale_binaries == stale and state.sentinel_tls_stale is tls_stale
    # A service that is not running (no start time) is never stale.
    assert (
        parse(_unit("redis-server", "enabled", "inactive") + ["ctime=/usr/bin/redis-server 300"]).stale_binaries
        == set()
    )


def test_host_fact_script_sanitises_user_names(tmp_path):
    """The secret line keeps a user name with a newline on one line (it could forge a file= line)."""
    import shutil
    import subprocess

    from smart_redis import facts

    creds = tmp_path / "credentials"
    creds.write_text(
        "REDIS_APP_USER='app\nfile=/etc/redis/redis.conf redis redis 640 " + SHA + "'\nREDIS_APP_PASSWORD='x'\n"
    )
    script = facts._script().replace(facts.PATHS.credentials, str(creds))
    out = subprocess.run([shutil.which("dash") or "sh", "-c", script], capture_output=True, text=True).stdout
    state = parse(out.splitlines())
    assert "/etc/redis/redis.conf" not in state.files
    assert state.secret_users["APP"].startswith("app file=")


# --- the exporter: its own login only, restarted on what runs (items 7 and 20) ---


@pytest.mark.parametrize("last", [True, False])
def test_the_running_exporter_is_read_from_its_block_of_the_units_answer(tmp_path, last):
    """The exporter's main PID and start come from the one `systemctl show` for every unit
    (here a stand-in that answers as systemd does, the exporter's block last without its empty
    line, or in the middle): the password in that process's environment is hashed, and a file
    written after its start makes it stale."""
    import hashlib
    import os
    import shutil
    import subprocess
    import time

    from smart_redis import facts
    from smart_redis.constants import EXPORTER_SERVICE

    exporter = subprocess.Popen(["sleep", "60"], env={"PATH": os.environ["PATH"], "REDIS_PASSWORD": "s3cret"})
    try:
        started = int(time.time()) - 100
        blocks = [
            f"ExecMainStartTimestamp=@{started}\nId={EXPORTER_SERVICE}.service\nMainPID={exporter.pid}\n",
            "ExecMainStartTimestamp=\nId=redis-backup.timer\nMainPID=0\n",
        ]
        answer = "\n".join(blocks[::-1] if last else blocks).rstrip("\n")
        bin_dir = tmp_path / "bin"
        bin_dir.mkdir()
        (bin_dir / "systemctl").write_text(f"#!/bin/sh\ncat <<'EOF'\n{answer}\nEOF\n")
        (bin_dir / "systemctl").chmod(0o755)
        env_file = tmp_path / "exporter.env"
        env_file.write_text("REDIS_USER=metrics\n")
        script = facts._script().replace(facts.PATHS.exporter_env, str(env_file))
        path = f"{bin_dir}:{os.environ['PATH']}"

        def answer_of() -> facts.HostState:
            done = subprocess.run(
                [shutil.which("dash") or "sh", "-c", script], capture_output=True, text=True, env={"PATH": path}
            )
            return parse(done.stdout.splitlines())

        state = answer_of()
        assert state.exporter_auth == hashlib.sha256(b"s3cret").hexdigest() and state.exporter_stale
        os.utime(env_file, (started - 10, started - 10))
        assert not answer_of().exporter_stale
    finally:
        exporter.kill()
        exporter.wait()


def _exporter_host(**kwargs):
    from smart_redis.facts import HostState

    state = HostState(
        units={"prometheus-redis-exporter": ("enabled", "active")},
        secret_hashes={"EXPORTER": SHA},
        secret_users={"EXPORTER": "metrics"},
        exporter_auth=SHA,
    )
    for key, value in kwargs.items():
        setattr(state, key, value)
    return state


def test_exporter_unit_gets_no_credentials_file():
    from smart_redis import exporter
    from smart_redis.constants import PATHS
    from smart_redis.settings import load

    text = exporter.dropin(load({}))
    assert PATHS.credentials + "\n" not in text and f"EnvironmentFile=-{PATHS.exporter_env}" in text
    assert "ExecStart=/usr/bin/prometheus-redis-exporter -web.listen-address 127.0.0.1:" in text
    assert "sh -c" not in text and "PASSWORD" not in text


def test_exporter_restart_follows_what_runs():
    from smart_redis.exporter import needs_restart

    assert needs_restart(_exporter_host(), "acl") is None
    # A first run that stopped before its restart: the exporter runs without (or with an old) password.
    assert needs_restart(_exporter_host(exporter_auth=""), "acl")
    assert needs_restart(_exporter_host(exporter_auth="b" * 64), "acl")
    assert needs_restart(_exporter_host(exporter_stale=True), "acl")
    assert needs_restart(_exporter_host(exporter_auth=""), "none") is None
    assert needs_restart(_exporter_host(units={}), "acl") is None  # not running: started, not restarted


def test_exporter_env_up_to_date_compares_the_stored_login():
    from smart_redis.constants import PATHS
    from smart_redis.exporter import _env_up_to_date

    root_only = {PATHS.exporter_env: FileState("root", "root", "600", "x")}
    assert _env_up_to_date(_exporter_host(files=root_only, exporter_env=(SHA, "metrics")))
    assert not _env_up_to_date(_exporter_host(files=root_only, exporter_env=("b" * 64, "metrics")))
    assert not _env_up_to_date(_exporter_host(files=root_only, exporter_env=(SHA, "other")))
    assert not _env_up_to_date(
        _exporter_host(files={PATHS.exporter_env: FileState("root", "root", "644", "x")}, exporter_env=(SHA, "metrics"))
    )


# --- apt lists are refreshed after the repository was added (item 17) ---


def _fresh(tmp_path, sources):
    import subprocess

    from smart_redis.install import lists_are_fresh

    check = lists_are_fresh(3600, tuple(str(s) for s in sources), lists=str(tmp_path / "lists"))
    return subprocess.run(["dash", "-c", check]).returncode == 0


def test_young_lists_skip_the_update_until_a_repository_file_is_newer(tmp_path):
    import os
    import time

    lists = tmp_path / "lists"
    lists.mkdir()
    source, pin = tmp_path / "redis.list", tmp_path / "redis.pin"
    source.write_text("deb x\n"), pin.write_text("pin\n")
    old = time.time() - 600
    os.utime(source, (old, old)), os.utime(pin, (old, old))
    (lists / "deb.debian.org_dists_bookworm_main_binary-amd64_Packages").write_text("")
    assert _fresh(tmp_path, [])
    assert _fresh(tmp_path, [source, pin])
    source.write_text("deb y\n")  # the repository was added (or changed) after the last update
    assert not _fresh(tmp_path, [source, pin])
    assert not _fresh(tmp_path, [source, tmp_path / "missing-keyring"])


def test_apt_source_line_refuses_whitespace():
    import pytest
    from pyinfra.api import OperationError

    from smart_redis.install import source_line

    assert source_line("https://packages.redis.io/deb", "bookworm").endswith(
        " https://packages.redis.io/deb bookworm main\n"
    )
    with pytest.raises(OperationError):
        source_line("https://x\ndeb http://evil/ ./", "bookworm")


# --- fetched snapshots stay private (item 9) ---


def test_snapshots_fact_quotes_the_directory(tmp_path):
    import subprocess

    from smart_redis.fetch import Snapshots

    marker = tmp_path / "ran"
    command = Snapshots().command(f"/nonexistent; touch {marker}")
    subprocess.run(["dash", "-c", command], check=True)
    assert not marker.exists()


def test_local_copies_go_into_private_folders(tmp_path):
    from smart_redis.fetch import private_dir

    backups = tmp_path / "backups"
    backups.mkdir(mode=0o755)
    backups.chmod(0o755)
    private_dir(backups / "db1")
    assert oct(backups.stat().st_mode & 0o777) == "0o700"
    assert oct((backups / "db1").stat().st_mode & 0o777) == "0o700"


@pytest.mark.parametrize(
    "lines, live",
    [
        ([], None),  # not asked
        (['live="port","6379","maxmemory","536870912","maxmemory-policy","allkeys-lru"'],
         {"port": "6379", "maxmemory": "536870912", "maxmemory-policy": "allkeys-lru"}),
        (['live="NOAUTH Authentication required."'], None),  # an error reply
        (["live="], None),  # nobody listening
    ],
)  # fmt: skip
def test_the_running_servers_settings_ride_on_the_answer(lines, live):
    """RedisHost asked with the config step's question (operations.expect_live) carries its reply."""
    state = parse([*CONTAINER_BEFORE_INSTALL, *lines])
    assert state.live == live and state.os == ("debian", "12")


def test_the_live_question_is_asked_only_when_given():
    assert "config get" not in RedisHost.script()
    asked = RedisHost.script(live_cli="redis-cli -p 6379", live_names=("maxmemory", "appendonly"))
    assert asked.endswith(
        "{ ( timeout 10 redis-cli -p 6379 --csv config get port appendonly maxmemory ) 2>/dev/null; true; } "
        "| sed 's/^/live=/'"
    )


def test_the_live_question_waits_for_the_port_lines_it_assumes():
    """A TLS client on a port that still speaks plain text would wait for ever (the run that turns
    TLS on): the question is asked only while redis.conf has the lines the client was made for."""
    asked = RedisHost.script(
        live_cli="redis-cli --tls -p 6379", live_names=("maxmemory",), live_guard=("port 0", "tls-port 6379")
    )
    assert (
        "{ grep -Fqsx 'port 0' /etc/redis/redis.conf && grep -Fqsx 'tls-port 6379' /etc/redis/redis.conf && "
        "( timeout 10 redis-cli --tls -p 6379 --csv config get port maxmemory ) 2>/dev/null; true; }"
    ) in asked


@pytest.mark.parametrize(
    "config,member",
    [
        ("replicaof 10.0.0.1 6379\nmasteruser replicator\n", True),  # the deploy's own file
        ('replicaof 10.0.0.1 6379\nprimaryuser "replicator"\n', True),  # Valkey's CONFIG REWRITE of it
        ("# masteruser replicator\nport 6379\n", False),  # a single server's
    ],
)
def test_a_group_member_is_known_by_its_config_whichever_server_wrote_it(tmp_path, config, member):
    import shutil
    import subprocess

    from smart_redis import facts
    from smart_redis.host.server import VALKEY

    conf = tmp_path / "valkey.conf"
    conf.write_text(config)
    script = facts._script(VALKEY).replace(VALKEY.config, str(conf))
    out = subprocess.run([shutil.which("dash") or "sh", "-c", script], capture_output=True, text=True).stdout
    assert parse(out.splitlines()).ha_member is member


@pytest.mark.parametrize(
    "password, exporter_password",
    [("x", "z"), ("p a s s", "with 'quotes' and $(touch PWNED)"), ("\u00e9t\u00e9", "")],
)
def test_the_fact_script_hashes_each_secret_as_the_deploy_does(tmp_path, password, exporter_password):
    """Each stored password's SHA-256, computed on the host without it in a process's arguments,
    is the deploy's own hash of it (the steps compare the two)."""
    import hashlib
    import shlex
    import shutil
    import subprocess

    from smart_redis import facts

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode()).hexdigest()

    creds, previous, exporter = tmp_path / "credentials", tmp_path / "previous", tmp_path / "exporter.env"
    creds.write_text(f"REDIS_APP_USER=app\nREDIS_APP_PASSWORD={shlex.quote(password)}\n")
    previous.write_text(f"REDIS_APP_PASSWORD={shlex.quote(password + 'old')}\n")
    exporter.write_text(f"REDIS_USER=metrics\nREDIS_PASSWORD={shlex.quote(exporter_password)}\n")
    script = (
        facts._script()
        .replace(facts.PATHS.credentials_previous, str(previous))
        .replace(facts.PATHS.credentials, str(creds))
        .replace(facts.PATHS.exporter_env, str(exporter))
    )
    out = subprocess.run(
        [shutil.which("dash") or "sh", "-c", script], cwd=tmp_path, capture_output=True, text=True
    ).stdout
    state = parse(out.splitlines())
    assert state.secret_hashes["APP"] == sha(password) and state.secret_users["APP"] == "app"
    assert state.previous_hashes["APP"] == sha(password + "old")
    assert state.exporter_env == (sha(exporter_password) if exporter_password else "", "metrics")
    assert not (tmp_path / "PWNED").exists()


def test_the_hosts_answer_is_the_script_bounded():
    from smart_redis import facts

    asked = {"live_cli": "redis-cli -p 6379", "live_names": ("maxmemory",)}
    assert RedisHost().command(**asked) == facts.bounded(RedisHost.script(**asked))
    assert RedisHost().command(server="valkey") == facts.bounded(RedisHost.script(server="valkey"))


def test_a_read_that_blocks_stops_the_answer_with_one_line(tmp_path, monkeypatch):
    """A FIFO where the script reads (here redis.conf, as the server's user could plant it in its
    config folder): the answer ends after the bound, the fact fails with one line, nothing waits on."""
    import os
    import subprocess
    import time

    from smart_redis import facts

    monkeypatch.setattr(facts, "ANSWER_SECONDS", 2)
    fifo = tmp_path / "redis.conf"
    os.mkfifo(fifo)
    command = facts.bounded(RedisHost.script().replace("/etc/redis/redis.conf", str(fifo)))
    started = time.monotonic()
    done = subprocess.run(["dash", "-c", command], capture_output=True, text=True, timeout=30)
    assert time.monotonic() - started < 10
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "the host did not answer within 2 s: a file the deploy reads there blocks "
        "(a FIFO in the server's config or data folder?)"
    )


def test_the_last_group_counts_without_its_newline(tmp_path):
    """An /etc/group whose last line lost its newline (an editor's doing) still names that group:
    the deploy would otherwise create the operator group again, and fail on every run."""
    import shutil
    import subprocess

    from smart_redis import facts

    group = tmp_path / "group"
    group.write_text("root:x:0:\nredis:x:101:\nredis-operators:x:998:")
    script = facts._script().replace("/etc/group", str(group))
    out = subprocess.run([shutil.which("dash") or "sh", "-c", script], capture_output=True, text=True).stdout
    assert parse(out.splitlines()).groups == ("root", "redis", "redis-operators")


@pytest.mark.parametrize(
    ("config", "asked_with", "opened"),
    [
        ("port 6379\nbind 127.0.0.1 -::1\n", "open", True),  # the package's own: no ACL users yet
        ("port 6379\nuser default off resetpass\nuser ops on #ab ~* +@all\n", "acl", False),  # the deploy's
    ],
)
def test_the_live_question_logs_in_as_the_servers_config_says(tmp_path, config, asked_with, opened):
    """On a fresh host the server runs the package's config: the answer asks it with the open
    login and says so; once redis.conf has the deploy's users, with the ACL login. Run by a shell
    with stand-ins for the two clients."""
    import subprocess

    conf = tmp_path / "redis.conf"
    conf.write_text(config)
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name, reply in (("acl-cli", "acl"), ("open-cli", "open")):
        (bin_dir / name).write_text(f'#!/bin/sh\necho \'"port","6379","maxmemory","{reply}"\'\n')
        (bin_dir / name).chmod(0o755)
    script = RedisHost.script(
        live_cli="redis-cli -p 6379",
        live_names=("maxmemory",),
        live_guard=("port 6379",),
        live_open_cli="redis-cli -p 6379 --open",
    )
    live_part = script[script.index("; { grep -Fqsx") + 2 :].replace("/etc/redis/redis.conf", str(conf))
    live_part = live_part.replace("timeout 10 redis-cli -p 6379 --open", "open-cli").replace(
        "timeout 10 redis-cli -p 6379", "acl-cli"
    )
    out = subprocess.run(
        ["sh", "-c", live_part], capture_output=True, text=True, env={"PATH": f"{bin_dir}:/usr/bin:/bin"}
    ).stdout
    state = parse([*CONTAINER_BEFORE_INSTALL, *out.splitlines()])
    assert state.live == {"port": "6379", "maxmemory": asked_with} and state.live_open is opened
