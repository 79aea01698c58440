"""``uwsgiapp dev`` held to ``serve``'s response rules: a bug that production refuses shows in dev.

werkzeug's server sends what the app gives it: a body after HEAD or a 204, more body than its
Content-Length, a bare ``"200"`` status as ``200 ``, and it answers 200 and then cuts the
connection for a ``str`` body. Here each body chunk goes through the same
:meth:`~uwsgiapp.server.exchange.Exchange.take` as under ``serve`` (its head checks, its
Content-Length), and only what it lets through reaches werkzeug; the mismatch lines are
``serve``'s own.

With the debugger on, a response ``serve`` refuses raises, and the debugger page names what is
wrong; with ``--no-debugger`` it is answered as ``serve`` answers it: a plain 500 and one line
naming the request (or, once the head is out, that line and a cut connection).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from uwsgiapp.server.exchange import Exchange
from uwsgiapp.server.inflight import say_app_failed, say_body_length
from uwsgiapp.wsgi.contract import ExcInfo, StartResponse, WSGIApp
from uwsgiapp.wsgi.errors import AppError
from uwsgiapp.wsgi.response import HeaderError, iterable_type, mistaken_return, not_iterable

__all__ = ["as_served", "status_of"]

#: serve's answer to a response it refuses (the details are in the log line only).
ERROR_STATUS = "500 Internal Server Error"
ERROR_BODY = b"Internal Server Error\n"


def status_of(head: bytes) -> str:
    """The status of a rendered head (``b"HTTP/1.1 200 OK\\r\\n..."`` → ``"200 OK"``): with
    the reason ``serve`` adds to a bare code."""
    line = head[: head.index(b"\r\n")]
    return line[line.index(b" ") + 1 :].decode("latin-1")


def headers_of(head: bytes) -> list[tuple[str, str]]:
    """The headers of a rendered head, as serve sends them: taken at ``start_response``, a
    204's ``Content-Length`` dropped (the app's live list gave werkzeug a header the app
    added afterwards, and the 204's length)."""
    lines = head.decode("latin-1").split("\r\n")[1:-2]
    return [(name, value) for name, _, value in (line.partition(": ") for line in lines)]


class _Response:
    """One request's response: ``serve``'s :class:`Exchange` decides, werkzeug sends."""

    __slots__ = ("environ", "exchange", "forward", "head_only", "send")

    def __init__(self, environ: dict[str, Any], start_response: StartResponse) -> None:
        self.environ = environ
        self.exchange = Exchange(-1, "HTTP/1.1", 0.0)  # never sends: take() only
        self.forward = start_response
        self.head_only = environ.get("REQUEST_METHOD") == "HEAD"
        #: werkzeug's ``write``, once the head has been handed on (None before).
        self.send: Callable[[bytes], Any] | None = None

    def start_response(
        self, status: Any, headers: Any, exc_info: ExcInfo | None = None
    ) -> Callable[[Any], None]:
        """The app's ``start_response``: recorded (and refused a second time) as under serve;
        werkzeug gets the head with the first body bytes, once it is checked."""
        self.exchange.start_response(status, headers, exc_info)
        return self.write

    def take(self, data: Any) -> bytes:
        """The body bytes of ``data`` to send (none for HEAD); hands the head on first."""
        head, body = self.exchange.take(data)
        if head:
            self.send = self.forward(status_of(head), headers_of(head))
        return b"" if self.head_only else body

    def write(self, data: Any) -> None:
        """PEP 3333's ``write()``, through the same rules."""
        body = self.take(data)
        if body and self.send is not None:
            self.send(body)

    def body(self, result: Iterable[Any]) -> Iterator[bytes]:
        """The app's ``result`` as serve sends it: cut at its Content-Length (none after a 204
        or 304), stopped once the head is out for HEAD, the mismatch said as serve says it."""
        exchange = self.exchange
        try:
            chunks = iter(result)
        except TypeError:
            if iterable_type(type(result)):
                raise
            raise not_iterable(result) from None
        for chunk in chunks:
            if not chunk and type(chunk) is bytes:
                continue  # b"" sends nothing, not even the head (serve's rule)
            try:
                data = self.take(chunk)
            except AppError:
                if mistaken_return(result):
                    raise not_iterable(result) from None  # as serve says it
                raise
            if data:
                yield data
            if exchange.room == 0 or (self.head_only and exchange.head_sent):
                break
        if not exchange.head_sent:
            self.take(b"")
        if exchange.room != -1 and (exchange.room or exchange.overrun):
            say_body_length(self.environ, exchange)


def as_served(app: WSGIApp, *, debugger: bool) -> WSGIApp:
    """``app`` whose responses are held to ``serve``'s rules (see the module); a response
    serve refuses raises with the ``debugger`` on, else gets serve's answer."""

    def served(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        response = _Response(environ, start_response)
        result: Any = None
        try:
            result = app(environ, response.start_response)
            yield from response.body(result)
        except (AppError, HeaderError) as exc:
            if debugger:
                raise
            head_sent = response.send is not None
            say_app_failed(environ, f"bad response ({exc})", head_sent, traceback=False)
            if head_sent:
                # werkzeug drops a connection that fails so without a line of its own (the
                # line is said above) and without ending a chunked body: cut, as serve does.
                raise ConnectionAbortedError("response cut: it broke the WSGI contract") from None
            length = str(len(ERROR_BODY))
            headers = [("Content-Type", "text/plain"), ("Content-Length", length)]
            start_response(ERROR_STATUS, headers, sys.exc_info())
            if not response.head_only:
                yield ERROR_BODY
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    return served
