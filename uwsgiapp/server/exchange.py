"""Running the exchange: the app call, the response, sendfile, the drain, the error answers.

:class:`Responder` is built once per worker; :meth:`Responder.serve` takes a request whose head
(and, for a small body, the body) has been read by :mod:`uwsgiapp.server.intake` and runs it to
the end of the response. :class:`Exchange` is one request's response state (``start_response``,
``write``, what has been sent).
"""

from __future__ import annotations

import errno
import logging
import sys
import time
from collections.abc import Callable
from threading import get_ident
from typing import Any, Final

from uwsgiapp.server import inflight
from uwsgiapp.server.forkedchild import leave
from uwsgiapp.server.inflight import out_of_fds, request_text, say_app_failed, say_body_length
from uwsgiapp.server.io import reader, send_all
from uwsgiapp.server.transfer import (
    cut,
    drain,
    gone_mid_response,
    refuse,
    say_body_caught,
    send_wrapped_file,
    unwinding,
)
from uwsgiapp.wsgi.contract import AccessLogger, ExcInfo, WSGIApp
from uwsgiapp.wsgi.environ import BadRequest, parse_content_length
from uwsgiapp.wsgi.errors import AppError
from uwsgiapp.wsgi.input import EMPTY_INPUT, ClientDisconnected, InputStream
from uwsgiapp.wsgi.response import (
    ERROR_HEADERS,
    HTTP_VERSIONS,
    FileWrapper,
    HeaderError,
    Rendered,
    body_bytes,
    error_response,
    iterable_type,
    mistaken_return,
    not_iterable,
    render,
    whole_head_size,
)

log = logging.getLogger("uwsgiapp.error")

#: Who sent a request, for log lines: a unix listener's address, or a TCP (host, port) tuple.
Peer = object

#: Bound once: compiled, ``time.perf_counter()`` would look the name up in the module each time.
_perf_counter: Final = time.perf_counter


class Exchange:
    """Per-request response state: ``start_response``, ``write`` and what has been sent."""

    __slots__ = (
        "aborted",
        "body",
        "fd",
        "head_only",
        "head_sent",
        "head_size",
        "headers",
        "overrun",
        "protocol",
        "refusal",
        "rendered",
        "room",
        "sent",
        "status",
        "timeout",
    )

    def __init__(self, fd: int, protocol: str, timeout: float) -> None:
        self.fd = fd
        self.protocol = protocol
        self.timeout = timeout
        # What the app passed (checked as start_response renders the head): Any, so that a
        # compiled build stores it as it came and render can say what is wrong with it.
        self.status: Any = None
        self.headers: Any = []
        self.rendered: Rendered | None = None
        self.refusal = ""  #: why start_response() refused the head, for a body sent anyway
        self.head_sent = False
        #: ``sent`` counts the head too (the stats' tx); the access log counts the body only.
        self.head_size = 0
        self.sent = 0
        #: The response was cut after its head: the connection must end in a reset, not drain.
        self.aborted = False
        #: Body bytes the head still allows (Content-Length; -1: any); more were sent (dropped).
        self.room = -1
        self.overrun = False
        self.head_only = False  #: a HEAD's: the head alone goes out (nginx closes after it)
        self.body: InputStream | None = None  #: the server's, whatever wsgi.input holds now

    def __call__(
        self, status: Any, headers: Any, exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """The exchange is the ``start_response`` the app gets: a bound method would be one
        more object (and attribute lookup) per request."""
        return self.start_response(status, headers, exc_info)

    def start_response(
        self, status: Any, headers: Any, exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333 ``start_response``: renders and records the head, taken as it is now (as
        uWSGI and gunicorn take it; a bad one raises :class:`HeaderError` while the app runs, as
        PEP 3333 advises and gunicorn does); re-raises ``exc_info`` once sent."""
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AppError("start_response() called a second time without exc_info")
        try:
            self.rendered = render(self.protocol, status, headers)
        except HeaderError as exc:  # an app that catches it and sends a body is told why
            self.refusal = f" (start_response() refused its head: {exc})"
            raise
        self.status = status
        self.headers = headers
        return self.write

    def take(self, data: Any) -> tuple[bytes, bytes]:
        """What the server sends for a body chunk ``data``: the head the first time (b"" after)
        and the bytes the head still allows (``overrun``: more were dropped; a HEAD's: none).
        AppError or HeaderError for what it refuses; ``uwsgiapp dev`` holds to these rules."""
        # Typed ``bytes`` (an exact one either way): compiled, ``head + body`` and ``len`` are
        # then native, where on ``Any`` they went through the number protocol and buffer exports.
        body: bytes = data if type(data) is bytes else body_bytes(data)
        head = b""
        if not self.head_sent:
            rendered = self.rendered
            if rendered is None:
                raise AppError("response body sent before start_response()" + self.refusal)
            head = rendered.head
            self.head_sent = True
            self.room = rendered.length
        if self.head_only:
            return head, b""
        room = self.room
        if room >= 0:
            if len(body) > room:
                body = body[:room]
                self.overrun = True
            self.room = room - len(body)
        return head, body

    def send(self, data: Any) -> None:
        """Send body bytes, preceded by the head the first time."""
        head, body = self.take(data)
        if head:
            whole = len(body) <= 65536  # don't copy a big body just to save one write
            try:
                send_all(self.fd, head + body if whole else head, self.timeout)
            except ClientDisconnected as exc:  # the head went out before: its status did
                if exc.written >= len(head):
                    self.head_size, self.sent = len(head), self.sent + exc.written
                raise
            self.head_size = len(head)  # once written: nginx gone, the log says 0 bytes, not -45
            if whole:
                self.sent += len(head) + len(body)
                return
            self.sent += len(head)
        if body:  # none left (past the head's Content-Length): nginx may have closed already
            send_all(self.fd, body, self.timeout)
            self.sent += len(body)

    @property
    def sent_status(self) -> str | None:
        """The status that went out; None until its head was written (the app's is only
        recorded; a head whose write failed, the client gone, did not go out)."""
        return self.status if self.head_size else None

    def write(self, data: Any) -> None:
        """PEP 3333's legacy ``write()`` callable."""
        if self.fd < 0:  # an app's thread past the request: fd may be another request's now
            raise OSError(errno.EBADF, "write() called after its request ended")
        self.send(data)

    def answer_error(self, status: str, text: str) -> None:
        """Answer ``status`` ourselves, with ``text`` as a plain-text body (nothing of the
        app's response went out); counted once written (nginx may be gone)."""
        payload = error_response(self.protocol, status, text)
        payload = payload[: whole_head_size(payload)] if self.head_only else payload
        self.status, self.head_sent, self.headers = status, True, ERROR_HEADERS
        send_all(self.fd, payload, self.timeout)
        self.sent += len(payload)
        self.head_size = whole_head_size(payload)


class Responder:
    """Runs requests for one worker: the app and every per-worker constant of the exchange."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        limit_post: int,
        socket_timeout: float,
        access_log: AccessLogger | None = None,
    ) -> None:
        self.app = app
        self.limit_post = limit_post
        self.timeout = socket_timeout
        self.access_log = access_log
        #: Called when the app fails for want of file descriptors (EMFILE): only a fresh process
        #: recovers from a leak, so the worker recycles itself.
        self.on_out_of_fds: Callable[[], None] | None = None
        #: Called when the app raised or answered badly (``--stats`` counts these exceptions).
        self.on_app_error: Callable[[], None] | None = None
        #: The last request's exchange: ``--stats`` counts it at the request's end hook.
        self.last: Exchange | None = None
        #: The request served, else None, for a harakiri's or a stop's line when no frame of
        #: the stack holds it (a compiled build's streamed response). One thread's only.
        self.current: dict[str, Any] | None = None
        #: ``--threads``: each thread's request (environ, exchange, start, var block) until its
        #: line is written, for a quick stop's of those it cuts (:func:`~.stopsignals.say_cut`).
        self.threads: dict[int, tuple[dict[str, Any], Exchange, float, bytes]] | None = None
        #: Set in a process the app forks from the worker (``os.fork()``): not a worker.
        self.forked = False

    def serve(
        self, fd: int, peer: Peer, environ: dict[str, Any], rest: bytes, block: bytes
    ) -> None:
        """Run one request whose head is in ``environ`` (``rest``: the body bytes already read;
        ``block``: its var block, for the access log) until its response is sent and an unread
        body drained; the caller closes ``fd``. Raises ClientDisconnected/OSError when the
        client goes away mid-answer."""
        protocol: str = environ["SERVER_PROTOCOL"]  # the builder's str (or its default)
        # HTTP/1.1 first: compiled, a str compare, where the set's is a call.
        if protocol != "HTTP/1.1" and protocol not in HTTP_VERSIONS and not one_word(protocol):
            # The client's own line ending (or NUL, a space) in our status line: refuse it now,
            # not blame the app (an ERROR) for a head we cannot render ("HTTP/1.1 X 200 OK").
            reason = "invalid SERVER_PROTOCOL: contains a control character or a space"
            self._refuse(fd, peer, environ, BadRequest("400 Bad Request", reason), rest, block)
            return
        length_var = environ.get("CONTENT_LENGTH")
        stream = EMPTY_INPUT
        has_body = False  # EMPTY_INPUT is interpreted: its attributes cost a lookup compiled
        if isinstance(length_var, str) and length_var:  # compiled, a length, not a call
            try:
                length = parse_content_length(length_var, self.limit_post)
            except BadRequest as exc:
                self._refuse(fd, peer, environ, exc, rest, block)
                return
            if length:
                stream = InputStream(reader(fd, self.timeout), rest, length)
                has_body = True
        environ["wsgi.input"] = stream
        started = _perf_counter() if self.access_log is not None else 0.0
        self.last = exchange = Exchange(fd, protocol, self.timeout)
        if has_body:
            exchange.body = stream
        self.current = environ
        if self.threads is not None:
            self.threads[get_ident()] = (environ, exchange, started, block)
        said = False
        try:
            said = self._run_app(exchange, environ, peer)
        finally:
            exchange.fd = -1  # the app's write() must not reach the next request's connection
            if self.forked:  # the app's own forked process, its response done: forkedchild.py
                leave(environ, None)
            self.current = None
            # Not after a cut (the reset is the point) nor after the body already failed (a
            # stalled client would cost a second timeout). An app thread's read ends first.
            if has_body:
                stream.end()
                if stream.failure is not None:
                    if not said:  # the app caught its body's failure and went on
                        say_body_caught(exchange, environ, peer, stream, length)
                elif stream.remaining > 0 and not exchange.aborted:
                    drain(fd, stream.remaining, self.timeout, self.limit_post)
            if self.threads is not None:
                del self.threads[get_ident()]
            self._end(exchange, environ, started, block)

    def _end(
        self, exchange: Exchange, environ: dict[str, Any], started: float, block: bytes
    ) -> None:
        """A request's last words: a head too big for nginx's default buffer, its access line."""
        if exchange.head_size > 4096:  # inflight.NGINX_HEAD_BUFFER, without a lookup
            inflight.say_big_head(environ, exchange.head_size)
        if self.access_log is not None:
            self.access_log(environ, exchange, _perf_counter() - started, block)

    def _refuse(
        self, fd: int, peer: Peer, environ: dict[str, Any], exc: BadRequest, rest: bytes,
        block: bytes,
    ) -> None:  # fmt: skip
        """Answer a request refused before the app (:func:`~.transfer.refuse`)."""
        self.last = refused = Exchange(fd, environ["SERVER_PROTOCOL"], self.timeout)
        refuse(refused, peer, environ, exc, rest, block, self.access_log)

    def _run_app(self, exchange: Exchange, environ: dict[str, Any], peer: Peer) -> bool:
        """Run the app and send its response; whether a failure of its body's read was said
        (it came out of the app, before the response's head)."""
        exchange.head_only = environ.get("REQUEST_METHOD") == "HEAD"
        try:
            # Any: the app's chunks are checked by Exchange.send, not by a compiled build.
            result: Any = self.app(environ, exchange)
        except ClientDisconnected as exc:  # reading its body, or in write() (as an iterable)
            return gone_mid_response(exchange, environ, peer, exc, self.forked)
        except HeaderError as exc:  # its start_response's check: the server's, one line
            self._app_failed(exchange, environ, f"bad response ({exc})", traceback=False)
            return False
        except Exception:
            self._app_failed(exchange, environ, "app raised")
            return False
        except BaseException as exc:  # the app's own SystemExit, or a stop's (below)
            unwinding(exchange, environ, exc, self.forked)
            raise
        try:
            if type(result) is list and len(result) == 1 and exchange.status is not None:
                exchange.send(result[0])
            elif type(result) is FileWrapper:
                send_wrapped_file(exchange, result, self.timeout, exchange.head_only, environ)
            else:
                _send_iterable(exchange, result, exchange.head_only)
            if not exchange.head_sent:
                exchange.send(b"")
            if exchange.room != -1 and (exchange.room or exchange.overrun):
                say_body_length(environ, exchange)
        except ClientDisconnected as exc:
            return gone_mid_response(exchange, environ, peer, exc, self.forked)
        except (AppError, HeaderError) as exc:
            self._app_failed(exchange, environ, f"bad response ({exc})", traceback=False)
        except Exception:
            self._app_failed(exchange, environ, "app raised while iterating its response")
        except BaseException as exc:  # a quick stop's, a request thread's RequestCut
            unwinding(exchange, environ, exc, self.forked)
            raise
        finally:
            # A list has no close(): getattr would build and drop an AttributeError per request.
            close = None if type(result) is list else getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    self._close_failed(environ)
        return False

    def _close_failed(self, environ: dict[str, Any]) -> None:
        """The response's ``close()`` raised (the answer is out): an exception of the app's."""
        if self.on_app_error is not None:
            self.on_app_error()
        log.exception("app's response close() raised (%s)", request_text(environ))

    def _app_failed(
        self, exchange: Exchange, environ: dict[str, Any], what: str, *, traceback: bool = True
    ) -> None:
        if self.forked:
            leave(environ, sys.exc_info()[1])
        if self.on_out_of_fds is not None and out_of_fds(sys.exc_info()[1]):
            self.on_out_of_fds()
        if self.on_app_error is not None:
            self.on_app_error()
        say_app_failed(environ, what, exchange.head_sent, traceback=traceback)
        if exchange.head_sent:
            cut(exchange)
            return
        exchange.answer_error("500 Internal Server Error", "Internal Server Error")


def one_word(protocol: str) -> bool:
    """Whether an unusual SERVER_PROTOCOL can stand first in a status line as it is."""
    return protocol.isprintable() and " " not in protocol


def _send_iterable(exchange: Exchange, result: Any, head_only: bool) -> None:
    """Send the chunks of a response neither a list of one nor a file wrapper; for a HEAD
    (``head_only``), stop once the head is out (a generator went on until nginx closed)."""
    # One iter(), as in uWSGI: an iter() before the loop had the loop call an iterator's __iter__
    # again (werkzeug's ClosingIterator, i.e. every Flask response: a Python call per request).
    try:
        for chunk in result:
            if chunk:
                exchange.send(chunk)
                if exchange.room == 0 or head_only:
                    break  # PEP 3333: stop iterating once the length is sent (or passed)
            elif type(chunk) is not bytes:
                exchange.send(chunk)  # "" or None: refused there, never skipped
    except (TypeError, AppError) as exc:  # iter() refused it, or an item is no bytes
        mistaken = mistaken_return(result)  # a bare bytes, str or dict: said as such
        if mistaken if isinstance(exc, AppError) else not iterable_type(type(result)):
            raise not_iterable(result) from None
        raise  # the app's own code raised it: its traceback matters
