"""What a process the app forks from a worker inherits: not the worker's signal handlers, not
its listening sockets, nor its client connections. A real server behind a real nginx; the app
forks with multiprocessing (os.fork for the connections, on a raw uwsgi socket)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from pathlib import Path

import pytest
from support.procs import Server, free_port, stack, uwsgi_exchange, uwsgi_get, wait_until

pytestmark = pytest.mark.nginx

APP = """
import multiprocessing
import os
import socket
import time
import time


def listening_fds():
    found = 0
    for name in os.listdir("/proc/self/fd"):
        try:
            s = socket.socket(fileno=int(name))
        except OSError:
            continue
        try:
            found += s.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        except OSError:
            pass
        finally:
            s.detach()
    return found


def job(queue):
    queue.put(listening_fds())
    time.sleep(30)


def app(environ, start_response):
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    child = context.Process(target=job, args=(queue,))
    child.start()
    held = queue.get(timeout=10)
    child.terminate()
    child.join(10)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{child.exitcode} {held} {listening_fds()}".encode()]
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_a_process_the_app_forks_can_be_terminated_and_holds_no_listener(
    tmp_path: Path, nginx_available: None, threads: int
) -> None:
    # terminate() did nothing (the worker's TERM handler only set a flag), and the orphan
    # kept the TCP port: the next start could not bind it.
    (tmp_path / "forking.py").write_text(APP)
    options = {"socket": f"127.0.0.1:{free_port()}", "threads": threads}
    with stack(tmp_path, "forking:app", pythonpath=[str(tmp_path)], **options) as (_, nginx):
        status, _, body = nginx.request("GET", "/")
    assert status == 200
    exitcode, child_listeners, worker_listeners = body.decode().split()
    assert exitcode == "-15"  # ended by the SIGTERM terminate() sends
    assert (child_listeners, worker_listeners) == ("0", "1")


CRASHING = """
import ctypes
import multiprocessing


def _crash_in_child():
    ctypes.string_at(0)


def app(environ, start_response):
    child = multiprocessing.get_context("fork").Process(target=_crash_in_child)
    child.start()
    child.join(10)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{child.pid} {child.exitcode}".encode()]
"""


def test_a_crash_in_a_process_the_app_forks_is_dumped_to_the_log_at_once(
    tmp_path: Path, nginx_available: None
) -> None:
    # The worker's own dump file (which the master logs when the worker exits) is not the
    # child's: its dump waited for the worker's end, under the worker's pid.
    (tmp_path / "crashing.py").write_text(CRASHING)
    with stack(tmp_path, "crashing:app", pythonpath=[str(tmp_path)]) as (server, nginx):
        status, _, body = nginx.request("GET", "/")
        assert status == 200
        _, exitcode = body.decode().split()
        assert exitcode == "-11"
        wait_until(lambda: "in _crash_in_child" in server.log(), 10, "the child's dump")
    # The worker has exited since (the stack stopped): nothing was in its own dump file.
    log = server.log()
    assert log.count("in _crash_in_child") == 1
    assert "when it got its signal" not in log


FORKING_APP = """
import fcntl, os, socket, time

socket.setdefaulttimeout(10)  # an app's: wrapping a descriptor made it non-blocking
DB, _PEER = socket.socketpair()  # an app's blocking connection (a database client's)
DB.setblocking(True)

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])  # no Content-Length
    if environ["PATH_INFO"] == "/flags":
        return iter([str(fcntl.fcntl(DB.fileno(), fcntl.F_GETFL) & os.O_NONBLOCK).encode()])
    pid = os.fork()  # a background job, as multiprocessing's fork method starts one
    if pid == 0:
        time.sleep(30)
        os._exit(0)
    with open(os.environ["CHILDREN"], "a") as f:
        f.write(f"{pid}\\n")
    return iter([b"started ", str(pid).encode()])
"""


def _tcp_exchange(port: int, path: str) -> tuple[bytes, bool]:
    """A raw uwsgi GET over TCP, read until the server closes (False: still open at 10 s)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(uwsgi_get(path))
        chunks = []
        try:
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        except TimeoutError:
            return b"".join(chunks), False
    return b"".join(chunks), True


@pytest.mark.parametrize(
    ("threads", "where"), [(1, "unix"), (2, "unix"), (1, "0.0.0.0"), (2, "0.0.0.0")]
)
def test_a_child_the_app_forks_does_not_hold_the_answer_open(
    tmp_path: Path, threads: int, where: str
) -> None:
    """Its copy of the connection kept a response without Content-Length open until the child
    ended (nginx waited for the close: an 8 s job made the answer 8 s late); on a wildcard
    socket (the image's 0.0.0.0:3031) too. Closing them left the app's own sockets as they
    were (a look at them with the app's default timeout made them non-blocking)."""
    (tmp_path / "forkapp.py").write_text(FORKING_APP)
    children = tmp_path / "children"
    options = {"workers": 1, "threads": threads, "pythonpath": [str(tmp_path)]}
    port = free_port()
    if where != "unix":
        options["socket"] = f"{where}:{port}"
    server = Server(tmp_path / "server", "forkapp:app", env=[f"CHILDREN={children}"], **options)
    try:
        server.start()
        for _ in range(2):  # the second in a worker whose app forked once already
            if where == "unix":
                answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10)
                data, closed = answer.data, answer.end == "eof"
            else:
                data, closed = _tcp_exchange(port, "/")
            assert closed and b"started " in data, (where, data)
        child = data.rpartition(b"started ")[2].decode()
        with open(f"/proc/{child}/cmdline", "rb") as f:  # ps told it for a worker
            assert f.read().startswith(b"uwsgiapp child of worker 1 [forkapp:app]")
        flags = uwsgi_exchange if where == "unix" else None
        data = (
            flags(server.socket, uwsgi_get("/flags"), timeout=10).data
            if flags
            else _tcp_exchange(port, "/flags")[0]
        )
        assert data.endswith(b"\r\n\r\n0"), data  # still blocking
    finally:
        for pid in children.read_text().split() if children.exists() else []:
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(pid), signal.SIGKILL)
        server.stop()


RETURNING_APP = """
import os, sys, time

def app(environ, start_response):
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path == "/wait":  # the worker reaps its child: the exit code it ended with
        code = os.waitstatus_to_exitcode(os.waitpid(int(query), 0)[1])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(code).encode()]
    if query == "midstream":  # forked while its response is iterated: the child's just ends
        start_response("200 OK", [("Content-Type", "text/plain")])
        return midstream()
    pid = os.fork()
    if pid == 0:  # the child goes back into the server's code, each its own way
        time.sleep(0.1)
        if query == "raise":
            raise ValueError("the child's own error")
        if query.startswith("exit"):
            sys.exit(int(query[4:]))
        start_response("200 OK", [])
        return [b"from the child"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(pid).encode()]

def midstream():
    yield b"head "
    pid = os.fork()
    if pid:
        yield b"" + str(pid).encode()
"""


@pytest.mark.parametrize("threads", [1, 2])
def test_a_child_the_app_forks_back_from_the_app_exits_there(tmp_path: Path, threads: int) -> None:
    """It answered nobody (its copy of the connection is closed: "Bad file descriptor"), ran
    the worker's loop as a second worker 1 ("master is gone": its parent is the worker), and
    wrote "leaving" into the worker's status slot: the master started one more worker for
    good. It exits with the code a Python process would, its exception logged."""
    (tmp_path / "returning.py").write_text(RETURNING_APP)
    server = Server(
        tmp_path / "s", "returning:app", workers=1, threads=threads, pythonpath=[str(tmp_path)]
    )
    server.start()
    try:
        codes = {}
        for how in ("return", "raise", "exit3", "exit0", "midstream"):
            child = uwsgi_exchange(server.socket, uwsgi_get("/fork", how), timeout=10).data
            pid = child.rpartition(b"\r\n\r\n")[2].decode().removeprefix("head ")
            answer = uwsgi_exchange(server.socket, uwsgi_get("/wait", pid), timeout=10).data
            codes[how] = int(answer.rpartition(b"\r\n\r\n")[2])
        assert codes == {"return": 0, "raise": 1, "exit3": 3, "exit0": 0, "midstream": 0}
        time.sleep(1.5)  # a tick of the master's and a worker loop's: a second worker is seen
        log = server.log()
        assert log.count(" started") == 1, log  # worker 1, once
        assert "is gone" not in log
        assert "Bad file descriptor" not in log
        assert log.count("forked from worker 1 came back from the app into the server's code") == 2
        assert "forked from worker 1 raised ValueError in GET /fork: it exits with code 1" in log
        assert "the child's own error" in log  # its traceback
        assert "SystemExit" not in log
    finally:
        server.stop()
