"""A server that runs out of something the system hands out: threads, descriptors, processes.

Each test makes the shortage real in the process that meets it (a limit set by the app, a low
``ulimit``), then checks what the operator sees: the requests answered, the log.
"""

from __future__ import annotations

import signal
import socket
import textwrap
from pathlib import Path

import pytest
from support.procs import Server, uwsgi_get, wait_for_serving, wait_until

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
