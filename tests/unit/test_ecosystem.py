"""The ecosystem editor on a corpus of real-world shapes: exact output, idempotent, loadable by node.

Each tests/unit/ecosystem/NAME.in.* has its expected NAME.out.*; a case whose output equals its
input (already correct) checks that nothing is touched.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from urllib.parse import quote

import pytest

from smart_redis.host.ecosystem import main
from smart_redis.host.ecosystem_text import EcosystemError, redis_urls, set_redis_url
from smart_redis.host.node_check import node_apps, node_check
from smart_redis.host.owned_files import Owner, owner_of
from smart_redis.host.pm2 import not_roots_alone, parse_jlist, stale_apps

CORPUS = Path(__file__).with_name("ecosystem")
CASES = sorted(p.name.split(".in.")[0] for p in CORPUS.glob("*.in.*"))
URL = "redis://app:s3cret@127.0.0.1:6379/0"
BLOCKS = ("env", "env_production")
# Cases that select apps by name; all others target every app.
APPS = {"13-several-apps-selected": ["api", "frontend"]}


def case_files(case: str) -> tuple[Path, Path]:
    source = next(CORPUS.glob(f"{case}.in.*"))
    return source, source.with_name(source.name.replace(".in.", ".out."))


def edit(case: str, text: str) -> str:
    source, _ = case_files(case)
    return set_redis_url(text, URL, APPS.get(case), BLOCKS, json_file=source.suffix == ".json")


def test_the_corpus_has_at_least_15_shapes():
    assert len(CASES) >= 15


@pytest.mark.parametrize("case", CASES)
def test_output_is_exactly_the_expected_text(case):
    source, expected = case_files(case)
    assert edit(case, source.read_text()) == expected.read_text()


@pytest.mark.parametrize("case", CASES)
def test_applying_again_changes_nothing(case):
    _, expected = case_files(case)
    assert edit(case, expected.read_text()) == expected.read_text()


@pytest.mark.parametrize("case", CASES)
def test_text_level_check_sees_exactly_one_url_per_block(case):
    source, expected = case_files(case)
    urls = redis_urls(expected.read_text(), APPS.get(case), BLOCKS, json_file=source.suffix == ".json")
    assert urls and all(values and all(v == [URL] for v in values) for values in urls.values())


NOBODY = 65534


@pytest.fixture
def loader() -> Owner:
    """Who node loads the files as: this user, or nobody when the tests run as root (node never
    loads the app team's file as root)."""
    uid = os.geteuid() or NOBODY
    return owner_of(uid, os.getegid() if uid == os.geteuid() else NOBODY)


@pytest.fixture
def readable_dir():
    """A folder that the loader may read (pytest's tmp_path is private to the user running the tests)."""
    folder = Path(tempfile.mkdtemp())
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder)


@pytest.mark.parametrize("case", CASES)
def test_node_loads_the_output_with_the_intended_url(case, readable_dir, loader):
    _, expected = case_files(case)
    target = readable_dir / expected.name.replace(".out.", ".")
    target.write_text(expected.read_text())
    assert node_check(str(target), {"REDIS_URL": URL}, APPS.get(case), BLOCKS, loader) == []


def test_other_apps_are_left_alone_when_apps_are_selected():
    _, expected = case_files("13-several-apps-selected")
    assert "{ name: 'ws', script: 'ws.js', env: { NODE_ENV: 'production' } }," in expected.read_text()


REFUSED = [
    ("module.exports = { apps: makeApps() };", "apps is built by `makeApps...`"),
    ("module.exports = { apps: [...require('./base').apps] };", "apps[0] is `...require...`"),
    ("module.exports = { apps: [ { name: 'a', ...common } ] };", "apps[0] contains `...common`"),
    ("module.exports = { apps: [ { name: 'a', env: loadEnv() } ] };", "apps[0].env is `loadEnv...`"),
    ("module.exports = { apps: [ { name: 'a' } ] ;", "unbalanced brackets"),
    ("module.exports = { apps: [ { name: 'a } ] };", "is never closed"),
    ("module.exports = { services: [] };", "no `apps` array found"),
    ("module.exports = { apps: list };", "apps refers to `list`, which is not defined in this file"),
]


@pytest.mark.parametrize("text,message", REFUSED, ids=[m for _, m in REFUSED])
def test_shapes_no_text_edit_can_reach_are_refused(text, message):
    with pytest.raises(EcosystemError) as error:
        set_redis_url(text, URL)
    assert message in str(error.value)


def test_invalid_json_is_refused():
    with pytest.raises(EcosystemError, match="not valid JSON"):
        set_redis_url('{"apps": [}', URL, json_file=True)


def test_unknown_selected_app_is_refused():
    with pytest.raises(EcosystemError, match="pm2_apps names billing, not in the file"):
        set_redis_url("module.exports = { apps: [ { name: 'api' } ] };", URL, apps=["billing"])


SENTINELS = {"REDIS_SENTINELS": "10.0.0.1:26379,10.0.0.2:26379", "REDIS_MASTER_NAME": "smart-trade"}


def test_sentinel_variables_go_beside_redis_url_in_every_targeted_block():
    text = "module.exports = {\n  apps: [{\n    name: 'api',\n    env: {\n      NODE_ENV: 'production',\n    },\n  }],\n};\n"
    edited = set_redis_url(text, URL, extra=SENTINELS)
    assert edited == (
        "module.exports = {\n  apps: [{\n    name: 'api',\n    env: {\n      NODE_ENV: 'production',\n"
        f"      REDIS_URL: '{URL}',\n      REDIS_SENTINELS: '10.0.0.1:26379,10.0.0.2:26379',\n"
        "      REDIS_MASTER_NAME: 'smart-trade',\n    },\n  }],\n};\n"
    )
    assert set_redis_url(edited, URL, extra=SENTINELS) == edited


def test_an_app_without_env_gets_one_env_block_with_all_variables():
    text = '{"apps": [{"name": "api", "script": "a.js"}]}'
    edited = set_redis_url(text, URL, blocks=("env_production",), json_file=True, extra=SENTINELS)
    app = json.loads(edited)["apps"][0]
    assert app["env"] == {"REDIS_URL": URL, **SENTINELS}
    assert edited.count('"env"') == 1


def test_crlf_file_keeps_crlf_where_lines_are_added():
    text = "module.exports = {\r\n  apps: [{\r\n    name: 'api', // main\r\n    env: {\r\n      NODE_ENV: 'production', // note\r\n    },\r\n  }, {\r\n    name: 'ws',\r\n    env: {\r\n    },\r\n  }],\r\n};\r\n"
    edited = set_redis_url(text, URL, extra={"REDIS_MASTER_NAME": "smart-trade"})
    assert edited.count("\n") == edited.count("\r\n") == text.count("\n") + 4
    assert (
        f"      NODE_ENV: 'production', // note\r\n      REDIS_URL: '{URL}',\r\n      REDIS_MASTER_NAME: 'smart-trade',\r\n    }},"
        in edited
    )
    assert set_redis_url(edited, URL, extra={"REDIS_MASTER_NAME": "smart-trade"}) == edited


def test_node_check_survives_a_file_that_prints_to_stdout(readable_dir, loader):
    target = readable_dir / "ecosystem.config.js"
    target.write_text(
        "console.log('loading ecosystem');\nprocess.stdout.write('[not json\\n');\n"
        f"module.exports = {{ apps: [{{ name: 'api', env: {{ REDIS_URL: '{URL}' }} }}] }};\nconsole.log('done');\n"
    )
    assert node_check(str(target), {"REDIS_URL": URL}, None, BLOCKS, loader) == []
    target.write_text("console.log('[]');\nmodule.exports = { apps: [{ name: 'api', env: {} }] };\n")
    assert node_check(str(target), {"REDIS_URL": URL}, None, BLOCKS, loader) == ["api.env.REDIS_URL"]


def test_node_never_loads_a_file_as_root(readable_dir):
    """Whoever calls it: node_check and node_apps refuse uid 0 before node runs the file's code."""
    target = readable_dir / "ecosystem.config.js"
    marker = readable_dir / "loaded"
    target.write_text(f"require('fs').writeFileSync({str(marker)!r}, 'x');\nmodule.exports = {{ apps: [] }};\n")
    root = Owner(0, 0, [0], "/root", "root")
    with pytest.raises(EcosystemError, match="node would load the file as root"):
        node_check(str(target), {"REDIS_URL": URL}, None, BLOCKS, root)
    with pytest.raises(EcosystemError, match="node would load the file as root"):
        node_apps(str(target), root)
    assert not marker.exists()


def test_node_apps_hands_over_the_apps_as_data(readable_dir, loader):
    """What a PM2 running as root gets instead of the file: node's view of the apps, as the owner
    loaded them (computed values resolved, functions dropped), with what the file printed left out."""
    target = readable_dir / "ecosystem.config.js"
    target.write_text(
        'console.log(\'[{"name": "fake"}]\');\n'
        "const base = { script: __dirname + '/app.js', env: { REDIS_URL: 'redis://x' } };\n"
        "module.exports = { apps: [{ name: 'api', ...base, ready: () => true, instances: 2 * 2 }] };\n"
    )
    assert node_apps(str(target), loader) == [
        {"name": "api", "script": f"{readable_dir}/app.js", "env": {"REDIS_URL": "redis://x"}, "instances": 4}
    ]
    target.write_text("module.exports = { notApps: [] };\n")
    with pytest.raises(EcosystemError, match="node does not see a list of apps in the file"):
        node_apps(str(target), loader)


# --- On the host: root decides, the file's owner touches the files (these run as root, like the deploy)

PASSWORD = "p@ss:w/rd"


@pytest.fixture
def app_dir(tmp_path_factory):
    """/tmp/X (root's, 0755) holding app/ (nobody's, where the app team's file lives) and root-only/."""
    base = Path(tempfile.mkdtemp())
    base.chmod(0o755)
    (base / "root-only").mkdir(mode=0o700)
    app = base / "app"
    app.mkdir()
    os.chown(app, NOBODY, NOBODY)
    creds = base / "root-only" / "credentials"
    creds.write_text(f"REDIS_APP_USER=smart-trade\nREDIS_APP_PASSWORD='{PASSWORD}'\n")
    yield base
    shutil.rmtree(base)


def app_file(
    base: Path, text: str, mode: int = 0o640, uid: int = NOBODY, name: str = "app/ecosystem.config.js"
) -> Path:
    path = base / name
    path.write_text(text)
    os.chown(path, uid, uid)
    path.chmod(mode)
    return path


def run_editor(base: Path, command: str, path: Path, capsys, *extra: str) -> tuple[int, str, str]:
    argv = [
        command,
        str(path),
        "--credentials",
        str(base / "root-only" / "credentials"),
        "--user",
        "smart-trade",
        *extra,
    ]
    rc = main(argv)
    out, err = capsys.readouterr()
    return rc, out, err


PLAIN = (
    "module.exports = {\n  apps: [{\n    name: 'api',\n    env: {\n      NODE_ENV: 'production',\n    },\n  }],\n};\n"
)
HOST_URL = f"redis://smart-trade:{quote(PASSWORD, safe='')}@127.0.0.1:6379/0"


def test_node_loads_the_file_as_its_owner_never_as_root(app_dir, capsys):
    recorder = f"require('fs').writeFileSync(__dirname + '/loaded-by', String(process.getuid()));\n{PLAIN}"
    path = app_file(app_dir, recorder)
    rc, out, err = run_editor(app_dir, "apply", path, capsys)
    assert rc == 0, err
    assert (app_dir / "app" / "loaded-by").read_text() == str(NOBODY)
    assert HOST_URL in path.read_text() and HOST_URL not in out + err


def test_a_planted_backup_link_is_refused_and_root_writes_nothing_through_it(app_dir, capsys):
    path = app_file(app_dir, PLAIN)
    planted = app_dir / "root-only" / "planted"
    (app_dir / "app" / "ecosystem.config.js.backup").symlink_to(planted)
    rc, _, err = run_editor(app_dir, "apply", path, capsys)
    assert rc == 2
    assert "ecosystem.config.js.backup exists but is not a regular file (a symbolic link?)" in err
    assert not planted.exists() and path.read_text() == PLAIN
    assert sorted(p.name for p in (app_dir / "app").iterdir()) == ["ecosystem.config.js", "ecosystem.config.js.backup"]


def test_files_the_owner_makes_keep_owner_and_group_and_lose_others_read(app_dir, capsys):
    path = app_file(app_dir, PLAIN, mode=0o644)
    rc, out, err = run_editor(app_dir, "apply", path, capsys)
    assert rc == 0, err
    assert (
        f"{path} was readable by every local user and holds the Redis password: mode 0644 -> 0640" in out.splitlines()
    )
    for made in (path, app_dir / "app" / "ecosystem.config.js.backup"):
        st = made.lstat()
        assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (NOBODY, NOBODY, 0o640)
    assert (app_dir / "app" / "ecosystem.config.js.backup").read_text() == PLAIN
    assert run_editor(app_dir, "check", path, capsys)[1] == "up-to-date\n"


def test_an_up_to_date_file_that_others_can_read_needs_a_change(app_dir, capsys):
    path = app_file(
        app_dir, PLAIN.replace("'production',", f"'production',\n      REDIS_URL: '{HOST_URL}',"), mode=0o604
    )
    assert run_editor(app_dir, "check", path, capsys)[1] == "needs-change others-can-read\n"
    rc, out, _ = run_editor(app_dir, "apply", path, capsys)
    assert rc == 0 and "mode 0604 -> 0600" in out and path.stat().st_mode & 0o7777 == 0o600
    assert not (app_dir / "app" / "ecosystem.config.js.backup").exists()


def test_a_symlinked_ecosystem_file_is_refused(app_dir, capsys):
    real = app_file(app_dir, PLAIN, uid=0, name="root-only/real.config.js")
    link = app_dir / "app" / "ecosystem.config.js"
    link.symlink_to(real)
    rc, _, err = run_editor(app_dir, "apply", link, capsys)
    assert rc == 2 and "is a symbolic link: set pm2_ecosystem_file to the file itself" in err
    assert real.read_text() == PLAIN and not (app_dir / "root-only" / "real.config.js.backup").exists()


def test_a_root_file_in_a_folder_others_can_change_is_refused(app_dir, capsys):
    path = app_file(app_dir, PLAIN, uid=0)
    rc, _, err = run_editor(app_dir, "apply", path, capsys)
    assert rc == 2 and "belongs to root, but its folder" in err and "can be changed by a non-root user" in err
    assert path.read_text() == PLAIN


def test_a_root_file_in_a_root_folder_is_edited_by_root_without_node(app_dir, capsys):
    path = app_file(
        app_dir, f"require('fs').writeFileSync('{app_dir}/loaded', 'x');\n{PLAIN}", uid=0, name="root-only/e.config.js"
    )
    rc, out, err = run_editor(app_dir, "apply", path, capsys)
    assert rc == 0, err
    assert "node does not load it" in out and not (app_dir / "loaded").exists() and HOST_URL in path.read_text()


def test_pm2_jlist_is_found_after_banner_lines():
    output = (
        '[PM2] Spawning PM2 daemon with pm2_home=/home/x/.pm2\n[PM2] PM2 Successfully daemonized\n[{"name": "api"}]\n'
    )
    assert parse_jlist(output) == [{"name": "api"}]


def test_only_the_files_apps_count_as_stale():
    listing = [
        {"name": "api", "pm2_env": {"env": {"REDIS_URL": URL}}},
        {"name": "pm2-logrotate", "pm2_env": {"env": {}}},
        {"name": "worker", "pm2_env": {"REDIS_URL": "redis://old"}},
    ]
    assert stale_apps(listing, {"api", "worker"}, {"REDIS_URL": URL}) == ["worker"]
    assert stale_apps(listing, {"api"}, {"REDIS_URL": URL}) == []


def test_root_runs_pm2_only_in_a_pm2_home_that_is_roots_alone():
    """A PM2_HOME that another user can change (or whose daemon is another user's) is refused for root."""
    base = Path(tempfile.mkdtemp())
    try:
        base.chmod(0o755)
        home = base / "pm2"
        home.mkdir(mode=0o700)
        assert not_roots_alone(str(home)) is None
        assert not_roots_alone("relative/.pm2") == "relative/.pm2 is not an absolute path"
        os.chown(home, NOBODY, NOBODY)
        assert not_roots_alone(str(home)) == f"{home} can be changed by a non-root user (owner uid {NOBODY}, mode 700)"
        os.chown(home, 0, NOBODY)
        home.chmod(0o770)
        assert "can be changed by a non-root user" in (not_roots_alone(str(home)) or "")
        home.chmod(0o1777)  # sticky is fine above PM2_HOME (where it is), not for PM2_HOME itself
        assert "can be changed by a non-root user" in (not_roots_alone(str(home)) or "")
        home.chmod(0o755)
        assert not_roots_alone(str(home / "deeper")) == f"{home}/deeper: No such file or directory"
        link = base / "link"
        link.symlink_to(home)
        assert not_roots_alone(str(link)) == f"{link} is not a folder (a symbolic link?)"
        inner = base / "users" / "pm2"
        inner.mkdir(parents=True)
        os.chown(base / "users", NOBODY, NOBODY)  # whoever owns a folder above can swap what is below
        assert "users can be changed by a non-root user" in (not_roots_alone(str(inner)) or "")
    finally:
        shutil.rmtree(base)
