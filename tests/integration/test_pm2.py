"""Issue 3: REDIS_URL reaches the PM2 ecosystem file and the running app, and nothing else changes.

The app container runs Debian's nodejs and PM2 from the npm registry (installed with this
machine's npm, which knows the registry and its CA, and copied in), with a small app that
connects to Redis through REDIS_URL.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import time
from pathlib import Path
from urllib.parse import quote

import pytest
from conftest import ROOT, deploy, redis, sh

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
            check=True, capture_output=True, timeout=300,
        )
    return prefix


@pytest.fixture(scope="module")
def apps(new_container, pm2_package):
    name = new_container("apps")
    sh(name, "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends nodejs >/dev/null")
    subprocess.run(["docker", "cp", f"{pm2_package}/.", f"{name}:/opt/pm2"], check=True)
    subprocess.run(["docker", "cp", f"{FIXTURES}/.", f"{name}:{APP_DIR}"], check=True)
    sh(name, f"ln -sf /opt/pm2/node_modules/pm2/bin/pm2 /usr/local/bin/pm2 && useradd -m -s /bin/bash smart-trade "
             f"&& chown -R smart-trade:smart-trade {APP_DIR} && chmod 640 {ECOSYSTEM}")
    sh(name, f"runuser -l smart-trade -c 'cd {APP_DIR} && pm2 start ecosystem.config.js' > /dev/null")
    original = sh(name, f"cat {ECOSYSTEM}").stdout
    run = deploy(f"@docker/{name}", "-vvv", data=DATA)
    return {"name": name, "target": f"@docker/{name}", "original": original, "first": run}


def expected_url(container: str) -> str:
    creds = dict(
        line.split("=", 1) for line in sh(container, "cat /etc/smart-redis/credentials").stdout.splitlines() if "=" in line
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
        '        NODE_ENV: "production", // REDIS_URL comes from the Redis deploy\n'
        f'        REDIS_URL: "{url}",\n',
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
    "missing": (None, "the file does not exist"),
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
        subprocess.run(["docker", "exec", "-i", apps["name"], "sh", "-c", f"cat > {path}"], input=text, text=True, check=True)
    before = sh(apps["name"], f"sha256sum {path} 2>&1; stat -c %Y {path} 2>&1", check=False).stdout
    run = deploy(apps["target"], data={**DATA, "pm2_ecosystem_file": path})
    assert run.rc == 1
    assert f"{path}: " in run.output and message in run.output, run.output
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
