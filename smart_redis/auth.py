"""ACL users and their passwords: taken from the operator's environment or generated on the host.

Plaintext passwords live in one root-only file on the host (PATHS.credentials). The deploy
itself only ever handles their SHA-256 hashes (what redis.conf's `user ... #<hash>` needs),
except for passwords an operator hands in through the environment, which go to the host in
an upload (never on a command line) and are never printed.
"""

from __future__ import annotations

import fnmatch
import hashlib
import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from io import StringIO
from pathlib import Path

from pyinfra import host, logger

from . import run
from .constants import CREDENTIALS_MODE, PATHS, REPLICATION_ACL, SENTINEL_ACL, SHARED_ROLES
from .host.secret_files import generate_password
from .operations import host_state, operation, state_telling, upload
from .settings import Settings, SettingsError, operator_path
from .tools import step
from .topology import Topology

# role -> environment variable an operator may set instead of letting the host generate one
PASSWORD_ENV = {"APP": "SMART_REDIS_APP_PASSWORD", "ADMIN": "SMART_REDIS_ADMIN_PASSWORD"}
MIN_PASSWORD_LENGTH = 32


@dataclass(frozen=True)
class User:
    role: str  # APP or ADMIN: the key of its lines in the credentials file
    name: str
    rules: str


# Where the sentinels of a group talk to each other through every Redis server: a hello published
# there with a higher epoch makes them follow the address it names.
SENTINEL_HELLO = "__sentinel__:hello"
# The channels an app may use in a Sentinel group when its rules say "every channel".
KEYSPACE_CHANNELS = ("&__keyspace@*", "&__keyevent@*")


def _covers(pattern: str, channel: str) -> bool:
    """Whether a Redis glob pattern matches channel (Redis negates a class with ^ or !)."""
    return fnmatch.fnmatchcase(channel, re.sub(r"\[\^", "[!", pattern))


def app_rules(settings: Settings, topology: Topology | None = None) -> str:
    """The app user's rules on the servers. In a Sentinel group its channels are an allow-list: "&*"
    and allchannels become the keyspace-event channels (and the other &patterns given), as a publish
    on Sentinel's hello channel would hand the group to any address the app names.

    >>> app_rules(settings_with("~* &* +@all"), group_topology)
    '~* +@all &__keyspace@* &__keyevent@*'
    """
    if topology is None or not topology.ha:
        return settings.app_acl
    rules = []
    for rule in settings.app_acl.split():
        if rule in ("&*", "allchannels"):
            continue
        if rule.startswith("&") and _covers(rule[1:], SENTINEL_HELLO):
            raise SettingsError(
                f"redis_app_acl: allowed in a Sentinel group are channel patterns that leave out Sentinel's "
                f"{SENTINEL_HELLO} (the rule {rule} covers it)"
            )
        rules.append(rule)
    return " ".join([*rules, *(c for c in KEYSPACE_CHANNELS if c not in rules)])


def users(settings: Settings, topology: Topology | None = None) -> list[User]:
    if settings.auth == "none":
        return []
    result = [
        User("APP", settings.app_user, app_rules(settings, topology)),
        User("ADMIN", settings.admin_user, settings.admin_acl),
    ]
    if settings.exporter_enabled:
        result.append(User("EXPORTER", settings.exporter_user, settings.exporter_acl))
    if topology is not None and topology.ha:
        result.append(User("REPLICATION", settings.replication_user, REPLICATION_ACL))
        result.append(User("SENTINEL", settings.sentinel_user, SENTINEL_ACL))
    return result


def passwords(settings: Settings, topology: Topology, environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The passwords this run hands to the host, by role: the operator's, and a group's shared ones."""
    given = operator_passwords(environ)
    return {**shared_passwords(settings, topology, given=given), **given}


def shared_passwords(
    settings: Settings, topology: Topology, root: Path | None = None, given: Mapping[str, str] | None = None
) -> dict[str, str]:
    """The passwords every host of a replication topology shares, by role, from a local 0600 file.

    Any replica may become the primary, so the apps, the operators, the replicas and Sentinel
    must be able to log in everywhere with the same password. The first run writes them into
    settings.ha_secrets_file (a relative path is the operator's: beside the deploy file with
    "./", else in pyinfra's directory; see settings.operator_path), or under root if given: the
    ones given in the environment, the others generated. Keep that file safe; it is the group's
    one source.
    """
    if not topology.ha:
        return {}
    given = given or {}
    path = root / settings.ha_secrets_file if root else operator_path(settings.ha_secrets_file)
    for role, value in given.items():
        if not _acceptable(value):  # never echo the value
            raise SettingsError(
                f"{PASSWORD_ENV[role]}: allowed in a Sentinel group is a password without double quotes"
            )
    if not path.exists():
        return _first_shared(path, given)
    if path.stat().st_mode & 0o077:
        raise SettingsError(
            f"redis_ha_secrets_file = {str(path)!r}: allowed is a file only its owner can read (chmod 600)"
        )
    values = dict(line.split("=", 1) for line in path.read_text().split() if "=" in line)
    missing = [role for role in SHARED_ROLES if not values.get(f"REDIS_{role}_PASSWORD")]
    if missing:
        raise SettingsError(
            f"redis_ha_secrets_file = {str(path)!r}: allowed is a file with a password for {', '.join(missing)}"
        )
    weak = [role for role in SHARED_ROLES if not _acceptable(values[f"REDIS_{role}_PASSWORD"])]
    if weak:  # never echo the value
        raise SettingsError(
            f"redis_ha_secrets_file = {str(path)!r}: allowed are passwords of at least {MIN_PASSWORD_LENGTH} characters "
            f"without spaces, quotes or backslashes (not so: {', '.join(weak)})"
        )
    for role, value in given.items():
        if values.get(f"REDIS_{role}_PASSWORD") != value:
            # A host must never get another password than its group: apps would fail after a failover.
            raise SettingsError(
                f"{PASSWORD_ENV[role]}: allowed is the group's password in {path} (the value given differs; "
                "in a Sentinel group that file is the one place to keep it: change it there to rotate it)"
            )
    return {role: values[f"REDIS_{role}_PASSWORD"] for role in SHARED_ROLES}


def _first_shared(path: Path, given: Mapping[str, str]) -> dict[str, str]:
    """A new group's passwords, the same for every host of the run; the file is written by the
    run's first executing operation (run.start), so --dry and a declined prompt leave no file."""
    record = run.current() if run.in_a_run() else None
    passwords = (record.first_shared if record else None) or new_shared_passwords(given)
    if record is not None:
        record.first_shared = passwords
    run.write_locally(str(path), lambda: _create_shared(path, passwords))
    return dict(passwords)


def _create_shared(path: Path, passwords: Mapping[str, str]) -> None:
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    text = "".join(f"REDIS_{role}_PASSWORD={passwords[role]}\n" for role in SHARED_ROLES)
    try:  # O_EXCL: of two runs at once, one writes, and the other must not go on with its own
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        if path.read_text() != text:
            raise SettingsError(
                f"redis_ha_secrets_file = {str(path)!r}: another run wrote it meanwhile; run again to use it"
            ) from None
        return
    with os.fdopen(fd, "w") as f:
        f.write(text)


def new_shared_passwords(given: Mapping[str, str]) -> dict[str, str]:
    """A new password for each shared role, the given ones kept (redis_rotate_passwords)."""
    return {role: given.get(role) or generate_password() for role in SHARED_ROLES}


def write_shared(path: Path, passwords: Mapping[str, str]) -> None:
    """Replace the group's shared-secrets file atomically, 0600 from the first byte. The hosts
    keep the replaced passwords until the rotation ends (rotation.py)."""
    text = "".join(f"REDIS_{role}_PASSWORD={passwords[role]}\n" for role in SHARED_ROLES)
    new = path.with_name(path.name + ".new")
    new.unlink(missing_ok=True)
    fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(new, path)


def operator_passwords(environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """Passwords given in the environment, by role; a weak one is refused without echoing it."""
    given = {}
    for role, variable in PASSWORD_ENV.items():
        value = environ.get(variable)
        if value is None or value == "":
            continue
        if len(value) < MIN_PASSWORD_LENGTH or any(c.isspace() or c in "'\\" for c in value):
            # Never echo the value: describe it.
            raise SettingsError(
                f"{variable}: allowed is at least {MIN_PASSWORD_LENGTH} characters without spaces, quotes "
                f"or backslashes (the value given has {len(value)} characters"
                f"{', with a space, quote or backslash' if any(c.isspace() or c in chr(39) + chr(92) for c in value) else ''})"
            )
        given[role] = value
    return given


def _acceptable(password: str) -> bool:
    return len(password) >= MIN_PASSWORD_LENGTH and not any(c.isspace() or c in "'\"\\" for c in password)


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def password_hashes(settings: Settings, given: Mapping[str, str], topology: Topology | None = None) -> dict[str, str]:
    """The hash of each user's password: of the given one, else of the one stored on the host."""
    stored = host_state().secret_hashes
    return {
        u.role: sha256(given[u.role]) if u.role in given else stored.get(u.role, "") for u in users(settings, topology)
    }


@operation(writes=(PATHS.credentials,))
def credentials(
    settings: Settings, given: Mapping[str, str], topology: Topology | None = None, renew: Sequence[str] = ()
):
    """
    Keep one password per ACL user in the root-only credentials file, generating missing ones.

    + settings: the users come from here
    + given: passwords from the operator's environment (or the shared file), by role; they replace stored ones
    + topology: a host of a replication topology also keeps the replication and Sentinel users
    + renew: roles whose stored password the host replaces with a new one (redis_rotate_passwords)

    **Example:**

    .. code:: python

        credentials(settings=settings, given=operator_passwords())
    """
    facts = state_telling(PATHS.credentials)  # the file and the users and hashes in it
    wanted = users(settings, topology)
    if not wanted:
        host.noop("redis_auth = none: no ACL users")
        return
    stored = facts.secret_hashes
    current = facts.files.get(PATHS.credentials)
    up_to_date = (
        current is not None
        and (current.user, current.group, current.mode) == ("root", "root", CREDENTIALS_MODE)
        and all(facts.secret_users.get(u.role) == u.name and u.role in stored for u in wanted)
        and all(sha256(given[role]) == stored.get(role) for role in given)
        and not renew
    )
    if up_to_date:
        host.noop("credentials are in place")
        return

    directory = PATHS.credentials.rsplit("/", 1)[0]
    folder = f"install -d -m 700 -o root -g root {directory}"
    compose = step("credentials", *(f"{u.role}={u.name}" for u in wanted), *(["--renew", *renew] if renew else []))
    if not given:
        yield f"{folder} && {compose}"
        return
    text = "".join(f"REDIS_{role}_PASSWORD='{value}'\n" for role, value in given.items())
    # in the root-only folder, and composed by the same command: one round trip
    yield from upload(StringIO(text), PATHS.credentials_given, private=True, first=folder, then=compose)


def warn_if_open(settings: Settings) -> None:
    if settings.auth == "none":
        host.log(
            'redis_auth = "none": every local process can read, change and flush Redis; '
            'set redis_auth = "acl" unless this is what you want',
            logger.warning,
        )


def cli(port: int, auth: str, role: str = "ADMIN", tls: str | None = None, program: str | None = None) -> str:
    """Shell prefix for the host's server CLI (redis-cli, valkey-cli) as one of the ACL users, the
    password passed in the environment.
    tls: redis-cli's TLS options (TlsFiles.cli_options) for a server without a plain port.
    program: the CLI (default: that of the server the current host runs).

    >>> cli(6379, "acl")
    '. /etc/smart-redis/credentials && REDISCLI_AUTH="$REDIS_ADMIN_PASSWORD" redis-cli ...'
    """
    where = f"{tls} -p {port}" if tls else f"-p {port}"
    program = program or run.server().cli
    if auth == "none":
        return f"{program} {where}"
    return (
        f'. {PATHS.credentials} && REDISCLI_AUTH="$REDIS_{role}_PASSWORD" '
        f'{program} --no-auth-warning --user "$REDIS_{role}_USER" {where}'
    )
