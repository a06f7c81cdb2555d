"""Debian 12's Valkey: bookworm-backports, from the Debian mirror the host already uses, pinned so
that apt takes the Valkey packages (and only those) from there."""

from __future__ import annotations

import re

from pyinfra import host
from pyinfra.api import FactBase, OperationError

from .constants import PATHS, VALKEY_BACKPORTS
from .facts import HostState
from .host.server import Server
from .operations import managed_file

# What a Debian archive's address may be in the sources line the deploy writes: no spaces, no options.
MIRROR_RE = re.compile(r"^https?://[A-Za-z0-9.-]+(:[0-9]{1,5})?(/[A-Za-z0-9._~%/-]*)?$")


class AptSources(FactBase[list[str]]):
    """apt's source files as they are (one-line and deb822): where the host gets Debian from."""

    def command(self) -> str:
        # A blank line after each file: a deb822 stanza ends with its file.
        return (
            "for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources; "
            'do test -f "$f" && cat "$f" && echo; done; true'
        )

    def process(self, output) -> list[str]:
        return list(output)


def mirror_of(lines: list[str], codename: str) -> str | None:
    """The first archive whose sources list `codename` with the main component, or None."""
    entries: list[tuple[list[str], list[str], list[str]]] = []  # (addresses, suites, components)
    stanza: dict[str, list[str]] = {}
    for raw in [*lines, ""]:
        line = raw.split("#", 1)[0].strip()
        words = line.split()
        if words[:1] == ["deb"]:
            words = [w for w in words[1:] if not (w.startswith("[") or w.endswith("]") or "=" in w)]
            if len(words) >= 3:
                entries.append(([words[0]], [words[1]], words[2:]))
        elif line:
            key, _, value = line.partition(":")
            stanza[key.strip().lower()] = value.split()
        elif stanza:
            if stanza.get("enabled") != ["no"] and "deb" in stanza.get("types", []):
                entries.append((stanza.get("uris", []), stanza.get("suites", []), stanza.get("components", [])))
            stanza = {}
    found = [
        address.rstrip("/")
        for addresses, suites, components in entries
        if "main" in components and codename in suites
        for address in addresses
        if MIRROR_RE.match(address.rstrip("/"))
    ]
    # Debian's own archive before another repository that names the release (its path is /debian).
    return next((a for a in found if a.endswith("/debian")), found[0] if found else None)


def pin(server: Server, suite: str) -> str:
    """apt takes these packages from the backports suite; everything else stays with the release."""
    packages = " ".join((*server.packages, server.sentinel_service))
    return f"Package: {packages}\nPin: release o=Debian,n={suite}\nPin-Priority: 990\n"


def source(settings_server: Server, facts: HostState) -> tuple[str, ...]:
    """The backports suite and its pin where the host's release has Valkey only there; returns
    the files that make apt's lists stale (nothing on a release that ships Valkey itself)."""
    suite = VALKEY_BACKPORTS.get(facts.os)
    if suite is None:
        return ()
    if PATHS.backports_source not in facts.files:
        mirror = mirror_of(host.get_fact(AptSources), facts.os_codename)
        if mirror is None:
            raise OperationError(
                f'redis_server = "valkey" on {facts.os_id} {facts.os_version} needs {suite}: no Debian mirror '
                f"for {facts.os_codename} main was found in apt's sources to take it from"
            )
        managed_file(
            name=f"Add {suite} (Valkey's packages only)",
            dest=PATHS.backports_source,
            content=f"deb {mirror} {suite} main\n",
        )
    managed_file(name=f"Pin Valkey to {suite}", dest=PATHS.backports_pin, content=pin(settings_server, suite))
    return (PATHS.backports_source, PATHS.backports_pin)
