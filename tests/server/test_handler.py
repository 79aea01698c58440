"""Handler.handle on a socketpair: the whole request cycle, byte-exact, without nginx.

Each test writes a uwsgi packet (protocol.build_request) into the client end, runs
``handler.handle(server_fd, "test")`` in a thread, reads the client end until EOF (or a reset)
and looks at the raw HTTP answer and at the ``uwsgiapp.error`` log records.
"""

from __future__ import annotations

import io
import logging
import os
import socket
import sys
import threading
import time
import warnings
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from wsgiref.validate import WSGIWarning, validator

import pytest

from protocol import Limits, build_header, build_ping, build_request
from uwsgiapp.server import connection
from uwsgiapp.server.connection import PREREAD, Handler, Pending
from uwsgiapp.server.logs import ERROR_FORMAT
from uwsgiapp.wsgi.environ import EnvironSettings
from uwsgiapp.wsgi.input import EMPTY_INPUT, ClientDisconnected, InputStream
from uwsgiapp.wsgi.response import FileWrapper

# wsgiref.validate only *warns* about some contract breaches: make them fail the request.
pytestmark = pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")

PONG = b"\x64\x00\x00\x01"
#: Upper bound for anything a test waits on: a broken handler fails the test, never hangs it.
GUARD = 10.0
CORPUS = Path(__file__).resolve().parent.parent / "corpus"

Environ = dict[str, Any]
StartResponse = Callable[..., Any]
App = Callable[[Environ, StartResponse], Iterable[bytes]]


# -- helpers -----------------------------------------------------------------------------------


def nginx_vars(
    method: str = "GET", uri: str = "/hello", body: bytes = b"", **extra: str
) -> dict[str, str]:
    """The vars nginx 1.22 sends with ``include uwsgi_params`` (plus ``extra``)."""
    path, _, query = uri.partition("?")
    variables = {
        "QUERY_STRING": query,
        "REQUEST_METHOD": method,
        "CONTENT_TYPE": "application/octet-stream" if body else "",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "REQUEST_URI": uri,
        "PATH_INFO": path,
        "DOCUMENT_ROOT": "/usr/share/nginx/html",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_SCHEME": "http",
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "40584",
        "SERVER_PORT": "8080",
        "SERVER_NAME": "localhost",
        "HTTP_HOST": "localhost:8080",
    }
    if body:
        variables["HTTP_CONTENT_TYPE"] = variables["CONTENT_TYPE"]
        variables["HTTP_CONTENT_LENGTH"] = variables["CONTENT_LENGTH"]
    variables.update(extra)
    return variables


def packet(
    method: str = "GET", uri: str = "/hello", body: bytes = b"", modifier1: int = 0, **extra: str
) -> bytes:
    return build_request(nginx_vars(method, uri, body, **extra), body, modifier1)


@dataclass
class Outcome:
    """What the client saw, and how long ``handle`` ran."""

    raw: bytes
    reset: bool
    write_error: OSError | None
    seconds: float

    @property
    def head(self) -> bytes:
        return self.raw.partition(b"\r\n\r\n")[0]

    @property
    def status_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")

    @property
    def status(self) -> int:
        return int(self.status_line.split(" ", 2)[1])

    @property
    def headers(self) -> list[tuple[str, str]]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        return [(n, v) for n, _, v in (line.partition(": ") for line in lines)]

    def header(self, name: str) -> str | None:
        found = [v for n, v in self.headers if n.lower() == name.lower()]
        assert len(found) <= 1, f"{name} repeated: {found}"
        return found[0] if found else None

    @property
    def body(self) -> bytes:
        _, sep, body = self.raw.partition(b"\r\n\r\n")
        assert sep, f"no complete head in {self.raw[:200]!r}"
        return body


def read_all(sock: socket.socket) -> tuple[bytes, bool]:
    parts = []
    reset = False
    while True:
        try:
            data = sock.recv(262144)
        except ConnectionResetError:
            reset = True
            break
        if not data:
            break
        parts.append(data)
    return b"".join(parts), reset


def run(
    handler: Handler,
    payload: bytes | list[bytes],
    *,
    pause: float = 0.0,
    shut_wr: bool = False,
    read_after_handle: bool = False,
    pair: tuple[socket.socket, socket.socket] | None = None,
    preload: bytes = b"",
) -> Outcome:
    """Serve one connection: ``payload`` (pieces ``pause`` s apart) in, everything out.

    ``shut_wr`` half-closes the client after writing (the peer sees EOF); ``read_after_handle``
    reads only once ``handle`` has returned (a client that does not read meanwhile);
    ``preload`` is written before ``handle`` starts (what its first read is sure to see).
    """
    client, server = pair or socket.socketpair()
    client.settimeout(GUARD)
    client.sendall(preload)
    fd = server.detach()
    chunks = [payload] if isinstance(payload, bytes) else payload
    elapsed: list[float] = []
    crashed: list[BaseException] = []
    write_errors: list[OSError] = []

    def serve() -> None:
        started = time.perf_counter()
        try:
            handler.handle(fd, "test")
        except BaseException as exc:  # handle() must never raise: report it to the test
            crashed.append(exc)
        finally:
            elapsed.append(time.perf_counter() - started)

    def write() -> None:
        try:
            for i, chunk in enumerate(chunks):
                if i and pause:
                    time.sleep(pause)
                client.sendall(chunk)
            if shut_wr:
                client.shutdown(socket.SHUT_WR)
        except OSError as exc:
            write_errors.append(exc)

    server_thread = threading.Thread(target=serve, daemon=True)
    writer = threading.Thread(target=write, daemon=True)
    server_thread.start()
    writer.start()
    try:
        if read_after_handle:
            server_thread.join(GUARD)
        raw, reset = read_all(client)
        writer.join(GUARD)
        server_thread.join(GUARD)
        assert not server_thread.is_alive(), "handle() did not return"
        assert not writer.is_alive(), "the client could not write its payload"
    finally:
        client.close()
    assert not crashed, f"handle() raised {crashed[0]!r}"
    return Outcome(raw, reset, write_errors[0] if write_errors else None, elapsed[0])


def make_handler(
    app: App,
    *,
    timeout: float = GUARD / 2,
    limit_post: int = 0,
    mount: str = "",
    buffer_size: int = 4096,
    access_log: Any = None,
) -> Handler:
    return Handler(
        app,
        limits=Limits(buffer_size=buffer_size),
        settings=EnvironSettings(mount=mount, limit_post=limit_post),
        socket_timeout=timeout,
        access_log=access_log,
    )


class Logs:
    """A live view of the captured records (caplog swaps its list between test phases)."""

    def __init__(self, caplog: pytest.LogCaptureFixture) -> None:
        self._caplog = caplog

    @property
    def records(self) -> list[logging.LogRecord]:
        return self._caplog.records

    def clear(self) -> None:
        self._caplog.clear()


@pytest.fixture
def logs(caplog: pytest.LogCaptureFixture) -> Iterator[Logs]:
    """Records of ``uwsgiapp.error``, however the process's logging was set up before."""
    logger = logging.getLogger("uwsgiapp.error")
    saved = logger.level, logger.propagate
    logger.setLevel(logging.DEBUG)
    logger.propagate = False  # the handler is attached here: don't count records twice
    logger.addHandler(caplog.handler)
    try:
        yield Logs(caplog)
    finally:
        logger.removeHandler(caplog.handler)
        logger.setLevel(saved[0])
        logger.propagate = saved[1]


def problems(logs: Logs, level: int = logging.WARNING) -> list[logging.LogRecord]:
    return [r for r in logs.records if r.levelno >= level]


def one_line(record: logging.LogRecord) -> str:
    """The record is one log line: no traceback, no newline."""
    message = record.getMessage()
    assert not record.exc_info, f"unexpected traceback with {message!r}"
    assert "\n" not in message
    return message


class Tracked:
    """An iterable response that records how it was consumed and closed."""

    def __init__(self, chunks: Iterable[Any], fail_at: int = -1) -> None:
        self.chunks = list(chunks)
        self.fail_at = fail_at
        self.closed = 0
        self.yielded = 0

    def __iter__(self) -> Iterator[Any]:
        for i, chunk in enumerate(self.chunks):
            if i == self.fail_at:
                raise RuntimeError("boom mid-iteration")
            self.yielded += 1
            yield chunk
        if self.fail_at == len(self.chunks):
            raise RuntimeError("boom at the end")

    def close(self) -> None:
        self.closed += 1


def hello(environ: Environ, start_response: StartResponse) -> list[bytes]:
    body = b"Hello, World!"
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def echo(environ: Environ, start_response: StartResponse) -> list[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    body = environ["wsgi.input"].read(length)
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))]
    )
    return [body]


# -- GET, the common path ------------------------------------------------------------------------


def test_get(logs: Logs) -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(dict(environ))
        return hello(environ, start_response)

    out = run(make_handler(validator(app)), packet(uri="/hello?x=1"))
    assert out.raw == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
    )
    assert not out.reset
    (environ,) = seen
    assert environ["PATH_INFO"] == "/hello"
    assert environ["QUERY_STRING"] == "x=1"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["wsgi.input"].input is EMPTY_INPUT  # behind the validator's wrapper
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multiprocess"] is True
    assert environ["wsgi.file_wrapper"] is FileWrapper
    assert problems(logs) == []


def test_real_nginx_get_capture(logs: Logs) -> None:
    out = run(
        make_handler(validator(hello)), (CORPUS / "valid" / "nginx_get_hello.bin").read_bytes()
    )
    assert out.status_line == "HTTP/1.1 200 OK"
    assert out.body == b"Hello, World!"
    assert problems(logs) == []


def test_real_nginx_post_capture(logs: Logs) -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(dict(environ))
        return echo(environ, start_response)

    out = run(make_handler(validator(app)), (CORPUS / "valid" / "nginx_post_json.bin").read_bytes())
    assert out.status == 200
    assert out.body == b'{"name": "world", "n": 42}'
    assert "HTTP_CONTENT_LENGTH" not in seen[0]
    assert "HTTP_CONTENT_TYPE" not in seen[0]
    assert problems(logs) == []


def test_status_line_uses_server_protocol() -> None:
    variables = nginx_vars()
    del variables["SERVER_PROTOCOL"]
    out = run(make_handler(validator(hello)), build_request(variables))
    assert out.status_line == "HTTP/1.0 200 OK"
    out = run(make_handler(validator(hello)), packet(SERVER_PROTOCOL="HTTP/1.0"))
    assert out.status_line == "HTTP/1.0 200 OK"


def test_minimal_packet_gets_defaults() -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ)
        return hello(environ, start_response)

    out = run(make_handler(validator(app)), build_request({}))
    assert out.status_line == "HTTP/1.0 200 OK"
    assert seen[0]["REQUEST_METHOD"] == "GET"


def test_magic_vars_never_reach_the_app() -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ)
        return hello(environ, start_response)

    run(make_handler(app), packet(UWSGI_SCRIPT="evil:app", UWSGI_CHDIR="/"))
    assert not [k for k in seen[0] if k.startswith("UWSGI_")]


def test_one_handler_serves_many_connections() -> None:
    handler = make_handler(validator(hello))
    for _ in range(5):
        assert run(handler, packet()).body == b"Hello, World!"


def test_https_scheme() -> None:
    seen: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["wsgi.url_scheme"])
        return hello(environ, start_response)

    run(make_handler(validator(app)), packet(REQUEST_SCHEME="https", HTTPS="on"))
    assert seen == ["https"]


@pytest.mark.parametrize("size", [8000, 60000])
def test_head_larger_than_one_read(size: int) -> None:
    # A vars block bigger than the first read (16 KiB): the slow path assembles it.
    out = run(make_handler(validator(hello), buffer_size=65535), packet(HTTP_X_BIG="x" * size))
    assert out.status == 200


@pytest.mark.parametrize("first", [2, 4, 100])
def test_head_partly_in_the_first_read(first: int) -> None:
    data = packet("POST", "/echo", b"abc", HTTP_X_PAD="p" * 300)
    rest = [data[first : first + 10], data[first + 10 :]]
    out = run(make_handler(validator(echo)), rest, pause=0.05, preload=data[:first])
    assert out.body == b"abc"


def test_head_split_over_writes() -> None:
    data = packet("POST", "/echo", b"abc")
    pieces = [data[:1], data[1:3], data[3:4], data[4:20], data[20:-2], data[-2:]]
    out = run(make_handler(validator(echo)), pieces, pause=0.02)
    assert out.status == 200
    assert out.body == b"abc"


# -- modifier 30 and mount ---------------------------------------------------------------------


def script_and_path(handler: Handler, data: bytes) -> tuple[str, str]:
    seen: list[tuple[str, str]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append((environ["SCRIPT_NAME"], environ["PATH_INFO"]))
        return hello(environ, start_response)

    handler.app = validator(app)
    assert run(handler, data).status == 200
    return seen[0]


def test_modifier_30_strips_script_name() -> None:
    handler = make_handler(hello)
    assert script_and_path(handler, packet(uri="/app/x", modifier1=30, SCRIPT_NAME="/app")) == (
        "/app",
        "/x",
    )
    assert script_and_path(handler, packet(uri="/apple", modifier1=30, SCRIPT_NAME="/app")) == (
        "",
        "/apple",
    )


def test_modifier_0_ignores_script_name() -> None:
    handler = make_handler(hello)
    assert script_and_path(handler, packet(uri="/app/x", SCRIPT_NAME="/app")) == ("", "/app/x")


def test_mount() -> None:
    handler = make_handler(hello, mount="/app")
    assert script_and_path(handler, packet(uri="/app/x")) == ("/app", "/x")
    assert script_and_path(handler, packet(uri="/apple")) == ("", "/apple")


# -- ping ----------------------------------------------------------------------------------------


def never_called(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise AssertionError("the app must not be called")


def test_ping(logs: Logs) -> None:
    out = run(make_handler(never_called), build_ping())
    assert out.raw == PONG
    assert problems(logs) == []


def test_ping_split() -> None:
    ping = build_ping()
    assert run(make_handler(never_called), [ping[:2], ping[2:]], pause=0.02).raw == PONG


def test_ping_then_close() -> None:
    out = run(make_handler(never_called), build_ping(), shut_wr=True)
    assert out.raw == PONG


# -- refused before the app: CONTENT_LENGTH ------------------------------------------------------


FULLWIDTH_12 = "\uff11\uff12".encode().decode("latin-1")  # as nginx passes UTF-8 on


@pytest.mark.parametrize("value", ["-1", "1e3", " 12", FULLWIDTH_12, "12abc", "0x10"])
def test_bad_content_length_is_400(value: str, logs: Logs) -> None:
    out = run(make_handler(never_called), packet("POST", CONTENT_LENGTH=value))
    assert out.status_line == "HTTP/1.1 400 Bad Request"
    assert int(out.header("Content-Length") or -1) == len(out.body)
    (record,) = problems(logs)
    assert "CONTENT_LENGTH" in one_line(record)


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
        access_log=lambda env, status, sent, secs: lines.append((status, sent)),
    )
    out = run(handler, packet("POST", "/up", b"x" * 11))
    assert lines == [("413 Request Entity Too Large", len(out.raw))]


# -- malformed packets ---------------------------------------------------------------------------

MALFORMED = {
    "http_get": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "http_post": b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab",
    "tls": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),
    "empty_key": build_header(0, 6) + b"\x00\x00\x02\x00ab",
    "key_overrun": build_header(0, 6) + b"\x10\x00abcd",
    "huge_datasize": build_header(0, 65535) + b"\x01\x00a\x01\x00b",
    "over_buffer_size": build_header(0, 5000) + bytes(5000),
    "unsupported_modifier": build_header(5, 0),
    "unsupported_modifier_255": build_header(255, 0, 255),
    "trailing_byte": build_header(0, 7) + b"\x01\x00a\x01\x00bX",
    "truncated_block": packet()[:30],
    "truncated_header": b"\x00\x10",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_packet_is_closed_silently_and_logged_once(name: str, logs: Logs) -> None:
    handler = make_handler(never_called)
    out = run(handler, MALFORMED[name], shut_wr=True)
    assert out.raw == b""
    (record,) = problems(logs)
    assert record.levelno == logging.WARNING
    assert "test" in one_line(record)  # names the peer
    # the same handler carries on
    handler.app = validator(hello)
    logs.clear()
    assert run(handler, packet()).body == b"Hello, World!"
    assert problems(logs) == []


@pytest.mark.parametrize("path", sorted((CORPUS / "invalid").glob("*.bin")), ids=lambda p: p.stem)
def test_corpus_invalid_packets(path: Path, logs: Logs) -> None:
    out = run(make_handler(never_called), path.read_bytes(), shut_wr=True)
    assert out.raw == b""
    (record,) = problems(logs)
    one_line(record)


def test_http_to_uwsgi_socket_says_so(logs: Logs) -> None:
    run(make_handler(never_called), MALFORMED["http_get"], shut_wr=True)
    (record,) = problems(logs)
    assert "HTTP" in record.getMessage()


def test_connect_and_close_is_not_a_warning(logs: Logs) -> None:
    out = run(make_handler(never_called), b"", shut_wr=True)
    assert out.raw == b""
    assert problems(logs) == []


def test_stalled_head_is_cut_after_the_timeout(logs: Logs) -> None:
    out = run(make_handler(never_called, timeout=0.3), packet()[:10])
    assert out.raw == b""
    assert 0.25 < out.seconds < 2.0
    (record,) = problems(logs, logging.INFO)
    assert "timed out" in one_line(record)


# -- app errors ----------------------------------------------------------------------------------


def test_app_raising_before_start_response_is_500(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise ValueError("app bug")

    out = run(make_handler(app), packet())
    assert out.status_line == "HTTP/1.1 500 Internal Server Error"
    assert int(out.header("Content-Length") or -1) == len(out.body)
    (record,) = problems(logs)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert "GET /hello" in record.getMessage()


def test_app_raising_after_start_response_before_body_is_500(logs: Logs) -> None:
    response = Tracked([b"never"], fail_at=0)

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Secret", "1")])
        return response

    out = run(make_handler(app), packet())
    assert out.status == 500
    assert out.header("X-Secret") is None  # the app's head was replaced, not sent
    assert response.closed == 1
    (record,) = problems(logs)
    assert record.exc_info is not None


def test_app_raising_mid_iteration_cuts_the_connection(logs: Logs) -> None:
    response = Tracked([b"first chunk", b"second", b"third"], fail_at=2)

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return response

    out = run(make_handler(app), packet())
    assert out.status == 200
    assert out.body == b"first chunksecond"  # truncated: nothing more, no 500 glued on
    assert response.closed == 1
    (record,) = problems(logs)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "cutting" in record.getMessage()


def test_cut_with_unread_body_is_a_reset_not_a_clean_eof() -> None:
    # On a unix socket the only reset is closing with unread data: draining the body first
    # (shutdown + read) would hand nginx a clean EOF and the truncated body as complete.
    # (A body that arrived whole with the head leaves nothing unread: then it is a plain EOF.)
    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked([b"part"], fail_at=1)

    out = run(make_handler(app), packet("POST", "/x", b"y" * 100_000))
    assert out.body == b"part"
    assert out.reset


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def test_cut_over_tcp_is_a_reset() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked([b"part"], fail_at=1)

    out = run(make_handler(app), packet(), pair=tcp_pair())
    assert out.body == b"part"
    assert out.reset


def test_cut_over_tcp_with_unread_body_is_a_reset() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked([b"part"], fail_at=1)

    out = run(make_handler(app), packet("POST", "/x", b"y" * 5000), pair=tcp_pair())
    assert out.body == b"part"
    assert out.reset


def test_app_returning_none_is_500(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [])

    assert run(make_handler(app), packet()).status == 500
    assert len(problems(logs)) == 1


def test_app_returning_str_is_500() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return "hello"

    assert run(make_handler(app), packet()).status == 500


def test_body_without_start_response_is_500(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        return [b"no head"]

    out = run(make_handler(app), packet())
    assert out.status == 500
    assert b"no head" not in out.raw
    (record,) = problems(logs)
    assert "start_response" in one_line(record)


def test_empty_response_without_start_response_is_500() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        return []

    assert run(make_handler(app), packet()).status == 500


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

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", headers)
        return response

    out = run(make_handler(app), packet())
    assert out.status == 500
    assert b"Injected" not in out.raw
    assert b"body" not in out.raw
    assert response.closed == 1
    (record,) = problems(logs)
    one_line(record)


@pytest.mark.parametrize("status", ["200", "OK", "200 OK\r\nInjected: 1", 200])
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


# -- request text in error-log lines ---------------------------------------------------------------

#: A raw uwsgi client's URI that would start a forged log line and colour the terminal.
FORGED = "/a\r\n2026-01-01 00:00:00,000 [1] [ERROR] forged \x1b[31mred\x1b[0m"


@pytest.mark.parametrize("field", ["REQUEST_URI", "PATH_INFO"])
@pytest.mark.parametrize("failure", ["bad-response", "app-raised"])
def test_request_text_cannot_forge_error_log_lines(field: str, failure: str, logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        if failure == "app-raised":
            raise ValueError("app bug")
        start_response("200 OK", [("X-A", "v\r\nInjected: yes")])
        return [b"x"]

    if field == "REQUEST_URI":
        variables = nginx_vars("GET", FORGED)
    else:  # no REQUEST_URI: the line shows PATH_INFO (nginx's decoded path: %0A is a newline)
        variables = nginx_vars("GET", FORGED, REQUEST_URI="")
    out = run(make_handler(app), build_request(variables))
    assert out.status == 500
    (record,) = problems(logs)
    # As the error log writes it: the request's text stays on the record's one line, with its
    # controls written as \xNN (then, for an app's exception, the traceback's own lines).
    lines = logging.Formatter(ERROR_FORMAT).format(record).split("\n")
    if failure == "bad-response":
        one_line(record)
        assert len(lines) == 1, lines
    else:
        assert lines[1] == "Traceback (most recent call last):", lines
    line = lines[0]
    assert "\r" not in line and "\x1b" not in line, line
    assert "GET /a\\x0D\\x0A2026-01-01 00:00:00,000 [1] [ERROR] forged \\x1B[31mred\\x1B[0m" in line


# -- close() on the iterable ---------------------------------------------------------------------


def test_close_called_once_on_success() -> None:
    response = Tracked([b"a", b"b"])

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return response

    assert run(make_handler(app), packet()).body == b"ab"
    assert response.closed == 1


def test_close_called_when_the_client_is_gone(logs: Logs) -> None:
    response = Tracked([bytes(1 << 20)] * 8)

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return response

    client, server = socket.socketpair()
    fd = server.detach()
    client.sendall(packet())
    client.close()
    make_handler(app).handle(fd, "test")
    assert response.closed == 1
    assert response.yielded < 8
    (record,) = problems(logs, logging.INFO)
    one_line(record)


def test_close_raising_is_logged(logs: Logs) -> None:
    class BadClose(Tracked):
        def close(self) -> None:
            raise OSError("close failed")

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return BadClose([b"fine"])

    out = run(make_handler(app), packet())
    assert out.body == b"fine"
    (record,) = problems(logs)
    assert "close" in record.getMessage()


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


def test_file_wrapper_sends_from_the_current_position(
    tmp_path: Path, sendfile_calls: list[int]
) -> None:
    path = tmp_path / "f.txt"
    path.write_bytes(b"0123456789" * 100)

    out = run(make_handler(file_app(opener(path, 995))), packet())
    assert out.body == b"56789"
    assert sendfile_calls


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
    monkeypatch.setattr(connection, "DRAIN_CAP", 65536)
    body = bytes(1 << 20)
    out = run(make_handler(validator(hello)), packet("POST", "/upload", body))
    assert out.body == b"Hello, World!"
    assert out.write_error is not None or out.reset  # past the cap, the rest is refused
    (record,) = problems(logs, logging.INFO)
    assert "unread" in one_line(record)


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


def test_app_catching_the_disconnect_can_still_answer() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read(200_000)
        except OSError:
            start_response("400 Bad Request", [("Content-Type", "text/plain")])
            return [b"incomplete body"]
        raise AssertionError("read returned")

    data = packet("POST", "/upload", bytes(200_000))
    out = run(make_handler(app), data[:50_000], shut_wr=True)
    assert out.status == 400
    assert out.body == b"incomplete body"


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
    out = run(make_handler(app, timeout=0.4), data[:-5000])  # never closes, never sends the rest
    assert out.raw == b""
    ((kind, waited),) = failures
    assert issubclass(kind, ClientDisconnected)
    assert 0.35 < waited < 1.5
    # one timeout, not a second one while draining a body that will never come (>= 0.8 s)
    assert out.seconds < 0.75
    (record,) = problems(logs, logging.INFO)
    assert "timed out" in one_line(record)


def test_stalled_body_answered_by_the_app_is_not_drained() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        try:
            environ["wsgi.input"].read()
        except OSError:
            start_response("408 Request Timeout", [("Content-Type", "text/plain")])
            return [b"too slow"]
        raise AssertionError("read returned")

    data = packet("POST", "/upload", bytes(PREREAD + 10_000))
    out = run(make_handler(app, timeout=0.4), data[:-5000])
    assert out.status == 408
    assert out.seconds < 0.75


def test_stalled_unread_body_drain_gives_up_after_the_timeout() -> None:
    data = packet("POST", "/upload", bytes(PREREAD + 10_000))
    out = run(make_handler(validator(hello), timeout=0.3), data[:-5000])
    assert out.body == b"Hello, World!"
    assert out.seconds < 1.0


def test_small_body_is_read_before_the_app_and_a_stalled_one_gets_408(logs: Logs) -> None:
    called: list[bool] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(True)
        start_response("200 OK", [])
        return [b""]

    data = packet("POST", "/upload", bytes(10_000))
    out = run(make_handler(app, timeout=0.3), data[:-5000])
    assert called == []
    assert out.status == 408
    assert 0.25 < out.seconds < 1.5
    (record,) = problems(logs, logging.INFO)
    assert "its body incomplete, read timed out" in one_line(record)


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


def test_access_log(logs: Logs) -> None:
    lines: list[tuple[str, str, int, float]] = []
    handler = make_handler(
        validator(hello),
        access_log=lambda env, status, sent, secs: lines.append(
            (env["PATH_INFO"], status, sent, secs)
        ),
    )
    out = run(handler, packet(uri="/logged"))
    ((path, status, sent, seconds),) = lines
    assert (path, status, sent) == ("/logged", "200 OK", len(out.raw))
    assert 0 <= seconds < GUARD


def test_access_log_after_an_app_error() -> None:
    lines: list[tuple[str, int]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise RuntimeError

    handler = make_handler(
        app, access_log=lambda env, status, sent, secs: lines.append((status, sent))
    )
    out = run(handler, packet())
    assert lines == [("500 Internal Server Error", len(out.raw))]


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


# -- a hostile uwsgi client (not nginx) ------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{}, {"CONTENT_LENGTH": "x"}],
    ids=["app-response", "refused"],
)
def test_server_protocol_cannot_inject_headers(extra: dict[str, str]) -> None:
    out = run(
        make_handler(hello, limit_post=10),
        packet(SERVER_PROTOCOL="HTTP/1.1\r\nX-Injected: 1\r\n", **extra),
    )
    assert b"X-Injected" not in out.raw
    assert out.status_line.startswith("HTTP/1.0 ")


@pytest.mark.parametrize("protocol", ["HTTP/1.1\n", "HTTP/1.\r", "HTTP/1.1\r\nX-Injected: 1"])
def test_server_protocol_with_cr_lf_is_refused_before_the_app(logs: Logs, protocol: str) -> None:
    # Found by live fuzzing: the app was called, then blamed at ERROR level ("bad response
    # (status '200 OK' contains CR or LF)") with a 500, for the client's own bad var.
    called: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(environ["PATH_INFO"])
        return hello(environ, start_response)

    extra = {"SERVER_PROTOCOL": protocol}
    variables = {k: v for k, v in nginx_vars(**extra).items() if k != "CONTENT_LENGTH"}
    for raw in (packet(**extra), build_request(variables)):  # with and without CONTENT_LENGTH
        logs.clear()
        out = run(make_handler(app), raw)
        assert out.status_line == "HTTP/1.0 400 Bad Request"
        assert [r.levelname for r in problems(logs)] == ["WARNING"]
        assert "invalid SERVER_PROTOCOL" in one_line(problems(logs)[0])
    assert called == []


def test_custom_file_wrapper_from_the_settings_is_kept() -> None:
    class Wrapper(FileWrapper):
        pass

    seen: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["wsgi.file_wrapper"])
        return hello(environ, start_response)

    handler = Handler(
        app,
        limits=Limits(),
        settings=EnvironSettings(file_wrapper=Wrapper),
        socket_timeout=1.0,
    )
    run(handler, packet())
    assert seen == [Wrapper]
