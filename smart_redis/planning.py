"""pyinfra's way of ordering operations, without its cost per operation.

pyinfra (CLI mode) orders each operation by the line numbers of the call stack from the deploy
file down (pyinfra.api.util.get_operation_order_from_stack). It reads them through
inspect.stack() and getframeinfo(), which look up every frame's source file and, for a file
that is not a module (deploy.py, run by exec), walk all of sys.modules: about 2 ms an
operation, a third of the planning of an 8-host no-op run (BENCHMARKS.md). The same numbers
are on the frames themselves (f_code.co_filename, f_lineno); `install()` makes pyinfra read
them there. tests/unit/test_planning.py checks that both give the same order.

Likewise, every operation call asks pyinfra.api.arguments.all_global_arguments() for the names
and types of the global arguments, which it derives anew each time with typing.get_type_hints()
(about 1 ms, 24 times per host in a no-op run); `install()` gives pyinfra the same list, derived
once.
"""

from __future__ import annotations

import functools
import sys
from types import FrameType
from typing import Any

import pyinfra
from pyinfra.api import arguments, util

_pyinfra_global_arguments = arguments.all_global_arguments


def operation_order(state: Any) -> list[int]:
    """pyinfra's get_operation_order_from_stack(state), from the frames' own file and line."""
    frames: list[FrameType] = []
    frame: FrameType | None = sys._getframe(1)
    while frame is not None:
        frames.append(frame)
        frame = frame.f_back
    frames.reverse()

    # the stack from the first frame of the deploy file being run: none if it is not on the
    # stack, the whole stack if no file is being run
    start = 0
    if state.current_deploy_filename:
        files = [frame.f_code.co_filename for frame in frames]
        start = files.index(state.current_deploy_filename) if state.current_deploy_filename in files else len(frames)

    line_numbers = [state.current_op_file_number] if pyinfra.is_cli else []
    line_numbers += [
        frame.f_lineno for frame in frames[start:] if not frame.f_code.co_filename.startswith(util.PYINFRA_INSTALL_DIR)
    ]
    return line_numbers


@functools.cache
def _global_arguments() -> tuple[tuple[str, type], ...]:
    return tuple(_pyinfra_global_arguments())


def global_arguments() -> list[tuple[str, type]]:
    """pyinfra's all_global_arguments(), derived once (the types it reads are pyinfra's classes)."""
    return list(_global_arguments())


def install() -> None:
    """Make pyinfra's operations use operation_order and global_arguments. Leaves pyinfra as it
    is where a function is not where this version of pyinfra (3.x) keeps it."""
    operation = sys.modules.get("pyinfra.api.operation")
    if operation is not None and getattr(operation, "get_operation_order_from_stack", None) is (
        util.get_operation_order_from_stack
    ):
        operation.get_operation_order_from_stack = operation_order  # type: ignore[attr-defined]
    if arguments.all_global_arguments is _pyinfra_global_arguments:
        arguments.all_global_arguments = global_arguments
