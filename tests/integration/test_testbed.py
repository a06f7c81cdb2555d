"""The harness's own shell in a container (testbed.exec_in/exec_bytes): every other module's
checks go through it, so it must answer as `docker exec` would, and never run a request cut short."""

from __future__ import annotations

import socket
import subprocess
import threading

import pytest
import testbed
from conftest import sh


@pytest.fixture(scope="module")
def box(new_container):
    return new_container("testbed")


@pytest.mark.parametrize(
    "argv, data, code, out, err",
    [
        (["sh", "-c", "echo out; echo err >&2; exit 3"], None, 3, b"out\n", b"err\n"),
        (["printf", "%s", "no newline"], None, 0, b"no newline", b""),
        (["sh", "-c", "printf '\\000\\377'"], None, 0, b"\x00\xff", b""),
        (["sh", "-c", "cat; echo"], b"a 'quoted' $(input)\n", 0, b"a 'quoted' $(input)\n\n", b""),
        (["sh", "-c", "wc -c"], b"x" * 1_000_000, 0, b"1000000\n", b""),
        (["sh", "-c", "cat"], None, 0, b"", b""),  # no input: an empty one, not the session's own
        (["false"], None, 1, b"", b""),
        (["/no/such/program"], None, 127, b"", None),
    ],
)
def test_a_command_answers_as_an_exec_would(box, argv, data, code, out, err):
    got = testbed.exec_bytes(box, argv, data)
    assert got[:2] == (code, out)
    assert err is None or got[2] == err


def test_a_request_cut_short_runs_nothing(box):
    """The test process killed while it sends: the shell ends and runs no part of the request."""
    session = testbed._Session(box)
    command = b"touch /tmp/cut-short\n"
    session.conn.sendall(f"{len(command)} 100\n".encode() + command + b"only ten b")
    session.conn.shutdown(socket.SHUT_WR)
    session.conn.settimeout(30)
    while session.conn.recv(65536):  # until the shell has ended
        pass
    session.close()
    assert sh(box, "test -e /tmp/cut-short", check=False).returncode == 1


def test_a_timeout_is_raised_and_the_next_command_gets_a_new_shell(box):
    with pytest.raises(subprocess.TimeoutExpired):
        testbed.exec_in(box, ["sleep", "30"], timeout=1)
    assert testbed.exec_in(box, ["echo", "next"]).stdout == "next\n"


def test_each_thread_has_its_own_shell(box):
    """Commands of two threads at once each get their own answer."""
    answers: dict[int, str] = {}

    def ask(i: int) -> None:
        answers[i] = testbed.exec_in(box, ["sh", "-c", f"sleep 0.{i}; echo {i}"]).stdout

    threads = [threading.Thread(target=ask, args=(i,)) for i in range(1, 5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {i: f"{i}\n" for i in range(1, 5)}
    for key in [key for key in testbed._sessions if key[0] == box and key[1] != threading.get_ident()]:
        testbed._sessions.pop(key).close()  # the threads have ended: their shells too


def test_where_no_shell_starts_a_command_is_an_exec_of_its_own(box):
    """A read-only /dev/shm (mounted over it): the session's shell has no folder, and the command
    still runs. (Mounted by an exec of its own: a session's command that hides the session's own
    folder ends that session.)"""
    assert (
        testbed.exec_bytes(box, ["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", "/dev/shm"], user="root")[0] == 0
    )
    try:
        for key in [key for key in testbed._sessions if key[0] == box]:
            testbed._sessions.pop(key).close()
        with pytest.raises(testbed.TestbedError, match="did not start"):
            testbed._Session(box)
        assert testbed.exec_in(box, ["echo", "still"]).stdout == "still\n"
    finally:  # an exec of its own (a user given), whatever the sessions do
        testbed.exec_bytes(box, ["umount", "/dev/shm"], user="root")
