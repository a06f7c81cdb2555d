"""Replication and the sentinels: who is primary, who agrees, whether a failover could happen."""

from __future__ import annotations

from .credentials import read_credentials
from .levels import CRITICAL, OK, WARNING
from .resp import Redis, RedisError
from .server import tls_context


def replication_view(info: dict) -> dict:
    """This server's side of replication, from INFO: its primary, or its replicas."""
    if info.get("role") == "slave":
        return {
            "primary": f"{info.get('master_host')}:{info.get('master_port')}",
            "link": info.get("master_link_status"),
        }
    replicas = []
    for n in range(int(info.get("connected_slaves", 0))):
        fields = dict(part.split("=", 1) for part in info.get(f"slave{n}", "").split(",") if "=" in part)
        replicas.append(f"{fields.get('ip')}:{fields.get('port')} ({fields.get('state')}, lag {fields.get('lag')}s)")
    return {"connected_replicas": len(replicas), "replicas": ", ".join(replicas) or "none"}


def sentinel_view(config: dict) -> dict:
    """Each sentinel's answer to "where is the primary?", or why it gave none."""
    ha = config["ha"]
    creds = read_credentials(config["credentials"])
    view = {}
    for address in ha["sentinels"]:
        try:
            s = Redis(
                address,
                ha["sentinel_port"],
                creds["REDIS_ADMIN_USER"],
                creds["REDIS_ADMIN_PASSWORD"],
                timeout=2,
                tls=tls_context(ha["sentinel_port"]),
            )
            reply = s.call("SENTINEL", "GET-MASTER-ADDR-BY-NAME", ha["master_name"])
            view[f"{address}:{ha['sentinel_port']}"] = ":".join(reply) if reply else "does not know the primary"
        except (OSError, RedisError) as exc:
            view[f"{address}:{ha['sentinel_port']}"] = f"no answer ({exc})"
    return view


def replication_checks(view: dict, info: dict) -> list[tuple]:
    """CRITICAL when the sentinels disagree (or too few answer), or the primary has no replica.

    view: sentinel_view(); info: this server's INFO replication (empty when it does not answer)
    """
    answers = {v for v in view.values() if ":" in v and not v.startswith("no answer")}
    answered = sum(1 for v in view.values() if not v.startswith("no answer") and v != "does not know the primary")
    quorum = len(view) // 2 + 1
    if len(answers) > 1:
        checks = [
            ("sentinels", CRITICAL, "disagree on the primary: " + ", ".join(f"{k} says {v}" for k, v in view.items()))
        ]
    elif answered < quorum:
        checks = [("sentinels", CRITICAL, f"only {answered} of {len(view)} answer (a failover needs {quorum})")]
    else:
        checks = [("sentinels", OK, f"{answered} of {len(view)} agree: primary {answers.pop()}")]
    if info.get("role") == "master":
        replicas = int(info.get("connected_slaves", 0))
        checks.append(
            ("replication", CRITICAL if replicas == 0 else OK, f"primary with {replicas} connected replica(s)")
        )
    elif info:
        link = info.get("master_link_status")
        checks.append(
            (
                "replication",
                OK if link == "up" else WARNING,
                f"replica of {info.get('master_host')}:{info.get('master_port')}, link {link}",
            )
        )
    return checks
