"""Issue 3: REDIS_URL reaches the PM2 ecosystem file and the running app, and nothing else changes.

The app container runs Debian's nodejs and PM2 from the npm registry (installed with this
machine's npm, which knows the registry and its CA, and copied in), with a small app that
connects to Redis through REDIS_URL.
"""

from __future__ import annotations

import json
import shlex
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import APT_INSTALL, ROOT, deploy, fingerprint, put, redis, sh, sh_input

from smart_redis.constants import PATHS

PM2_VERSION = "7.0.4"
APP_DIR = "/opt/smart-trade"
ECOSYSTEM = f"{APP_DIR}/ecosystem.config.js"
FIXTURES = Path(__file__).with_name("pm2app")
DATA = {"pm2_ecosystem_file": ECOSYSTEM, "pm2_user": "smart-trade"}


@pytest.fixture(scope="session")
def pm2_package() -> Path:
    prefix = ROOT / ".cache" / f"pm2-{PM2_VERSION}"
    if not (prefix / "node_modules" / "pm2" / "bin" / "pm2").exists():
        npm = shutil.which("npm")
        assert npm, "npm is needed on the machine running the tests, to fetch PM2"
        subprocess.run(
            [npm, "install", "--no-audit", "--no-fund", "--prefix", str(prefix), f"pm2@{PM2_VERSION}"],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return prefix


def start_apps(name: str, pm2_package: Path) -> None:
    """Debian's nodejs, PM2 and the stand-in app, started by PM2 as smart-trade, in a container."""
    sh(
        name,
        f"{APT_INSTALL} nodejs >/dev/null",
    )
    subprocess.run(["docker", "cp", f"{pm2_package}/.", f"{name}:/opt/pm2"], check=True)
    subprocess.run(["docker", "cp", f"{FIXTURES}/.", f"{name}:{APP_DIR}"], check=True)
    sh(
        name,
        f"ln -sf /opt/pm2/node_modules/pm2/bin/pm2 /usr/local/bin/pm2 && useradd -m -s /bin/bash smart-trade "
        f"&& chown -R smart-trade:smart-trade {APP_DIR} && chmod 640 {ECOSYSTEM}",
    )
    sh(name, f"runuser -l smart-trade -c 'cd {APP_DIR} && pm2 start ecosystem.config.js' > /dev/null")


@pytest.fixture(scope="module")
def apps(new_container, pm2_package):
    name = new_container("apps")
    start_apps(name, pm2_package)
    original = sh(name, f"cat {ECOSYSTEM}").stdout
    run = deploy(f"@docker/{name}", "-vvv", data=DATA)
    return {"name": name, "target": f"@docker/{name}", "original": original, "first": run}


def expected_url(container: str) -> str:
    creds = dict(
        line.split("=", 1)
        for line in sh(container, "cat /etc/smart-redis/credentials").stdout.splitlines()
        if "=" in line
    )
    password = creds["REDIS_APP_PASSWORD"].strip("'")
    return f"redis://smart-trade:{quote(password, safe='')}@127.0.0.1:6379/0"


def pm2_env(container: str, app: str) -> dict:
    listing = json.loads(sh(container, "runuser -l smart-trade -c 'pm2 jlist'").stdout)
    proc = next(p for p in listing if p["name"] == app)
    return proc["pm2_env"].get("env", proc["pm2_env"])


def test_deploy_sets_redis_url_and_changes_no_other_byte(apps):
    assert apps["first"].rc == 0, apps["first"].output
    url = expected_url(apps["name"])
    edited = sh(apps["name"], f"cat {ECOSYSTEM}").stdout
    expected = apps["original"].replace(
        '        NODE_ENV: "production", // REDIS_URL comes from the Redis deploy\n',
        f'        NODE_ENV: "production", // REDIS_URL comes from the Redis deploy\n        REDIS_URL: "{url}",\n',
    )
    assert edited == expected


def test_file_keeps_owner_and_mode_and_a_backup_is_kept(apps):
    stat = sh(apps["name"], f"stat -c '%U:%G %a' {ECOSYSTEM} {ECOSYSTEM}.backup").stdout.split("\n")
    assert stat[0] == stat[1] == "smart-trade:smart-trade 640"
    assert sh(apps["name"], f"cat {ECOSYSTEM}.backup").stdout == apps["original"]


def test_password_is_not_in_the_output(apps):
    password = expected_url(apps["name"]).split(":")[2].split("@")[0]
    assert password not in apps["first"].output


def test_pm2_runs_the_app_with_the_new_url_and_it_connects(apps):
    name = apps["name"]
    assert pm2_env(name, "quotes-feed").get("REDIS_URL") == expected_url(name)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if redis(name, "get", "pm2-check:quotes-feed") == "connected as smart-trade":
            return
        time.sleep(0.3)
    pytest.fail("the app did not write its key to Redis with REDIS_URL")


def test_second_run_leaves_the_file_alone(apps):
    before = sh(apps["name"], f"stat -c '%Y %s' {ECOSYSTEM}; sha256sum {ECOSYSTEM}").stdout
    again = deploy(apps["target"], json_output=True, data=DATA)
    assert again.rc == 0 and again.changed == 0, again.output
    assert sh(apps["name"], f"stat -c '%Y %s' {ECOSYSTEM}; sha256sum {ECOSYSTEM}").stdout == before


BROKEN = {
    "missing": (None, "pm2_ecosystem_file = '{path}': the file does not exist on the host"),
    "unparseable": ("module.exports = { apps: [ { name: 'x', env: { A: 'open } } ] };\n", "is never closed"),
    "computed": ("module.exports = { apps: makeApps() };\n", "apps is built by `makeApps...`, which no text edit"),
    "spread": (
        "const base = require('./base');\nmodule.exports = { apps: [...base.apps] };\n",
        "apps[0] is `...base...`, not an object",
    ),
}


@pytest.mark.parametrize("case", BROKEN)
def test_bad_ecosystem_file_exits_1_and_stays_byte_identical(apps, case):
    text, message = BROKEN[case]
    path = f"{APP_DIR}/{case}.config.js"
    if text is not None:
        sh_input(apps["name"], f"cat > {path} && chown smart-trade:smart-trade {path}", text)  # the app team's file
    before = sh(apps["name"], f"sha256sum {path} 2>&1; stat -c %Y {path} 2>&1", check=False).stdout
    run = deploy(apps["target"], data={**DATA, "pm2_ecosystem_file": path})
    assert run.rc == 1
    assert (text is None or f"{path}: " in run.output) and message.format(path=path) in run.output, run.output
    assert sh(apps["name"], f"sha256sum {path} 2>&1; stat -c %Y {path} 2>&1", check=False).stdout == before


def test_health_sees_the_pm2_apps_and_the_platform_ports(apps):
    data = {**DATA, "redis_platform_ports": '{"redis": 6379}'}
    assert deploy(apps["target"], data=data).rc == 0
    healthy = json.loads(sh(apps["name"], "redis-monitor health --json", check=False).stdout)
    assert healthy["status"] == "OK", healthy
    checks = {c["check"]: c for c in healthy["checks"]}
    assert checks["pm2"]["detail"] == "1 processes online" and checks["redis port"]["status"] == "OK"
    sh(apps["name"], "runuser -l smart-trade -c 'pm2 stop quotes-feed' > /dev/null")
    try:
        down = sh(apps["name"], "redis-monitor health", check=False)
        assert down.returncode == 2 and "CRITICAL pm2: not online: quotes-feed" in down.stdout
    finally:
        sh(apps["name"], "runuser -l smart-trade -c 'pm2 start quotes-feed' > /dev/null")


# --- Issue 14: trust nothing the app team owns ---------------------------------------------------

PLAIN = "module.exports = {\n  apps: [{ name: 'other', script: './app.js', env: { NODE_ENV: 'production' } }],\n};\n"


def as_app_user(container: str, command: str) -> None:
    sh(container, f"runuser -l smart-trade -c {shlex.quote(command)} > /dev/null")


def test_a_missing_ecosystem_file_stops_the_run_before_anything_changes(apps):
    path = f"{APP_DIR}/absent.config.js"
    before = fingerprint(apps["name"])
    run = deploy(apps["target"], data={**DATA, "pm2_ecosystem_file": path, "redis_maxmemory": "123mb"})
    assert run.rc == 1
    assert f"pm2_ecosystem_file = '{path}': the file does not exist on the host" in run.output, run.output
    assert fingerprint(apps["name"]) == before


def test_a_hostile_file_is_loaded_as_its_owner_and_loses_the_others_read_bit(apps):
    """It records who loads it and prints on stdout; it is 0644; PM2 does not run as pm2_user (root)."""
    name, path = apps["name"], f"{APP_DIR}/hostile.config.js"
    hostile = (
        "require('fs').appendFileSync('/tmp/loaded-by', process.getuid() + '\\n');\nconsole.log('[loading]');\n" + PLAIN
    )
    sh_input(
        name,
        f"cat > {path} && chown smart-trade:smart-trade {path} && chmod 644 {path} && rm -f /tmp/loaded-by",
        hostile,
    )
    data = {**DATA, "pm2_ecosystem_file": path, "pm2_user": "root"}
    run = deploy(apps["target"], data=data)
    assert run.rc == 0, run.output
    loaded_by = sh(name, "cat /tmp/loaded-by").stdout.split()
    assert loaded_by and "0" not in loaded_by
    assert (
        sh(name, f"stat -c '%U:%G %a' {path} {path}.backup").stdout.splitlines() == ["smart-trade:smart-trade 640"] * 2
    )
    assert f"{path} is readable by every local user: the deploy removes the others' read bit" in run.output
    assert "PM2 is not running as root: no reload" in run.output  # a warning at the normal verbosity
    assert "Traceback" not in run.output
    assert sh(name, "test -e /root/.pm2", check=False).returncode != 0  # asking started no PM2 daemon
    again = deploy(apps["target"], json_output=True, data=data)
    assert again.rc == 0 and again.changed == 0, again.output


def test_links_planted_in_the_app_folder_are_refused_and_root_writes_nothing_through_them(apps):
    name = apps["name"]
    planted = f"{APP_DIR}/planted.config.js"
    sh_input(name, f"cat > {planted} && chown smart-trade:smart-trade {planted} && chmod 640 {planted}", PLAIN)
    as_app_user(name, f"ln -s /etc/planted {planted}.backup")
    before = sh(name, f"sha256sum {planted}").stdout
    run = deploy(apps["target"], data={**DATA, "pm2_ecosystem_file": planted})
    assert run.rc == 1 and "planted.config.js.backup exists but is not a regular file" in run.output, run.output
    assert sh(name, "test -e /etc/planted || test -L /etc/planted", check=False).returncode == 1
    assert sh(name, f"sha256sum {planted}").stdout == before

    root_file, link = "/etc/smart-trade-root.config.js", f"{APP_DIR}/link.config.js"
    sh_input(name, f"cat > {root_file} && chmod 600 {root_file}", PLAIN)
    as_app_user(name, f"ln -s {root_file} {link}")
    run = deploy(apps["target"], data={**DATA, "pm2_ecosystem_file": link})
    assert run.rc == 1 and f"{link}: is a symbolic link" in run.output, run.output
    assert sh(name, f"stat -c '%U:%G %a' {root_file}; cat {root_file}; ls /etc | grep -c smart-trade-root").stdout == (
        f"root:root 600\n{PLAIN}1\n"
    )


RELOAD = "Reload the PM2 apps of smart-trade with the new REDIS_URL"
PM2_STEPS = {f"Set REDIS_URL in {ECOSYSTEM}", RELOAD}


def changed_steps(run) -> set[str]:
    """Names of the operations that changed the host (other tests of this module leave other settings),
    without the "DEPLOY | " prefix that pyinfra gives operations inside a @deploy."""
    return {op["name"].rsplit(" | ", 1)[-1] for op in json.loads(run.stdout)["results"]["operations"] if op["success"]}


def test_pm2_state_decides_the_reload_and_only_the_files_apps_count(apps):
    name = apps["name"]
    as_app_user(name, f"cd {APP_DIR} && pm2 start app.js --name not-in-the-file")
    try:
        # The file is right but PM2 runs the app without REDIS_URL: what a run that failed after the edit leaves.
        as_app_user(name, f"cd {APP_DIR} && pm2 delete quotes-feed && pm2 start app.js --name quotes-feed")
        assert pm2_env(name, "quotes-feed").get("REDIS_URL") is None
        run = deploy(apps["target"], json_output=True, data=DATA)
        assert run.rc == 0 and changed_steps(run) & PM2_STEPS == {RELOAD}, run.output
        assert pm2_env(name, "quotes-feed").get("REDIS_URL") == expected_url(name)
        # An edit and its reload, while a PM2 process outside the file runs without REDIS_URL.
        sh(name, f"runuser -u smart-trade -- cp {ECOSYSTEM}.backup {ECOSYSTEM}")
        run = deploy(apps["target"], json_output=True, data=DATA)
        assert run.rc == 0 and changed_steps(run) & PM2_STEPS == PM2_STEPS, run.output
        again = deploy(apps["target"], json_output=True, data=DATA)
        assert again.rc == 0 and again.changed == 0, again.output
        assert pm2_env(name, "quotes-feed").get("REDIS_URL") == expected_url(name)
    finally:
        as_app_user(name, "pm2 delete not-in-the-file")


# --- The app team's file is never loaded by root, whoever PM2 runs as ------------------------------

TRADER_DIR = "/opt/trader-app"  # root's alone: the deploy does the file work there as root itself
TRADER_FILE = f"{TRADER_DIR}/ecosystem.config.js"
LOADS = "/var/tmp/ecosystem-loads"  # sticky and open to all, so that every loader leaves its uid
SHARED_PM2 = "/srv/trader-pm2"
# A login profile that sends root's pm2 to the PM2 that trader starts (a "shared PM2_HOME").
SHARED_PROFILE = "/etc/profile.d/zz-trader-pm2.sh"
# trader's file records the uid of every process that loads it (node's require(), pm2's).
RECORDER = f"require('fs').writeFileSync('{LOADS}/loaded-by-uid-' + process.getuid(), '');\n"
TRADER_APPS = (
    "module.exports = {\n  apps: [{ name: 'trader-feed', script: './idle.js', env: { NODE_ENV: 'production' } }],\n};\n"
)
EDITOR_ARGS = "--auth acl --user smart-trade --host 127.0.0.1 --port 6379 --blocks env,env_production"


def loaders(container: str) -> set[str]:
    return {name.rsplit("-", 1)[-1] for name in sh(container, f"ls {LOADS}").stdout.split()}


@pytest.fixture
def trader_app(apps):
    """trader's ecosystem file (with the recorder) in a folder of root's; removed afterwards, with any PM2 it ran."""
    name = apps["name"]
    sh(name, "id trader >/dev/null 2>&1 || useradd -m -s /bin/bash trader")
    sh(name, f"install -d -m 755 {TRADER_DIR} && install -d -m 1777 {LOADS} && rm -f {LOADS}/*")
    sh_input(name, f"cat > {TRADER_DIR}/idle.js", "setInterval(() => {}, 1 << 30);\n")
    sh_input(
        name,
        f"cat > {TRADER_FILE} && chown trader:trader {TRADER_FILE} && chmod 640 {TRADER_FILE}",
        RECORDER + TRADER_APPS,
    )
    trader_uid = sh(name, "id -u trader").stdout.strip()
    yield {"name": name, "trader_uid": trader_uid}
    sh(
        name,
        "runuser -l trader -c 'pm2 kill' >/dev/null 2>&1; runuser -l root -c 'pm2 kill' >/dev/null 2>&1",
        check=False,
    )
    sh(name, f"rm -rf {TRADER_DIR} {LOADS} {SHARED_PM2} {SHARED_PROFILE} /root/.pm2 /home/trader/stale.config.js")


def test_root_never_loads_the_file_through_a_pm2_that_another_user_started(apps, trader_app):
    """The audit's scenario: pm2_user = root, whose login profile names a PM2_HOME that trader's PM2
    uses; the first deploy finds no PM2; trader restarts the app from a stale copy of the file
    (no REDIS_URL); the next deploy used to reload it with root's pm2, which require()d the file as root."""
    name, trader = trader_app["name"], trader_app["trader_uid"]
    sh(name, f"install -d -o trader -g trader -m 700 {SHARED_PM2}")
    put(name, SHARED_PROFILE, f'case "$USER" in root|trader) export PM2_HOME={SHARED_PM2} ;; esac\n')
    data = {**DATA, "pm2_ecosystem_file": TRADER_FILE, "pm2_user": "root"}

    first = deploy(apps["target"], data=data)
    assert first.rc == 0, first.failure
    assert "PM2 is not running as root: no reload" in first.output
    assert loaders(name) == {trader}  # the node check, as the file's owner
    assert expected_url(name) in sh(name, f"cat {TRADER_FILE}").stdout

    as_trader = f"cp {TRADER_FILE}.backup ~/stale.config.js && cd {TRADER_DIR} && (pm2 delete trader-feed || true) && pm2 start ~/stale.config.js"
    sh(name, f"runuser -l trader -c {shlex.quote(as_trader)} >/dev/null 2>&1")
    listing = json.loads(sh(name, "runuser -l trader -c 'pm2 jlist'").stdout)
    assert [p["pm2_env"]["env"].get("REDIS_URL") for p in listing if p["name"] == "trader-feed"] == [None]

    second = deploy(apps["target"], json_output=True, data=data)
    assert second.rc == 0, second.failure
    assert "0" not in loaders(name), "root loaded trader's ecosystem file"
    # That PM2 is trader's, not root's: root's pm2 neither reloaded it nor wrote into its home.
    assert "PM2 is not running as root: no reload" in second.output
    assert RELOAD.replace("smart-trade", "root") not in changed_steps(second)
    assert sh(name, f"find {SHARED_PM2} -user root").stdout == ""


def test_a_pm2_of_roots_own_gets_the_apps_of_the_file_that_trader_owns_as_data(apps, trader_app):
    """pm2_user = root with root's own PM2: the reload (the editor's `reload`, which the deploy's
    reload step runs) hands root's pm2 the apps that trader's node read, never the file."""
    name, trader = trader_app["name"], trader_app["trader_uid"]
    sh(name, f"runuser -l root -c 'cd {TRADER_DIR} && pm2 start idle.js --name trader-feed' >/dev/null")
    editor = f"python3 {PATHS.ecosystem_editor}"
    sh(name, f"{editor} apply {TRADER_FILE} {EDITOR_ARGS}")
    sh(name, f"rm -f {LOADS}/*")

    reload = sh(name, f"{editor} reload {TRADER_FILE} {EDITOR_ARGS} --pm2-user root 2>&1", check=False)
    assert reload.returncode == 0, reload.stdout
    assert reload.stdout.strip().endswith("PM2 runs 1 processes of the file with the new REDIS_URL"), reload.stdout
    assert loaders(name) == {trader}
    listing = json.loads(sh(name, "runuser -l root -c 'pm2 jlist'").stdout)
    feed = next(p for p in listing if p["name"] == "trader-feed")
    assert feed["pm2_env"]["env"]["REDIS_URL"] == expected_url(name)
    assert feed["pm2_env"]["pm_exec_path"] == f"{TRADER_DIR}/idle.js"
    assert expected_url(name).split("@")[0].split(":")[-1] not in reload.stdout  # the password stays out
