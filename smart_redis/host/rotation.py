"""Password rotation without a failed command: accept both, switch every user, then retire the old.

An ACL user holds several passwords. While a rotation runs, the credentials file holds the new
passwords and PREVIOUS the ones they replace. The deploy runs these steps in order, each on
every host before the next one starts anywhere:

1. accept: every server and sentinel accepts the new password beside the previous one;
2. switch: masterauth (CONFIG SET), Sentinel's auth-pass and sentinel-pass, REDIS_URL and the
   PM2 reload move to the new password (those are other modules' steps, except `switch_sentinel`);
3. retire: every password but the credentials file's is removed, and PREVIOUS with it.

Each step is idempotent, so a run that stopped anywhere in between is finished by the next one.
Passwords are read from the root-only files here and reach Redis only inside the connection.
"""

from __future__ import annotations

import hashlib
import os

from .credentials import PATH as CREDENTIALS
from .credentials import PREVIOUS, read_credentials
from .resp import Redis
from .secret_files import write_private
from .server import configured_port, login

# The users a sentinel has (sentinel.conf): the apps ask it, the operators and the other sentinels.
SENTINEL_ROLES = ("APP", "ADMIN", "SENTINEL")


def sha256(password: str) -> str:
    return hashlib.sha256(password.encode()).hexdigest()


def _read(path: str) -> dict[str, str]:
    try:
        return read_credentials(path)
    except FileNotFoundError:
        return {}


def users(values: dict[str, str]) -> dict[str, str]:
    """role -> user name, from a credentials file's values."""
    return {key[6:-5]: name for key, name in values.items() if key.startswith("REDIS_") and key.endswith("_USER")}


def pending(current: dict[str, str], previous: dict[str, str]) -> dict[str, tuple[str, list[str]]]:
    """role -> (user, the hashes it must accept) for each role whose password the rotation replaces.

    >>> pending({"REDIS_APP_USER": "app", "REDIS_APP_PASSWORD": "new"}, {"REDIS_APP_PASSWORD": "old"})
    {'APP': ('app', ['<sha256 of new>', '<sha256 of old>'])}
    """
    found = {}
    for role, user in users(current).items():
        new, old = current.get(f"REDIS_{role}_PASSWORD"), previous.get(f"REDIS_{role}_PASSWORD")
        if new and old and new != old:
            found[role] = (user, [sha256(new), sha256(old)])
    return found


def _passwords(client: Redis, user: str) -> list[str] | None:
    """The hashes a user accepts, None when there is no such user."""
    reply = client.call("ACL", "GETUSER", user)
    if not isinstance(reply, list):
        return None
    fields = dict(zip(reply[0::2], reply[1::2], strict=False))
    return list(fields.get("passwords") or [])


def keep_previous() -> None:
    """Before the credentials file takes new passwords: keep it as it is. An earlier rotation's
    PREVIOUS that is still there is kept instead: those may still be in use."""
    if not os.path.exists(PREVIOUS):
        with open(CREDENTIALS) as f:
            write_private(PREVIOUS, f.read())


def accept(port: int | None = None, sentinel_port: int | None = None) -> list[str]:
    """Let the local server (port: redis.conf's) and sentinel accept the new and the previous
    password of every user the rotation changes; return what it did, one line each."""
    port = port or configured_port()
    todo = pending(read_credentials(), _read(PREVIOUS))
    said = []
    for kind, where, roles in (("redis-server", port, None), ("Sentinel", sentinel_port, SENTINEL_ROLES)):
        if where is None or not todo:
            continue
        client, names = login(where, "acl"), []
        for role, (user, hashes) in todo.items():
            if (roles is None or role in roles) and _passwords(client, user) is not None:
                client.call("ACL", "SETUSER", user, *(f"#{h}" for h in hashes))
                names.append(user)
        if kind == "Sentinel":
            client.call("SENTINEL", "FLUSHCONFIG")  # ACL changes alone do not make Sentinel write its file
        said.append(f"{kind} accepts the new and the previous password of: {', '.join(names) or 'nobody'}")
    return said


def switch_sentinel(port: int, master_name: str) -> None:
    """Sentinel logs in to the servers (auth-pass) and to the other sentinels (sentinel-pass) with
    the new password; both are persisted in sentinel.conf by Sentinel itself."""
    password = read_credentials()["REDIS_SENTINEL_PASSWORD"]
    client = login(port, "acl")
    client.call("SENTINEL", "SET", master_name, "auth-pass", password)
    client.call("SENTINEL", "CONFIG", "SET", "sentinel-pass", password)


def retire(port: int | None = None, sentinel_port: int | None = None) -> list[str]:
    """Remove every password but the credentials file's from each user of the local server (port:
    redis.conf's) and sentinel, then PREVIOUS: the rotation is over on this host."""
    port = port or configured_port()
    current = read_credentials()
    said = []
    for kind, where, roles in (("redis-server", port, None), ("Sentinel", sentinel_port, SENTINEL_ROLES)):
        if where is None:
            continue
        client, names = login(where, "acl"), []
        for role, user in users(current).items():
            keep = sha256(current.get(f"REDIS_{role}_PASSWORD", ""))
            accepted = _passwords(client, user) if roles is None or role in roles else None
            old = [h for h in accepted or [] if h != keep]
            if old:
                # The new one first, should it be missing: a user must never be left without a password.
                client.call("ACL", "SETUSER", user, f"#{keep}", *(f"!{h}" for h in old))
                names.append(user)
        if kind == "Sentinel":
            client.call("SENTINEL", "FLUSHCONFIG")
        said.append(f"{kind} accepts only the new password of: {', '.join(names) or 'nobody (done before)'}")
    try:
        os.unlink(PREVIOUS)
    except FileNotFoundError:
        pass
    return said
