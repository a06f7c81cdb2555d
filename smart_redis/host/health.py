"""What redis-monitor health checks besides Redis itself: the backup job, PM2's apps, listening ports."""

from __future__ import annotations

import os
import socket
import ssl
import subprocess
import time

from .levels import CRITICAL, OK, WARNING
from .pm2 import daemon_runs, jlist_as, parse_jlist, pm2_home
from .server import tls_context
from .snapshots import BACKUP_UNIT
from .systemctl import systemctl


def listening_ports() -> set:
    ports = set()
    for path in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(path) as f:
                for line in f.readlines()[1:]:
                    fields = line.split()
                    if fields[3] == "0A":  # LISTEN
                        ports.add(int(fields[1].rsplit(":", 1)[1], 16))
        except OSError:
            pass
    return ports


def backup_check(config) -> tuple:
    failed = backup_job_failure()
    if failed:
        return ("backup", WARNING, f"the last backup job failed: {failed}")
    directory = config["backup_dir"]
    snapshots = sorted(f for f in os.listdir(directory) if f.endswith(".rdb")) if os.path.isdir(directory) else []
    if not snapshots:
        return ("backup", WARNING, f"no snapshot in {directory}")
    age = time.time() - os.path.getmtime(os.path.join(directory, snapshots[-1]))
    level = WARNING if age > config["backup_max_age"] else OK
    return ("backup", level, f"newest {snapshots[-1]}, {int(age // 60)} min old")


def backup_job_failure() -> str | None:
    """Why the backup unit's last run failed (its own one-line reason from the journal), or None."""
    if systemctl("is-failed", BACKUP_UNIT) != "failed":
        return None
    journal = subprocess.run(
        ["journalctl", "-u", BACKUP_UNIT, "-n", "50", "-o", "cat", "--no-pager"], capture_output=True, text=True
    ).stdout
    reasons = [line for line in journal.splitlines() if line.startswith("redis-monitor backup: ")]
    if reasons:
        return reasons[-1][len("redis-monitor backup: ") :]
    return (
        f"Result={systemctl('show', '-p', 'Result', '--value', BACKUP_UNIT) or 'unknown'} (journalctl -u {BACKUP_UNIT})"
    )


def pm2_check(config) -> tuple:
    user = config["pm2_user"]
    try:
        home, pm2_dir = pm2_home(user, config.get("pm2_home"))
    except KeyError:
        return ("pm2", CRITICAL, f"the PM2 user {user} does not exist")
    # Without a daemon, `pm2 jlist` would start one (and print banners): health only looks.
    if not daemon_runs(pm2_dir):
        return ("pm2", CRITICAL, f"PM2 is not running as {user} (no {os.path.join(pm2_dir, 'rpc.sock')})")
    try:
        result = jlist_as(user, home, pm2_dir)
        procs = parse_jlist(result.stdout) if result.returncode == 0 else None
    except (OSError, ValueError, subprocess.TimeoutExpired) as exc:
        return ("pm2", CRITICAL, f"pm2 jlist as {user} failed: {exc}")
    if procs is None:
        said = (result.stderr.strip() or result.stdout.strip()).splitlines()[-1:] or [f"exit {result.returncode}"]
        return ("pm2", CRITICAL, f"pm2 jlist as {user} failed: {said[0][:200]}")
    down = sorted({str(p.get("name")) for p in procs if (p.get("pm2_env") or {}).get("status") != "online"})
    if not procs:
        return ("pm2", CRITICAL, f"no app runs under PM2 as {user}")
    if down:
        return ("pm2", CRITICAL, f"not online: {', '.join(down)}")
    return ("pm2", OK, f"{len(procs)} processes online")


# redis-monitor health: WARNING this many days before the certificate Redis presents expires,
# CRITICAL from the second.
CERT_WARNING_DAYS, CERT_CRITICAL_DAYS = 30, 7


def certificate_level(days: float) -> int:
    return CRITICAL if days < CERT_CRITICAL_DAYS else WARNING if days < CERT_WARNING_DAYS else OK


def presented_certificate(port: int, address: str = "127.0.0.1", timeout: float = 5.0) -> dict:
    """The certificate the server presents on its TLS port now (not the file on disk: a renewal
    that the server has not loaded still shows the old one), verified against its CA."""
    context = tls_context(port)
    if context is None:
        raise ssl.SSLError(f"no TLS on port {port} here (redis.conf, or Sentinel's files in a TLS group)")
    with socket.create_connection((address, port), timeout=timeout) as raw:
        with context.wrap_socket(raw, server_hostname=address) as conn:
            return conn.getpeercert() or {}


def certificate_check(config, now: float | None = None, port: int | None = None, name: str = "certificate") -> tuple:
    """The certificate on the server's TLS port, or on `port` (the local sentinel's, which has
    its own copy: a renewal that did not restart Sentinel shows here)."""
    port = port or config["tls_port"]
    try:
        cert = presented_certificate(port)
    except (OSError, ValueError) as exc:
        return (name, CRITICAL, f"no verified TLS on port {port}: {exc}")
    expires = ssl.cert_time_to_seconds(cert["notAfter"])
    days = (expires - (time.time() if now is None else now)) / 86400
    until = time.strftime("%Y-%m-%d", time.gmtime(expires))
    if days <= 0:
        return (name, CRITICAL, f"expired {until}")
    return (
        name,
        certificate_level(days),
        f"expires {until}, in {int(days)} days (serial {cert['serialNumber']})",
    )
