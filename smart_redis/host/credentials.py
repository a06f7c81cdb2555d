"""The root-only credentials file the deploy writes: KEY='value' lines, as a shell would source them."""

from __future__ import annotations

import shlex

PATH = "/etc/smart-redis/credentials"
# Passwords the operator hands in, uploaded 0600 beside the file and removed once composed.
GIVEN = PATH + ".given"
# The admin login the running server accepts while its password is being changed, so that the
# SAVE before the restart can still log in; removed after the restart.
RUNNING = PATH + ".running"


def read_credentials(path: str = PATH) -> dict[str, str]:
    values = {}
    with open(path) as f:
        for line in f:
            if "=" in line and not line.startswith("#"):
                key, _, value = line.strip().partition("=")
                values[key] = shlex.split(value)[0] if value else ""
    return values
