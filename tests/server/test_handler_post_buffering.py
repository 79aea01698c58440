"""Handler on a socketpair with ``--post-buffering``: the whole body read before the app, into a
seekable ``wsgi.input`` (memory up to the limit, an unnamed temporary file above it); a client
gone mid-body never reaches the app; refusals (413) still come before any of the body is read.

Helpers (the socketpair client, outcomes) are in handler_kit.py.
"""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import signal
import socket
import sys
from pathlib import Path
from typing import Any

import pytest
from handler_kit import (
    Environ,
    Logs,
    StartResponse,
    make_handler,
    nginx_vars,
    one_line,
    packet,
    problems,
    run,
)

from uwsgiapp.server.intake import PREREAD, Handler
from uwsgiapp.server.spool import IN_MEMORY_ANYWAY, in_memory
from uwsgiproto import build_request


def _where(stream: Any) -> str:
    """What backs ``wsgi.input``: 'memory', or the path of its open file (/proc's link)."""
    if isinstance(stream, io.BytesIO):
        return "memory"
    return os.readlink(f"/proc/self/fd/{stream.fileno()}")


def read_twice(environ: Environ, start_response: StartResponse) -> list[bytes]:
    """Reads the body whole, seeks back and reads it again in lines: what a webhook's
    signature check then the framework's parsing do."""
    stream = environ["wsgi.input"]
    first = stream.read()
    at_end = stream.tell()
    stream.seek(0)
    head = stream.read(10)
    line = stream.readline()
    rest = b"".join(stream)
    stream.seek(0)
    info = {
        "length": environ["CONTENT_LENGTH"],
        "first": hashlib.sha256(first).hexdigest(),
        "again": hashlib.sha256(head + line + rest).hexdigest(),
        "tell": at_end,
        "where": _where(stream),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]


def _lines_body(size: int) -> bytes:
    line = b"0123456789abcdef" * 4 + b"\n"
    return (line * (size // len(line) + 1))[:size]


def test_a_large_body_is_spooled_to_a_temporary_file_and_read_twice(tmp_path: Path) -> None:
    body = _lines_body(300_000)
    data = packet("POST", "/hook", body)
    # In pieces, so that the body takes several reads.
    pieces = [data[i : i + 50_000] for i in range(0, len(data), 50_000)]
    handler = make_handler(read_twice, post_buffering=4096, spool_dir=str(tmp_path))
    out = run(handler, pieces, pause=0.01)
    assert out.status == 200, out.raw[:300]
    info = json.loads(out.body)
    digest = hashlib.sha256(body).hexdigest()
    assert (info["first"], info["again"], info["tell"]) == (digest, digest, len(body))
    assert info["length"] == str(len(body))  # CONTENT_LENGTH unchanged
    # An unnamed file in the directory given (O_TMPFILE's link reads "dir/#inode (deleted)").
    assert info["where"].startswith(str(tmp_path) + "/"), info["where"]
    assert info["where"].endswith("(deleted)"), info["where"]
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(
    ("limit", "size", "where"),
    [
        (100_000, 100_000, "memory"),  # up to the limit: in memory
        (100_000, 100_001, "file"),  # one byte more: a file
        (4096, 4097, "memory"),  # read whole before the app anyway (<= 64 KiB): stays there
        (4096, 70_000, "file"),
    ],
)
def test_memory_up_to_the_limit_a_file_above_it(
    tmp_path: Path, limit: int, size: int, where: str
) -> None:
    assert in_memory(size, limit) is (where == "memory")
    body = os.urandom(size)
    handler = make_handler(read_twice, post_buffering=limit, spool_dir=str(tmp_path))
    out = run(handler, packet("POST", "/up", body))
    info = json.loads(out.body)
    assert info["first"] == info["again"] == hashlib.sha256(body).hexdigest()
    assert (info["where"] == "memory") is (where == "memory"), info["where"]


def test_the_body_read_first_in_memory_is_the_one_read_before_the_app() -> None:
    # A body up to IN_MEMORY_ANYWAY is in memory whatever the limit because the worker reads
    # it whole before the app already: the two sizes must stay one.
    assert IN_MEMORY_ANYWAY == PREREAD


def test_without_a_body_the_app_gets_an_empty_input(tmp_path: Path) -> None:
    seen: list[bytes] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["wsgi.input"].read())
        start_response("204 No Content", [])
        return []

    out = run(make_handler(app, post_buffering=4096, spool_dir=str(tmp_path)), packet())
    assert (out.status, seen) == (204, [b""])


def _recording(calls: list[str]) -> Any:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        calls.append(environ["PATH_INFO"])
        start_response("200 OK", [("Content-Length", "0")])
        return []

    return app


def _open_in(directory: Path) -> list[str]:
    """This process's open files in ``directory`` (a spooled body left open would be one)."""
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(directory) + "/"):
            found.append(target)
    return found


@pytest.mark.parametrize("size", [1_000_000, 80_000])  # a file, and memory
def test_a_client_gone_mid_body_never_reaches_the_app(
    tmp_path: Path, logs: Logs, size: int
) -> None:
    calls: list[str] = []
    handler = make_handler(_recording(calls), post_buffering=100_000, spool_dir=str(tmp_path))
    data = packet("POST", "/up", os.urandom(size))
    out = run(handler, data[: len(data) - 5000], shut_wr=True)
    assert calls == []
    assert out.raw == b""
    (record,) = [r for r in logs.records if "/up" in r.getMessage()]
    line = one_line(record)
    assert record.levelno == logging.INFO, line
    assert line.startswith("client 127.0.0.1 via test: "), line  # not the socket alone
    assert f"{size - 5000} of {size} bytes of its body in" in line, line
    assert "POST /up" in line and "the app is not called" in line, line
    assert problems(logs) == []
    assert _open_in(tmp_path) == []  # the spooled part is closed (and so gone)


def test_a_client_that_stalls_mid_body_gets_a_408_after_the_socket_timeout(
    tmp_path: Path, logs: Logs
) -> None:
    calls: list[str] = []
    handler = make_handler(
        _recording(calls), timeout=0.3, post_buffering=4096, spool_dir=str(tmp_path)
    )
    data = packet("POST", "/slow", os.urandom(200_000))
    out = run(handler, data[:100_000])  # then silence, the connection kept
    assert calls == []
    assert out.status_line == "HTTP/1.1 408 Request Timeout"
    (record,) = [r for r in logs.records if "/slow" in r.getMessage()]
    assert "read timed out" in one_line(record), record.getMessage()


def _logging_spooler(tmp_path: Path, timeout: float) -> tuple[Handler, Path]:
    """A --post-buffering handler whose app is never called, and its access log's file."""
    from uwsgiapp.server.logs import make_access_log

    path = tmp_path / "access.log"
    access = make_access_log("combined", str(path))
    handler = make_handler(
        _recording([]),
        timeout=timeout,
        post_buffering=4096,
        spool_dir=str(tmp_path),
        access_log=access,
    )
    return handler, path


@pytest.mark.parametrize(("stall", "status"), [(True, '" 408 8 '), (False, '" 499 - ')])
def test_a_body_that_never_comes_whole_gets_its_access_line(
    tmp_path: Path, stall: bool, status: str
) -> None:
    # The 408 for a stalled body (and the client gone mid-body) wrote no access line: a
    # --log-4xx count missed them, where without --post-buffering the 408 is logged.
    handler, path = _logging_spooler(tmp_path, timeout=0.3)
    data = packet("POST", "/slow", os.urandom(200_000))
    run(handler, data[:100_000], shut_wr=not stall)
    (line,) = path.read_text().splitlines()
    assert '"POST /slow HTTP/1.1' + status in line, line


def test_a_stop_while_the_body_is_spooled_is_logged_as_the_servers_cut(tmp_path: Path) -> None:
    # A quick stop (or harakiri's cut) while the body was read: nginx answers 502, and the
    # access line said 499, the client's.
    from uwsgiapp.wsgi.errors import QuickStop

    def stop(signum: int, frame: object) -> None:  # as a stop's handler cuts (also compiled)
        raise QuickStop(0)

    before = signal.signal(signal.SIGALRM, stop)
    handler, path = _logging_spooler(tmp_path, timeout=10.0)
    client, server = socket.socketpair()
    try:
        with client:
            client.sendall(packet("POST", "/up", os.urandom(200_000))[:100_000])
            signal.setitimer(signal.ITIMER_REAL, 0.3)  # while the rest of the body is awaited
            with pytest.raises(QuickStop):
                handler.handle(server.detach(), "test")
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, before)
    (line,) = path.read_text().splitlines()
    assert '"POST /up HTTP/1.1" 502 ' in line, line


def test_over_limit_post_is_413_before_any_of_the_body_is_read(tmp_path: Path) -> None:
    calls: list[str] = []
    # A directory that cannot be: a body spooled before the refusal would fail there, no 413.
    nowhere = str(tmp_path / "missing")
    handler = make_handler(
        _recording(calls), limit_post=1000, post_buffering=4096, spool_dir=nowhere
    )
    out = run(handler, packet("POST", "/big", os.urandom(300_000)))
    assert out.status_line == "HTTP/1.1 413 Request Entity Too Large"
    assert calls == []


def test_a_bad_content_length_is_still_400(tmp_path: Path) -> None:
    calls: list[str] = []
    handler = make_handler(_recording(calls), post_buffering=4096, spool_dir=str(tmp_path))
    out = run(handler, build_request(nginx_vars("POST", "/x", CONTENT_LENGTH="12abc")))
    assert (out.status, calls) == (400, [])


def test_a_spool_directory_gone_is_the_server_s_error_said_and_answered(
    tmp_path: Path, logs: Logs
) -> None:
    # The directory removed after start (or a full disk, or no fds left): an INFO line blamed
    # the client ("connection error"), nothing was answered (a 502) and nothing logged.
    calls: list[str] = []
    lines: list[tuple[str, int]] = []
    gone = tmp_path / "spool"
    handler = make_handler(
        _recording(calls),
        post_buffering=4096,
        spool_dir=str(gone),
        access_log=lambda env, r, secs, block: lines.append((r.status, r.sent - r.head_size)),
    )
    out = run(handler, packet("POST", "/up", os.urandom(300_000)))
    assert calls == []
    assert out.status_line == "HTTP/1.1 500 Internal Server Error"
    (record,) = problems(logs)
    assert record.levelno == logging.ERROR
    line = one_line(record)
    assert f"cannot hold the body of (POST /up) in {gone}" in line and "No such file" in line
    assert lines == [("500 Internal Server Error", len(out.body))]


def test_a_body_still_read_before_the_app_is_said_in_a_harakiris_line() -> None:
    # A harakiri while --post-buffering read a slow upload named the request and the server's
    # own frames, and read as the app's hang: it now says how much came, and that the app
    # is not called yet.
    import threading
    import time

    from uwsgiapp.server import inflight
    from uwsgiapp.server.spool import spool_body

    client, server = socket.socketpair()
    environ = nginx_vars("POST", "/raw", CONTENT_LENGTH="1000")
    taken: list[Any] = []
    reader = threading.Thread(
        target=lambda: taken.append(
            spool_body(server.fileno(), b"x" * 100, 1000, limit=4096, directory="", timeout=5.0,
                       environ=environ)
        )
    )  # fmt: skip
    try:
        client.sendall(b"y" * 200)
        reader.start()
        deadline = time.monotonic() + 5
        while "300 of" not in (said := _line_of(inflight, environ)):
            assert time.monotonic() < deadline, said
            time.sleep(0.01)
        assert said == (
            "POST /raw (300 of 1000 bytes in with --post-buffering: the app is not called yet)"
        )
        client.sendall(b"z" * 700)
        reader.join(5)
        assert taken[0].read() == b"x" * 100 + b"y" * 200 + b"z" * 700
        assert inflight.RECEIVING not in environ  # the app sees none of it
        assert _line_of(inflight, environ) == "POST /raw"
    finally:
        client.close()
        server.close()


def _line_of(inflight: Any, environ: dict[str, Any]) -> str:
    """What a harakiri's line says of the request whose ``environ`` a frame holds."""
    return str(inflight.request_line(sys._getframe()))
