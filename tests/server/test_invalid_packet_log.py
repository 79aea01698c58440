"""A flood of invalid packets from a local client: one line each up to a burst, then one line
a window (it wrote 21 MB of log in 12 s)."""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Callable, Iterator

import pytest

from uwsgiapp.server import inflight, throttle
from uwsgiapp.server.intake import Handler
from uwsgiapp.server.throttle import Burst
from uwsgiapp.wsgi.environ import EnvironSettings
from uwsgiproto import Limits


def _handler() -> Handler:
    return Handler(lambda e, s: [], limits=Limits(), settings=EnvironSettings(), socket_timeout=1.0)


def _connections(times: int) -> Iterator[tuple[socket.socket, socket.socket]]:
    """``times`` connections, (the server's end, the client's), each closed once used."""
    for _ in range(times):
        ours, theirs = socket.socketpair()
        with ours, theirs:
            yield ours, theirs


def _send_garbage(handler: Handler, times: int) -> None:
    for ours, theirs in _connections(times):
        theirs.sendall(b"\x00\xff\xff\x00" + b"x" * 40)  # says 65535 bytes of vars: overruns
        theirs.shutdown(socket.SHUT_WR)
        assert handler.begin(os.dup(ours.fileno()), "client") is None


def test_invalid_packets_are_logged_one_by_one_up_to_a_burst_then_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    handler = _handler()
    with caplog.at_level(logging.WARNING, logger="uwsgiapp.error"):
        _send_garbage(handler, throttle.INVALID_LOG_BURST + 30)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == throttle.INVALID_LOG_BURST
        assert all(line.startswith("invalid uwsgi packet from client: ") for line in lines)
        assert handler.invalid.count == 30 and not handler.invalid.due()
        # The window ends: the rest is one line (the worker's tick, or the next packet, says it).
        monkeypatch.setattr(throttle.time, "monotonic", lambda: 1e12)
        assert handler.invalid.due()
        caplog.clear()
        _send_garbage(handler, 1)
    said = [r.getMessage() for r in caplog.records]
    assert said[0].startswith("30 more invalid uwsgi packets in 10 s, not logged one by one")
    assert said[1].startswith("invalid uwsgi packet from client: ")  # a new window's first


def _promise_and_hang_up(handler: Handler, times: int) -> None:
    from uwsgiproto import build_request

    head = build_request({"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "10", "PATH_INFO": "/"})
    for ours, theirs in _connections(times):
        theirs.sendall(head + b"x")  # 1 of the 10 bytes promised, then gone
        theirs.close()
        assert handler.begin(os.dup(ours.fileno()), "client") is None


def test_connections_that_hang_up_mid_request_are_logged_up_to_a_burst_then_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # One local client promising a body and hanging up, in a loop, wrote 2.4 MB of log a
    # second: one line per connection, where invalid packets were already held to a burst.
    handler = _handler()
    _burst_then_counted(
        caplog,
        monkeypatch,
        (logging.INFO, lambda n: _promise_and_hang_up(handler, n), handler.gone),
        "client client: ",
        "30 more connections gone before their whole request in 10 s, not logged one by one",
    )


def _burst_then_counted(
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    run: tuple[int, Callable[[int], None], Burst],
    line: str,
    count_line: str,
) -> None:
    """``run``'s (level, send N, its burst) sends 30 past the burst: the burst's lines, each
    starting with ``line``, then at the window's end one starting with ``count_line``."""
    level, send, burst = run
    with caplog.at_level(level, logger="uwsgiapp.error"):
        send(throttle.INVALID_LOG_BURST + 30)
        lines = [r.getMessage() for r in caplog.records]
        assert len(lines) == throttle.INVALID_LOG_BURST, lines[-3:]
        assert all(said.startswith(line) for said in lines), lines[:2]
        monkeypatch.setattr(throttle.time, "monotonic", lambda: 1e12)
        assert burst.due()
        caplog.clear()
        burst.flush()
    (said,) = [r.getMessage() for r in caplog.records]
    assert said.startswith(count_line), said


def _refused_request(handler: Handler, times: int) -> None:
    from uwsgiproto import build_request

    head = build_request({"REQUEST_METHOD": "POST", "CONTENT_LENGTH": "-5", "PATH_INFO": "/"})
    for ours, theirs in _connections(times):
        theirs.sendall(head + b"hello")
        theirs.shutdown(socket.SHUT_WR)
        assert handler.begin(os.dup(ours.fileno()), "client") is None
        assert theirs.recv(100).startswith(b"HTTP/1.0 400 ")  # no SERVER_PROTOCOL sent


def test_requests_refused_before_the_app_are_logged_up_to_a_burst_then_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A local client sending a bad CONTENT_LENGTH in a loop wrote a line a millisecond, where
    # invalid packets were held to a burst.
    # (inflight.REFUSED_LINES is a fresh burst: the conftest's fixture)
    handler = _handler()
    _burst_then_counted(
        caplog,
        monkeypatch,
        (logging.WARNING, lambda n: _refused_request(handler, n), inflight.REFUSED_LINES),
        "refused request from client: ",
        "30 more requests refused before the app in 10 s, not logged one by one",
    )


def _park_and_stall(handler: Handler, times: int) -> None:
    for ours, theirs in _connections(times):
        theirs.sendall(b"\x00\x10")  # two bytes of a head, then nothing
        pending = handler.begin(os.dup(ours.fileno()), "client")
        assert pending is not None  # parked, waiting for the rest
        handler.expire(pending)  # its --socket-timeout passed


def test_stalled_clients_are_logged_up_to_a_burst_then_counted(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    # 3,000 idle connections (a hostile peer on an exposed TCP socket) wrote 1,023 lines in
    # 10 s, one a connection, where invalid packets and hang-ups were held to a burst.
    handler = _handler()
    _burst_then_counted(
        caplog,
        monkeypatch,
        (logging.INFO, lambda n: _park_and_stall(handler, n), inflight.STALL_LINES),
        "client client stalled: its request head incomplete, read timed out after 1 s "
        "(2 bytes in); closing",
        "30 more stalled clients closed in 10 s, not logged one by one",
    )
