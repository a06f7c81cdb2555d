"""The config step's decision, apart from its commands: one row per situation a host can be in."""

from __future__ import annotations

import pytest

from smart_redis.reconfigure import Decision, Situation, decide

SAME = dict(file_differs=False, mode_right=True, drift=False, runtime_changes=False)
NEW_FILE = dict(file_differs=True, mode_right=True, drift=False, runtime_changes=True)
NO_ANSWER = "the server does not answer the deploy's admin user"

CASES = [
    # (what the host says, what the step does)
    ("converged", Situation(**SAME), Decision("noop")),
    (
        "owner or mode changed by hand",
        Situation(**{**SAME, "mode_right": False}),
        Decision("fix-mode", upload=True, install=True),
    ),
    ("a runtime setting changed in the file", Situation(**NEW_FILE), Decision("runtime", upload=True, install=True)),
    (
        "drift on the server, the file as rendered",
        Situation(**{**SAME, "drift": True, "runtime_changes": True}),
        Decision("runtime", log_drift=True),
    ),
    (
        "a startup-only setting",
        Situation(**NEW_FILE, restart_settings=("databases",)),
        Decision("restart", ("databases",), upload=True),
    ),
    (
        "a replica restarts: the group in sync before, itself after",
        Situation(**NEW_FILE, restart_settings=("databases",), has_primary=True, follows=True),
        Decision("restart", ("databases",), upload=True, group_check=True, wait_sync=True),
    ),
    (
        "the group's primary waits for the handover",
        Situation(**NEW_FILE, restart_settings=("databases",), handover=True, has_primary=True),
        Decision("defer", ("databases",), upload=True, group_check=True),
    ),
    (
        "the pass after the handover restarts the old primary as a replica",
        Situation(**NEW_FILE, restart_settings=("databases",), handover=True, after_handover=True, follows=True),
        Decision("restart", ("databases",), upload=True, wait_sync=True),
    ),
    (
        "a server that does not answer but runs is restarted, never handed over",
        Situation(**SAME, answers=False, handover=True),
        Decision("restart", (NO_ANSWER,), upload=True),
    ),
    (
        "a stopped server is started on the new file, nothing to save",
        Situation(**NEW_FILE, answers=False, active=False),
        Decision("start", (NO_ANSWER,), upload=True),
    ),
    (
        "a host joining the group",
        Situation(**NEW_FILE, joining=True, follows=True),
        Decision("restart", ("the host joins the replication topology",), upload=True, wait_sync=True),
    ),
    (
        "the package replaced the binary, the file unchanged",
        Situation(**SAME, binary_replaced=True),
        Decision("restart", ("the package replaced the binary it runs (an upgrade or a reinstall)",), upload=True),
    ),
    (
        "redis_auth switched on",
        Situation(**NEW_FILE, auth_change=("none", "acl")),
        Decision("restart", ("redis_auth (none -> acl)",), upload=True),
    ),
]


@pytest.mark.parametrize("situation, expected", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_the_config_step_decides(situation, expected):
    assert decide(situation) == expected
