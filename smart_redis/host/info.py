"""Redis's INFO text as data (the same text whether a RESP reply or redis-cli's output)."""

from __future__ import annotations


def parse_info(text: str) -> dict[str, str]:
    """field -> value of every `field:value` line; section headers and blank lines skipped."""
    result = {}
    for line in text.splitlines():
        if ":" in line and not line.startswith("#"):
            key, _, value = line.partition(":")
            result[key] = value
    return result


def parse_keyspace(text: str) -> dict:
    """db number -> {"keys": n, "expires": m}, from the text of INFO keyspace (redis-cli's too)."""
    counts = {}
    for line in text.splitlines():
        name, _, fields = line.strip().partition(":")
        if name.startswith("db") and name[2:].isdigit():
            values = dict(field.split("=", 1) for field in fields.split(",") if "=" in field)
            counts[name[2:]] = {"keys": int(values.get("keys", 0)), "expires": int(values.get("expires", 0))}
    return counts
