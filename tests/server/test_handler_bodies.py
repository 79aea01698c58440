"""Handler on a socketpair, request bodies: CONTENT_LENGTH refused before the app, bodies read
whole or streamed, the drain of an unread body, stalled and vanishing clients, parking.

Helpers (the socketpair client, outcomes, apps) are in handler_kit.py.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
from handler_kit import (
    GUARD,
    Environ,
    Logs,
    StartResponse,
    echo,
    hello,
    make_handler,
    never_called,
    nginx_vars,
    one_line,
    packet,
    problems,
    read_all,
    run,
)

from uwsgiapp.server import transfer
from uwsgiapp.server.intake import PREREAD, Pending
from uwsgiapp.wsgi.input import ClientDisconnected
from uwsgiproto import build_request

# wsgiref.validate only *warns* about some contract breaches: make them fail the request.
pytestmark = pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")


# -- refused before the app: CONTENT_LENGTH ------------------------------------------------------


FULLWIDTH_12 = "\uff11\uff12".encode().decode("latin-1")  # as nginx passes UTF-8 on


@pytest.mark.parametrize("value", ["-1", "1e3", " 12", FULLWIDTH_12, "12abc", "0x10"])
def test_bad_content_length_is_400(value: str, logs: Logs) -> None:
    out = run(make_handler(never_called), packet("POST", CONTENT_LENGTH=value))
    assert out.status_line == "HTTP/1.1 400 Bad Request"
    assert int(out.header("Content-Length") or -1) == len(out.body)
    (record,) = problems(logs)
    assert "CONTENT_LENGTH" in one_line(record)
    if value == FULLWIDTH_12:  # as the client wrote it, not its bytes' latin-1 view
        assert "invalid CONTENT_LENGTH '\uff11\uff12'" in one_line(record), one_line(record)


def test_content_length_over_limit_post_is_413(logs: Logs) -> None:
    body = b"x" * 100_000
    out = run(make_handler(never_called, limit_post=1000), packet("POST", "/up", body))
    assert out.status_line == "HTTP/1.1 413 Request Entity Too Large"
    assert int(out.header("Content-Length") or -1) == len(out.body)
    # The refused body is drained like any unread body: no reset, nginx shows the 413.
    assert not out.reset
    assert out.write_error is None
    (record,) = problems(logs)
    one_line(record)


def test_a_refused_body_past_the_drain_cap_is_read_away_whole(
    monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    # nginx's client_max_body_size 200m, --limit-post 1m, a 20 MB upload: the refusal read
    # away 16 MiB, the close reset the rest, and nginx answered 502, not the 413.
    monkeypatch.setattr(transfer, "DRAIN_CAP", 65536)
    out = run(make_handler(never_called, limit_post=1000), packet("POST", "/up", bytes(1 << 20)))
    assert out.status_line == "HTTP/1.1 413 Request Entity Too Large"
    assert not out.reset and out.write_error is None
    assert not [r for r in problems(logs, logging.WARNING) if "unread" in one_line(r)]


def test_a_drain_holds_the_worker_no_longer_than_its_time(
    monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    # A refused body is read away up to 1 GiB: a client sending it slowly (with nginx's
    # uwsgi_request_buffering off) held the worker as long as it went on sending.
    monkeypatch.setattr(transfer, "DRAIN_SECONDS", -1.0)
    out = run(make_handler(never_called, limit_post=1000), packet("POST", "/up", bytes(1 << 20)))
    assert out.status_line == "HTTP/1.1 413 Request Entity Too Large"
    (record,) = [r for r in problems(logs, logging.WARNING) if "unread" in one_line(r)]
    assert "after draining 0 in " in one_line(record)
    assert "(a drain goes on for -1 s at most, and while the body comes at 256 KiB/s" in (
        one_line(record)
    )


def test_a_drain_lets_a_trickling_peer_go(logs: Logs) -> None:
    # --limit-post 1000 and a 1 GB CONTENT_LENGTH, then a byte every 50 ms: the 413 went at
    # once, then the worker read the trickle for the drain's 30 s, every other request waiting
    # (uWSGI closes at once); nginx's buffered body comes at memory speed, far over the floor.
    ours, peer = socket.socketpair()
    stop = threading.Event()

    def trickle() -> None:
        with peer:
            for _ in range(600):  # 30 s of it, if the drain read on
                if stop.wait(0.05):
                    return
                try:
                    peer.send(b"x")
                except OSError:
                    return

    sender = threading.Thread(target=trickle)
    sender.start()
    try:
        with ours:
            transfer.drain(ours.fileno(), 10**9, 10.0, transfer.REFUSED_DRAIN_CAP)
        assert sender.is_alive(), "the drain read the whole trickle"
    finally:
        stop.set()
        sender.join()
    (record,) = [r for r in problems(logs, logging.WARNING) if "unread" in one_line(r)]
    said = one_line(record)
    drained = int(said.split("after draining ")[1].split()[0])
    assert 0 < drained < 100, said  # a second's worth or so, not the 30 s's 600 bytes
    assert "while the body comes at 256 KiB/s or faster" in said


def test_a_brisk_drain_reads_the_whole_body(logs: Logs) -> None:
    ours, peer = socket.socketpair()
    body = bytes(4 << 20)
    sender = threading.Thread(target=peer.sendall, args=(body,))
    sender.start()
    with ours:
        transfer.drain(ours.fileno(), len(body), 10.0, transfer.REFUSED_DRAIN_CAP)
        sender.join()
        peer.close()
    assert not [r for r in problems(logs, logging.WARNING) if "unread" in one_line(r)]


@pytest.mark.parametrize("limit_post", [0, 1000])
def test_absurd_content_length_is_413(limit_post: int, logs: Logs) -> None:
    out = run(
        make_handler(never_called, limit_post=limit_post), packet("POST", CONTENT_LENGTH="9" * 30)
    )
    assert out.status_line == "HTTP/1.1 413 Request Entity Too Large"
    (record,) = problems(logs)
    one_line(record)


def test_content_length_at_limit_post_is_served() -> None:
    body = b"x" * 1000
    out = run(make_handler(validator(echo), limit_post=1000), packet("POST", "/up", body))
    assert out.status == 200
    assert out.body == body


def test_refused_requests_are_access_logged() -> None:
    lines: list[tuple[str, int]] = []
    handler = make_handler(
        never_called,
        limit_post=10,
        access_log=lambda env, r, secs, block: lines.append((r.status, r.sent - r.head_size)),
    )
    out = run(handler, packet("POST", "/up", b"x" * 11))
    assert lines == [("413 Request Entity Too Large", len(out.body))]


# -- request bodies ------------------------------------------------------------------------------


def test_post_body_in_the_first_read(logs: Logs) -> None:
    body = b"k=v&x=" + b"y" * 1000
    out = run(make_handler(validator(echo)), packet("POST", "/form", body))
    assert out.body == body
    assert problems(logs) == []


def test_post_body_spread_over_writes() -> None:
    body = os.urandom(300_000)
    data = packet("PUT", "/up", body)
    pieces = [data[:100], data[100:5000]] + [
        data[i : i + 40000] for i in range(5000, len(data), 40000)
    ]
    out = run(make_handler(validator(echo)), pieces, pause=0.005)
    assert out.body == body


def test_empty_post_body() -> None:
    seen: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["wsgi.input"].read())
        return hello(environ, start_response)

    out = run(make_handler(app), packet("POST", CONTENT_LENGTH="0"))
    assert out.status == 200
    assert seen == [b""]


def test_body_by_lines() -> None:
    lines = [b"line %d\n" % i for i in range(20000)]
    body = b"".join(lines)
    seen: list[list[bytes]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        stream = environ["wsgi.input"]
        first = stream.readline()
        limited = stream.readline(3)
        rest = stream.readlines(50)
        seen.append([first, limited, *rest, *stream])
        return hello(environ, start_response)

    out = run(make_handler(validator(app)), packet("POST", "/lines", body))
    assert out.status == 200
    got = seen[0]
    assert got[0] == lines[0]
    assert got[1] == b"lin"
    assert b"".join(got) == body


def test_body_beyond_content_length_is_not_the_apps() -> None:
    data = build_request(nginx_vars("POST", "/x", CONTENT_LENGTH="3"), b"abcEXTRA")
    out = run(make_handler(validator(echo)), data)
    assert out.body == b"abc"


def test_app_ignoring_a_big_body_gets_drained(logs: Logs) -> None:
    body = os.urandom(1 << 20)
    calls: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        calls.append(1)
        start_response(
            "401 Unauthorized", [("Content-Type", "text/plain"), ("Content-Length", "6")]
        )
        return [b"denied"]

    data = packet("POST", "/upload", body)
    out = run(
        make_handler(validator(app)),
        [data[:20000]] + [data[i : i + 65536] for i in range(20000, len(data), 65536)],
    )
    assert out.status == 401
    assert out.body == b"denied"
    assert out.write_error is None  # the whole body went in: no EPIPE / ECONNRESET
    assert not out.reset
    assert calls == [1]
    assert problems(logs) == []


def test_early_answer_ends_before_the_body_is_drained(logs: Logs) -> None:
    # The drain starts by ending our side: the client sees the end of the response (EOF) while
    # the server still waits for the rest of the body. A client that sends the rest only once
    # the answer is over (or stops sending on an answer) is not held for the socket timeout.
    timeout = 3.0
    body = os.urandom(1 << 20)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response(
            "401 Unauthorized", [("Content-Type", "text/plain"), ("Content-Length", "6")]
        )
        return [b"denied"]

    data = packet("POST", "/upload", body)
    client, server = socket.socketpair()
    client.settimeout(GUARD)
    fd = server.detach()
    handler = make_handler(validator(app), timeout=timeout)
    served = threading.Event()

    def serve() -> None:
        handler.handle(fd, "test")
        served.set()

    thread = threading.Thread(target=serve, daemon=True)
    try:
        client.sendall(data[:20000])  # the head and the start of the body
        started = time.monotonic()
        thread.start()
        raw, reset = read_all(client)  # to EOF, the rest of the body not sent yet
        eof_after = time.monotonic() - started
        assert raw.startswith(b"HTTP/1.1 401 Unauthorized\r\n") and raw.endswith(b"\r\n\r\ndenied")
        assert not reset
        assert eof_after < timeout / 2, f"EOF after {eof_after:.2f} s: only once the drain ended"
        assert not served.is_set()  # still draining: the EOF came first
        client.sendall(data[20000:])  # the server reads it all away: no EPIPE, no reset
        thread.join(GUARD)
        assert served.is_set()
    finally:
        client.close()
    assert problems(logs) == []


def test_app_reading_part_of_the_body_gets_the_rest_drained() -> None:
    body = os.urandom(500_000)

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        environ["wsgi.input"].read(1000)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"partial"]

    out = run(make_handler(validator(app)), packet("POST", "/upload", body))
    assert out.body == b"partial"
    assert out.write_error is None
    assert not out.reset


def test_drain_stops_at_the_cap(monkeypatch: pytest.MonkeyPatch, logs: Logs) -> None:
    monkeypatch.setattr(transfer, "DRAIN_CAP", 65536)
    body = bytes(1 << 20)
    out = run(make_handler(validator(hello)), packet("POST", "/upload", body))
    assert out.body == b"Hello, World!"
    assert out.write_error is not None or out.reset  # past the cap, the rest is refused
    (record,) = problems(logs, logging.WARNING)
    assert "unread" in one_line(record) and "client_max_body_size" in one_line(record)


def test_a_drain_that_nginx_ends_by_closing_warns_of_nothing(
    monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    # nginx, the answer whole, closes the connection: the drain read EOF, yet warned that the
    # close "resets" 100 MB of body it had not read (nginx answered 200; nothing was reset).
    monkeypatch.setattr(transfer, "DRAIN_CAP", 65536)
    data = packet("POST", "/upload", bytes(1 << 20))
    client, server = socket.socketpair()
    client.settimeout(GUARD)
    fd = server.detach()
    thread = threading.Thread(
        target=make_handler(validator(hello)).handle, args=(fd, "test"), daemon=True
    )
    try:
        client.sendall(data[:20000])
        thread.start()
        raw, _ = read_all(client)  # the whole answer: our side ended
        assert raw.endswith(b"Hello, World!")
    finally:
        client.close()
    thread.join(GUARD)
    assert not thread.is_alive()
    assert problems(logs, logging.WARNING) == []


def test_drain_reads_away_a_body_up_to_limit_post(
    monkeypatch: pytest.MonkeyPatch, logs: Logs
) -> None:
    # nginx's client_max_body_size 25M, --limit-post the same, a Django view answering 403 or
    # a login redirect to a 20 MB upload without reading it: past the 16 MiB cap the close
    # reset the rest over TCP, and nginx answered 502. A body --limit-post accepted is read
    # away whole.
    monkeypatch.setattr(transfer, "DRAIN_CAP", 65536)
    body = bytes(1 << 20)
    handler = make_handler(validator(hello), limit_post=2 << 20)
    out = run(handler, packet("POST", "/upload", body))
    assert out.body == b"Hello, World!"
    assert out.write_error is None
    assert not out.reset
    assert problems(logs, logging.WARNING) == []


def test_a_stall_as_an_iterable_reads_the_body_before_its_head_is_a_408(logs: Logs) -> None:
    # A generator that reads wsgi.input before its first yield: the stall was a bare close
    # (nginx's 502) and a 499 in the access log, where the app's call got a 408.
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield environ["wsgi.input"].read()

    data = packet("POST", "/upload", bytes(PREREAD + 10_000))
    out = run(make_handler(app, timeout=0.4), b"", preload=data[:-5000])
    assert out.status_line == "HTTP/1.1 408 Request Timeout"
    (record,) = problems(logs, logging.INFO)
    said = one_line(record)
    assert "stalled while the app read its body: read timed out" in said, said
    # Which client and request (it named only the connection: nginx's socket).
    assert said.startswith("client 127.0.0.1 via test stalled"), said
    assert said.endswith("; answered 408 (POST /upload)"), said


def test_client_closing_mid_body(logs: Logs) -> None:
    errors: list[BaseException] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read(200_000)
        except Exception as exc:
            errors.append(exc)
            raise
        raise AssertionError("read returned")

    data = packet("POST", "/upload", bytes(200_000))
    out = run(make_handler(app), data[:50_000], shut_wr=True)
    assert out.raw == b""
    assert len(errors) == 1
    assert isinstance(errors[0], ClientDisconnected)
    assert isinstance(errors[0], OSError)
    (record,) = problems(logs, logging.INFO)
    assert "test" in one_line(record)


def test_a_small_body_cut_short_while_parked_is_said_with_its_client_and_access_logged(
    logs: Logs,
) -> None:
    # Read before the app (up to PREREAD): the line named only the socket ("client test"),
    # with neither the request nor nginx's REMOTE_ADDR, and no access line was written
    # (a stall of the same body gets its 408 line).
    lines: list[tuple[str | None, bool, str]] = []
    handler = make_handler(
        never_called,
        access_log=lambda env, r, secs, block: lines.append(
            (r.sent_status, r.aborted, env["PATH_INFO"])
        ),
    )
    data = packet("POST", "/short", bytes(1000))
    out = run(handler, [data[:-600], data[-600:-400]], pause=0.1, shut_wr=True)
    assert out.raw == b""
    (record,) = problems(logs, logging.INFO)
    said = one_line(record)
    assert said.startswith("client 127.0.0.1 via test: client closed the connection"), said
    assert said.endswith(
        ": 600 of 1000 bytes of its body in (POST /short); the app is not called"
    ), said
    assert lines == [(None, False, "/short")]  # the access log's 499: the client left


def test_a_small_body_whose_client_left_before_the_head_was_read_is_said_alike(
    logs: Logs,
) -> None:
    # The close already queued behind the head (the connection waited in the backlog): read
    # before parking, it was said as "client test: client closed ...", with no request, no
    # REMOTE_ADDR and no access line.
    lines: list[tuple[str | None, str]] = []
    handler = make_handler(
        never_called,
        access_log=lambda env, r, secs, block: lines.append((r.sent_status, env["PATH_INFO"])),
    )
    client, server = socket.socketpair()
    data = packet("POST", "/queued", bytes(1000))
    client.sendall(data[:-700])
    client.shutdown(socket.SHUT_WR)
    handler.handle(server.detach(), "test")  # closes it
    assert client.recv(100) == b""
    client.close()
    (record,) = problems(logs, logging.INFO)
    said = one_line(record)
    assert said.startswith("client 127.0.0.1 via test: client closed the connection"), said
    assert said.endswith(": 300 of 1000 bytes of its body in (POST /queued); the app is not called")
    assert lines == [(None, "/queued")]


def test_app_catching_the_disconnect_can_still_answer(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read(200_000)
        except OSError:
            environ["CONTENT_LENGTH"] = 5  # the app's own: the line counts from the server's
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"incomplete body"]
        raise AssertionError("read returned")

    data = packet("POST", "/upload", bytes(200_000))
    out = run(make_handler(app), data[:50_000], shut_wr=True)
    assert out.status == 400
    assert out.body == b"incomplete body"
    # Said by the server, once: the app's 400 does not say the client left, nor how much came
    # (Django answers 500 to an upload cut short, and the log had only its "Broken pipe").
    (record,) = problems(logs, logging.INFO)
    said = one_line(record)
    assert said.startswith("client 127.0.0.1 via test went away while the app read its body"), said
    came = 50_000 - (len(data) - 200_000)
    assert f"({came} of 200000 bytes came: client closed the connection" in said, said
    assert said.endswith("the app caught it and went on: answered 400 (POST /upload)"), said


def test_a_caught_body_failure_whose_answer_fails_too_is_one_line_under_a_middlewares_input(
    logs: Logs,
) -> None:
    # The client closed mid-body: the app (its middleware's wsgi.input in place of the
    # server's) caught the read's failure, and its answer failed too. The server looked at
    # wsgi.input for the body's failure, did not find it, and said the client left twice.
    class Wrapped:
        def __init__(self, stream: Any) -> None:
            self.read = stream.read

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        environ["wsgi.input"] = Wrapped(environ["wsgi.input"])
        try:
            environ["wsgi.input"].read(200_000)
        except OSError:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"x" * 1_000_000]  # over the socket's buffer: the write fails
        raise AssertionError("read returned")

    client, server = socket.socketpair()
    client.sendall(packet("POST", "/upload", bytes(200_000))[:50_000])
    client.close()
    make_handler(app).handle(server.detach(), "test")
    (record,) = problems(logs, logging.INFO)
    said = one_line(record)
    assert said.startswith("client 127.0.0.1 via test went away while the app read its body"), said
    assert "the app caught it and went on: " in said, said


def test_stalled_body_times_out(logs: Logs) -> None:
    failures: list[tuple[type[BaseException], float]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        started = time.perf_counter()
        try:
            environ["wsgi.input"].read()
        except ClientDisconnected as exc:
            failures.append((type(exc), time.perf_counter() - started))
            raise
        raise AssertionError("read returned")

    # Over PREREAD: the app reads it as it comes (smaller bodies are read before the app runs).
    data = packet("POST", "/upload", bytes(PREREAD + 10_000))
    # Written before the handler starts: its clock measures the server, not this thread.
    out = run(make_handler(app, timeout=0.4), b"", preload=data[:-5000])  # never sends the rest
    assert out.status_line == "HTTP/1.1 408 Request Timeout"  # nginx's 502 for a close
    ((kind, waited),) = failures
    assert issubclass(kind, ClientDisconnected)
    assert 0.35 < waited < 1.5
    # one timeout, not a second one while draining a body that will never come (>= 0.8 s)
    assert out.seconds < 0.75
    (record,) = problems(logs, logging.INFO)
    assert "timed out" in one_line(record) and "answered 408" in one_line(record)


def test_stalled_body_answered_by_the_app_is_not_drained(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError:
            start_response("408 Request Timeout", [("Content-Type", "text/plain")])
            return [b"too slow"]
        raise AssertionError("read returned")

    data = packet("POST", "/upload", bytes(PREREAD + 10_000))
    out = run(make_handler(app, timeout=0.4), b"", preload=data[:-5000])
    assert out.status == 408
    assert out.seconds < 0.75
    (record,) = problems(logs, logging.INFO)
    said = one_line(record)
    assert f"stalled while the app read its body ({PREREAD + 5000} of" in said, said
    assert "read timed out" in said and "went on: answered 408 (POST /upload)" in said, said


def test_a_body_failure_the_app_lets_through_is_said_once(logs: Logs) -> None:
    # Read after the head went out, let through: said as the app's mistake, not as caught.
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"first"
        yield environ["wsgi.input"].read()

    data = packet("POST", "/upload", bytes(PREREAD + 10_000))
    run(make_handler(app, timeout=0.4), b"", preload=data[:-5000])
    (record,) = problems(logs, logging.INFO)
    assert "caught" not in one_line(record), one_line(record)


def test_stalled_unread_body_drain_gives_up_after_the_timeout() -> None:
    data = packet("POST", "/upload", bytes(PREREAD + 10_000))
    out = run(make_handler(validator(hello), timeout=0.3), b"", preload=data[:-5000])
    assert out.body == b"Hello, World!"
    assert out.seconds < 1.0


def test_small_body_is_read_before_the_app_and_a_stalled_one_gets_408(
    logs: Logs, tmp_path: Path
) -> None:
    from uwsgiapp.server.logs import make_access_log

    called: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(True)
        start_response("200 OK", [])
        return [b""]

    data = packet("POST", "/upload", bytes(10_000))
    access = make_access_log("combined", str(tmp_path / "access.log"))
    out = run(make_handler(app, timeout=0.3, access_log=access), data[:-5000])
    assert called == []
    assert out.status == 408
    assert 0.25 < out.seconds < 1.5
    (record,) = problems(logs, logging.INFO)
    assert "its body incomplete, read timed out" in one_line(record)
    # Its access line (a --log-4xx count missed these 408s): the time is the stall's.
    (line,) = (tmp_path / "access.log").read_text().splitlines()
    assert '"POST /upload HTTP/1.1" 408 8 ' in line, line


def test_small_body_sent_in_pieces_reaches_the_app_whole() -> None:
    seen: list[bytes] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["wsgi.input"].read())
        start_response("200 OK", [])
        return [b"ok"]

    body = os.urandom(30_000)
    data = packet("POST", "/upload", body)
    pieces = [data[:100], data[100:9000], data[9000:20_000], data[20_000:]]
    out = run(make_handler(app), pieces, pause=0.05)
    assert out.body == b"ok"
    assert seen == [body]


def test_begin_parks_an_incomplete_request_instead_of_waiting() -> None:
    handler = make_handler(validator(hello), timeout=5)
    data = packet("POST", "/upload", bytes(20_000))
    client, server = socket.socketpair()
    with client:
        fd = server.detach()
        client.sendall(data[:10])
        started = time.monotonic()
        pending = handler.begin(fd, "test")
        assert time.monotonic() - started < 0.5  # nothing was waited for
        assert isinstance(pending, Pending)
        sent = 10
        for cut in (400, len(data) - 7, len(data)):
            assert isinstance(pending, Pending)
            assert handler.resume(pending) is pending  # no new bytes: still parked
            client.sendall(data[sent:cut])
            sent = cut
            time.sleep(0.01)
            pending = handler.resume(pending)
        assert pending is None
        client.settimeout(GUARD)
        answer, _ = read_all(client)
    assert answer.endswith(b"Hello, World!")


@pytest.mark.parametrize("cut", [10, -500], ids=["half-a-head", "half-a-body"])
def test_shed_closes_at_once_with_503_once_the_head_is_in(cut: int, logs: Logs) -> None:
    # What the worker does with a new slow client when its parking is full: never wait for it.
    calls: list[int] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        calls.append(1)
        return hello(environ, start_response)

    handler = make_handler(app, timeout=5)
    client, server = socket.socketpair()
    with client:
        client.sendall(packet("POST", "/upload", bytes(1000), SERVER_PROTOCOL="HTTP/1.0")[:cut])
        pending = handler.begin(server.detach(), "test")
        assert isinstance(pending, Pending)
        started = time.monotonic()
        handler.shed(pending)
        assert time.monotonic() - started < 0.5
        client.settimeout(GUARD)
        answer, _ = read_all(client)
    if cut > 0:
        assert answer == b""
    else:
        assert answer.startswith(b"HTTP/1.0 503 Service Unavailable\r\n")
        assert answer.endswith(b"\r\n\r\nbusy\n")
    assert calls == []
    assert problems(logs, logging.INFO) == []  # the worker logs these, counted
