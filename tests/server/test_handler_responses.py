"""Handler on a socketpair, response shapes: lists, generators, write(), exc_info, bad heads,
HEAD/204/304, wsgi.file_wrapper and sendfile, clients that never read, the access log.

Helpers (the socketpair client, outcomes, apps) are in handler_kit.py.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import sys
import warnings
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import WSGIWarning, validator

import pytest
from handler_kit import (
    GUARD,
    App,
    Environ,
    Logs,
    StartResponse,
    Tracked,
    echo,
    hello,
    make_handler,
    one_line,
    packet,
    problems,
    run,
)

from uwsgiapp.server import inflight
from uwsgiapp.server.throttle import INVALID_LOG_BURST, Burst, body_mismatches
from uwsgiapp.wsgi.input import InputStream
from uwsgiapp.wsgi.response import HeaderError

# wsgiref.validate only *warns* about some contract breaches: make them fail the request.
pytestmark = pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")


# -- response shapes -----------------------------------------------------------------------------


def test_generator_response(logs: Logs) -> None:
    closed: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        try:
            yield b"one "
            yield b""
            yield b"two "
            yield b"three"
        finally:
            closed.append(True)

    out = run(make_handler(validator(app)), packet())
    assert out.status == 200
    assert out.body == b"one two three"
    assert out.header("Content-Length") is None
    assert out.header("Transfer-Encoding") is None  # never chunked over uwsgi
    assert closed == [True]
    assert problems(logs) == []


def test_start_response_inside_the_generator() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        yield b""
        start_response("201 Created", [("Content-Type", "text/plain")])
        yield b"late"

    # PEP 3333 allows it (start_response before the first *non-empty* chunk); wsgiref's
    # validator does not, so it is left out here.
    out = run(make_handler(app), packet())
    assert out.status_line == "HTTP/1.1 201 Created"
    assert out.body == b"late"


def test_big_streamed_response() -> None:
    chunk = bytes(range(256)) * 256  # 64 KiB

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for _ in range(64):
            yield chunk

    out = run(make_handler(validator(app)), packet())
    assert out.body == chunk * 64


def test_big_single_response() -> None:
    body = os.urandom(3 << 20)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
        )
        return [body]

    out = run(make_handler(validator(app)), packet())
    assert out.body == body
    assert out.header("Content-Length") == str(len(body))


def test_write_callable(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"written ")
        write(b"")
        write(b"twice ")
        return [b"then returned"]

    out = run(make_handler(validator(app)), packet())
    assert out.status == 200
    assert out.body == b"written twice then returned"
    assert problems(logs) == []


def test_write_callable_only() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"all of it")
        return []

    assert run(make_handler(validator(app)), packet()).body == b"all of it"


def test_write_non_bytes_is_500() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write("text")
        return []

    assert run(make_handler(app), packet()).status == 500


def test_exc_info_replaces_the_head_before_it_is_sent(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-First", "1")])
        try:
            raise KeyError("handled by the app")
        except KeyError:
            start_response(
                "503 Service Unavailable", [("Content-Type", "text/plain")], sys.exc_info()
            )
        return [b"sorry"]

    out = run(make_handler(validator(app)), packet())
    assert out.status_line == "HTTP/1.1 503 Service Unavailable"
    assert out.header("X-First") is None
    assert out.body == b"sorry"
    assert problems(logs) == []


def test_exc_info_after_the_head_was_sent_reraises(logs: Logs) -> None:
    reraised: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"already sent")
        try:
            raise KeyError("late failure")
        except KeyError:
            try:
                start_response("500 Oops", [("Content-Type", "text/plain")], sys.exc_info())
            except KeyError as exc:
                reraised.append(exc)
                raise
        return [b"never"]

    out = run(make_handler(app), packet())
    assert out.status == 200
    assert out.body == b"already sent"
    assert len(reraised) == 1
    (record,) = problems(logs)
    assert record.exc_info is not None and record.exc_info[0] is KeyError


def test_second_start_response_without_exc_info_is_an_error() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"x"]

    assert run(make_handler(app), packet()).status == 500


@pytest.mark.parametrize("bad", ["text", "", None, 5, [b"x"]], ids=repr)
def test_non_bytes_chunk_is_500(bad: Any, logs: Logs) -> None:
    response = Tracked([bad])

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return response

    out = run(make_handler(app), packet())
    assert out.status == 500
    assert response.closed == 1
    (record,) = problems(logs)
    assert "bytes" in one_line(record)


@pytest.mark.parametrize("bad", ["text", "", None], ids=repr)
def test_non_bytes_chunk_in_a_list_is_500(bad: Any) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[Any]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [bad]

    assert run(make_handler(app), packet()).status == 500


def test_non_bytes_chunk_after_head_cuts() -> None:
    response = Tracked([b"ok so far", "then text"])

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return response

    out = run(make_handler(app), packet())
    assert out.status == 200
    assert out.body == b"ok so far"
    assert response.closed == 1


class ClosingIterator:
    """An iterator object as werkzeug's (every Flask response): ``__iter__`` returns itself."""

    def __init__(self, chunks: list[bytes]) -> None:
        self.chunks = iter(chunks)
        self.iter_calls = 0
        self.closed = 0

    def __iter__(self) -> ClosingIterator:
        self.iter_calls += 1
        return self

    def __next__(self) -> bytes:
        return next(self.chunks)

    def close(self) -> None:
        self.closed += 1


def test_an_iterator_response_is_iterated_once() -> None:
    # uWSGI and gunicorn call iter() on the response once; each call more is a Python call of
    # the app's __iter__ per request.
    response = ClosingIterator([b"Hello ", b"World!"])

    def app(environ: Environ, start_response: StartResponse) -> ClosingIterator:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return response

    out = run(make_handler(app), packet())
    assert (out.status, out.body) == (200, b"Hello World!")
    assert (response.iter_calls, response.closed) == (1, 1)


@pytest.mark.parametrize("result", [None, 5, object()], ids=["None", "int", "object"])
def test_a_result_that_is_not_iterable_is_500_in_one_line(result: Any, logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return result

    assert run(make_handler(app), packet()).status == 500
    (record,) = problems(logs)
    what = "None" if result is None else type(result).__name__
    assert f"app returned {what}, not an iterable of bytes" in one_line(record)


class FailingIter:
    """The app's own ``__iter__`` raises a TypeError, or its sequence's ``__getitem__`` does."""

    def __iter__(self) -> Iterator[bytes]:
        raise TypeError("the app's own bug")


class FailingSequence:
    def __getitem__(self, index: int) -> bytes:
        if index:
            raise TypeError("the app's own bug")
        return b"first"


@pytest.mark.parametrize("result", [FailingIter(), FailingSequence()], ids=["iter", "getitem"])
def test_an_apps_own_type_error_while_iterating_keeps_its_traceback(
    result: Any, logs: Logs
) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "9")])
        return result

    run(make_handler(app), packet())
    (record,) = problems(logs)
    assert record.exc_info is not None
    assert "the app's own bug" in str(record.exc_info[1])


@pytest.mark.parametrize(
    "headers",
    [
        [("X-A", "v\r\nInjected: yes")],
        [("X-A\r\nInjected", "yes")],
        [("X-A", "v\nInjected: yes")],
        [("X-A", "caf\u00e9 \u2603")],
        [("X-A", b"bytes")],
        [("Injected", "yes"), ("X-A", "v\r")],
    ],
    ids=["crlf-value", "crlf-name", "lf", "non-latin1", "bytes", "lone-cr"],
)
def test_bad_header_is_500_and_never_sent(headers: list[tuple[str, Any]], logs: Logs) -> None:
    response = Tracked([b"body"])
    seen: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        try:
            start_response("200 OK", headers)
        except HeaderError as exc:  # refused while the app runs (PEP 3333's advice)
            seen.append(exc)
            raise
        return response

    out = run(make_handler(app), packet())
    assert out.status == 500
    assert b"Injected" not in out.raw
    assert b"body" not in out.raw
    assert len(seen) == 1 and response.closed == 0  # never returned
    (record,) = problems(logs)
    assert f"bad response ({seen[0]})" in one_line(record)


def test_an_app_that_catches_its_bad_head_may_send_another(logs: Logs) -> None:
    """The check at the first body write came after the app had returned: an app's own
    handling around start_response never saw it (gunicorn's check is at the call too)."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            start_response("200 OK", [("X-Name", "caf\u00e9 \u2603")])
        except HeaderError:
            start_response("200 OK", [("X-Name", "cafe")])
        return [b"body"]

    out = run(make_handler(app), packet())
    assert (out.status, out.header("X-Name"), out.body) == (200, "cafe", b"body")
    assert not problems(logs)


def test_a_body_after_a_swallowed_bad_head_names_the_refusal(logs: Logs) -> None:
    """An app that catches the HeaderError and returns a body anyway: the line says why there
    was no head (it said only "body sent before start_response()", pointing away from it)."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        with contextlib.suppress(HeaderError):
            start_response("200 OK", [("X-Name", "a\r\nInjected: 1")])
        return [b"body"]

    out = run(make_handler(app), packet())
    assert out.status == 500 and b"Injected" not in out.raw
    (record,) = problems(logs)
    line = one_line(record)
    assert "response body sent before start_response() (start_response() refused its head: " in line
    assert "X-Name" in line


def test_a_204_goes_without_its_content_length() -> None:
    """RFC 9110 8.6: no Content-Length in a 204 (nginx passed the app's on; gunicorn drops it)."""

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("204 No Content", [("X-A", "1"), ("Content-Length", "5")])
        return [b"12345"]

    out = run(make_handler(app), packet())
    assert (out.status, out.headers, out.body) == (204, [("X-A", "1")], b"")


@pytest.mark.parametrize("status", ["20", "OK", "200 OK\r\nInjected: 1", 200])
def test_bad_status_is_500(status: Any) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response(status, [("Content-Type", "text/plain")])
        return [b"x"]

    out = run(make_handler(app), packet())
    assert out.status == 500
    assert b"Injected" not in out.raw


def test_bad_header_through_write_is_500() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("X-A", "v\r\nInjected: yes")])
        write(b"x")
        return []

    out = run(make_handler(app), packet())
    assert out.status == 500
    assert b"Injected" not in out.raw


# -- HEAD, 204, 304 ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status", "headers"),
    [
        ("HEAD", "200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1234")]),
        ("GET", "204 No Content", []),
        ("GET", "304 Not Modified", [("ETag", '"abc"')]),
        ("DELETE", "204 No Content", []),
    ],
)
def test_bodyless_responses(method: str, status: str, headers: list[tuple[str, str]]) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response(status, headers)
        return []

    out = run(make_handler(validator(app)), packet(method))
    assert out.status_line == f"HTTP/1.1 {status}"
    assert out.body == b""
    assert out.headers == headers  # nothing added: no Content-Length, no Transfer-Encoding


def test_a_head_request_stops_a_streamed_body_once_the_head_is_out() -> None:
    # A plain WSGI view streaming 1 GB for HEAD went on generating until nginx reset the
    # connection (2 MB made, the access log said so): nginx sends the client no body anyway.
    made: list[int] = []
    closed: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        try:
            for i in range(100):
                made.append(i)
                yield b"x" * 65536
        finally:
            closed.append(True)

    out = run(make_handler(app), packet("HEAD", "/big"))
    assert out.status_line == "HTTP/1.1 200 OK"
    assert len(made) == 1 and closed == [True]
    # Nor its first chunk: nginx closes once it has the head (a big one got EPIPE, and the
    # access log counted it as sent, where nginx's $body_bytes_sent is 0).
    assert out.raw.endswith(b"\r\n\r\n")
    run(make_handler(app), packet("GET", "/big"))  # a GET still gets all of it
    assert len(made) == 101

    def one(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "100000")])
        return [b"x" * 100_000]

    logged: list[int] = []
    handler = make_handler(one, access_log=lambda e, r, s, b: logged.append(r.sent - r.head_size))
    out = run(handler, packet("HEAD", "/one"))
    assert out.raw.endswith(b"\r\n\r\n") and b"Content-Length: 100000" in out.raw
    assert logged == [0]

    def raises(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise RuntimeError("boom")

    # The server's own answer too (its 500 here: a text body, counted 22 bytes sent).
    handler = make_handler(
        raises, access_log=lambda e, r, s, b: logged.append(r.sent - r.head_size)
    )
    out = run(handler, packet("HEAD", "/raise"))
    assert out.status == 500 and out.raw.endswith(b"\r\n\r\n")
    assert logged == [0, 0]


# -- the body against the head (PEP 3333's Content-Length, RFC 9110's bodiless statuses) ---------


@pytest.fixture(autouse=True)
def body_lines(monkeypatch: pytest.MonkeyPatch) -> Burst:
    """A fresh burst of body-mismatch lines for each test (the worker's is per process)."""
    fresh = body_mismatches()
    monkeypatch.setattr(inflight, "BODY_LINES", fresh)
    return fresh


def test_a_body_that_does_not_fit_its_head_is_said_a_burst_at_a_time(
    logs: Logs, body_lines: Burst
) -> None:
    # `return jsonify(x), 204` on a busy route: a line per request flooded the log.
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("204 No Content", [])
        return [b"{}"]

    for _ in range(INVALID_LOG_BURST + 5):
        assert run(make_handler(app), packet(uri="/nothing")).body == b""
    assert len(problems(logs)) == INVALID_LOG_BURST
    body_lines.flush()  # as the worker does in its loop, and before it exits
    assert "5 more responses whose body or Content-Length did not fit their head" in one_line(
        problems(logs)[-1]
    )


def test_heads_answered_right_use_none_of_the_burst(logs: Logs) -> None:
    # A health check's HEADs (the GET's Content-Length, no body) took the 20 lines, and the
    # real overrun after them was only a count.
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "5")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"hello, and more"]

    for _ in range(INVALID_LOG_BURST + 5):
        run(make_handler(app), packet("HEAD", "/health"))
    assert problems(logs) == []
    run(make_handler(app), packet(uri="/over"))
    (record,) = problems(logs)
    assert "more body than its head allows (GET /over)" in one_line(record)


def test_a_body_longer_than_its_content_length_is_cut_there_and_its_iteration_stopped(
    logs: Logs,
) -> None:
    # gunicorn stops there too; uWSGI sent all 20 bytes, and nginx logged its own warning.
    response = Tracked([b"0123456789", b"abcdefghij", b"never asked for"])

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Length", "15")])
        return response

    out = run(make_handler(app), packet(uri="/cl-long"))
    assert out.body == b"0123456789abcde" and not out.reset
    assert response.closed == 1 and response.yielded == 2
    (record,) = problems(logs)
    assert "more body than its head allows (GET /cl-long)" in one_line(record)

    def one_item(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "2")])
        return [b"abc"]  # the path a hello world takes

    assert run(make_handler(one_item), packet()).body == b"ab"


def test_a_body_that_fills_its_content_length_exactly_is_not_asked_for_more(logs: Logs) -> None:
    # PEP 3333: stop iterating once enough is sent. A chunk ending right at the length went on
    # to resume the generator, which may block (the next event of a stream) or do work.
    response = Tracked([b"0123456789", b"0123456789", b"never asked for"])

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Length", "10")])
        return response

    out = run(make_handler(app), packet(uri="/exact"))
    assert out.body == b"0123456789" and not out.reset
    assert response.closed == 1 and response.yielded == 1
    assert problems(logs) == []


def test_nothing_is_written_past_the_content_length_once_nginx_has_closed(logs: Logs) -> None:
    # With the head's Content-Length sent, nginx closes; the app's next write() made a write of
    # 0 bytes, which a unix socket refuses (EPIPE): ClientDisconnected in the app, and an INFO
    # "client ... Broken pipe" line instead of the overrun's warning.
    client, server = socket.socketpair()
    raised: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Length", "10")])
        write(b"0123456789")
        assert client.recv(4096, socket.MSG_PEEK)  # nginx has it all, and goes
        client.close()
        try:
            write(b"more")
        except BaseException as exc:
            raised.append(exc)
            raise
        return []

    client.sendall(packet())
    make_handler(app).handle(server.detach(), "test")
    assert raised == []
    (record,) = problems(logs, logging.INFO)
    assert "more body than its head allows (GET /hello)" in one_line(record)


def test_a_body_shorter_than_its_content_length_is_said(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "100")])
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"0123456789"]

    assert run(make_handler(app), packet(uri="/cl-short")).body == b"0123456789"
    (record,) = problems(logs)
    assert record.levelno == logging.ERROR
    assert "90 bytes fewer than its Content-Length (GET /cl-short)" in one_line(record)
    logs.clear()
    run(make_handler(app), packet("HEAD", "/cl-short"))  # a HEAD's is the GET's length
    assert problems(logs) == []


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_no_body_follows_a_bodiless_status(status: str, logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response(status, [("Content-Type", "text/plain")])
        return [b"body-on-", status[:3].encode()]

    out = run(make_handler(app), packet())
    assert out.status_line == f"HTTP/1.1 {status}" and out.body == b""
    (record,) = problems(logs)
    assert "more body than its head allows" in one_line(record)


@pytest.mark.parametrize("status", ["100 Continue", "103 Early Hints", "099 X", "000 X"])
def test_a_status_under_200_is_500(status: str, logs: Logs) -> None:
    # Sent as the final status, nginx took a 1xx for an interim head and waited for another:
    # the client hung until its timeout (curl: "100 0", then "Operation timed out").
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response(status, [("Content-Type", "text/plain")])
        return [b"never"]

    assert run(make_handler(app), packet()).status == 500
    said = one_line(problems(logs)[0])
    assert f"invalid status '{status}': a response's status is 200 or more" in said, said


def test_two_content_lengths_that_differ_are_500(logs: Logs) -> None:
    # Which one frames the body? (uWSGI sent 6 bytes, nginx cut at its first.)
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "5"), ("content-length", "6")])
        return [b"hello!"]

    assert run(make_handler(app), packet()).status == 500
    assert "two Content-Lengths, 5 and 6" in one_line(problems(logs)[0])


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ([("Content-Length", "5"), ("Content-Length", " 5")], None),  # a middleware's add()
        ([("Content-Length", "+5")], "['+5']"),
        ([("Content-Length", "5, 5")], "['5, 5']"),
        ([("Content-Length", "abc")], "['abc']"),
    ],
    ids=["same-twice", "plus", "list", "letters"],
)
def test_a_content_length_nginx_1_22_serves_goes_as_given(
    headers: list[tuple[str, str]], said: str | None, logs: Logs
) -> None:
    # uWSGI and gunicorn send them, and Debian 12's nginx (1.22) serves them: a 500 would be
    # a regression to a user moving from them. nginx 1.23 on answers 502 to one that is not
    # digits, naming it only in nginx's log: ours says so.
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", headers)
        return [b"hello"]

    out = run(make_handler(app), packet())
    assert out.status == 200 and out.body == b"hello" and out.headers == headers
    if said is None:
        assert problems(logs) == []
    else:
        (line,) = [one_line(record) for record in problems(logs)]
        assert f"Content-Length that is not a length ({said}, GET /" in line
        assert "nginx 1.23 and later answer it with 502" in line


@pytest.mark.parametrize(
    ("headers", "said"),
    [
        ([("Content-Length", "5"), ("Content-Length", "abc")], "two Content-Lengths, 5 and 'abc'"),
        ([("Content-Length", ""), ("Content-Length", "5")], "two Content-Lengths, 5 and ''"),
    ],
    ids=["digits-first", "empty-first"],
)
def test_a_content_length_beside_one_that_is_not_digits_is_500(
    headers: list[tuple[str, str]], said: str, logs: Logs
) -> None:
    # Both go out: which one frames the body? nginx 1.23 on answers 502, as for two that
    # differ, and the body was cut at 5 while the access log said 200.
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", headers)
        return [b"hello"]

    assert run(make_handler(app), packet()).status == 500
    assert said in one_line(problems(logs)[0])


def test_a_content_length_of_19_digits_is_not_a_length(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "1" * 19)])
        return [b"hello"]

    assert run(make_handler(app), packet()).body == b"hello"
    assert "that is not a length (['1111111111111111111'], GET /" in one_line(problems(logs)[0])


def test_a_head_request_with_a_content_length_not_digits_is_said_too(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Length", "n/a")])
        return []

    out = run(make_handler(app), packet("HEAD"))
    assert out.status == 200
    assert "not a length (['n/a'], HEAD /" in one_line(problems(logs)[0])


# -- wsgi.file_wrapper ---------------------------------------------------------------------------


def opener(path: Path, seek: int = 0) -> Callable[[], Any]:
    """Open ``path`` per request; wsgi.file_wrapper's close() closes it."""

    def open_file() -> Any:
        f = open(path, "rb")  # noqa: SIM115
        f.seek(seek)
        return f

    return open_file


@pytest.fixture
def sendfile_calls(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    real = os.sendfile

    def spy(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        calls.append(count)
        return real(out_fd, in_fd, offset, count)

    monkeypatch.setattr(os, "sendfile", spy)
    return calls


def file_app(
    opener: Callable[[], Any],
    headers: list[tuple[str, str]] | None = None,
    seen: list[Any] | None = None,
) -> App:
    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        f = opener()
        if seen is not None:
            seen.append(f)
        start_response("200 OK", headers or [("Content-Type", "application/octet-stream")])
        return environ["wsgi.file_wrapper"](f, 8192)  # type: ignore[no-any-return]

    return app


def test_file_wrapper_real_file_uses_sendfile(tmp_path: Path, sendfile_calls: list[int]) -> None:
    data = os.urandom((2 << 20) + 123)
    path = tmp_path / "big.bin"
    path.write_bytes(data)
    opened: list[Any] = []
    headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(data)))]
    out = run(make_handler(file_app(opener(path), headers, opened)), packet())
    assert out.status == 200
    assert out.header("Content-Length") == str(len(data))
    assert out.body == data
    assert sendfile_calls
    assert opened[0].closed  # FileWrapper.close() closed the file


def test_a_head_request_for_a_file_sends_the_head_alone(
    tmp_path: Path, sendfile_calls: list[int], logs: Logs
) -> None:
    # Django's FileResponse leaves a HEAD's body to the server: the whole file went to nginx.
    path = tmp_path / "big.bin"
    path.write_bytes(os.urandom(1 << 20))
    headers = [("Content-Type", "application/octet-stream"), ("Content-Length", str(1 << 20))]
    opened: list[Any] = []
    out = run(make_handler(file_app(opener(path), headers, opened)), packet("HEAD", "/f"))
    assert out.status == 200 and out.header("Content-Length") == str(1 << 20)
    assert out.body == b"" and sendfile_calls == []
    assert opened[0].closed and problems(logs) == []
    iterated = run(make_handler(file_app(lambda: io.BytesIO(b"x" * 100))), packet("HEAD", "/f"))
    assert iterated.status == 200 and iterated.body == b""


@pytest.mark.parametrize("module", ["gzip", "bz2", "lzma"])
def test_file_wrapper_of_a_decompressing_reader_sends_what_it_reads(
    tmp_path: Path, sendfile_calls: list[int], module: str
) -> None:
    # gzip.open's reader has the compressed file's fileno: sendfile sent the compressed bytes.
    import importlib

    compressor = importlib.import_module(module)
    data = b"plain text, many times over\n" * 5000
    path = tmp_path / f"data.{module}"
    with compressor.open(path, "wb") as f:
        f.write(data)
    out = run(make_handler(file_app(lambda: compressor.open(path, "rb"))), packet())
    assert out.status == 200 and out.body == data
    assert sendfile_calls == []


def test_file_wrapper_sends_from_the_current_position(
    tmp_path: Path, sendfile_calls: list[int]
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"0123456789" * 100)

    out = run(make_handler(file_app(opener(path, 995))), packet())
    assert out.body == b"56789"
    assert sendfile_calls


def test_file_wrapper_sends_no_more_than_the_apps_content_length(
    tmp_path: Path, sendfile_calls: list[int], logs: Logs
) -> None:
    # A slice of a file: seek to it, say its length (PEP 3333: the server stops there).
    path = tmp_path / "f.txt"
    path.write_bytes(b"0123456789" * 100)
    headers = [("Content-Type", "text/plain"), ("Content-Length", "7")]
    out = run(make_handler(file_app(opener(path, 903), headers)), packet())
    assert out.raw.endswith(b"\r\n\r\n3456789"), out.raw[-40:]  # nothing after the slice
    assert sendfile_calls == [7]
    # The same slice of a file that sendfile cannot send (iterated): cut there, no warning.
    data = io.BytesIO(path.read_bytes()[903:])
    logs.clear()
    out = run(make_handler(file_app(lambda: data, headers)), packet())
    assert out.body == b"3456789" and problems(logs) == []
    # Read in 7-byte blocks, the length is reached at a block's end: not read a block further.
    reads: list[int] = []

    class Counted(io.BytesIO):
        def read(self, size: int | None = -1) -> bytes:
            reads.append(size or -1)
            return super().read(size)

    def blocks(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        start_response("200 OK", headers)
        wrapper = environ["wsgi.file_wrapper"]
        return wrapper(Counted(path.read_bytes()[903:]), 7)  # type: ignore[no-any-return]

    assert run(make_handler(blocks), packet()).body == b"3456789"
    assert reads == [7] and problems(logs) == []


@pytest.mark.parametrize("length", ["10", None])
def test_a_file_that_shrinks_while_sent_is_said_as_such(
    tmp_path: Path, logs: Logs, length: str | None
) -> None:
    # It was "app sent 7 bytes fewer than its Content-Length", blaming the app; without a
    # Content-Length the client took the 3 bytes for the whole file, and nothing was said.
    path = tmp_path / "f.bin"
    path.write_bytes(b"0123456789")

    class Shrinking(io.FileIO):
        def tell(self) -> int:  # asked after its size was taken: a writer truncates it now
            os.truncate(path, 3)
            return super().tell()

    headers = [("Content-Type", "application/octet-stream")]
    headers += [("Content-Length", length)] if length else []
    out = run(make_handler(file_app(lambda: Shrinking(path), headers)), packet(uri="/dl"))
    assert out.body == b"012"
    (record,) = problems(logs)
    assert "the response's file ended after 3 of its 10 bytes (GET /dl): it shrank" in one_line(
        record
    )


def test_file_wrapper_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "empty"
    path.write_bytes(b"")
    out = run(make_handler(file_app(opener(path))), packet())
    assert out.status == 200
    assert out.body == b""


def test_file_wrapper_bytesio_iterates(sendfile_calls: list[int]) -> None:
    data = os.urandom(100_000)
    opened: list[Any] = []
    out = run(make_handler(validator(file_app(lambda: io.BytesIO(data), seen=opened))), packet())
    assert out.body == data
    assert sendfile_calls == []
    assert opened[0].closed


def test_file_wrapper_through_middleware_still_works(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"abc" * 10000)
    out = run(make_handler(validator(file_app(opener(path)))), packet())
    assert out.body == b"abc" * 10000


def test_file_wrapper_pipe_iterates(sendfile_calls: list[int]) -> None:
    r, w = os.pipe()
    os.write(w, b"from a pipe")
    os.close(w)
    out = run(make_handler(file_app(lambda: os.fdopen(r, "rb"))), packet())
    assert out.body == b"from a pipe"
    assert sendfile_calls == []


def test_file_wrapper_without_start_response_is_500(tmp_path: Path) -> None:
    path = tmp_path / "f.bin"
    path.write_bytes(b"secret")

    def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        return environ["wsgi.file_wrapper"](opener(path)())  # type: ignore[no-any-return]

    out = run(make_handler(app), packet())
    assert out.status == 500
    assert b"secret" not in out.raw


# -- sending -------------------------------------------------------------------------------------


def test_client_that_never_reads_times_out(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for _ in range(64):
            yield bytes(1 << 16)

    out = run(make_handler(app, timeout=0.3), packet(), read_after_handle=True)
    assert 0.25 < out.seconds < 2.0
    assert len(out.raw) < 64 << 16
    (record,) = problems(logs, logging.INFO)
    assert "timed out" in one_line(record)


def test_a_client_that_never_reads_a_write_callable_response_is_named_as_such(
    logs: Logs,
) -> None:
    # write() raised in the app's call: it was logged as gone "while the app read its body"
    # (a GET without one), naming no request, and the connection was not cut.
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for _ in range(64):
            write(bytes(1 << 16))
        return []

    out = run(make_handler(app, timeout=0.3), packet(uri="/export"), read_after_handle=True)
    assert len(out.raw) < 64 << 16
    (record,) = problems(logs, logging.INFO)
    line = one_line(record)
    assert "timed out" in line and "(GET /export)" in line and "read its body" not in line


def body_of(response: Any) -> tuple[str, int, int]:
    """What the access log takes of a response: status, body bytes, headers."""
    return (response.status, response.sent - response.head_size, len(response.headers))


@pytest.mark.parametrize("arrives", ["at-once", "head-in-two", "body-later"])
def test_access_log(logs: Logs, arrives: str) -> None:
    lines: list[tuple[str, str, int, float]] = []
    heads: list[tuple[int, int]] = []
    blocks: list[bytes] = []

    def log(env: Environ, response: Any, secs: float, block: bytes) -> None:
        lines.append((env["PATH_INFO"], response.status, response.sent - response.head_size, secs))
        heads.append((response.head_size, len(response.headers)))
        blocks.append(block)

    body = b"x" * 100 if arrives == "body-later" else b""
    sent = packet("POST" if body else "GET", "/logged", body)
    block_end = 4 + int.from_bytes(sent[1:3], "little")
    # The head parked mid-block (the decoder's path) or whole with its body still coming.
    cut = {"at-once": len(sent), "head-in-two": 20, "body-later": block_end + 10}[arrives]
    handler = make_handler(validator(hello), access_log=log)
    out = run(handler, [sent[:cut], sent[cut:]] if sent[cut:] else sent, pause=0.05)
    # The var block as it arrived, for the line's "{N vars in N bytes}" (uWSGI's figures).
    assert blocks == [sent[4:block_end]]
    ((path, status, sent_bytes, seconds),) = lines
    # The body only, as uWSGI's "generated N bytes" and nginx's $body_bytes_sent; the head's
    # bytes and headers apart, as uWSGI's "N headers in N bytes".
    assert (path, status, sent_bytes) == ("/logged", "200 OK", len(out.body))
    assert heads == [(len(out.raw) - len(out.body), 2)]
    assert 0 < len(out.body) < len(out.raw)
    assert 0 <= seconds < GUARD


@pytest.mark.parametrize("size", [5, 70_000], ids=["with-the-head", "after-the-head"])
def test_access_log_when_nginx_left_before_the_answer(size: int) -> None:
    # uwsgi_read_timeout shorter than the app: nothing reached nginx, and the log says so
    # (uWSGI: "generated 0 bytes ... in 0 bytes"); it said -45, the head counted unsent.
    lines: list[tuple[str, int, int]] = []
    client, server = socket.socketpair()
    client.sendall(packet(uri="/slow"))

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        client.close()  # nginx gave up
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"x" * size]

    handler = make_handler(app, access_log=lambda env, r, secs, block: lines.append(body_of(r)))
    handler.handle(server.detach(), "test")
    ((status, body, _),) = lines
    assert (status, body) == ("200 OK", 0)


@pytest.mark.parametrize("how", ["app-raised", "refused"])
def test_access_log_of_an_error_answer_nginx_left_before(how: str) -> None:
    # The 500 for an app that raised, the 400 for a bad CONTENT_LENGTH: not written either.
    lines: list[tuple[str, int, int]] = []
    client, server = socket.socketpair()
    extra = {"CONTENT_LENGTH": "abc"} if how == "refused" else {}
    client.sendall(packet(uri="/gone", **extra))
    client.close()

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise RuntimeError("after nginx left")

    handler = make_handler(app, access_log=lambda env, r, secs, block: lines.append(body_of(r)))
    handler.handle(server.detach(), "test")
    ((status, body, _),) = lines
    assert status[:3] in ("500", "400") and body == 0


def test_access_log_after_an_app_error() -> None:
    lines: list[tuple[str, int]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise RuntimeError

    handler = make_handler(app, access_log=lambda env, r, secs, block: lines.append(body_of(r)))
    out = run(handler, packet())
    assert lines == [("500 Internal Server Error", len(out.body), 2)]


def test_no_warnings_from_the_validator_on_the_common_path() -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("error", WSGIWarning)
        assert run(make_handler(validator(echo)), packet("POST", "/x", b"abc")).body == b"abc"


def test_input_stream_type() -> None:
    seen: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["wsgi.input"])
        return echo(environ, start_response)

    run(make_handler(app), packet("POST", "/x", b"abc"))
    assert isinstance(seen[0], InputStream)


@pytest.mark.parametrize("post_buffering", [0, 4096])
def test_a_head_over_nginx_s_default_buffer_is_said_once(
    logs: Logs, monkeypatch: pytest.MonkeyPatch, post_buffering: int
) -> None:
    # nginx answers 502 "upstream sent too big header" under its default uwsgi_buffer_size;
    # the spooling responder (--post-buffering) said nothing of it: a login POST setting big
    # cookies is where it happens.
    monkeypatch.setattr(inflight, "_BIG_HEAD_SAID", [])

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        environ["wsgi.input"].read()
        start_response("200 OK", [("Content-Type", "text/plain"), ("Set-Cookie", "x" * 5000)])
        return [b"ok"]

    handler = make_handler(app, post_buffering=post_buffering)
    for _ in range(2):
        assert run(handler, packet("POST", "/login", b"u=1" * 3000)).status == 200
    said = [one_line(r) for r in problems(logs) if "uwsgi_buffer_size" in r.getMessage()]
    assert len(said) == 1 and "(POST /login)" in said[0], said
