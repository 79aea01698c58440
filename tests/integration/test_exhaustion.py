"""A server that runs out of something the system hands out: threads, descriptors, processes.

Each test makes the shortage real in the process that meets it (a limit set by the app, a low
``ulimit``), then checks what the operator sees: the requests answered, the log.
"""

from __future__ import annotations

import os
import resource
import signal
import socket
import sys
import textwrap
from pathlib import Path

import pytest
from support.procs import (
    Server,
    free_port,
    short_tmpdir,
    uwsgi_get,
    wait_for_serving,
    wait_until,
    worker_pids,
)

from uwsgiapp.stats.reader import fetch, parse_source

pytestmark = pytest.mark.nginx

#: An app whose /no-threads makes its worker unable to start a thread, as a process or thread
#: limit does (RLIMIT_NPROC, a pids cgroup: "can't start new thread"); here without privileges:
#: a thread's stack no longer fits under the worker's address-space limit.
NO_THREADS_APP = """
import _thread, resource, threading, time

def app(environ, start_response):
    path, query = environ["PATH_INFO"], environ["QUERY_STRING"]
    if path == "/no-threads":
        with open("/proc/self/status") as f:
            vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize"))
        hard = resource.getrlimit(resource.RLIMIT_AS)[1]
        resource.setrlimit(resource.RLIMIT_AS, ((vm << 10) + (256 << 20), hard))
        threading.stack_size(1 << 30)
        try:
            _thread.start_new_thread(lambda: None, ())
            body = b"threads still start"
        except RuntimeError:
            body = b"no threads"
    elif path == "/sleep":
        open(query, "w").close()  # the test waits for it: the request is in the app
        time.sleep(1)
        body = b"slept"
    else:
        body = b"ok"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [body]
"""


def _write_app(tmp_path: Path, name: str, source: str) -> str:
    (tmp_path / f"{name}.py").write_text(textwrap.dedent(source))
    return f"{name}:app"


def _exchange(path: str, request: bytes) -> bytes:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(30)
        client.connect(path)
        client.sendall(request)
        chunks = []
        while chunk := client.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_a_term_to_a_worker_that_cannot_start_a_thread_still_ends_gracefully(
    tmp_path: Path,
) -> None:
    # The worker's TERM handler starts a thread (the late refusal of new connections); at the
    # limit its RuntimeError was raised where the signal came: in the app's sleep (the request
    # got a 500) or in the idle loop (the worker "crashed" with a traceback, exit code 1).
    app = _write_app(tmp_path, "no_threads_app", NO_THREADS_APP)
    server = Server(tmp_path, app, workers=1, pythonpath=[str(tmp_path)]).start()
    try:
        wait_for_serving(server, 1)
        said = _exchange(server.socket, uwsgi_get("/no-threads"))
        if not said.endswith(b"no threads"):
            pytest.skip("the worker can still start threads here")
        marker = tmp_path / "in-the-app"
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(30)
            client.connect(server.socket)
            client.sendall(uwsgi_get("/sleep", str(marker)))
            wait_until(marker.exists, 10, "the request in the app")
            server.signal(signal.SIGTERM)
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        assert server.wait(15) == 0
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(b"slept"), answer
    log = server.log()
    assert "Traceback" not in log and "crashed" not in log, log
    assert "exited with code 0" in log, log
    # No thread for the exit work's bound: that work is skipped and said (unbounded, a hanging
    # atexit handler would keep a worker nobody ends).
    assert "leaving without its exit work" in log, log


#: An app whose worker loses every free descriptor once its loop is up, before any request
#: (a thread its postfork function starts takes them), and gets them back once the file
#: named by RELEASE_FDS exists: what a worker born short of descriptors meets.
STARVED_APP = """
import os, threading, time
from uwsgiapp.hooks import postfork

HELD = []

def _looping():
    for fd in os.listdir("/proc/self/fd"):
        try:
            if os.readlink(f"/proc/self/fd/{fd}") == "anon_inode:[eventpoll]":
                return True
        except OSError:  # the listing's own descriptor, closed since
            pass
    return False

def _take_them_all():
    while not _looping():
        time.sleep(0.01)
    while True:
        try:
            HELD.append(os.open(os.devnull, os.O_RDONLY))
        except OSError:
            break
    while not os.path.exists(os.environ["RELEASE_FDS"]):
        time.sleep(0.02)
    while HELD:
        os.close(HELD.pop())

@postfork
def _starve():
    threading.Thread(target=_take_them_all, daemon=True).start()

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"served by %d" % os.getpid()]
"""


class FewFiles(Server):
    """``uwsgiapp serve`` limited to ``files`` open files (the soft limit, set just before
    exec as prlimit does; the hard one is left, so that a test may raise it again)."""

    files = 64

    def command(self) -> list[str]:
        prologue = (
            "import os, resource, sys; "
            "hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({self.files}, hard)); "
            "os.execv(sys.argv[1], sys.argv[1:])"
        )
        return [sys.executable, "-c", prologue, *super().command()]


def test_a_worker_out_of_descriptors_before_its_first_request_waits_instead_of_recycling(
    tmp_path: Path,
) -> None:
    # accept() failing with EMFILE recycled the worker; its replacement started as short of
    # descriptors (the master's import, the app's start-up took them) and did the same: 220
    # forks and 670 log lines a second while a connection waited, which none served.
    app = _write_app(tmp_path, "starved_app", STARVED_APP)
    release = tmp_path / "release"
    options = {"workers": 1, "pythonpath": [str(tmp_path)], "env": [f"RELEASE_FDS={release}"]}
    # Not waiting for the socket to connect: that probe would be the worker's first request.
    server = FewFiles(tmp_path, app, **options).start(wait=False)
    try:
        (pid,) = wait_for_serving(server, 1)
        wait_until(lambda: len(os.listdir(f"/proc/{pid}/fd")) >= 64, 10, "its descriptors taken")
        with socket.socket(socket.AF_UNIX) as client:
            client.settimeout(30)
            client.connect(server.socket)  # waits in the backlog: accept() fails in the worker
            client.sendall(uwsgi_get("/"))
            wait_until(lambda: "accept() on" in server.log(), 10, "the worker's accept to fail")
            release.touch()
            answer = b""
            while chunk := client.recv(65536):
                answer += chunk
        assert worker_pids(server.pid) == {pid}
    finally:
        server.stop()
    assert answer.endswith(b"served by %d" % pid), answer
    log = server.log()
    assert "recycling" not in log, log
    first = next(line for line in log.splitlines() if "accept() on" in line)
    assert "Too many open files before this worker's first request" in first, first
    assert "ulimit -n" in first and first.endswith("; retrying"), first


def test_a_master_that_cannot_fork_says_why_once_and_forks_once_it_can(tmp_path: Path) -> None:
    # Each missing worker was tried again at every tick (0.1 s), a line each, naming only the
    # errno: here the master's descriptors, which --log-master's pipes for each worker use up.
    server = FewFiles(tmp_path, "supervisor_app:app", workers=24, log_master=True)
    server.files = 48
    server.start(wait=False)
    try:
        wait_until(lambda: "cannot fork" in server.log(), 15, "a fork to fail")
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        resource.prlimit(server.pid, resource.RLIMIT_NOFILE, (hard, hard))
        wait_until(lambda: len(worker_pids(server.pid)) == 24, 30, "all 24 workers")
    finally:
        server.stop()
    lines = server.log().splitlines()
    (failed,) = [line for line in lines if "cannot fork" in line]
    assert "[Errno 24] its --log-master pipes: Too many open files" in failed, failed
    assert "the master's open-files limit (ulimit -n" in failed, failed
    assert "of 24 workers running; trying again in 0.5 s" in failed, failed
    assert len([line for line in lines if "no dump file" in line]) <= 1, lines


def test_a_full_listen_queue_is_said_in_the_log(tmp_path: Path) -> None:
    # Every worker busy, the backlog full: nginx answered 504 (TCP) or 502 (unix) and logged
    # it; the server's log said nothing (uWSGI says "listen queue ... full").
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = Server(tmp_path, "supervisor_app:app", socket=address, workers=1, listen=4)
    server.start()
    marker = tmp_path / "in-the-app"
    clients: list[socket.socket] = []
    try:
        busy = socket.create_connection(("127.0.0.1", port))
        clients.append(busy)
        busy.sendall(uwsgi_get("/sleep", f"30&{marker}"))
        wait_until(marker.exists, 10, "the only worker busy")
        for _ in range(12):  # more than the backlog: the queue fills, later handshakes wait
            waiting = socket.socket()
            clients.append(waiting)
            waiting.setblocking(False)
            waiting.connect_ex(("127.0.0.1", port))
        wait_until(lambda: "listen queue of" in server.log(), 15, "the full queue said")
    finally:
        for client in clients:
            client.close()
        server.signal(signal.SIGINT)  # the worker sleeps on: a quick stop
        server.stop()
    line = next(line for line in server.log().splitlines() if "listen queue of" in line)
    assert f"[WARNING] listen queue of {address} is full (" in line, line
    assert "it holds 4): every worker is busy" in line, line
    assert "dropped: nginx waits for its connect, then answers 504" in line, line


def test_a_listen_queue_is_as_long_as_the_kernel_lets_it_be(tmp_path: Path) -> None:
    # Over net.core.somaxconn the kernel caps the queue: it was full at the cap and said
    # --listen's size, never reached, so the warning never came (many containers: 128).
    somaxconn = int(Path("/proc/sys/net/core/somaxconn").read_text())
    listen = somaxconn * 2
    stats = os.path.join(short_tmpdir(), "stats.sock")
    server = Server(tmp_path, "supervisor_app:app", workers=1, listen=listen, stats=stats)
    server.start()
    try:
        wait_until(lambda: os.path.exists(stats), 10, "the stats socket")
        doc = fetch(parse_source(stats))
    finally:
        server.stop()
    assert [s["max_queue"] for s in doc["sockets"]] == [somaxconn]


#: A worker that, once forked, can start only ``THREADS_ROOM`` GiB-stacked threads (0-2): its
#: address space is capped that far above what it maps, as a process or thread limit
#: (RLIMIT_NPROC, a pids cgroup) caps its tasks, here without privileges.
FEW_THREADS_APP = """
import os, resource, threading
from uwsgiapp.hooks import postfork

@postfork
def _cap() -> None:
    with open("/proc/self/status") as f:
        vm = next(int(line.split()[1]) for line in f if line.startswith("VmSize"))
    room = float(os.environ["THREADS_ROOM"])
    hard = resource.getrlimit(resource.RLIMIT_AS)[1]
    resource.setrlimit(resource.RLIMIT_AS, ((vm << 10) + int((room + 0.5) * (1 << 30)), hard))
    threading.stack_size(1 << 30)

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [threading.current_thread().name.encode()]
"""


@pytest.mark.parametrize("room", [2, 0])
def test_a_worker_that_cannot_start_all_its_threads_serves_with_those_it_can(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, room: int
) -> None:
    # Each worker crashed with a traceback at its first thread that could not start, and the
    # next did the same: a crash loop, and not one request served.
    monkeypatch.setenv("THREADS_ROOM", str(room))
    app = _write_app(tmp_path, "few_threads_app", FEW_THREADS_APP)
    stats = os.path.join(short_tmpdir(), "stats.sock")
    server = Server(tmp_path, app, workers=1, threads=4, pythonpath=[str(tmp_path)], stats=stats)
    server.start(wait=bool(room))
    try:
        if room:
            answer = _exchange(server.socket, uwsgi_get("/"))
            assert answer.startswith(b"HTTP/1.1 200") and b"request-" in answer, answer

            # The stats (and cheaper) count the threads it has, not 4: two more looked idle.
            def cores() -> list[int]:
                return [len(w["cores"]) for w in fetch(parse_source(stats))["workers"]]

            wait_until(lambda: cores() == [room], 5, f"{room} cores in the stats")
        else:
            wait_until(lambda: "exited with code 1" in server.log(), 15, "the worker's exit")
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log and "crashed" not in log, log
    if room:
        said = f"serving with {room} of its 4 request threads: the next one could not start"
    else:
        said = "cannot start any of its 4 request threads: can't start new thread"
    # What made it fail here is the second cause the line names: memory for the stack.
    assert said in log and "pids.max" in log and "no memory for its stack" in log, log
