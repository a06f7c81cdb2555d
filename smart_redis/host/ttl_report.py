"""redis-monitor ttl-report: how each DB's keys use their TTL, and one recommendation per DB.

What it measures, per DB of the configured keyspace:

- keys and keys with a TTL: INFO keyspace (exact, the whole DB);
- remaining TTL (PTTL), idle time (OBJECT IDLETIME) and size (MEMORY USAGE) of a sample: SCAN
  (never KEYS), stopped after --sample keys or --seconds of sampling, whichever comes first.
  All three commands leave a key's access time alone, so the report never makes a key look used.
  Sizes are extrapolated from the sample to the DB's key count. Under an LFU policy Redis keeps
  no idle time (OBJECT IDLETIME is an error): the report says so and skips the footprint rule;
- evicted_keys, expired_keys, keyspace_hits/misses: INFO stats, server-wide (Redis does not
  count them per DB) since start or the last CONFIG RESETSTAT.

The recommendation of a DB is the first of these rules that applies (the others that apply are
listed too); each says the numbers it rests on:

1. eviction-policy: the DB declares no TTL (permanent data), holds keys, the policy is allkeys-*
   and Redis has evicted keys: eviction picks from every DB, so it can take these keys;
   consider volatile-lru (evicts only keys with a TTL, but writes then fail with OOM once only
   keys without TTL are left).
2. missing-ttl: the DB declares a TTL and some of its keys have none: they never expire (the
   app forgets EX); `redis-monitor cleanup --apply-ttl` gives them the DB's TTL.
3. shorter-ttl: the DB declares a TTL T, idle time is tracked, at least MIN_JUDGED keys with a
   TTL were sampled, and at least IDLE_SHARE of them have not been touched for T/2 or longer:
   with a TTL of T/2 those keys (at least) would be gone; the memory they hold is what it frees.
4. no-change: none of the above (the reason says why: keys are used, or too few to judge...).
   A DB without keys gets "empty".
"""

from __future__ import annotations

import math
import time

from .info import parse_keyspace
from .output import human, table
from .resp import Redis

MIN_JUDGED = 10  # keys with a TTL in the sample before the footprint rule judges a DB
IDLE_SHARE = 0.5  # share of them idle for half their TTL or longer that makes a TTL too long
PERCENTILES = (50, 90, 99)
SCOPE = "server-wide (all DBs), since start or the last CONFIG RESETSTAT"


# --- Sampling (talks to Redis) ---------------------------------------------------------------


def sample_db(r: Redis, limit: int, seconds: float, idle_tracked: bool, batch: int = 250) -> dict:
    """Up to `limit` keys of the selected DB, SCANned for at most `seconds`:
    {"keys": [(pttl_ms, idle_s or None, bytes or None), ...], "complete": whether SCAN got round}.

    PTTL -1 is a key without TTL; keys gone between SCAN and PTTL (-2) are left out.
    """
    deadline = time.monotonic() + seconds
    seen: set = set()
    keys: list = []
    cursor = "0"
    while True:
        cursor, found = r.call("SCAN", cursor, "COUNT", batch)
        new = [k for k in found if k not in seen]
        fresh = new[: max(0, limit - len(seen))]
        seen.update(fresh)
        per_key = 3 if idle_tracked else 2
        commands: list[tuple] = []
        for key in fresh:
            commands += [("PTTL", key), ("MEMORY", "USAGE", key)]
            if idle_tracked:
                commands.append(("OBJECT", "IDLETIME", key))
        replies = r.pipeline(commands)
        for i in range(len(fresh)):
            pttl, size, *idle = replies[i * per_key : (i + 1) * per_key]
            if not isinstance(pttl, int) or pttl == -2:
                continue
            keys.append((pttl, _int_or_none(idle[0]) if idle else None, _int_or_none(size)))
        if cursor == "0" or len(fresh) < len(new):
            return {"keys": keys, "complete": cursor == "0" and len(fresh) == len(new)}
        if len(seen) >= limit or time.monotonic() >= deadline:
            return {"keys": keys, "complete": False}


def _int_or_none(reply) -> int | None:
    # An error reply (OBJECT IDLETIME under LFU) or nil (key gone) is "not known", not zero.
    return reply if isinstance(reply, int) else None


def report(r: Redis, keyspace: list[dict], limit: int, seconds: float) -> dict:
    """{"server": server_stats, "databases": [db_report of each configured DB]}; leaves DB 0 selected."""
    server = server_stats(r.info())
    counts = parse_keyspace(r.call("INFO", "keyspace"))
    databases = []
    for entry in keyspace:
        r.call("SELECT", entry["db"])
        sample = sample_db(r, limit, seconds, server["idle_tracked"])
        databases.append(db_report(entry, counts.get(str(entry["db"]), {}), sample, server))
    r.call("SELECT", 0)
    return {"server": server, "databases": databases}


def server_stats(info: dict) -> dict:
    """The server-wide numbers the report rests on, from INFO (all sections)."""
    hits, misses = int(info.get("keyspace_hits", 0)), int(info.get("keyspace_misses", 0))
    policy = info.get("maxmemory_policy", "noeviction")
    return {
        "scope": SCOPE,
        "maxmemory_policy": policy,
        "idle_tracked": "lfu" not in policy,
        "maxmemory": int(info.get("maxmemory", 0)),
        "used_memory": int(info.get("used_memory", 0)),
        "evicted_keys": int(info.get("evicted_keys", 0)),
        "expired_keys": int(info.get("expired_keys", 0)),
        "keyspace_hits": hits,
        "keyspace_misses": misses,
        "hit_pct": round(100.0 * hits / (hits + misses), 1) if hits + misses else None,
        "uptime_seconds": int(info.get("uptime_in_seconds", 0)),
    }


# --- Arithmetic ------------------------------------------------------------------------------


def percentile(values: list, p: float):
    """Nearest-rank percentile: a value that occurs in the data, never an interpolation."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def distribution(values: list) -> dict | None:
    """{"min", "p50", "p90", "p99", "max"} of the values; None for no values."""
    if not values:
        return None
    return {"min": min(values), **{f"p{p}": percentile(values, p) for p in PERCENTILES}, "max": max(values)}


def extrapolate(sample_total: float, sampled: int, population: int) -> int:
    """The sample's total scaled to the population it was drawn from."""
    return round(sample_total * population / sampled) if sampled else 0


def duration(seconds: float) -> str:
    """60 -> '60 s', 600 -> '10 min', 5400 -> '1.5 h'."""
    if seconds < 120:
        return f"{seconds:g} s"
    if seconds < 7200:
        return f"{round(seconds / 60, 1):g} min"
    return f"{round(seconds / 3600, 1):g} h"


def db_report(entry: dict, counts: dict, sample: dict, server: dict) -> dict:
    """The numbers of one DB and its recommendation.

    entry: {"db", "name", "ttl"} of the configured keyspace; counts: {"keys", "expires"} of INFO
    keyspace; sample: sample_db's result; server: server_stats's result.
    """
    keys, expires = counts.get("keys", 0), counts.get("expires", 0)
    rows = sample["keys"]
    with_ttl = [x for x in rows if x[0] >= 0]
    idle = [x[1] for x in rows if x[1] is not None]
    sizes = [x[2] for x in rows if x[2] is not None]
    no_ttl_sizes = [x[2] for x in rows if x[0] < 0 and x[2] is not None]
    data = {
        "db": entry["db"],
        "name": entry["name"],
        "ttl": entry["ttl"],
        "keys": keys,
        "with_ttl": expires,
        "without_ttl": keys - expires,
        "without_ttl_pct": round(100.0 * (keys - expires) / keys, 1) if keys else None,
        "sampled": len(rows),
        "sample_complete": sample["complete"],
        "remaining_ttl_s": distribution([round(x[0] / 1000, 1) for x in with_ttl]),
        "idle_s": distribution(idle) if server["idle_tracked"] else None,
        "memory_bytes": extrapolate(sum(sizes), len(sizes), keys),
        "without_ttl_memory_bytes": extrapolate(sum(no_ttl_sizes), len(no_ttl_sizes), keys - expires),
    }
    found = recommendations(data, with_ttl, server)
    data["recommendation"] = {"rule": found[0][0], "text": f"DB {entry['db']} {entry['name']}: {found[0][1]}"}
    data["also"] = [{"rule": rule, "text": text} for rule, text in found[1:]]
    return data


def recommendations(data: dict, with_ttl: list, server: dict) -> list[tuple[str, str]]:
    """(rule, reason) of every rule of the module docstring that applies, first rule first."""
    ttl, keys = data["ttl"], data["keys"]
    if not keys:
        return [("empty", "no keys: nothing to judge")]
    found = []
    policy, evicted = server["maxmemory_policy"], server["evicted_keys"]
    if ttl is None and policy.startswith("allkeys-") and evicted:
        found.append(
            (
                "eviction-policy",
                f"{evicted} keys were evicted since start (server-wide: Redis does not say from which DB): {policy} can evict "
                f"this DB's {keys} permanent keys; consider volatile-lru (it evicts only keys with a TTL, but "
                "writes then fail with OOM once only keys without TTL are left)",
            )
        )
    if ttl is not None and data["without_ttl"]:
        found.append(
            (
                "missing-ttl",
                f"{data['without_ttl']} of {keys} keys ({data['without_ttl_pct']:g} %) have no TTL though the DB "
                f"declares {duration(ttl)}: they never expire (the app forgets EX) and hold "
                f"~{human(data['without_ttl_memory_bytes'])}; `redis-monitor cleanup --apply-ttl` gives them the TTL",
            )
        )
    footprint = shorter_ttl(data, with_ttl, server)
    if footprint:
        found.append(footprint)
    if not found:
        found.append(("no-change", no_change_reason(data, with_ttl, server)))
    return found


def shorter_ttl(data: dict, with_ttl: list, server: dict) -> tuple[str, str] | None:
    ttl = data["ttl"]
    judged = [x for x in with_ttl if x[1] is not None]
    if ttl is None or not server["idle_tracked"] or len(judged) < MIN_JUDGED:
        return None
    shorter = max(1, ttl // 2)
    idle = [x for x in judged if x[1] >= shorter]
    if len(idle) < IDLE_SHARE * len(judged):
        return None
    # Sizes of the sample's idle keys, scaled to all the DB's keys with a TTL.
    sized = [x for x in judged if x[2] is not None]
    freed = extrapolate(sum(x[2] for x in idle if x[2] is not None), len(sized), data["with_ttl"])
    share = round(100.0 * len(idle) / len(judged))
    median = percentile([x[1] for x in judged], 50)
    return (
        "shorter-ttl",
        f"{share} % of keys with a TTL have been idle for {duration(shorter)} or more of their "
        f"{duration(ttl)} TTL (median idle {duration(median)}): a TTL of {duration(shorter)} would free "
        f"~{human(freed)}",
    )


def no_change_reason(data: dict, with_ttl: list, server: dict) -> str:
    ttl = data["ttl"]
    if ttl is None:
        if server["maxmemory_policy"].startswith("allkeys-"):
            return (
                f"keys without TTL as declared, none evicted: no change (under {server['maxmemory_policy']} "
                "they can be evicted once maxmemory is reached)"
            )
        return "keys without TTL as declared: no change"
    if not server["idle_tracked"]:
        return f"idle time is not tracked under {server['maxmemory_policy']}: no change judged from use"
    judged = [x[1] for x in with_ttl if x[1] is not None]
    if len(judged) < MIN_JUDGED:
        sampled = f"{len(judged)} key" if len(judged) == 1 else f"{len(judged)} keys"
        return f"only {sampled} with a TTL sampled (fewer than {MIN_JUDGED}): no change judged from use"
    used = sum(1 for x in judged if x < max(1, ttl // 2))
    return (
        f"{round(100.0 * used / len(judged))} % of keys with a TTL were read or written less than "
        f"{duration(max(1, ttl // 2))} ago (median idle {duration(percentile(judged, 50))}): no change"
    )


# --- Text ------------------------------------------------------------------------------------


def text(report: dict) -> str:
    """The table of numbers, the server-wide line, and one recommendation line per DB."""
    s = report["server"]
    rows = []
    for d in report["databases"]:
        idle, left = d["idle_s"] or {}, d["remaining_ttl_s"] or {}
        rows.append(
            {
                "db": d["db"],
                "name": d["name"],
                "ttl": "-" if d["ttl"] is None else duration(d["ttl"]),
                "keys": d["keys"],
                "no_ttl": d["without_ttl"],
                "sampled": d["sampled"] if d["sample_complete"] else f"{d['sampled']}+",
                "ttl_left_p50": duration(left["p50"]) if left else "-",
                "idle_p50": duration(idle["p50"]) if idle else "-",
                "idle_p90": duration(idle["p90"]) if idle else "-",
                "memory": f"~{human(d['memory_bytes'])}",
            }
        )
    hits = f" ({s['hit_pct']:g} % hits)" if s["hit_pct"] is not None else ""
    lines = [
        table(rows),
        "",
        f"{SCOPE}: policy {s['maxmemory_policy']}, {s['evicted_keys']} evicted, {s['expired_keys']} expired, "
        f"{s['keyspace_hits']} hits, {s['keyspace_misses']} misses{hits}",
        "",
    ]
    for d in report["databases"]:
        lines.append(d["recommendation"]["text"])
        lines += [f"    also: {x['text']}" for x in d["also"]]
    return "\n".join(lines)
