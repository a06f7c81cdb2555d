"""The root-only files that hold passwords: the credentials file and what is derived from it.

Only this program, run by root, reads a password and writes it; none is ever in a process's
arguments or environment. Every file is written beside its target, private from its first
byte, and renamed into place, so a reader sees the old file or the new one, never a part.
"""

from __future__ import annotations

import grp
import os
import secrets
import string

from .credentials import GIVEN, PATH, read_credentials

GENERATED_LENGTH = 48
HEADER = "# Redis ACL credentials, written by the smart-redis deploy. Root only.\n"


def write_private(path: str, text: str, mode: int = 0o600, group: str = "root") -> None:
    """Replace `path` with `text`, owned by root:group with `mode`; never through a link."""
    new = path + ".new"
    try:
        os.unlink(new)
    except FileNotFoundError:
        pass
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    try:
        os.fchown(fd, 0, grp.getgrnam(group).gr_gid)
        os.fchmod(fd, mode)
        os.write(fd, text.encode())
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(new, path)


def generate_password(length: int = GENERATED_LENGTH) -> str:
    """Letters and digits only: safe unquoted in redis.conf, a URL and a shell's single quotes."""
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(length))


def _read(path: str) -> dict[str, str]:
    try:
        return read_credentials(path)
    except FileNotFoundError:
        return {}


def compose(users: dict[str, str], path: str = PATH, given: str = GIVEN, renew: list[str] | tuple = ()) -> None:
    """Write the credentials file for `users` (role -> user name): each password as handed in
    (the `given` upload), else as stored unless its role is in `renew`, else freshly generated;
    then remove the upload."""
    handed, stored = _read(given), _read(path)
    text = HEADER
    for role, name in users.items():
        key = f"REDIS_{role}_PASSWORD"
        password = handed.get(key) or (stored.get(key) if role not in renew else None) or generate_password()
        text += f"REDIS_{role}_USER='{name}'\n{key}='{password}'\n"
    write_private(path, text)
    try:
        os.unlink(given)
    except FileNotFoundError:
        pass


def login_lines(role: str, prefix: str, credentials: str = PATH) -> str:
    """One user's login from the credentials file as `<prefix>USER='...'` / `<prefix>PASSWORD='...'` lines."""
    values = read_credentials(credentials)
    return f"{prefix}USER='{values[f'REDIS_{role}_USER']}'\n{prefix}PASSWORD='{values[f'REDIS_{role}_PASSWORD']}'\n"


def masterauth(password: str, credentials: str = PATH) -> str:
    """The replica's login to its primary, as redis.conf includes it."""
    return f"# Written by the smart-redis deploy from {credentials}.\nmasterauth {password}\n"


def sentinel_auth(master_name: str, password: str) -> str:
    """The lines that let a sentinel log in to the servers and to the other sentinels."""
    return f"sentinel auth-pass {master_name} {password}\nsentinel sentinel-pass {password}\n"


def append_private(path: str, text: str) -> None:
    """Append to a file the deploy has just made private; never through a link."""
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)
