"""A harakiri cuts requests so that the app's clean-up runs (its ``finally`` blocks, a
generator's ``close()``), as gunicorn's timeout does (SystemExit in the worker), then the
worker leaves: one thread's request at once; with ``--threads``, the other threads' requests
still running when their ``--harakiri`` seconds more are up, by a quick stop before the kill
(they were SIGKILLed unsaid, their clean-up skipped). Real processes, real signals."""

from __future__ import annotations

import signal
import threading
from pathlib import Path

import pytest
from support.procs import Server, uwsgi_exchange, uwsgi_get, wait_for_serving, wait_until

APP = """
import os, time
from pathlib import Path

marks = Path(os.environ["MARKS"])

def app(environ, start_response):
    tag = environ["QUERY_STRING"]
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        while True:  # a stream that does not end: an export stuck on a slow query, say
            time.sleep(0.05)
    finally:
        with marks.open("a") as f:
            f.write(tag + "\\n")
    return [b"never"]
"""


def _serve(tmp_path: Path, **options: object) -> tuple[Server, Path]:
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "stuckapp.py").write_text(APP)
    marks = tmp_path / "marks"
    server = Server(
        tmp_path / "s", "stuckapp:app", workers=1, harakiri=1, access_log="uwsgi",
        pythonpath=[str(tmp_path / "app")], env=[f"MARKS={marks}"], **options,
    ).start()  # fmt: skip
    wait_for_serving(server, 1)
    return server, marks


def _ask(server: Server, tag: str) -> None:
    uwsgi_exchange(server.socket, uwsgi_get("/", tag), timeout=20)


def test_a_harakiri_runs_the_requests_finally_blocks_and_the_worker_leaves(
    tmp_path: Path,
) -> None:
    server, marks = _serve(tmp_path)
    try:
        _ask(server, "one")
        wait_until(lambda: "exited with code 0" in server.log(), 10, "the worker's exit")
    finally:
        server.stop()
    log = server.log()
    assert "HARAKIRI: worker 1" in log and "stuck in GET /; its stack" in log, log
    assert marks.read_text() == "one\n"  # its finally ran
    assert "GET / => generated 0 bytes" in log  # and its access line was written
    assert "killed by signal 9" not in log, log


def test_with_threads_the_other_threads_requests_are_cut_too_before_the_kill(
    tmp_path: Path,
) -> None:
    # Two requests past --harakiri a moment apart: the first was cut, the second ran to the
    # harakiri's grace and was SIGKILLed, its finally skipped and no line said it.
    server, marks = _serve(tmp_path, threads=2)
    try:
        first = threading.Thread(target=_ask, args=(server, "first"))
        first.start()
        wait_until(lambda: "worker 1" in server.log(), 5, "the worker")
        threading.Event().wait(0.3)
        _ask(server, "second")
        first.join(20)
        wait_until(lambda: "exited with code 0" in server.log(), 10, "the worker's exit")
    finally:
        server.stop()
    log = server.log()
    assert sorted(marks.read_text().split()) == ["first", "second"], log
    assert "harakiri deadline passed in a request" in log and "cutting it (SIGINT)" in log, log
    assert "killed by signal 9" not in log, log


DRAIN_APP = """
import time

def app(environ, start_response):
    time.sleep(0.5)  # then answers, leaving the body unread: the server reads it away
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_a_harakiri_in_the_servers_work_after_the_app_does_not_cut_it(tmp_path: Path) -> None:
    # The app answered; the harakiri came as the server read away the body it left (a body
    # still coming): the pure build found an environ in its own frames and cut that, and the
    # request's access line was lost (the compiled build, with no such frame, did not).
    import socket
    import time

    import uwsgiproto

    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "drainapp.py").write_text(DRAIN_APP)
    server = Server(
        tmp_path / "s", "drainapp:app", workers=1, harakiri=1, access_log="uwsgi",
        pythonpath=[str(tmp_path / "app")],
    ).start()  # fmt: skip
    body = bytes(500_000)
    head = uwsgiproto.build_request(
        {"REQUEST_METHOD": "POST", "PATH_INFO": "/up", "REQUEST_URI": "/up",
         "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": str(len(body))},
    )  # fmt: skip
    try:
        wait_for_serving(server, 1)
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(10)
            sock.connect(server.socket)
            sock.sendall(head + body[:100_000])
            answer = sock.recv(65536)  # at 0.5 s; the rest of the body comes after it, at
            for start in range(100_000, len(body), 40_000):  # 400 KB/s (a drain reads on
                time.sleep(0.1)  # while a body comes at 256 KiB/s or faster) until 1.5 s:
                sock.sendall(body[start : start + 40_000])  # past the harakiri, not its kill
        wait_until(lambda: "POST /up =>" in server.log(), 10, "the access line")
    finally:
        server.stop()
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer
    assert "HARAKIRI" in server.log()


C_CALL_APP = """
import time

def app(env, start_response):  # not named environ: no frame of the stack names the request
    if env["QUERY_STRING"] == "stream":  # a stream begun (an event stream, an export)
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first part"
    time.sleep(30)  # one C call: a cut waits for its end, which the stop does not
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"never"
"""


@pytest.mark.parametrize(
    ("query", "said"),
    [("c", "generated 0 bytes"), ("stream", "generated 10 bytes")],
)
def test_with_threads_a_request_a_stop_cuts_in_a_c_call_keeps_its_access_line(
    tmp_path: Path, query: str, said: str
) -> None:
    # Past --graceful-timeout the quick stop cut it, its thread never ran Python again, and
    # the worker left: the request vanished from the access log (the client had its 502). A
    # stream begun keeps its status and bytes (over TCP its close is a reset: nginx passes it
    # on as cut, not as whole; a unix socket has none).
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "capp.py").write_text(C_CALL_APP)
    server = Server(
        tmp_path / "s", "capp:app", workers=1, threads=2, graceful_timeout=1,
        access_log="uwsgi", pythonpath=[str(tmp_path / "app")],
    ).start()  # fmt: skip
    seen: list[str] = []
    asked = threading.Thread(
        target=lambda: seen.append(
            uwsgi_exchange(server.socket, uwsgi_get("/", query), timeout=20).end
        )
    )
    try:
        wait_for_serving(server, 1)
        asked.start()
        wait_until(lambda: "worker 1" in server.log(), 5, "the worker")
        threading.Event().wait(0.3)
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
    finally:
        server.stop()
        asked.join(20)
    log = server.log()
    assert "stop deadline passed in a request" in log, log
    (line,) = [x for x in log.splitlines() if "GET / =>" in x]
    assert said in line, line
    assert ("(HTTP/1.1 0)" if query == "c" else "(HTTP/1.1 200)") in line, line
    assert seen == ["eof"], log  # answered, not left waiting
