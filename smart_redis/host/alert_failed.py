"""redis-monitor alert-failed UNIT: the OnFailure= handler of the alert and backup units.

It sends what it can without the checks: one CRITICAL message naming the unit and how it
ended (a timeout, an exit code), to every receiver, at most once an hour per unit (a unit that
fails on every run of its timer would otherwise speak every minute). A failed backup also
shows in `health` (its snapshot grows old); a failed alert run may be the only word of it.
"""

from __future__ import annotations

import os
import sys
import time

from . import alerts, delivery, receivers
from .levels import CRITICAL
from .output import emit
from .secret_files import write_private
from .systemctl import systemctl

# The units whose OnFailure= runs this (smart-redis-failed@%N.service): %N -> unit.
UNITS = {"smart-redis-alert": "smart-redis-alert.service", "redis-backup": "redis-backup.service"}
REPEAT = 3600


def cmd_alert_failed(args, config) -> int:
    unit = UNITS.get(args.unit)
    if unit is None:
        print(f"redis-monitor alert-failed: unit must be one of {', '.join(sorted(UNITS))}", file=sys.stderr)
        return 2
    conf = config.get("alerts")
    if not conf or not receivers.configured(conf):
        emit(args, {"unit": unit, "sent": [], "note": "no receiver is configured"}, "no receiver is configured")
        return 0
    now = time.time()
    stamp = f"{conf['state_file']}.failed-{args.unit}"
    said = _said_at(stamp)
    if said is not None and 0 <= now - said < REPEAT:
        note = f"{unit} failed; said so at {alerts.iso(said)}, again at most once an hour"
        emit(args, {"unit": unit, "sent": [], "note": note}, note)
        return 0
    result = systemctl("show", "-p", "Result", "--value", unit) or "unknown"
    detail = f"failed ({result}): journalctl -u {unit}"
    message = alerts.Message("problem", "CRITICAL", None, [(unit, CRITICAL, detail)], check=unit)
    send = receivers.senders(conf, receivers.read_secrets(conf["secrets"]))
    log, _ = delivery.deliver(send, {name: [message] for name in send}, now)
    if any(x["result"] == "OK" for x in log):  # said to someone: else the next failure tries again
        os.makedirs(os.path.dirname(stamp), mode=0o755, exist_ok=True)
        write_private(stamp, f"{now}\n")
    emit(args, {"unit": unit, "sent": log}, "\n".join(f"{x['result']:6}  {x['receiver']}: {x['reason']}" for x in log))
    return 1 if any(x["result"] == "FAILED" for x in log) else 0


def _said_at(path: str) -> float | None:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    with os.fdopen(fd) as f:
        try:
            return float(f.read(64))
        except ValueError:
            return None
