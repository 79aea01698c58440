"""Parked connections never use up a worker's open-files limit: a real ``uwsgiapp serve
--threads 2`` under a low ``RLIMIT_NOFILE``, flooded with connections that send nothing.

Each request thread parked up to ``MAX_PARKED`` (512) connections: under the usual soft limit of
1024, four threads ran out of descriptors first, ``accept`` failed with EMFILE, and the worker
recycled itself as if the app leaked them (an ERROR line each time, a fresh worker flooded in
turn, a request behind them answered seconds late). The cap now leaves descriptors free.
"""

from __future__ import annotations

import contextlib
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path

from support.procs import LogCursor, Server, uwsgi_exchange, wait_for_workers, worker_pids

import uwsgiproto
from uwsgiapp.exitcodes import ServeExit
from uwsgiapp.server.decisions import parking_cap, too_few_descriptors
from uwsgiapp.server.worker import MAX_PARKED

FD_LIMIT = 256
THREADS = 2
#: Idle connections: more than the descriptors the worker has.
IDLE = 2 * FD_LIMIT
SOCKET_TIMEOUT = 3.0
PACKET = uwsgiproto.build_request(
    {"REQUEST_METHOD": "GET", "PATH_INFO": "/echo", "SERVER_PROTOCOL": "HTTP/1.1"}
)


@contextlib.contextmanager
def soft_fd_limit(soft: int) -> Iterator[None]:
    """The open-files limit a process started in the block inherits (ours is put back)."""
    before = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (soft, before[1]))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, before)


def test_parking_caps_leave_descriptors_free_under_a_low_open_files_limit(
    tmp_path: Path,
) -> None:
    assert parking_cap(MAX_PARKED, 1024, 4) * 4 < 1024 - 128
    assert parking_cap(MAX_PARKED, 1024, 1) == MAX_PARKED  # the usual case is as before
    # Under 256, the 128 kept free left one: each connection nginx had just opened displaced
    # the one before it, not yet written to (a reset, nginx's 502; 297 of 37.8k at ulimit 128).
    assert (parking_cap(MAX_PARKED, 128, 1), parking_cap(MAX_PARKED, 64, 1)) == (64, 32)
    server = Server(
        tmp_path, "nginx_app:app", workers=1, threads=THREADS, socket_timeout=SOCKET_TIMEOUT
    )
    with soft_fd_limit(FD_LIMIT):
        server.start()
    idle: list[socket.socket] = []
    try:
        workers = wait_for_workers(server, 1)
        cursor = LogCursor(server.log_path)
        for _ in range(IDLE):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(server.socket)
            idle.append(sock)
        time.sleep(0.5)
        started = time.monotonic()
        result = uwsgi_exchange(server.socket, PACKET, timeout=SOCKET_TIMEOUT + 5)
        answered = time.monotonic() - started
        assert result.data.startswith(b"HTTP/1.1 200 OK"), (result.end, result.data[:200])
        assert answered < 1.0, f"answered after {answered:.2f} s"
        time.sleep(0.3)
        lines = cursor.new_lines()
        assert worker_pids(server.pid) == workers, lines[-5:]
    finally:
        for sock in idle:
            sock.close()
        server.stop()
    assert not [line for line in lines if "Too many open files" in line], lines[-5:]
    (full, *_) = [line for line in lines if "parking is full" in line]
    assert f"the open-files limit ({FD_LIMIT}, ulimit -n) sets that cap" in full, full


FD_HOG = """
import os

held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    for fd in held[-3:]:  # the master's own pipes take two: one is left to a worker
        os.close(fd)
    del held[-3:]


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"x"]
"""


def test_a_worker_left_too_few_descriptors_by_the_import_stops_the_start(tmp_path: Path) -> None:
    # It died at its epoll (a bare EMFILE traceback) and was forked again every second for
    # good ("5 serving workers died in the last second"), though none could ever serve.
    assert too_few_descriptors(1024, 30) is None
    assert too_few_descriptors(-1, 10**6) is None
    assert too_few_descriptors(64, 61) is None  # three free: a worker of one loop serves
    said = too_few_descriptors(64, 61, loops=2)
    assert said is not None and said.startswith("3 of its 64 descriptors are free (ulimit -n)")
    assert too_few_descriptors(64, 10, loops=13) is None  # 4 a thread, 2 for the main's pipe
    assert "and it needs 74:" in str(too_few_descriptors(64, 10, loops=18))
    assert "the app's import opened, in the master, which every worker inherits)" in said
    assert "opened, in this worker)" in str(too_few_descriptors(64, 62, lazy=True))
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "fdhog.py").write_text(FD_HOG)
    server = Server(tmp_path, "fdhog:app", workers=2, pythonpath=[str(apps)])
    with soft_fd_limit(64):
        server.start(wait=False)
    try:
        # 3, cannot start (a limit, not the app's code: 4 blamed the code, a deploy gate's
        # rollback for a host's ulimit)
        assert server.wait(20) == ServeExit.START_FAILED == 3, server.log()
    finally:
        server.stop()  # a start that went on (it did, in a fork loop) is not left running
    log = server.log()
    assert "cannot serve: " in log and "descriptors are free (ulimit -n)" in log, log
    assert "could not start serving at the first start: stopping" in log, log
    assert "could not load the app" not in log, log
    assert "Traceback" not in log, log
