"""testinfra's docker:// backend over testbed.exec_bytes, for the test harness.

The integration tests run the operator's host checks (tests/infra) about a dozen times, each with
about ninety commands; testinfra's own docker backend starts a shell and a docker CLI for each.
This one sends them to a shell session in the container (testbed._Session) without them. Loaded
only by the harness (`pytest -p engine_backend`, tests/ on the path): an operator's `pytest tests/infra
--hosts=docker://...` runs testinfra as it is.
"""

from __future__ import annotations

from typing import Any

import testbed
import testinfra.backend
from testinfra.backend import base
from testinfra.backend.docker import DockerBackend


class EngineApiBackend(DockerBackend):
    def run(self, command: str, *args: str, **kwargs: Any) -> base.CommandResult:
        cmd = self.get_command(command, *args)
        # testinfra waits for ever; a wedged command here meets the whole check run's timeout first
        code, out, err = testbed.exec_bytes(self.name, ["/bin/sh", "-c", cmd], timeout=600, user=self.user)
        return self.result(code, self.encode(cmd), out, err)


def pytest_configure(config) -> None:
    testinfra.backend.BACKENDS["docker"] = f"{__name__}.{EngineApiBackend.__name__}"
