"""Key counts taken at backup time (NAME.rdb.counts.json) and the restore's check against them."""

from __future__ import annotations

from .info import parse_keyspace
from .resp import Redis, scan_replies
from .server import server_version


def keyspace_counts(r: Redis) -> dict:
    """db number -> {"keys": n, "expires": m}, from INFO keyspace."""
    return parse_keyspace(r.call("INFO", "keyspace"))


# Expiry times are kept as a histogram of absolute times: finer where a restore soon after the
# backup needs it, coarse for keys that outlive any plausible restore delay.
BUCKETS = ((600, 10), (86400, 600), (30 * 86400, 86400))
LONG_BUCKET = 30 * 86400
EXPIRY_SCAN_LIMIT = 200_000  # keys looked at per DB: bounds the time a backup spends on SCAN


def expiry_bucket(expires_at: int, now: int) -> tuple[int, int]:
    """(bucket start, width) for a key expiring at expires_at (epoch seconds), seen at now."""
    remaining = expires_at - now
    width = next((w for limit, w in BUCKETS if remaining < limit), LONG_BUCKET)
    return expires_at // width * width, width


def expiry_histogram(r: Redis, now: float, limit: int = EXPIRY_SCAN_LIMIT) -> dict:
    """Absolute expiry times of the selected DB's volatile keys, from a bounded SCAN + PTTL.

    {"buckets": [[start, width, count], ...], "sampled": volatile keys seen} - a sample when
    the DB holds more than `limit` keys.
    """
    buckets: dict = {}
    sampled = 0
    for _, pttl in scan_replies(r, "PTTL", limit, batch=1000):
        if isinstance(pttl, int) and pttl >= 0:
            sampled += 1
            bucket = expiry_bucket(int(now + pttl / 1000), int(now))
            buckets[bucket] = buckets.get(bucket, 0) + 1
    return {"buckets": [[start, width, n] for (start, width), n in sorted(buckets.items())], "sampled": sampled}


def backup_counts(r: Redis, stamp: str, now: float) -> dict:
    """What a restore can still compare later: keys without TTL, and when the others expire."""
    counts = keyspace_counts(r)
    volatile = {}
    for db, n in counts.items():
        if n["expires"]:
            r.call("SELECT", db)
            volatile[db] = {"keys": n["expires"], **expiry_histogram(r, now)}
    r.call("SELECT", 0)
    return {
        "created": stamp,
        "created_epoch": int(now),
        "redis_version": server_version(r.info("server")),
        "keys": {db: n["keys"] for db, n in counts.items()},
        "persistent": {db: n["keys"] - n["expires"] for db, n in counts.items()},
        "volatile": volatile,
    }


RESTORE_SLACK = 10  # seconds of clock difference and check delay a volatile key is given


def compare_counts(counts: dict, restored: dict, now: float, slack: int = RESTORE_SLACK) -> tuple[bool, str]:
    """Compare a restored server's INFO keyspace (parse_keyspace) with a backup's counts file.

    Keys without TTL must all be back. Of the keys with a TTL, at least those whose expiry
    lies beyond now + slack must be back, and no more than there were. Counts files of older
    redis-monitor versions (totals only) can only say that no DB gained keys.
    """
    wrong, shown, expired = [], [], 0
    if "persistent" not in counts:
        for db, total in sorted(counts["keys"].items(), key=lambda x: int(x[0])):
            got = restored.get(db, {}).get("keys", 0)
            if got > total:
                wrong.append(f"db{db}: {got} keys, {total} at backup time")
            shown.append(f"db{db}={got}/{total}")
        wrong += [
            f"db{db}: {n['keys']} keys, none at backup time"
            for db, n in sorted(restored.items())
            if db not in counts["keys"]
        ]
        if wrong:
            return False, "restored key counts differ from the backup's: " + "; ".join(wrong)
        return True, (
            "key counts within the backup's (an older counts file without TTLs: only checked that "
            "no DB has more keys than at backup time): " + ", ".join(shown)
        )
    age = max(0, int(now - counts.get("created_epoch", now)))
    for db in sorted(set(counts["persistent"]) | set(restored), key=int):
        got = restored.get(db, {"keys": 0, "expires": 0})
        persistent = got["keys"] - got["expires"]
        want = counts["persistent"].get(db)
        if want is None:
            wrong.append(f"db{db}: {got['keys']} keys, none at backup time")
            continue
        if persistent != want:
            wrong.append(f"db{db}: {persistent} keys without TTL, {want} at backup time")
        volatile = counts.get("volatile", {}).get(db, {"keys": 0, "buckets": [], "sampled": 0})
        alive = sum(n for start, _, n in volatile["buckets"] if start > now + slack)
        if volatile["sampled"] and volatile["sampled"] < volatile["keys"]:
            # A sample: scaled to the whole DB, with a margin for the sample's error.
            alive = int(alive * volatile["keys"] / volatile["sampled"] * 0.9)
        if got["expires"] > volatile["keys"]:
            wrong.append(f"db{db}: {got['expires']} keys with TTL, only {volatile['keys']} at backup time")
        elif got["expires"] < alive:
            wrong.append(
                f"db{db}: {got['expires']} keys with TTL, but {alive} of the backup's outlive the {age} s since it"
            )
        expired += volatile["keys"] - got["expires"]
        shown.append(f"db{db}={persistent}+{got['expires']}ttl" if volatile["keys"] else f"db{db}={persistent}")
    if wrong:
        return False, "restored key counts differ from the backup's: " + "; ".join(wrong)
    line = "key counts match the backup: " + ", ".join(shown)
    if expired > 0:
        line += f"; {expired} keys with a TTL expired in the {age} s since the snapshot"
    return True, line
