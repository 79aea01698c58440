"""Bad apps behind a real nginx: each misbehaviour gets the right status, one clear log line, and
the worker survives it (or, stuck forever, is replaced by harakiri).

The app is ``tests/apps/bad_apps.py``, one route per misbehaviour, served by one worker so that
``/pid`` before and after a request tells whether that worker lived.
"""

from __future__ import annotations

import http.client
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability.conftest import Report
from support.procs import Nginx, Server, free_port, stack, wait_until, worker_pids

pytestmark = pytest.mark.nginx

APP = "bad_apps:app"
#: Where a log entry starts: "2026-01-01 12:00:00,123 +0000 [pid] [LEVEL] message".
ENTRY = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [+-]\d{4} \[(\d+)\] \[(\w+)\] ", re.MULTILINE
)


def entries(text: str) -> list[tuple[str, str]]:
    """Split log text into entries: (level, the entry's text including traceback lines)."""
    starts = list(ENTRY.finditer(text))
    return [
        (m.group(2), text[m.start() : starts[i + 1].start() if i + 1 < len(starts) else None])
        for i, m in enumerate(starts)
    ]


def fetch(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes, str]:
    """(status, body, how the body ended: 'complete' or the error that cut it)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request(method, path, body=body)
        resp = conn.getresponse()
        try:
            return resp.status, resp.read(), "complete"
        except http.client.IncompleteRead as exc:
            return resp.status, exc.partial, f"cut: {exc!r}"
    finally:
        conn.close()


def worker_pid(nginx: Nginx) -> int:
    """The (single) worker's pid, asked through nginx."""
    status, _, body = nginx.request("GET", "/pid")
    assert status == 200
    return int(body)


def log_mark(server: Server, pid: int) -> int:
    """Where the log ends once the master said worker ``pid`` started: the worker may answer
    before the master writes that line, which then landed among a request's lines."""
    wait_until(lambda: f"(pid {pid}) started" in server.log(), 10, f"pid {pid}'s start line")
    return len(server.log())


@pytest.fixture(scope="module")
def bad_stack(
    tmp_path_factory: pytest.TempPathFactory, nginx_available: None
) -> Iterator[tuple[Server, Nginx]]:
    """One worker serving the bad apps behind nginx, shared by the module."""
    with stack(tmp_path_factory.mktemp("bad"), APP, workers=1) as pair:
        yield pair


#: route → (status from nginx, what the one log line says, whether it carries a traceback).
#: A traceback only where the app's own code raised (start_response raising inside the app's
#: call included: the traceback shows the app's line); contract violations the server detects
#: itself are one line.
CASES: dict[str, tuple[int, str, bool]] = {
    "raise": (500, "app raised (GET /raise): answering 500", True),
    "raise-after-start": (500, "app raised (GET /raise-after-start): answering 500", True),
    "raise-in-close": (200, "app's response close() raised (GET /raise-in-close)", True),
    "start-twice": (500, "start_response() called a second time", True),
    "return-none": (500, "app returned None, not an iterable of bytes", False),
    "return-int": (500, "app returned int, not an iterable of bytes", False),
    "return-bytes": (500, "app returned bytes, not an iterable of bytes: return [body]", False),
    "return-str": (
        500,
        "app returned str, not an iterable of bytes: return [text.encode()]",
        False,
    ),
    "return-dict": (
        500,
        "app returned dict, not an iterable of bytes (its items are its keys)",
        False,
    ),
    "no-start-response": (500, "response body sent before start_response()", False),
    "yield-str": (500, "response body must be bytes, got str", False),
    "yield-int": (500, "response body must be bytes, got int", False),
    "status-abc": (500, "invalid status 'abc'", False),
    "status-20": (500, "invalid status '20 OK'", False),
    "status-empty": (500, "invalid status ''", False),
    "status-bytes": (500, "invalid status b'200 OK'", False),
    "status-crlf": (500, "contains CR or LF", False),
    "header-crlf-name": (500, "contains CR or LF", False),
    "header-crlf-value": (500, "contains CR or LF", False),
    "header-lf-value": (500, "contains CR or LF", False),
    "header-non-latin1": (500, "not latin-1", False),
    "header-space-name": (500, "header name 'X Bad' is not an HTTP token", False),
    "header-colon-name": (500, "header name 'X-Bad:' is not an HTTP token", False),
    "header-not-tuple": (500, "must be a (name, value) tuple", False),
    "header-bytes": (500, "name and value must be str", False),
    "headers-not-list": (500, "headers must be a list", False),
}


@pytest.mark.parametrize("route", list(CASES))
def test_bad_app_gets_status_one_log_line_and_worker_lives(
    bad_stack: tuple[Server, Nginx], report: Report, route: str
) -> None:
    server, nginx = bad_stack
    status, fragment, traceback = CASES[route]
    report(
        f"bad app: /{route}",
        f"nginx answers {status}; one log entry ({fragment!r}"
        f"{', with the app traceback' if traceback else ', no traceback'}); same worker pid",
    )
    pid = worker_pid(nginx)
    mark = log_mark(server, pid)
    got, body, ended = fetch(nginx.port, "GET", f"/{route}")
    after = worker_pid(nginx)  # served after the bad request: its log lines are written
    new = entries(server.log()[mark:])
    report.add(status=got, log_entries=len(new), same_pid=pid == after)
    assert got == status
    assert ended == "complete"
    if status == 500:
        assert body == b"Internal Server Error\n"
    else:
        assert body == b"complete body"
    assert after == pid
    assert len(new) == 1, new
    level, text = new[0]
    assert level == "ERROR"
    assert fragment in text
    assert ("Traceback (most recent call last)" in text) == traceback, text
    if traceback:
        assert "bad_apps.py" in text  # the app's own frame
    assert nginx.upstream_errors() == []


@pytest.mark.parametrize("transport", ["unix", "tcp"])
@pytest.mark.parametrize("route", ["raise-in-body", "yield-str-late", "raise-in-body-with-length"])
def test_failure_after_the_head_cuts_the_response(
    tmp_path: Path, nginx_available: None, report: Report, route: str, transport: str
) -> None:
    """Once the head is out, a 500 is impossible: the response must end short, not look whole.

    Over TCP the server resets the connection: nginx logs the reset and cuts the client off.
    Over a unix socket there is no reset in the kernel: unless the app sent a Content-Length,
    nginx sees an ordinary end of body, so the client gets a 200 whose body is only what was
    sent before the failure; the server's log line is the only trace.
    """
    sent = b"bytes first, then " if route == "yield-str-late" else b"first part of the body\n"
    with_length = route.endswith("with-length")
    detected = transport == "tcp" or with_length
    report(
        f"bad app fails after its head: /{route} over {transport}",
        "the response ends short of what the app meant to send, one server log line, same "
        "worker; "
        + (
            "nginx logs an upstream error and cuts the client"
            if detected
            else "nginx cannot tell (unix socket, no Content-Length) and ends the body cleanly"
        ),
    )
    socket_opt = {"socket": f"127.0.0.1:{free_port()}"} if transport == "tcp" else {}
    with stack(tmp_path, APP, workers=1, **socket_opt) as (server, nginx):
        pid = worker_pid(nginx)
        mark = log_mark(server, pid)
        status, body, ended = fetch(nginx.port, "GET", f"/{route}")
        after = worker_pid(nginx)
        new = entries(server.log()[mark:])
        errors = nginx.upstream_errors()
    report.add(status=status, body_bytes=len(body), ended=ended, nginx_errors=len(errors))
    assert status == 200  # the head went out before the failure
    assert sent.startswith(body)
    assert after == pid
    assert len(new) == 1, new
    assert "after the response head was sent" in new[0][1]
    assert "cutting the connection" in new[0][1]
    assert ("Traceback" in new[0][1]) == ("raise" in route)
    if detected:
        assert ended.startswith("cut"), ended
        assert len(errors) == 1, errors
        assert f"GET /{route}" in errors[0]
    else:
        assert ended == "complete"
        assert body == sent
        assert errors == []


@pytest.mark.parametrize(
    ("route", "answer"),
    [("ignore-body", b"did not read 1048576 bytes"), ("read-some-body", b"read 1000 bytes")],
)
def test_app_that_does_not_read_its_large_body(
    bad_stack: tuple[Server, Nginx], report: Report, route: str, answer: bytes
) -> None:
    server, nginx = bad_stack
    rounds = 5
    report(
        f"bad app: /{route} with a 1 MB POST body, {rounds} times",
        "200 with the app's answer every time (the server drains the unread body: no reset, "
        "no 502), no upstream error in nginx's log, no error logged, same worker",
    )
    pid = worker_pid(nginx)
    mark = log_mark(server, pid)
    body = os.urandom(1 << 20)
    results = [fetch(nginx.port, "POST", f"/{route}", body) for _ in range(rounds)]
    after = worker_pid(nginx)
    new = entries(server.log()[mark:])
    report.add(answered=sum(1 for r in results if r[0] == 200), log_entries=len(new))
    assert results == [(200, answer, "complete")] * rounds
    assert after == pid
    assert [e for e in new if e[0] != "INFO"] == []
    assert nginx.upstream_errors() == []


#: route → how the master describes the worker's end.
CRASHES = {
    "sys-exit": "exited with code 3",
    "os-exit": "exited with code 7",
    "segfault": "killed by signal 11 (SIGSEGV)",
}


def test_app_that_kills_its_worker_gets_502_and_a_replacement(
    tmp_path: Path, nginx_available: None, report: Report
) -> None:
    report(
        "bad app ends its own worker: sys.exit(3), os._exit(7), a segfault",
        "nginx answers 502 for that request; the master logs one line naming the worker, pid "
        "and exit code or signal and starts a new worker, which serves the next request; "
        "sys.exit is said with its traceback before (the exit code alone did not say where); "
        "a segfault leaves the Python stack of the crash in the error log",
    )
    with stack(tmp_path, APP, workers=1) as (server, nginx):
        for route, how in CRASHES.items():
            pid = worker_pid(nginx)
            mark = log_mark(server, pid)
            status, _, _ = fetch(nginx.port, "GET", f"/{route}")
            after = worker_pid(nginx)
            # (and the new worker's "worker 1 (pid N) started", at INFO)
            new = [
                e for e in entries(server.log()[mark:]) if not e[1].rstrip().endswith(" started")
            ]
            dumps = [e for e in new if "(faulthandler):" in e[1]]
            new = [e for e in new if e not in dumps]
            report.add(**{f"{route}_status": status, f"{route}_replaced": after != pid})
            assert status == 502
            assert after != pid
            if route == "sys-exit":
                said = new.pop(0)[1]
                assert "the app raised SystemExit(3) (sys.exit) in GET /sys-exit" in said
                assert "Traceback" in said and "sys.exit(3)" in said
            assert len(new) == 1, new
            assert new[0][0] == "ERROR"
            assert (
                f"(pid {pid}) {how} (it was in a request, which got no answer); starting"
                in (new[0][1])
            )
            if route == "segfault":  # faulthandler: the Python stack that crashed, no traceback
                assert len(dumps) == 1, dumps  # the master's record of it
                dump = dumps[0][1]
                assert f"the stacks of the worker with pid {pid} " in dump
                assert "Fatal Python error: Segmentation fault" in dump
                assert re.search(r'File ".*bad_apps\.py", line \d+ in _segfault', dump), dump
                report.add(segfault_stack_logged=True)
        assert server.log().count("Traceback") == 1  # sys.exit's


def test_harakiri_replaces_a_worker_blocked_forever(
    tmp_path: Path, nginx_available: None, report: Report
) -> None:
    routes = {"block-forever": "threading.Event().wait()", "spin-forever": "while n >= 0:"}
    report(
        "bad app blocks forever (in a lock; spinning in Python), --harakiri 1",
        "nginx answers 502; the error log has HARAKIRI, the request line and the stuck line of "
        "the app's stack; the worker is killed and replaced; the next request is served",
    )
    with stack(tmp_path, APP, workers=1, harakiri=1) as (server, nginx):
        for route, stuck_line in routes.items():
            pid = worker_pid(nginx)
            mark = log_mark(server, pid)
            status, _, _ = fetch(nginx.port, "GET", f"/{route}")
            gone = f"(pid {pid}) exited with code 0"  # cut (its handler ran), it left
            wait_until(lambda m=mark, g=gone: g in server.log()[m:], 10, "the worker's exit")
            after = worker_pid(nginx)
            log = server.log()[mark:]
            report.add(**{f"{route}_status": status, f"{route}_replaced": after != pid})
            assert status == 502
            assert after != pid
            assert "HARAKIRI" in log
            assert f"GET /{route}" in log
            assert stuck_line in log
            assert f"in _{route.replace('-', '_')}" in log
            assert "killed by signal 9" not in log  # not killed: it unwound its request


def test_harakiri_names_a_request_stuck_in_its_streamed_response(
    tmp_path: Path, nginx_available: None
) -> None:
    # The compiled build iterates the response with no Python frame between the worker loop
    # and the app's generator: the line said "stuck in unknown request" (the image's build).
    with stack(tmp_path, APP, workers=1, harakiri=1) as (server, nginx):
        fetch(nginx.port, "GET", "/stream-forever")
        wait_until(lambda: "exited with code 0" in server.log(), 10, "the cut worker's exit")
    log = server.log()
    assert "stuck in GET /stream-forever; its stack" in log, log
    assert "in _chunks_then_block" in log


class LimitedServer(Server):
    """``uwsgiapp serve`` with a low RLIMIT_NOFILE (set just before exec, like prlimit)."""

    def __init__(self, workdir: Path, app: str, nofile: int, **options: object) -> None:
        super().__init__(workdir, app, **options)
        self.nofile = nofile

    def command(self) -> list[str]:
        """Set the limit in a tiny Python prologue, then exec the real command line."""
        prologue = (
            "import os, resource, sys; "
            f"resource.setrlimit(resource.RLIMIT_NOFILE, ({self.nofile}, {self.nofile})); "
            "os.execv(sys.argv[1], sys.argv[1:])"
        )
        return [sys.executable, "-c", prologue, *super().command()]


@pytest.fixture
def limited_stack(tmp_path: Path, nginx_available: None) -> Iterator[tuple[Server, Nginx]]:
    """One worker limited to 64 open files, behind nginx."""
    server = LimitedServer(tmp_path / "server", APP, nofile=64, workers=1).start()
    nginx = Nginx(tmp_path / "nginx", server.upstream)
    try:
        nginx.start()
        yield server, nginx
    finally:
        nginx.stop()
        server.stop()


def test_app_leaking_fds_runs_out_in_the_app_and_the_worker_is_recycled(
    limited_stack: tuple[Server, Nginx], report: Report
) -> None:
    server, nginx = limited_stack
    requests = 150
    report(
        f"bad app leaks a file per request (RLIMIT_NOFILE 64, {requests} requests)",
        "when the app's open() fails with EMFILE that request gets a 500 (the app raised: its "
        "traceback), the worker logs one line and recycles itself, a fresh worker serves the "
        "rest: every other request is 200 and nothing loops",
    )
    statuses: dict[int, int] = {}
    pids = []
    for _ in range(requests):
        status, body, _ = fetch(nginx.port, "GET", "/leak-fd")
        statuses[status] = statuses.get(status, 0) + 1
        if status == 200:
            pids.append(int(body.rsplit(b" ", 1)[1]))
    worker_pid(nginx)
    log = server.log()
    # A worker out of fds notices it in the app (open() fails: that request's 500) and, when the
    # last fd went to a connection, in accept() too (Linux takes the fd number before it looks
    # at the queue): one line each at most, then it exits and the master starts a fresh one.
    recycled = set(map(int, re.findall(r"\(pid (\d+)\) exited with code 0; starting a new", log)))
    noticed = [
        (int(m.group(1)), m.group(3))
        for m in re.finditer(
            r"\[(\d+)\] \[ERROR\] worker \d+ \(pid \d+\): (.*?)(accept\(\)|the app ran out)", log
        )
    ]
    app_errors = log.count("app raised (GET /leak-fd): answering 500")
    report.add(
        requests=requests,
        statuses=statuses,
        recycled_workers=len(recycled),
        workers_seen=len(set(pids)),
    )
    assert set(statuses) == {200, 500}
    assert len(recycled) >= 2  # about 55 requests per worker
    assert statuses[500] == app_errors
    assert {pid for pid, _ in noticed} == recycled
    assert len(noticed) == len(set(noticed))  # no line repeated: no retry loop
    assert len(set(pids)) == len(recycled) + 1
    assert nginx.upstream_errors() == []


def test_fds_exhausted_outside_a_request_make_accept_recycle_the_worker(
    limited_stack: tuple[Server, Nginx], report: Report
) -> None:
    server, nginx = limited_stack
    rounds = 3
    report(
        f"bad app takes every free fd in a background thread ({rounds} times)",
        "the worker's next accept() fails with EMFILE: one log line, the worker recycles itself "
        "(no retry loop), and the waiting request is served by a fresh worker",
    )
    for _ in range(rounds):
        pid = worker_pid(nginx)
        mark = log_mark(server, pid)
        status, _, _ = fetch(nginx.port, "GET", "/leak-all-fds-later")
        assert status == 200
        wait_until(lambda p=pid: len(os.listdir(f"/proc/{p}/fd")) >= 64, 10, "fds exhausted")
        after = worker_pid(nginx)  # waits in the backlog for the fresh worker
        time.sleep(0.3)  # a looping worker would log again meanwhile
        new = entries(server.log()[mark:])
        errors = [text for level, text in new if level == "ERROR"]
        assert after != pid
        assert pid not in worker_pids(server.pid)
        assert len(errors) == 1, errors
        assert "accept()" in errors[0] and "Too many open files" in errors[0]
        assert "recycling this worker" in errors[0]
    report.add(rounds=rounds, recycled=rounds)
    assert nginx.upstream_errors() == []


@pytest.mark.parametrize("threads", [1, 2])
def test_a_stream_cut_at_the_stop_deadline_shows_as_cut_over_tcp(
    tmp_path: Path, nginx_available: None, threads: int
) -> None:
    # The deadline's SIGINT ended the request with a clean close: nginx then passed a fraction
    # of the stream on as a whole 200 (only an app's own exception reset the connection).
    tcp = f"127.0.0.1:{free_port()}"
    options = {"socket": tcp, "graceful_timeout": 1, "threads": threads}
    with stack(tmp_path, APP, workers=1, **options) as (server, nginx):
        result: list[tuple[int, bytes, str]] = []
        fetcher = threading.Thread(
            target=lambda: result.append(fetch(nginx.port, "GET", "/slow-stream"))
        )
        fetcher.start()
        time.sleep(1.0)  # a few chunks are out
        server.signal(signal.SIGTERM)
        fetcher.join(20)
        errors = nginx.upstream_errors()
    ((status, body, ended),) = result
    assert status == 200 and len(body) < 50 * 5, body  # nginx may have held what came
    assert "quick stop, cutting GET /slow-stream" in server.log()
    assert ended.startswith("cut"), (ended, body)
    assert len(errors) == 1 and "GET /slow-stream" in errors[0], errors
