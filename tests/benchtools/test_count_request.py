"""bench/count_request.py: its callgrind reader and its request (no valgrind, no strace here)."""

from __future__ import annotations

import socket
from types import ModuleType

import pytest
from support.scripts import load_script

from uwsgiproto import Decoder, Request

# Names are given once, then referred to by id alone; 'N marks a recursion level.
PROFILE = """\
version: 1
events: Ir
fn=(1) main
0 10
cfn=(2) _PyObject_Malloc
calls=3 0
0 30
cfn=(3) other
calls=1 0
0 5
fn=(4) helper
0 7
cfn=(2)
calls=4 0
0 40
cfn=(5) _PyObject_Malloc'2
calls=2 0
0 9
totals: 101
"""


@pytest.fixture(scope="module")
def tool() -> ModuleType:
    return load_script("bench/count_request.py")


def test_calls_are_summed_per_function_across_callers_and_recursion(tool: ModuleType) -> None:
    total, calls = tool.parse_callgrind(PROFILE)
    assert total == 101
    assert calls["_PyObject_Malloc"] == 9
    assert calls["other"] == 1


def test_the_request_is_the_nginx_capture_for_the_root_path(tool: ModuleType) -> None:
    decoder = Decoder()
    decoder.receive_data(tool.packet())
    event = decoder.next_event()
    assert isinstance(event, Request)
    assert event.vars["PATH_INFO"] == "/"
    assert len(event.vars) == 19


def test_the_inner_run_serves_every_request(
    tool: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What each client got, read just before the script closes it.
    answers: list[bytes] = []
    real_close = socket.socket.close

    def close(self: socket.socket) -> None:
        if self.fileno() >= 0:
            self.setblocking(False)
            try:
                answers.append(self.recv(4096))
            except OSError:  # nothing sent (the null run) or a reset
                answers.append(b"")
        real_close(self)

    monkeypatch.setattr(socket.socket, "close", close)
    tool.inner("hello", "real", tool.BATCH)
    assert len(answers) == tool.WARM_UP + tool.BATCH
    assert all(a.startswith(b"HTTP/1.1 200 OK") for a in answers)
    answers.clear()
    tool.inner("hello", "null", tool.BATCH)
    assert sum(a.startswith(b"HTTP/1.1 200") for a in answers) == tool.WARM_UP
    answers.clear()
    tool.inner("hello", "real", tool.BATCH, stats=True)  # as a worker of 'serve --stats'
    assert len(answers) == tool.WARM_UP + tool.BATCH
    assert all(a.startswith(b"HTTP/1.1 200 OK") for a in answers)
