"""Helpers for the Handler tests (test_handler_*.py): a socketpair client, outcomes, apps.

Each test writes a uwsgi packet (protocol.build_request) into the client end, runs
``handler.handle(server_fd, "test")`` in a thread, reads the client end until EOF (or a reset)
and looks at the raw HTTP answer and at the ``uwsgiapp.error`` log records.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from uwsgiapp.server.exchange import Exchange
from uwsgiapp.server.intake import Handler
from uwsgiapp.wsgi.environ import EnvironSettings
from uwsgiproto import Limits, build_request

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


def logged_response(
    status: str | None, sent: int, head_size: int = 0, headers: int = 0
) -> Exchange:
    """A finished exchange as the access log reads it: ``sent`` bytes in all (head included),
    ``headers`` headers of the app's. A status counts as sent once its head was written
    (``head_size`` > 0)."""
    done = Exchange(-1, "HTTP/1.1", 1.0)
    done.status, done.sent, done.head_size = status, sent, head_size
    done.head_sent = status is not None  # the status the access log prints is the one sent
    done.headers = [("X", "y")] * headers
    return done


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
    post_buffering: int = 0,
    spool_dir: str = "",
) -> Handler:
    return Handler(
        app,
        limits=Limits(buffer_size=buffer_size),
        settings=EnvironSettings(mount=mount, limit_post=limit_post),
        socket_timeout=timeout,
        access_log=access_log,
        post_buffering=post_buffering,
        spool_dir=spool_dir,
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


def never_called(environ: Environ, start_response: StartResponse) -> list[bytes]:
    raise AssertionError("the app must not be called")
