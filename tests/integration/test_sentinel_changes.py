"""What a deploy does to a running Sentinel group (issues 10 and 16), on three containers of its
own: a group whose primary is no longer the inventory's, Sentinel's timing changed at runtime, the
inventory's primary rebuilt from nothing, a rolling restart with a handover, a restart refused while
no replica is in sync, and sentinels that name a server outside the group.
"""

from __future__ import annotations

import pytest
from conftest import redis, sh, wait_for
from sentinel_group import (
    MASTER,
    config_epoch,
    group_passwords,
    pid,
    redis_cli_admin,
    replication,
    run_deploy,
    sentinel_group,
    sentinel_says,
)


@pytest.fixture(scope="module")
def cluster(docker_testbed, run_id, tmp_path_factory):
    # Without the alert timer: test_sentinel has it, and its runs every 10 s on three hosts cost
    # CPU that the other modules of make test need.
    with sentinel_group(docker_testbed, tmp_path_factory, f"smart-redis-test-{run_id}-hc", alerts=False) as group:
        yield group


def test_a_running_group_is_changed_rebuilt_and_restarted_in_its_roles(cluster):
    (a, b, c), (ip_a, ip_b, ip_c) = cluster["names"], cluster["addresses"]
    first = run_deploy(cluster)
    assert first.rc == 0, first.failure
    passwords = group_passwords(cluster)
    wait_for("2 replicas online", lambda: replication(a).get("connected_slaves") == "2", 60)
    wait_for(
        "every sentinel sees 3 sentinels",
        lambda: all(
            redis(n, "sentinel", "sentinels", MASTER, port=26379).splitlines().count("name") == 2 for n in (a, b, c)
        ),
        60,
    )

    # --- Sentinel moves the primary away from the inventory's (a planned failover: the state a
    # crash leaves too, which test_sentinel goes through); the re-run records it in redis.conf.
    # Sentinel takes it once it sees a replica it would promote (NOGOODSLAVE until then).
    wait_for(
        "Sentinel takes the failover",
        lambda: sh(b, f"{redis_cli_admin()} -p 26379 sentinel failover {MASTER}", check=False).stdout.strip() == "OK",
        60,
    )
    new_ip = wait_for(
        "every sentinel names the new primary",
        lambda: (
            (len({sentinel_says(n) for n in (a, b, c)}) == 1 and sentinel_says(a) not in ("", ip_a))
            and sentinel_says(a)
        ),
        60,
    )
    new = {ip_b: b, ip_c: c}[new_ip]
    wait_for(
        "the old primary follows the new one",
        lambda: replication(a).get("master_host") == new_ip and replication(a).get("master_link_status") == "up",
        60,
    )
    wait_for(
        "a write on the new primary", lambda: redis(new, "set", "after:failover", "1", db=5, role="APP") == "OK", 30
    )
    pids = {n: pid(n) for n in (a, b, c)}
    rerun = run_deploy(cluster, data={"redis_maxmemory": "256mb"})
    assert rerun.rc == 0, rerun.failure
    assert {sentinel_says(n) for n in (a, b, c)} == {new_ip}
    assert {n: pid(n) for n in (a, b, c)} == pids, "the re-run restarted a server"
    other = ({b, c} - {new}).pop()
    assert replication(new)["role"] == "master"
    assert replication(a)["master_host"] == new_ip and replication(other)["master_host"] == new_ip
    for n in (a, b, c):
        assert redis(n, "config", "get", "maxmemory").split()[-1] == str(256 * 1024 * 1024)
    assert f"replicaof {new_ip} 6379" in sh(a, "cat /etc/redis/redis.conf").stdout
    assert sh(new, "grep -c '^replicaof' /etc/redis/redis.conf", check=False).stdout.strip() == "0"

    # --- Sentinel's timing follows the settings at runtime (SENTINEL SET), on every sentinel.
    faster = run_deploy(
        cluster, data={"redis_maxmemory": "256mb", "redis_sentinel_down_after_ms": 4000}, json_output=True
    )
    assert faster.rc == 0, faster.stderr[-4000:]
    assert faster.changed == 3, faster.stderr[-3000:]
    for n in (a, b, c):
        fields = redis(n, "sentinel", "master", MASTER, port=26379).splitlines()
        assert dict(zip(fields[0::2], fields[1::2], strict=False))["down-after-milliseconds"] == "4000"
    assert "sentinel down-after-milliseconds smart-trade 4000" in sh(b, "cat /etc/redis/sentinel.conf").stdout

    # --- Rebuild the inventory's primary from nothing: it follows the current primary, not the inventory.
    docker_testbed = cluster["testbed"]
    docker_testbed.remove_container(a)
    docker_testbed.start_container(a, network=cluster["network"], ip=ip_a, cloud=True)
    before_restart = {"redis_maxmemory": "256mb", "redis_sentinel_down_after_ms": 4000}
    rebuilt = run_deploy(cluster, "--limit", f"@docker/{a}", data=before_restart)
    assert rebuilt.rc == 0, rebuilt.failure
    wait_for(
        "the rebuilt host in sync with the new primary",
        lambda: replication(a).get("master_host") == new_ip and replication(a).get("master_link_status") == "up",
        60,
    )
    assert redis(a, "exists", "after:failover", db=5) == "1"
    assert f"Sentinel reports the primary at {new_ip} 6379" in rebuilt.output
    assert f"replicaof {new_ip} 6379" in sh(a, "cat /etc/redis/redis.conf").stdout
    wait_for("the rebuilt sentinel agrees", lambda: sentinel_says(a) == new_ip, 30)

    # --- A change that needs a restart restarts one server after the other, each replica back in
    # sync before the next host, and the primary last, after handing its role to a replica (issue
    # 16): one planned failover (the config epoch grows by one), no unplanned one.
    pids = {n: pid(n) for n in (a, b, c)}
    settled = {"redis_maxmemory": "256mb", "redis_tcp_backlog": 1024, "redis_sentinel_down_after_ms": 4000}
    epoch = int(config_epoch(b))
    restart = run_deploy(cluster, data=settled)
    assert restart.rc == 0, restart.failure
    assert restart.output.count("Restarting redis-server for: tcp-backlog") == 3
    assert "hands its role to one of them" in restart.output
    assert all(pid(n) != pids[n] for n in (a, b, c)), "a server was not restarted"
    assert int(config_epoch(b)) == epoch + 1
    handed = sentinel_says(b)
    assert handed not in ("", new_ip) and {sentinel_says(n) for n in (a, b, c)} == {handed}
    assert replication(new)["role"] == "slave" and replication(new)["master_host"] == handed
    new_ip, new = handed, {ip_a: a, ip_b: b, ip_c: c}[handed]
    replicas = [n for n in (a, b, c) if n != new]
    assert all(replication(n)["master_link_status"] == "up" for n in replicas)

    for run in (first, rerun, faster, restart, rebuilt):
        assert not any(value in run.output for value in passwords)
    wait_for(
        "health OK on the new primary with 2 replicas",
        lambda: "primary with 2 connected replica(s)" in sh(new, "redis-monitor health", check=False).stdout,
        30,
    )

    # --- health is CRITICAL when the primary has no replica left.
    for n in replicas:
        sh(n, "systemctl stop redis-server")
    health = sh(new, "redis-monitor health", check=False)
    assert health.returncode == 2, health.stdout
    assert "CRITICAL replication: primary with 0 connected replica(s)" in health.stdout

    # --- ... and a restart of the primary is refused while no replica is in sync (after 60 s of
    # waiting): a run never takes the last server of the group away. Nothing changes on it.
    primary_pid = pid(new)
    refused = run_deploy(cluster, "--limit", f"@docker/{new}", data={**settled, "redis_tcp_backlog": 2048})
    assert refused.rc == 1
    assert f"Not restarting redis-server: the primary {new_ip}:6379 has 0 of 2 replicas in sync" in refused.output
    assert "The primary restarts in place: not every server of the group is in this run (--limit)" in refused.output
    assert pid(new) == primary_pid
    assert redis(new, "config", "get", "tcp-backlog").split()[-1] == "1024"
    assert "tcp-backlog 1024" in sh(new, "cat /etc/redis/redis.conf").stdout

    # --- The sentinels made to name a primary that is no server of the group (what a forged hello
    # does), and one that answers, as an attacker's server would (an unreachable one could let a
    # busy machine's run find the sentinels silent): the deploy stops with one line, and no host
    # follows it.
    # Every sentinel forgets the group before any is forged: a sentinel still watching it sends its
    # hellos to its peers too, and their higher config epoch would take a forged one back at once.
    forged = "127.0.0.1 6390"  # each container's own loopback: no traffic leaves
    for n in (a, b, c):
        sh(n, "redis-server --port 6390 --bind 127.0.0.1 --save '' --daemonize yes --logfile /tmp/forged.log")
        redis(n, "sentinel", "remove", MASTER, port=26379)
    for n in (a, b, c):
        assert redis(n, "sentinel", "monitor", MASTER, *forged.split(), "2", port=26379) == "OK"
    assert {sentinel_says(n) for n in (a, b, c)} == {"127.0.0.1"}
    misled = run_deploy(cluster, data=settled)
    # What the run said about the sentinels, and what they say now, for whoever reads a failure.
    shown = "\n".join(line for line in misled.output.splitlines() if "entinel" in line and "|" not in line)
    shown += f"\nthe sentinels now: {[sentinel_says(n) for n in (a, b, c)]}"
    assert misled.rc == 1, shown
    # Said by the config step when it hears the sentinels, else by the Sentinel step, which asks
    # this host's own sentinel without a time limit (a busy machine may leave the first unheard).
    assert "primary 127.0.0.1:6390, which is no Redis server of the group" in misled.output, shown
    assert not any("6390" in sh(n, "grep -i replicaof /etc/redis/redis.conf", check=False).stdout for n in (a, b, c))
