"""Misbehaving WSGI routes for the reliability suite (plus a few well-behaved ones to compare with
and to soak). Deliberately *not* wrapped in wsgiref's validator: the server must cope on its own.

Each route is ``/<name>``; ``/pid`` answers the worker's pid so tests can tell whether the worker
survived a bad request.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterable, Iterator
from typing import Any

StartResponse = Callable[..., Any]
WSGIRoute = Callable[[dict[str, Any], StartResponse], Any]
PLAIN = [("Content-Type", "text/plain")]

#: File objects opened by the leaking routes and never closed (kept alive so GC can't close them).
LEAKED: list[Any] = []

ROUTES: dict[str, WSGIRoute] = {}


def route(name: str) -> Callable[[WSGIRoute], WSGIRoute]:
    """Register ``fn`` as ``/name``."""

    def register(fn: WSGIRoute) -> WSGIRoute:
        ROUTES[name] = fn
        return fn

    return register


# -- well-behaved ------------------------------------------------------------------------------


@route("pid")
def _pid(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", PLAIN)
    return [str(os.getpid()).encode()]


@route("hello")
def _hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", PLAIN)
    return [b"Hello World!"]


@route("echo")
def _echo(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [body]


@route("stream")
def _stream(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    # A small streamed response: 16 chunks of 1 KB, no Content-Length.
    start_response("200 OK", PLAIN)
    for i in range(16):
        yield b"%04d" % i + b"s" * 1019 + b"\n"


@route("slow-stream")
def _slow_stream(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    # A stream that takes 10 s: long enough for a stop's deadline to cut it.
    start_response("200 OK", PLAIN)
    for i in range(50):
        yield b"%04d\n" % i
        time.sleep(0.2)


@route("file")
def _file(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # This module's source through wsgi.file_wrapper (sendfile): the server must close it.
    start_response("200 OK", PLAIN)
    return environ["wsgi.file_wrapper"](open(__file__, "rb"))


@route("write")
def _write(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", PLAIN)
    write(b"written, ")
    return [b"then returned"]


@route("sleep")
def _sleep(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # /sleep?s=0.2&... (other query parameters, e.g. a request id, are ignored)
    query = urllib.parse.parse_qs(environ["QUERY_STRING"])
    time.sleep(float(query.get("s", ["0.1"])[0]))
    start_response("200 OK", PLAIN)
    return [b"slept pid %d" % os.getpid()]


# -- errors raised by the app --------------------------------------------------------------------


@route("raise")
def _raise(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    raise RuntimeError("bad app: raised before start_response")


@route("raise-after-start")
def _raise_after_start(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", PLAIN)
    raise RuntimeError("bad app: raised after start_response, before any body")


@route("raise-in-body")
def _raise_in_body(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", PLAIN)
    yield b"first part of the body\n"
    raise RuntimeError("bad app: raised while streaming its body")


@route("raise-in-body-with-length")
def _raise_in_body_with_length(
    environ: dict[str, Any], start_response: StartResponse
) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "1000")])
    yield b"first part of the body\n"
    raise RuntimeError("bad app: raised after 23 of its 1000 promised bytes")


@route("raise-in-close")
def _raise_in_close(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    class Body:
        def __iter__(self) -> Iterator[bytes]:
            yield b"complete body"

        def close(self) -> None:
            raise RuntimeError("bad app: close() raised")

    start_response("200 OK", PLAIN)
    return Body()


# -- broken WSGI contract (the server's own checks: one line, no traceback) ----------------------


@route("return-none")
def _return_none(environ: dict[str, Any], start_response: StartResponse) -> Any:
    start_response("200 OK", PLAIN)
    return None


@route("return-bytes")
def _return_bytes(environ: dict[str, Any], start_response: StartResponse) -> Any:
    start_response("200 OK", PLAIN)
    return b"hello"  # said "got int" (its items), pointing the wrong way


@route("return-str")
def _return_str(environ: dict[str, Any], start_response: StartResponse) -> Any:
    start_response("200 OK", PLAIN)
    return "hello"


@route("return-dict")
def _return_dict(environ: dict[str, Any], start_response: StartResponse) -> Any:
    start_response("200 OK", PLAIN)
    return {"a": 1}


@route("return-int")
def _return_int(environ: dict[str, Any], start_response: StartResponse) -> Any:
    start_response("200 OK", PLAIN)
    return 42


@route("no-start-response")
def _no_start_response(environ: dict[str, Any], start_response: StartResponse) -> Any:
    return [b"body without a status"]


@route("start-twice")
def _start_twice(environ: dict[str, Any], start_response: StartResponse) -> Any:
    start_response("200 OK", PLAIN)
    start_response("404 Not Found", PLAIN)
    return [b"never sent"]


@route("yield-str")
def _yield_str(environ: dict[str, Any], start_response: StartResponse) -> Any:
    start_response("200 OK", PLAIN)
    return ["a str, not bytes"]


@route("yield-int")
def _yield_int(environ: dict[str, Any], start_response: StartResponse) -> Any:
    start_response("200 OK", PLAIN)
    return iter([42])


@route("yield-str-late")
def _yield_str_late(environ: dict[str, Any], start_response: StartResponse) -> Any:
    start_response("200 OK", PLAIN)
    return [b"bytes first, then ", "a str"]


def _status_route(name: str, status: Any) -> None:
    def bad_status(environ: dict[str, Any], start_response: StartResponse) -> Any:
        start_response(status, PLAIN)
        return [b"body under a bad status"]

    ROUTES[name] = bad_status


_status_route("status-abc", "abc")
_status_route("status-20", "20 OK")
_status_route("status-empty", "")
_status_route("status-crlf", "200 OK\r\nX-Injected: 1")
_status_route("status-bytes", b"200 OK")


def _header_route(name: str, headers: Any) -> None:
    def bad_header(environ: dict[str, Any], start_response: StartResponse) -> Any:
        start_response("200 OK", headers)
        return [b"body under a bad header"]

    ROUTES[name] = bad_header


_header_route("header-crlf-name", [("X-Bad\r\nX-Injected", "1")])
_header_route("header-crlf-value", [("X-Bad", "1\r\nX-Injected: 1")])
_header_route("header-lf-value", [("X-Bad", "1\nX-Injected: 1")])
_header_route("header-non-latin1", [("X-Bad", "\u20ac uro")])
_header_route("header-space-name", [("X Bad", "v")])
_header_route("header-colon-name", [("X-Bad:", "v")])
_header_route("header-not-tuple", [["X-Bad", "list, not tuple"]])
_header_route("header-bytes", [(b"X-Bad", b"bytes")])
_header_route("headers-not-list", (("X-Bad", "tuple of tuples"),))
_header_route("header-5k", [("Content-Type", "text/plain"), ("X-Big", "x" * 5000)])


# -- the body ---------------------------------------------------------------------------------


@route("ignore-body")
def _ignore_body(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # Never reads wsgi.input, whatever its size.
    start_response("200 OK", PLAIN)
    return [b"did not read %s bytes" % environ.get("CONTENT_LENGTH", "0").encode()]


@route("read-some-body")
def _read_some_body(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    head = environ["wsgi.input"].read(1000)
    start_response("200 OK", PLAIN)
    return [b"read %d bytes" % len(head)]


# -- resources ----------------------------------------------------------------------------------


@route("leak-fd")
def _leak_fd(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # One file per request, never closed: the worker runs out of descriptors in the app.
    LEAKED.append(open(os.devnull, "rb"))  # noqa: SIM115 - the leak is the point
    start_response("200 OK", PLAIN)
    return [b"leaked %d pid %d" % (len(LEAKED), os.getpid())]


@route("leak-all-fds-later")
def _leak_all_fds_later(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # A background thread takes every free descriptor just after the response and keeps them:
    # the worker's next accept() fails with EMFILE.
    def hog() -> None:
        time.sleep(0.1)
        while True:
            try:
                LEAKED.append(open(os.devnull, "rb"))  # noqa: SIM115
            except OSError:
                return

    threading.Thread(target=hog, daemon=True).start()
    start_response("200 OK", PLAIN)
    return [b"hogging pid %d" % os.getpid()]


# -- kills its own worker -----------------------------------------------------------------------


@route("sys-exit")
def _sys_exit(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    sys.exit(3)


@route("os-exit")
def _os_exit(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    os._exit(7)


@route("segfault")
def _segfault(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    ctypes.string_at(0)  # reads address 0: SIGSEGV
    return []


# -- never answers ------------------------------------------------------------------------------


@route("block-forever")
def _block_forever(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    threading.Event().wait()  # blocked in a lock, forever
    start_response("200 OK", PLAIN)
    return [b"unreachable"]


def _chunks_then_block() -> Iterator[bytes]:
    yield b"first\n"
    threading.Event().wait()  # blocked in the response, in a frame with no environ


@route("stream-forever")
def _stream_forever(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    start_response("200 OK", PLAIN)
    return _chunks_then_block()


@route("spin-forever")
def _spin_forever(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    n = 0
    while n >= 0:  # busy in Python bytecode, forever
        n += 1
    start_response("200 OK", PLAIN)
    return [b"unreachable"]


def app(environ: dict[str, Any], start_response: StartResponse) -> Any:
    """Dispatch on the first path segment; unknown paths get /hello."""
    first = environ["PATH_INFO"].strip("/").split("/", 1)[0]
    return ROUTES.get(first, _hello)(environ, start_response)
