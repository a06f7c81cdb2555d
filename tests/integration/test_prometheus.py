"""Issue 17, part 2: the Prometheus path end to end, as the README describes it.

On one provisioned host, Debian's prometheus and prometheus-alertmanager run beside Redis with
monitoring/prometheus.yml.example and alertmanager.yml.example (only the intervals, the host's
name and the webhook's address changed) and the repository's alerts.yml unchanged; a webhook
receiver run by the test records what Alertmanager delivers.
"""

from __future__ import annotations

import json
import shlex
import subprocess
import time

import pytest
import yaml
from conftest import APT_INSTALL, ROOT, deploy, put, received, sh, start_receiver, wait_for

from smart_redis.host.server import REDIS

MONITORING = ROOT / "monitoring"
WEBHOOK_PORT = 5001
# Loopback only, and no Alertmanager cluster port: nothing of this setup listens on the network.
DEFAULTS = {
    "/etc/default/prometheus": 'ARGS="--web.listen-address=127.0.0.1:9090"\n',
    "/etc/default/prometheus-alertmanager": 'ARGS="--web.listen-address=127.0.0.1:9093 --cluster.listen-address="\n',
}
# Debian's units set PrivateUsers=true, which a container cannot do (as for redis-server).
CONTAINER_DROPIN = "[Service]\nPrivateUsers=false\n"


def long_sh(container: str, command: str, timeout: float = 600) -> None:
    result = subprocess.run(
        ["docker", "exec", container, "sh", "-c", command], capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, result.stdout + result.stderr


def fetch(container: str, url: str) -> dict:
    """GET a JSON API inside the container (the image has no curl; it has python3)."""
    script = f"import urllib.request; print(urllib.request.urlopen({url!r}, timeout=5).read().decode())"
    return json.loads(sh(container, f"python3 -c {shlex.quote(script)}").stdout)


def prometheus_config(host: str) -> str:
    config = yaml.safe_load((MONITORING / "prometheus.yml.example").read_text())
    config["global"].update(scrape_interval="2s", evaluation_interval="2s")
    (target,) = config["scrape_configs"][0]["static_configs"]
    target["labels"]["instance"] = host
    return yaml.safe_dump(config)


def alertmanager_config() -> str:
    config = yaml.safe_load((MONITORING / "alertmanager.yml.example").read_text())
    config["route"].update(group_wait="1s", group_interval="2s")
    (webhook,) = config["receivers"][0]["webhook_configs"]
    webhook["url"] = f"http://127.0.0.1:{WEBHOOK_PORT}/alertmanager"
    return yaml.safe_dump(config)


@pytest.fixture(scope="module")
def host(new_container):
    name = new_container("prometheus")
    run = deploy(f"@docker/{name}")
    assert run.rc == 0, run.output
    # policy-rc.d keeps the packages from starting with their own configs: ours go in first.
    long_sh(
        name,
        "printf '#!/bin/sh\\nexit 101\\n' > /usr/sbin/policy-rc.d && chmod 755 /usr/sbin/policy-rc.d"
        f" && {APT_INSTALL} prometheus prometheus-alertmanager >/dev/null"
        " && rm /usr/sbin/policy-rc.d",
    )
    return name


@pytest.fixture(scope="module")
def monitored(host):
    """Prometheus and Alertmanager running from their Debian units with the example configs."""
    put(host, "/etc/prometheus/alerts.yml", (MONITORING / "alerts.yml").read_text())
    put(host, "/etc/prometheus/prometheus.yml", prometheus_config(host))
    put(host, "/etc/prometheus/alertmanager.yml", alertmanager_config())
    for path, text in DEFAULTS.items():
        put(host, path, text)
    for unit in ("prometheus", "prometheus-alertmanager"):
        sh(host, f"mkdir -p /etc/systemd/system/{unit}.service.d")
        put(host, f"/etc/systemd/system/{unit}.service.d/container.conf", CONTAINER_DROPIN)
    sh(host, "systemctl daemon-reload && systemctl restart prometheus prometheus-alertmanager")
    start_receiver(host, WEBHOOK_PORT)

    def redis_up() -> bool:
        result = fetch(host, "http://127.0.0.1:9090/api/v1/query?query=redis_up")["data"]["result"]
        return [(r["metric"]["instance"], r["value"][1]) for r in result] == [(host, "1")]

    wait_for("Prometheus scrapes redis_up 1 from the exporter", lambda: _answers(redis_up), 60)
    wait_for("Alertmanager is ready", lambda: _answers(lambda: fetch(host, "http://127.0.0.1:9093/api/v2/status")), 30)
    return host


def _answers(check):
    try:
        return check()
    except (subprocess.CalledProcessError, json.JSONDecodeError):
        return False  # not listening yet


def notifications(host: str) -> list[dict]:
    return [
        {"status": alert["status"], **alert["labels"], **alert["annotations"]}
        for post in received(host)
        for alert in post["body"]["alerts"]
        if alert["labels"]["alertname"] == "RedisDown"
    ]


def test_the_shipped_examples_are_valid(host):
    """As shipped, with alerts.yml beside them: what an operator copies must load."""
    put(host, "/tmp/prometheus.yml", (MONITORING / "prometheus.yml.example").read_text())
    put(host, "/tmp/alerts.yml", (MONITORING / "alerts.yml").read_text())
    put(host, "/tmp/alertmanager.yml", (MONITORING / "alertmanager.yml.example").read_text())
    checked = sh(host, "promtool check config /tmp/prometheus.yml && amtool check-config /tmp/alertmanager.yml")
    assert "SUCCESS: 6 rules found" in checked.stdout


def test_the_monitoring_listens_on_loopback_only(monitored):
    """The README's setup opens no port: Prometheus, Alertmanager (no cluster port), exporter, receiver."""
    listening = sh(monitored, "ss -ltnH").stdout.split("\n")
    addresses = {line.split()[3].rsplit(":", 1)[0] for line in listening if line}
    assert {"127.0.0.1"} <= addresses <= {"127.0.0.1", "[::1]"}, listening


def test_redis_down_and_its_resolve_reach_the_webhook(monitored):
    host = monitored
    assert notifications(host) == []

    stopped = time.monotonic()
    sh(host, f"systemctl stop {REDIS.service}")
    firing = wait_for("RedisDown delivered", lambda: notifications(host), 180)
    print(f"\nRedisDown reached the webhook {time.monotonic() - stopped:.1f} s after redis-server stopped")
    assert firing == [
        {
            "status": "firing",
            "alertname": "RedisDown",
            "instance": host,
            "job": "redis",
            "severity": "critical",
            "summary": f"Redis on {host} does not answer the exporter",
        }
    ]
    # Alertmanager tells a group again only when it changes: several group intervals (2 s) later
    # there is still one message.
    time.sleep(6)
    assert notifications(host) == firing

    started = time.monotonic()
    sh(host, f"systemctl start {REDIS.service}")
    delivered = wait_for("the resolve delivered", lambda: (n := notifications(host))[1:] and n, 120)
    print(f"its resolve reached the webhook {time.monotonic() - started:.1f} s after redis-server started")
    assert [n["status"] for n in delivered] == ["firing", "resolved"]
    assert delivered[1] == {**firing[0], "status": "resolved"}
