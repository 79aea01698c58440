"""One connection, one request: packet → environ → app → response → close.

:class:`Handler` is built once per worker (everything that can be precomputed is);
:meth:`Handler.handle` runs per accepted fd and never raises: every failure becomes one log line
and, where a response can still be sent, the right status.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import sys
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from protocol import MODIFIER_PING, Decoder, Limits, ProtocolError, Request, build_pong
from protocol.decoder import parse_head
from protocol.events import NEED_DATA
from uwsgiapp.server.io import closed_early, read_now, readable, reader, recv, send_all, send_file
from uwsgiapp.server.logtext import escape_log_text
from uwsgiapp.wsgi.environ import (
    BadRequest,
    EnvironBuilder,
    EnvironSettings,
    build_environ,
    parse_content_length,
)
from uwsgiapp.wsgi.input import EMPTY_INPUT, ClientDisconnected, InputStream
from uwsgiapp.wsgi.response import FileWrapper, HeaderError, render_head

log = logging.getLogger("uwsgiapp.error")

#: What to change when a request exceeds a codec limit (``PacketTooLarge.limit``): nginx then
#: answers 502, and the log line is all the user sees.
LIMIT_FIXES = {
    "buffer_size": "; raise --buffer-size (uWSGI's buffer-size, at most 65535): nginx sends "
    "every request header in this block, so large cookies need it (nginx's own limit for "
    "them is large_client_header_buffers)",
}

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
#: Called after each request when the access log is on: (environ, status, bytes sent, seconds).
AccessLogger = Callable[[dict[str, Any], str, int, float], None]

PONG = build_pong()
#: Unread body bytes we are willing to read and discard so nginx never sees a reset.
DRAIN_CAP = 16 * 1024 * 1024
#: Seconds a just-accepted connection with nothing to read yet is waited for before parking.
FIRST_BYTES_WAIT = 0.005
#: Bodies up to this size are read whole before the app is called, without holding the worker
#: while a slow client sends them (larger ones stream to the app as it reads).
PREREAD = 65536


_PROTOCOLS = frozenset({"HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3.0"})


class AppError(Exception):
    """The app broke the WSGI contract (bad status/headers, non-bytes body, write before start)."""


def _error_response(protocol: str, status: str, text: str) -> bytes:
    # SERVER_PROTOCOL is the client's (nginx sends a sane one; a raw uwsgi client may not): the
    # normal path refuses CR/LF in it through render_head, and this path must not echo them.
    if protocol not in _PROTOCOLS:
        protocol = "HTTP/1.0"
    body = text.encode("latin-1", "replace") + b"\n"
    return (
        f"{protocol} {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1") + body


class Exchange:
    """Per-request response state: ``start_response``, ``write`` and what has been sent."""

    __slots__ = ("aborted", "fd", "head_sent", "headers", "protocol", "sent", "status", "timeout")

    def __init__(self, fd: int, protocol: str, timeout: float) -> None:
        self.fd = fd
        self.protocol = protocol
        self.timeout = timeout
        self.status: str | None = None
        self.headers: list[tuple[str, str]] = []
        self.head_sent = False
        self.sent = 0
        #: The response was cut after its head: the connection must end in a reset, not drain.
        self.aborted = False

    def start_response(
        self, status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
    ) -> Callable[[bytes], None]:
        """PEP 3333 ``start_response``: records the head; re-raises ``exc_info`` once sent."""
        if exc_info is not None:
            try:
                if self.head_sent:
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None
        elif self.status is not None:
            raise AppError("start_response() called a second time without exc_info")
        self.status = status
        self.headers = headers
        return self.write

    def send(self, data: bytes) -> None:
        """Send body bytes, preceded by the head the first time."""
        if type(data) is not bytes:
            if not isinstance(data, (bytes, bytearray, memoryview)):
                raise AppError(f"response body must be bytes, got {type(data).__name__}")
            data = bytes(data)
        if not self.head_sent:
            if self.status is None:
                raise AppError("response body sent before start_response()")
            head = render_head(self.protocol, self.status, self.headers)
            self.head_sent = True
            if len(data) > 65536:  # don't copy a big body just to save one write
                send_all(self.fd, head, self.timeout)
                self.sent += len(head)
            else:
                data = head + data
        send_all(self.fd, data, self.timeout)
        self.sent += len(data)

    def write(self, data: bytes) -> None:
        """PEP 3333's legacy ``write()`` callable."""
        self.send(data)


class Pending:
    """A connection whose request has not fully arrived, parked until its fd is readable.

    While the head is incomplete ``decoder`` holds it; then ``head`` is (modifier1, environ) and
    ``body`` the part of a small body received so far, ``need`` its full length.
    """

    __slots__ = ("body", "deadline", "decoder", "fd", "head", "need", "peer")

    def __init__(self, fd: int, peer: str, deadline: float) -> None:
        self.fd = fd
        self.peer = peer
        #: Monotonic time after which the client has been silent for ``--socket-timeout``.
        self.deadline = deadline
        self.decoder: Decoder | None = None
        self.head: tuple[int, dict[str, Any]] = (0, {})
        self.body = b""
        self.need = 0


class Handler:
    """Serves requests for one worker: all per-worker constants resolved at construction."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        limits: Limits,
        settings: EnvironSettings,
        socket_timeout: float,
        access_log: AccessLogger | None = None,
    ) -> None:
        self.app = app
        self.limits = limits
        self.mount = settings.mount
        self.limit_post = settings.limit_post
        self.timeout = socket_timeout
        self.template = settings.template()
        if settings.file_wrapper is None:
            # Ours, so that _run_app can recognise it and use sendfile.
            self.template["wsgi.file_wrapper"] = FileWrapper
        self.environ = EnvironBuilder(self.template, limits, self.mount)
        self.access_log = access_log
        # One read normally takes the whole head plus the start of the body.
        self.read_size = max(16384, limits.buffer_size + 4)
        self.preread = PREREAD
        #: Called when the app fails for want of file descriptors (EMFILE): only a fresh process
        #: recovers from a leak, so the worker recycles itself.
        self.on_out_of_fds: Callable[[], None] | None = None

    # -- per connection ----------------------------------------------------------------------

    def handle(self, fd: int, peer: str) -> None:
        """Serve the connection on ``fd`` to the end, waiting for a slow client in place.

        Never raises (but BaseException). The worker loop uses :meth:`begin` / :meth:`resume`
        instead, so that a client still sending its request does not hold the worker.
        """
        pending = self.begin(fd, peer)
        if pending is not None:
            self.finish(pending)

    def finish(self, pending: Pending) -> None:
        """Serve a parked connection to the end, waiting for its client in place."""
        current: Pending | None = pending
        while current is not None:
            if not readable(current.fd, max(current.deadline - time.monotonic(), 0.0)):
                self.expire(current)
                return
            current = self.resume(current)

    def begin(self, fd: int, peer: str) -> Pending | None:
        """Start serving a just-accepted ``fd``.

        Returns None when the connection was served (or refused) and closed, or a
        :class:`Pending` when its request has not fully arrived: the caller waits until ``fd`` is
        readable and calls :meth:`resume`, or :meth:`expire` once ``pending.deadline`` passed.
        """
        try:
            os.set_blocking(fd, False)
            try:
                data = os.read(fd, self.read_size)
            except BlockingIOError:
                # Accepted between nginx's connect and its write: the bytes are a moment away.
                # Waiting that moment here keeps a worker at one connection from nginx at a
                # time (a kill -9 then loses one request, not a parked one as well).
                data = None
                if readable(fd, FIRST_BYTES_WAIT):
                    data = os.read(fd, self.read_size)
            # Fast path: the whole head arrived in one read (almost always, from nginx).
            if data is not None and len(data) >= 4:
                modifier1, size, _ = parse_head(data, self.limits)
                end = 4 + size
                if len(data) >= end:
                    environ = self.environ.build(data[4:end], modifier1)
                    return self._head_done(fd, peer, modifier1, environ, data[end:])
            if data == b"":
                log.debug("client %s closed the connection without a request", peer)
            else:
                pending = Pending(fd, peer, time.monotonic() + self.timeout)
                pending.decoder = Decoder(self.limits)
                if data:
                    pending.decoder.receive_data(data)
                return pending
        except BaseException as exc:
            self._failed(fd, peer, exc)
            return None
        self._close(fd)
        return None

    def resume(self, pending: Pending) -> Pending | None:
        """Read what a parked client sent since; serve the request once it is all there."""
        fd = pending.fd
        peer = pending.peer
        try:
            chunk = read_now(fd, self.read_size)
            if chunk is None:
                return pending
            pending.deadline = time.monotonic() + self.timeout
            decoder = pending.decoder
            if decoder is not None:
                if not chunk:
                    if not decoder.buffered:
                        log.debug("client %s closed the connection without a request", peer)
                        self._close(fd)
                        return None
                    decoder.eof()  # raises: closed mid-packet
                decoder.receive_data(chunk)
                event = decoder.next_event()
                if event is NEED_DATA:
                    return pending
                pending.decoder = None
                if isinstance(event, Request):
                    environ = build_environ(
                        dict(event.vars), event.modifier1, self.template, self.mount
                    )
                    return self._head_done(
                        fd, peer, event.modifier1, environ, decoder.trailing_data
                    )
                return self._head_done(fd, peer, MODIFIER_PING, {}, b"")
            if not chunk:
                raise closed_early()
            pending.body += chunk
            if len(pending.body) < pending.need:
                return pending
            modifier1, environ = pending.head
            return self._head_done(fd, peer, modifier1, environ, pending.body, False)
        except BaseException as exc:
            self._failed(fd, peer, exc)
            return None

    def expire(self, pending: Pending) -> None:
        """A parked client sent nothing for ``--socket-timeout``: log one line and close."""
        decoder = pending.decoder
        what = "its request head" if decoder is not None else "its body"
        got = decoder.buffered if decoder is not None else len(pending.body)
        log.info(
            "client %s stalled: %s incomplete, read timed out after %g s (%d bytes in); closing",
            pending.peer,
            what,
            self.timeout,
            got,
        )
        if decoder is None:
            # The head was fine: say why, as nginx would (best effort, never waits).
            protocol = pending.head[1].get("SERVER_PROTOCOL", "")
            with contextlib.suppress(OSError):
                os.write(pending.fd, _error_response(protocol, "408 Request Timeout", "timeout"))
        self._close(pending.fd)

    def shed(self, pending: Pending) -> None:
        """Close a connection that cannot be parked (the worker has too many), at once.

        A 503 once its head is in (best effort, never waits); the worker counts and logs these.
        """
        if pending.decoder is None:
            protocol = pending.head[1].get("SERVER_PROTOCOL", "")
            with contextlib.suppress(OSError):
                os.write(pending.fd, _error_response(protocol, "503 Service Unavailable", "busy"))
        self._close(pending.fd)

    def _failed(self, fd: int, peer: str, exc: BaseException) -> None:
        """One log line for what ended a connection, then close it (BaseException re-raised)."""
        try:
            if isinstance(exc, ProtocolError):
                log.warning(
                    "invalid uwsgi packet from %s: %s%s",
                    peer,
                    escape_log_text(str(exc)),
                    LIMIT_FIXES.get(getattr(exc, "limit", ""), ""),
                )
            elif isinstance(exc, ClientDisconnected):
                log.info("client %s: %s", peer, escape_log_text(str(exc)))
            elif isinstance(exc, OSError):
                log.info("client %s: connection error: %s", peer, escape_log_text(str(exc)))
            elif isinstance(exc, Exception):
                log.error("internal error serving %s", peer, exc_info=exc)
            else:
                raise exc
        finally:
            self._close(fd)

    @staticmethod
    def _close(fd: int) -> None:
        with contextlib.suppress(OSError):
            os.close(fd)

    def _head_done(
        self,
        fd: int,
        peer: str,
        modifier1: int,
        environ: dict[str, Any],
        rest: bytes,
        may_wait: bool = True,
    ) -> Pending | None:
        """The head is parsed: answer a ping, wait for a small body, or serve the request."""
        if modifier1 == MODIFIER_PING:
            send_all(fd, PONG, self.timeout)
        else:
            length_var = environ.get("CONTENT_LENGTH")
            if (
                may_wait
                and length_var
                and len(length_var) <= 7
                and length_var.isascii()
                and length_var.isdigit()
                and len(rest) < int(length_var) <= self.preread
            ):
                # A small body that has not fully arrived: read on while it comes, rather than
                # let a slow client hold the worker while the app reads.
                need = int(length_var)
                rest = self._read_available(fd, rest, need)
                if len(rest) < need:
                    pending = Pending(fd, peer, time.monotonic() + self.timeout)
                    pending.head = (modifier1, environ)
                    pending.body = rest
                    pending.need = need
                    return pending
            self._serve(fd, peer, environ, rest)
        # Not contextlib.suppress: this runs for every request, and that costs ~1 µs more.
        try:  # noqa: SIM105
            os.close(fd)
        except OSError:
            pass
        return None

    def _read_available(self, fd: int, data: bytes, need: int) -> bytes:
        """Append what the kernel already holds, up to ``need`` bytes in all (never waits)."""
        while len(data) < need:
            chunk = read_now(fd, need - len(data))
            if chunk is None:
                break
            if not chunk:
                raise closed_early()
            data += chunk
        return data

    def _serve(self, fd: int, peer: str, environ: dict[str, Any], rest: bytes) -> None:
        protocol = environ["SERVER_PROTOCOL"]
        if protocol not in _PROTOCOLS and ("\n" in protocol or "\r" in protocol):
            # The client's own line ending in our status line: refuse it here, or the app is
            # called and then blamed (an ERROR) for a head we cannot render.
            reason = "invalid SERVER_PROTOCOL: contains CR or LF"
            self._refuse(fd, peer, environ, BadRequest("400 Bad Request", reason), rest)
            return
        length_var = environ.get("CONTENT_LENGTH")
        stream = EMPTY_INPUT
        if length_var:
            try:
                length = parse_content_length(length_var, self.limit_post)
            except BadRequest as exc:
                self._refuse(fd, peer, environ, exc, rest)
                return
            if length:
                stream = InputStream(reader(fd, self.timeout), rest, length)
        environ["wsgi.input"] = stream
        access_log = self.access_log
        started = time.perf_counter() if access_log is not None else 0.0
        exchange = Exchange(fd, protocol, self.timeout)
        try:
            self._run_app(exchange, environ, peer)
        finally:
            # Not after a cut (the reset is the point) nor after the body already failed (a
            # stalled client would cost a second timeout).
            if stream.remaining > 0 and not stream.broken and not exchange.aborted:
                self._drain(fd, stream.remaining)
            if access_log is not None:
                access_log(
                    environ, exchange.status or "-", exchange.sent, time.perf_counter() - started
                )

    def _refuse(
        self, fd: int, peer: str, environ: dict[str, Any], exc: BadRequest, rest: bytes
    ) -> None:
        """Answer a request refused before the app (bad CONTENT_LENGTH) and drain its body."""
        started = time.perf_counter()
        log.warning("refused request from %s: %s", peer, escape_log_text(exc.reason))
        payload = _error_response(environ["SERVER_PROTOCOL"], exc.status, exc.reason)
        try:
            send_all(fd, payload, self.timeout)
            length_var = environ.get("CONTENT_LENGTH") or ""
            if exc.status[:3] == "413" and len(length_var) <= 18:
                # Too large, but well-formed: read it away as for any unread body, so nginx
                # gets the 413 and not a reset (a 502).
                self._drain(fd, int(length_var) - len(rest))
        finally:
            if self.access_log is not None:
                self.access_log(environ, exc.status, len(payload), time.perf_counter() - started)

    def _run_app(self, exchange: Exchange, environ: dict[str, Any], peer: str) -> None:
        try:
            result = self.app(environ, exchange.start_response)
        except ClientDisconnected as exc:
            log.info(
                "client %s went away while the app read its body: %s",
                peer,
                escape_log_text(str(exc)),
            )
            return
        except Exception:
            self._app_failed(exchange, environ, "app raised")
            return
        try:
            if type(result) is list and len(result) == 1 and exchange.status is not None:
                exchange.send(result[0])
            elif type(result) is FileWrapper:
                self._send_file(exchange, result)
            else:
                try:
                    chunks = iter(result)
                except TypeError:
                    if hasattr(type(result), "__iter__"):
                        raise  # the app's own __iter__ failed: its traceback matters
                    what = "None" if result is None else type(result).__name__
                    raise AppError(f"app returned {what}, not an iterable of bytes") from None
                for chunk in chunks:
                    if chunk:
                        exchange.send(chunk)
                    elif type(chunk) is not bytes:
                        exchange.send(chunk)  # "" or None: refused there, never skipped
            if not exchange.head_sent:
                exchange.send(b"")
        except ClientDisconnected as exc:
            log.info("client %s: %s", peer, escape_log_text(str(exc)))
        except (AppError, HeaderError) as exc:
            self._app_failed(exchange, environ, f"bad response ({exc})", traceback=False)
        except Exception:
            self._app_failed(exchange, environ, "app raised while iterating its response")
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                try:
                    close()
                except Exception:
                    log.exception("app's response close() raised")

    def _app_failed(
        self, exchange: Exchange, environ: dict[str, Any], what: str, *, traceback: bool = True
    ) -> None:
        uri = environ.get("REQUEST_URI") or environ.get("PATH_INFO")
        # The request's own text (a raw client can put CR/LF or an ANSI escape in it), and the
        # exception's, which may quote it: escaped, so that each stays on this one line.
        where = escape_log_text(f"{environ.get('REQUEST_METHOD')} {uri}")
        what = escape_log_text(what)
        self._check_fds(sys.exc_info()[1])
        if exchange.head_sent:
            log.error(
                "%s after the response head was sent (%s): cutting the connection",
                what,
                where,
                exc_info=traceback,
            )
            exchange.aborted = True
            # A reset, not a clean close: nginx then reports an upstream error instead of
            # passing a silently truncated body on as complete. TCP only: a unix socket has no
            # reset, so there nginx takes the close as the end of a body without Content-Length
            # (tests/reliability/test_bad_apps.py shows both).
            with contextlib.suppress(OSError):
                sock = socket.socket(fileno=exchange.fd)
                sock.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                sock.detach()
            return
        log.error("%s (%s): answering 500", what, where, exc_info=traceback)
        exchange.status = "500 Internal Server Error"
        payload = _error_response(exchange.protocol, exchange.status, "Internal Server Error")
        exchange.head_sent = True
        send_all(exchange.fd, payload, self.timeout)
        exchange.sent += len(payload)

    def _check_fds(self, exc: BaseException | None) -> None:
        # An app that leaks descriptors fails with EMFILE on every request from then on; only a
        # fresh process recovers. Look through the chain: the app may have wrapped the OSError.
        for _ in range(8):
            if exc is None:
                return
            if isinstance(exc, OSError) and exc.errno == errno.EMFILE:
                if self.on_out_of_fds is not None:
                    self.on_out_of_fds()
                return
            exc = exc.__cause__ or exc.__context__

    def _send_file(self, exchange: Exchange, wrapper: FileWrapper) -> None:
        filelike = wrapper.filelike
        try:
            file_fd = filelike.fileno()
            st = os.fstat(file_fd)
            regular = stat.S_ISREG(st.st_mode)
        except (AttributeError, OSError, ValueError):
            regular = False
        if not regular:
            for chunk in wrapper:
                if chunk:
                    exchange.send(chunk)
            return
        offset = filelike.tell() if hasattr(filelike, "tell") else 0
        count = max(st.st_size - offset, 0)
        exchange.send(b"")  # the head
        exchange.sent += send_file(exchange.fd, file_fd, offset, count, self.timeout)

    def _drain(self, fd: int, remaining: int) -> None:
        """The app left body bytes unread: end our side first, then read them away.

        Closing with unread data makes the kernel send a reset, and nginx then answers 502 even
        though the response was complete (uWSGI's behaviour for an early 401 to a large POST).
        """
        with contextlib.suppress(OSError):
            sock = socket.socket(fileno=fd)
            try:
                sock.shutdown(socket.SHUT_WR)
            finally:
                sock.detach()
        budget = min(remaining, DRAIN_CAP)
        with contextlib.suppress(ClientDisconnected):
            while budget > 0:
                budget -= len(recv(fd, min(budget, 262144), self.timeout))
        if remaining > DRAIN_CAP:
            log.info(
                "left %d unread body bytes after draining %d", remaining - DRAIN_CAP, DRAIN_CAP
            )
