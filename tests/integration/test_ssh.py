"""Issue 8: the operator's path: deploy.py over SSH as a non-root user with sudo.

sshd in a test container is published on a random 127.0.0.1 port; the key pair and the
known_hosts file are the test's own, never the operator's.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from conftest import APT_INSTALL, PYINFRA, PYTEST, ROOT, Run, put, sh, sh_input

# Held as unattended-upgrades would, until the test lets go (at most 60 s).
HOLD_DPKG_LOCK = (
    "import fcntl, os, time; f = open('/var/lib/dpkg/lock-frontend', 'w'); "
    "fcntl.lockf(f, fcntl.LOCK_EX); open('/tmp/lock-held', 'w').close(); end = time.time() + 60\n"
    "while time.time() < end and not os.path.exists('/tmp/release-lock'): time.sleep(0.1)"
)
WAITING = "Waiting up to 300 s for the dpkg lock"


@pytest.fixture(scope="module")
def ssh_host(new_container, docker_testbed, tmp_path_factory):
    name = new_container("ssh", publish=["127.0.0.1::22"])
    sh(
        name,
        f"{APT_INSTALL} openssh-server sudo python3 > /dev/null",
    )
    sh(
        name,
        "useradd -m -s /bin/bash deploy && echo 'deploy ALL=(ALL) NOPASSWD:ALL' > /etc/sudoers.d/deploy "
        "&& useradd -m -s /bin/bash asker && echo 'asker ALL=(ALL) ALL' > /etc/sudoers.d/asker "
        "&& echo 'asker:not-a-secret-test-password' | chpasswd",
    )
    work = tmp_path_factory.mktemp("ssh")
    key, wrong_key = work / "id_ed25519", work / "wrong_ed25519"
    for path in (key, wrong_key):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    for user in ("deploy", "asker"):
        sh(name, f"install -d -m 700 -o {user} -g {user} /home/{user}/.ssh")
        sh_input(
            name,
            f"cat > /home/{user}/.ssh/authorized_keys && chown {user}: /home/{user}/.ssh/authorized_keys",
            (work / "id_ed25519.pub").read_text(),
        )
    sh(name, "systemctl restart ssh")
    port = docker_testbed.docker("port", name, "22/tcp").stdout.split(":")[-1].strip()
    return {
        "name": name,
        "port": int(port),
        "key": key,
        "wrong_key": wrong_key,
        "known_hosts": work / "known_hosts",
        "work": work,
    }


def inventory(host: dict, user: str = "deploy", key=None, port=None, extra: str = "") -> str:
    path = host["work"] / f"inventory_{user}_{port or host['port']}.py"
    path.write_text(
        'hosts = [("127.0.0.1", {\n'
        f'    "ssh_port": {port or host["port"]}, "ssh_user": "{user}", "ssh_key": "{key or host["key"]}",\n'
        f'    "ssh_known_hosts_file": "{host["known_hosts"]}", "_sudo": True,\n'
        '    "pm2_ecosystem_file": None,' + extra + "\n})]\n"
    )
    return str(path)


def run_deploy(inventory_file: str, *args: str, timeout: int = 600) -> Run:
    result = subprocess.run(
        [PYINFRA, "-y", *args, inventory_file, "deploy.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return Run(result.returncode, result.stdout, result.stderr)


def fingerprint(container: str) -> str:
    return sh(container, "find /etc /usr/local -xdev -type f -printf '%p %s %T@\\n' | sort | sha256sum").stdout


def test_unreachable_host_fails_fast(ssh_host):
    started = time.monotonic()
    run = run_deploy(inventory(ssh_host, port=1))  # nothing listens on 127.0.0.1:1
    print(f"unreachable: exit {run.rc} after {time.monotonic() - started:.1f} s")
    assert run.rc == 1 and "Could not connect" in run.output, run.output


def test_wrong_key_fails_and_changes_nothing(ssh_host):
    before = fingerprint(ssh_host["name"])
    run = run_deploy(inventory(ssh_host, key=ssh_host["wrong_key"]))
    assert run.rc == 1 and "Authentication" in run.output, run.output
    assert fingerprint(ssh_host["name"]) == before


def test_sudo_that_asks_for_a_password_fails_and_changes_nothing(ssh_host):
    before = fingerprint(ssh_host["name"])
    run = run_deploy(inventory(ssh_host, user="asker"), timeout=120)
    assert run.rc == 1, run.output
    assert "password" in run.output.lower()
    assert fingerprint(ssh_host["name"]) == before


@pytest.fixture(scope="module")
def converged(ssh_host):
    """The first deploy over SSH, while the dpkg lock is held as by unattended-upgrades: let go
    once the deploy says that it waits for it (however long the run took to get there)."""
    put(ssh_host["name"], "/root/hold-lock.py", HOLD_DPKG_LOCK)
    sh(ssh_host["name"], "nohup python3 /root/hold-lock.py > /dev/null 2>&1 &")
    for _ in range(50):
        if sh(ssh_host["name"], "test -e /tmp/lock-held", check=False).returncode == 0:
            break
        time.sleep(0.1)
    process = subprocess.Popen(
        [PYINFRA, "-y", "-v", inventory(ssh_host), "deploy.py"],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        text=True,
    )
    assert process.stdout is not None
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if WAITING in line:
                time.sleep(3)  # held on while the run waits, as a package run would
                sh(ssh_host["name"], "touch /tmp/release-lock")
        return Run(process.wait(timeout=600), "".join(lines), "")
    finally:
        if process.poll() is None:
            process.kill()


def test_deploy_over_ssh_with_sudo_converges_after_waiting_for_the_dpkg_lock(converged):
    assert converged.rc == 0, converged.output
    assert WAITING in converged.output, converged.output


def test_host_checks_pass_over_ssh(ssh_host, converged):
    config = ssh_host["work"] / "ssh_config"
    config.write_text(
        f"Host redis-ssh\n  HostName 127.0.0.1\n  Port {ssh_host['port']}\n  User deploy\n"
        f"  IdentityFile {ssh_host['key']}\n  UserKnownHostsFile {ssh_host['known_hosts']}\n"
        "  StrictHostKeyChecking yes\n"
    )
    checks = subprocess.run(
        [
            PYTEST,
            "-q",
            "-p",
            "no:cacheprovider",
            "tests/infra",
            "--hosts=ssh://redis-ssh",
            f"--ssh-config={config}",
            "--sudo",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert checks.returncode == 0, checks.stdout + checks.stderr


def test_second_run_over_ssh_changes_nothing(ssh_host, converged):
    again = run_deploy(inventory(ssh_host), "--json")
    assert again.rc == 0 and json.loads(again.stdout)["results"]["totals"]["success"] == 0, again.output


def test_fetched_snapshots_stay_private_over_sudo(ssh_host, converged):
    """Issue 14, item 9: local copies 0600 in a 0700 folder, and no staging copy left on the host
    (pyinfra's files.get with sudo stages a world-readable one in /tmp)."""
    fetched_to = ssh_host["work"] / "fetched"
    fetch = subprocess.run(
        [PYINFRA, "-y", inventory(ssh_host), "fetch_backups.py", "--data", f"redis_fetch_dir={fetched_to}"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        stdin=subprocess.DEVNULL,
    )
    assert fetch.returncode == 0, fetch.stdout + fetch.stderr
    folder = fetched_to / "127.0.0.1"
    copies = list(folder.glob("dump-*"))
    assert copies and oct(folder.stat().st_mode & 0o777) == "0o700"
    assert all(oct(path.stat().st_mode & 0o777) == "0o600" for path in copies)
    assert sh(ssh_host["name"], "ls /tmp/pyinfra-* 2>/dev/null", check=False).stdout == ""


# Where pyinfra's sudo upload put each file before the one upload primitive: /tmp/pyinfra- and the
# SHA-1 of the destination, computable by any local user (issue 25, item 1).
OLD_UPLOAD_TARGETS = (
    "/usr/local/bin/redis-monitor.candidate",
    "/etc/sudoers.d/redis-monitor.candidate",
    "/etc/redis/redis.conf.candidate",
)
MONITOR = "/usr/local/bin/redis-monitor"
SUDOERS = "/etc/sudoers.d/redis-monitor"


@contextmanager
def kernel_setting(name: str, value: int):
    """A sysctl of the kernel the containers share, put back afterwards."""
    path = Path("/proc/sys") / name.replace(".", "/")
    before = path.read_text().strip()
    path.write_text(str(value))
    try:
        yield
    finally:
        path.write_text(before)


def _stat(container: str, path: str) -> str:
    return sh(container, f"stat -c '%U:%G %a' {path} && sha256sum < {path}").stdout


@pytest.mark.parametrize("protected_regular", [0, 1])
def test_upload_names_a_local_user_plants_receive_nothing_and_block_nothing(ssh_host, converged, protected_regular):
    """A local user creates pyinfra's predictable upload names first (0666, theirs): the deploy
    neither writes into them (their content stays) nor stumbles on them (protected_regular=1 would
    refuse the login's write into another user's file in /tmp), and it repairs what drifted."""
    name = ssh_host["name"]
    sh(name, "id mallory > /dev/null 2>&1 || useradd -m mallory")
    planted = [f"/tmp/pyinfra-{hashlib.sha1(target.encode()).hexdigest()}" for target in OLD_UPLOAD_TARGETS]
    for path in planted:
        sh(name, f"rm -f {path} && runuser -u mallory -- sh -c 'printf planted > {path} && chmod 666 {path}'")
    intact = {path: _stat(name, path) for path in (MONITOR, SUDOERS)}
    sh(name, f"echo '# drifted' >> {MONITOR} && echo '# drifted' >> {SUDOERS}")
    with kernel_setting("fs.protected_regular", protected_regular):
        run = run_deploy(inventory(ssh_host), "--data", f"redis_slowlog_max_len={300 + protected_regular}")
    assert run.rc == 0, run.output
    assert {path: _stat(name, path) for path in (MONITOR, SUDOERS)} == intact
    assert f"slowlog-max-len {300 + protected_regular}" in sh(name, "cat /etc/redis/redis.conf").stdout
    for path in planted:
        assert sh(name, f"stat -c %U {path} && cat {path}").stdout == "mallory\nplanted", path
    sh(name, f"rm -f {' '.join(planted)}")


def test_links_the_redis_user_plants_in_its_folder_are_replaced_never_followed(ssh_host, converged):
    """/etc/redis is the redis user's: links it plants where the deploy used to write by path
    (the candidate, the original's backup) lead nowhere; root's redis-monitor stays root's."""
    name = ssh_host["name"]
    intact = _stat(name, MONITOR)
    sh(name, "rm -f /etc/redis/redis.conf.backup")
    sh(
        name,
        f"runuser -u redis -- sh -c 'ln -sfn {MONITOR} /etc/redis/redis.conf.candidate && "
        "ln -sfn /etc/cron.d/planted /etc/redis/redis.conf.backup'",
    )
    run = run_deploy(inventory(ssh_host), "--data", "redis_slowlog_max_len=310")
    assert run.rc == 0, run.output
    assert _stat(name, MONITOR) == intact
    assert sh(name, "test -e /etc/cron.d/planted", check=False).returncode == 1
    assert "slowlog-max-len 310" in sh(name, "cat /etc/redis/redis.conf").stdout
    assert sh(name, "stat -c '%F %U:%G %a' /etc/redis/redis.conf").stdout.strip() == "regular file redis:redis 640"


def test_changed_host_key_fails_loudly(ssh_host, converged):
    sh(ssh_host["name"], "rm -f /etc/ssh/ssh_host_* && ssh-keygen -A > /dev/null && systemctl restart ssh")
    run = run_deploy(inventory(ssh_host))
    assert run.rc == 1 and "host key" in run.output.lower(), run.output
