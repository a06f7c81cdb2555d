"""The ecosystem editor on a corpus of real-world shapes: exact output, idempotent, loadable by node.

Each tests/unit/ecosystem/NAME.in.* has its expected NAME.out.*; a case whose output equals its
input (already correct) checks that nothing is touched.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from smart_redis.ecosystem import NODE_CHECK, EcosystemError, redis_urls, set_redis_url

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


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed on this machine")
@pytest.mark.parametrize("case", CASES)
def test_node_loads_the_output_with_the_intended_url(case, tmp_path):
    _, expected = case_files(case)
    target = tmp_path / expected.name.replace(".out.", ".")
    target.write_text(expected.read_text())
    env = {"SMART_REDIS_EXPECTED": json.dumps({"REDIS_URL": URL}), "SMART_REDIS_APPS": ",".join(APPS.get(case, [])),
           "SMART_REDIS_BLOCKS": ",".join(BLOCKS), "PATH": "/usr/bin:/bin:/usr/local/bin"}
    result = subprocess.run(["node", "-e", NODE_CHECK, str(target)], env=env, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == []


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
