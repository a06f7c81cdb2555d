"""ttl-report's arithmetic and recommendation rules (smart_redis/host/ttl_report.py), from data."""

from __future__ import annotations

import re

import pytest

from smart_redis.host import monitor
from smart_redis.host import ttl_report as report

MB = 1024 * 1024


@pytest.mark.parametrize(
    "values,expected",
    [
        ([], None),
        ([7], {"min": 7, "p50": 7, "p90": 7, "p99": 7, "max": 7}),
        (list(range(10, 0, -1)), {"min": 1, "p50": 5, "p90": 9, "p99": 10, "max": 10}),
        (list(range(1, 101)), {"min": 1, "p50": 50, "p90": 90, "p99": 99, "max": 100}),
        ([0.5, 300.0, 2.5, 1.0], {"min": 0.5, "p50": 1.0, "p90": 300.0, "p99": 300.0, "max": 300.0}),
    ],
)
def test_distribution_uses_nearest_rank_percentiles(values, expected):
    assert report.distribution(values) == expected


@pytest.mark.parametrize(
    "total,sampled,population,expected",
    [
        (1000, 10, 100, 10_000),  # a tenth of the DB sampled
        (1000, 10, 10, 1000),  # the whole DB sampled
        (999, 3, 4, 1332),
        (0, 0, 50, 0),  # nothing sampled: no guess
        (500, 5, 0, 0),
    ],
)
def test_extrapolation_scales_the_sample_to_the_db(total, sampled, population, expected):
    assert report.extrapolate(total, sampled, population) == expected


@pytest.mark.parametrize(
    "seconds,text",
    [(1, "1 s"), (60, "60 s"), (119, "119 s"), (300, "5 min"), (450, "7.5 min"), (5400, "90 min"), (9000, "2.5 h")],
)
def test_durations_read_as_people_say_them(seconds, text):
    assert report.duration(seconds) == text


def server(**overrides) -> dict:
    info = {
        "maxmemory_policy": "allkeys-lru",
        "evicted_keys": "0",
        "expired_keys": "120",
        "keyspace_hits": "900",
        "keyspace_misses": "100",
    }
    info.update({k: str(v) for k, v in overrides.items()})
    return report.server_stats(info)


def keys(n: int, pttl_ms: int, idle: int | None, size: int = 1000) -> list:
    return [(pttl_ms, idle, size)] * n


FOOTPRINT = {"db": 2, "name": "footprint", "ttl": 600}
QUOTES = {"db": 0, "name": "quotes", "ttl": 60}
CONFIGURATION = {"db": 5, "name": "configuration", "ttl": None}

# (case, DB, INFO keyspace counts, sampled keys, server, every rule that applies, first first)
CASES = [
    ("an empty DB", QUOTES, {}, [], server(), ["empty"]),
    (
        "keys idle for most of their TTL",
        FOOTPRINT,
        {"keys": 1000, "expires": 1000},
        keys(90, 120_000, 480) + keys(10, 590_000, 5),
        server(),
        ["shorter-ttl"],
    ),
    (
        "keys read all the time: a shorter TTL must not be suggested",
        FOOTPRINT,
        {"keys": 1000, "expires": 1000},
        keys(100, 120_000, 3),
        server(),
        ["no-change"],
    ),
    (
        "just under half idle: not enough",
        FOOTPRINT,
        {"keys": 100, "expires": 100},
        keys(49, 100_000, 300) + keys(51, 100_000, 299),
        server(),
        ["no-change"],
    ),
    (
        "half idle for half the TTL: enough",
        FOOTPRINT,
        {"keys": 100, "expires": 100},
        keys(50, 100_000, 300) + keys(50, 100_000, 299),
        server(),
        ["shorter-ttl"],
    ),
    (
        "too few keys with a TTL to judge",
        FOOTPRINT,
        {"keys": 9, "expires": 9},
        keys(9, 60_000, 590),
        server(),
        ["no-change"],
    ),
    (
        "no idle time under LFU",
        FOOTPRINT,
        {"keys": 100, "expires": 100},
        keys(100, 60_000, None),
        server(maxmemory_policy="allkeys-lfu"),
        ["no-change"],
    ),
    (
        "keys without TTL in a DB that declares one",
        QUOTES,
        {"keys": 50, "expires": 0},
        keys(50, -1, 2, size=100),
        server(),
        ["missing-ttl"],
    ),
    (
        "missing TTLs and idle keys in one DB",
        FOOTPRINT,
        {"keys": 100, "expires": 80},
        keys(20, -1, 500) + keys(80, 60_000, 500),
        server(),
        ["missing-ttl", "shorter-ttl"],
    ),
    (
        "evictions under allkeys-lru with permanent keys",
        CONFIGURATION,
        {"keys": 20, "expires": 0},
        keys(20, -1, 4000),
        server(evicted_keys=3),
        ["eviction-policy"],
    ),
    (
        "evictions under volatile-lru never take keys without TTL",
        CONFIGURATION,
        {"keys": 20, "expires": 0},
        keys(20, -1, 4000),
        server(maxmemory_policy="volatile-lru", evicted_keys=3),
        ["no-change"],
    ),
    (
        "permanent keys, nothing evicted",
        CONFIGURATION,
        {"keys": 20, "expires": 0},
        keys(20, -1, 4000),
        server(),
        ["no-change"],
    ),
    (
        "idle permanent keys are not a TTL question",
        CONFIGURATION,
        {"keys": 20, "expires": 0},
        keys(20, -1, 100_000),
        server(),
        ["no-change"],
    ),
]


@pytest.mark.parametrize("case,entry,counts,rows,stats,rules", CASES, ids=[c[0] for c in CASES])
def test_recommendation_rules(case, entry, counts, rows, stats, rules):
    data = report.db_report(entry, counts, {"keys": rows, "complete": True}, stats)
    assert [data["recommendation"]["rule"]] + [x["rule"] for x in data["also"]] == rules
    assert data["recommendation"]["text"].startswith(f"DB {entry['db']} {entry['name']}: ")


def test_footprint_numbers_and_what_a_shorter_ttl_frees():
    # 90 of 100 sampled keys (1000 B each) idle for 8 min of a 10 min TTL; the DB holds 1000 with a TTL.
    rows = keys(90, 120_000, 480) + keys(10, 590_000, 5)
    data = report.db_report(FOOTPRINT, {"keys": 1000, "expires": 1000}, {"keys": rows, "complete": False}, server())
    assert data["idle_s"] == {"min": 5, "p50": 480, "p90": 480, "p99": 480, "max": 480}
    assert data["remaining_ttl_s"] == {"min": 120.0, "p50": 120.0, "p90": 120.0, "p99": 590.0, "max": 590.0}
    assert (data["sampled"], data["sample_complete"], data["memory_bytes"]) == (100, False, 1_000_000)
    assert data["recommendation"]["text"] == (
        "DB 2 footprint: 90 % of keys with a TTL have been idle for 5 min or more of their 10 min TTL "
        "(median idle 8 min): a TTL of 5 min would free ~878.9 KB"  # 90 % of 1000 keys x 1000 B
    )


def test_keys_without_ttl_are_counted_exactly_and_their_memory_extrapolated():
    # INFO keyspace counts the whole DB; 10 of its 400 keys without TTL were sampled, 2 MB each.
    rows = keys(10, -1, 1, size=2 * MB) + keys(10, 30_000, 1, size=10)
    data = report.db_report(QUOTES, {"keys": 1000, "expires": 600}, {"keys": rows, "complete": False}, server())
    assert (data["without_ttl"], data["without_ttl_pct"], data["with_ttl"]) == (400, 40.0, 600)
    assert data["without_ttl_memory_bytes"] == 800 * MB
    assert data["recommendation"]["text"] == (
        "DB 0 quotes: 400 of 1000 keys (40 %) have no TTL though the DB declares 60 s: they never expire "
        "(the app forgets EX) and hold ~800.0 MB; `redis-monitor cleanup --apply-ttl` gives them the TTL"
    )


def test_server_stats_are_server_wide_and_hit_ratio_only_where_counted():
    stats = server(evicted_keys=3)
    assert (stats["evicted_keys"], stats["expired_keys"], stats["hit_pct"]) == (3, 120, 90.0)
    assert stats["scope"].startswith("server-wide")
    assert report.server_stats({})["hit_pct"] is None
    assert report.server_stats({"maxmemory_policy": "volatile-lfu"})["idle_tracked"] is False
    assert report.server_stats({"maxmemory_policy": "noeviction"})["idle_tracked"] is True


def test_the_text_has_one_recommendation_line_per_db_and_the_scope_of_server_numbers():
    stats = server(evicted_keys=2)
    databases = [
        report.db_report(QUOTES, {"keys": 5, "expires": 0}, {"keys": keys(5, -1, 1), "complete": True}, stats),
        report.db_report(CONFIGURATION, {"keys": 3, "expires": 0}, {"keys": keys(3, -1, 1), "complete": True}, stats),
    ]
    lines = report.text({"server": stats, "databases": databases}).splitlines()
    assert [x.split(":")[0] for x in lines if re.match(r"DB \d", x)] == ["DB 0 quotes", "DB 5 configuration"]
    assert any(x.startswith("server-wide (all DBs)") and "2 evicted" in x and "90 % hits" in x for x in lines)


def test_ttl_report_arguments():
    args = monitor.parser().parse_args(["ttl-report", "--sample", "50", "--seconds", "0.5", "--json"])
    assert (args.sample, args.seconds, args.json) == (50, 0.5, True)
    defaults = monitor.parser().parse_args(["ttl-report"])
    assert (defaults.sample, defaults.seconds, defaults.json) == (1000, 2.0, False)
