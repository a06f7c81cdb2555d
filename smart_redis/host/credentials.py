"""The root-only credentials file the deploy writes: KEY='value' lines, as a shell would source them."""

from __future__ import annotations

import shlex

PATH = "/etc/smart-redis/credentials"
# Passwords the operator hands in, uploaded 0600 beside the file and removed once composed.
GIVEN = PATH + ".given"
# The file as it was before a rotation replaced a password in it: the servers, sentinels and apps
# still accept or use those until the rotation's last step (host/rotation.py) removes them and it.
PREVIOUS = PATH + ".previous"


def read_credentials(path: str = PATH) -> dict[str, str]:
    values = {}
    with open(path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                key, _, value = line.strip().partition("=")
                values[key] = shlex.split(value)[0] if value else ""
    return values
