"""What test_sentinel and test_sentinel_changes share: a Sentinel group of three containers
provisioned from one inventory, and the questions they ask it."""

from __future__ import annotations

import contextlib

from conftest import deploy, group_inventory, redis, sh, three_hosts

MASTER = "smart-trade"
# Each host sends its alerts to a receiver in its own container (issue 17): a failover must reach
# a person once, whichever host says it.
HOOK_PORT = 8099
ALERT_INTERVAL = 10  # seconds between alert runs here (the default is 60)


@contextlib.contextmanager
def sentinel_group(docker_testbed, tmp_path_factory, name: str, alerts: bool):
    """primary + 2 replicas, each with a sentinel, on a network of their own with fixed addresses
    (a restarted container comes back on its own). Yields what run_deploy and the tests need;
    alerts: whether the deploy sets up the alert timer (every ALERT_INTERVAL, to HOOK_PORT)."""
    with three_hosts(docker_testbed, name) as (names, addresses, network):
        work = tmp_path_factory.mktemp("ha")
        yield {
            "names": names,
            "addresses": addresses,
            "inventory": group_inventory(work / "inventory.py", names, addresses),
            "secrets": work / "secrets" / "redis-ha.env",
            "network": network,
            "testbed": docker_testbed,
            "alerts": alerts,
        }


def run_deploy(cluster, *args, data=None, json_output=False):
    """The deploy on the group; with cluster["alerts"], alerts to each host's own receiver every ALERT_INTERVAL."""
    alerts = {"redis_alert_webhook_url": f"http://127.0.0.1:{HOOK_PORT}/hook", "redis_alert_interval": ALERT_INTERVAL}
    data = {"redis_ha_secrets_file": str(cluster["secrets"]), **(alerts if cluster["alerts"] else {}), **(data or {})}
    return deploy(cluster["inventory"], *args, data=data, json_output=json_output, no_apps=False)


def group_passwords(cluster) -> list[str]:
    """The group's shared passwords, as the operator's side keeps them."""
    return [line.split("=", 1)[1] for line in cluster["secrets"].read_text().split()]


def app_cli() -> str:
    return (
        '. /etc/smart-redis/credentials && REDISCLI_AUTH="$REDIS_APP_PASSWORD" '
        'redis-cli --no-auth-warning --user "$REDIS_APP_USER"'
    )


def redis_cli_admin() -> str:
    return (
        '. /etc/smart-redis/credentials && REDISCLI_AUTH="$REDIS_ADMIN_PASSWORD" '
        'redis-cli --no-auth-warning --user "$REDIS_ADMIN_USER"'
    )


def sentinel_says(container: str) -> str:
    """Where the local sentinel sees the primary, asked as the app user (what the apps may do)."""
    reply = sh(container, f"{app_cli()} -p 26379 --raw sentinel get-master-addr-by-name {MASTER}", check=False)
    words = reply.stdout.split()
    return words[0] if len(words) == 2 else ""


def replication(container: str) -> dict:
    """INFO replication as a dict; empty while the server does not answer (a container booting)."""
    text = sh(container, f"{redis_cli_admin()} info replication", check=False).stdout
    return dict(line.strip().split(":", 1) for line in text.splitlines() if ":" in line)


def pid(container: str) -> str:
    return sh(container, "systemctl show -p MainPID --value redis-server").stdout.strip()


def config_epoch(container: str) -> str:
    """The sentinel's config epoch for the group: it grows with every failover."""
    fields = redis(container, "sentinel", "master", MASTER, port=26379).splitlines()
    return dict(zip(fields[0::2], fields[1::2], strict=False))["config-epoch"]
