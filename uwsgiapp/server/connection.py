"""One connection, one request: packet → environ → app → response → close.

:class:`Handler` is built once per worker (everything that can be precomputed is);
:meth:`Handler.handle` runs per accepted fd and never raises: every failure becomes one log line
and, where a response can still be sent, the right status.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat
import time
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any

from protocol import MODIFIER_PING, Decoder, Limits, ProtocolError, Request, build_pong
from protocol.decoder import parse_head, parse_vars
from protocol.events import NEED_DATA
from uwsgiapp.server.io import ClientTimeout, reader, recv, send_all, send_file
from uwsgiapp.wsgi.environ import BadRequest, EnvironSettings, build_environ, parse_content_length
from uwsgiapp.wsgi.input import EMPTY_INPUT, ClientDisconnected, InputStream
from uwsgiapp.wsgi.response import FileWrapper, HeaderError, render_head

log = logging.getLogger("uwsgiapp.error")

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
#: Called after each request when the access log is on: (environ, status, bytes sent, seconds).
AccessLogger = Callable[[dict[str, Any], str, int, float], None]

PONG = build_pong()
#: Unread body bytes we are willing to read and discard so nginx never sees a reset.
DRAIN_CAP = 16 * 1024 * 1024


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
        self.access_log = access_log
        # One read normally takes the whole head plus the start of the body.
        self.read_size = max(16384, limits.buffer_size + 4)

    # -- per request -------------------------------------------------------------------------

    def handle(self, fd: int, peer: str) -> None:
        """Serve the connection on ``fd`` and close it. Never raises (but BaseException)."""
        try:
            self._serve(fd, peer)
        except ProtocolError as exc:
            log.warning("invalid uwsgi packet from %s: %s", peer, exc)
        except ClientDisconnected as exc:
            log.info("client %s: %s", peer, exc)
        except OSError as exc:
            log.info("client %s: connection error: %s", peer, exc)
        except Exception:
            log.exception("internal error serving %s", peer)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    def _serve(self, fd: int, peer: str) -> None:
        os.set_blocking(fd, False)
        try:
            data = os.read(fd, self.read_size)
        except BlockingIOError:
            data = b""
        # Fast path: the whole head arrived in one read (almost always, from nginx).
        if len(data) >= 4:
            modifier1, size, _ = parse_head(data, self.limits)
            end = 4 + size
            if len(data) >= end:
                block = data[4:end]
                variables = parse_vars(block, self.limits)
                rest = data[end:]
                has_magic = b"UWSGI_" in block
            else:
                modifier1, variables, rest = self._read_head(fd, data)
                has_magic = True
        else:
            modifier1, variables, rest = self._read_head(fd, data)
            if modifier1 < 0:
                return
            has_magic = True
        if modifier1 == MODIFIER_PING:
            send_all(fd, PONG, self.timeout)
            return
        environ = build_environ(variables, modifier1, self.template, self.mount, has_magic)
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
        log.warning("refused request from %s: %s", peer, exc.reason)
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

    def _read_head(self, fd: int, data: bytes) -> tuple[int, dict[str, str], bytes]:
        """Slow path: the head spans several reads. Returns modifier1 -1 on a silent close."""
        decoder = Decoder(self.limits)
        decoder.receive_data(data)
        while True:
            event = decoder.next_event()
            if event is not NEED_DATA:
                break
            try:
                chunk = recv(fd, self.read_size, self.timeout)
            except ClientDisconnected as exc:
                if not decoder.buffered:
                    log.debug("connection closed without a request: %s", exc)
                    return -1, {}, b""
                if not isinstance(exc, ClientTimeout):
                    decoder.eof()  # closed mid-packet: a malformed packet
                raise
            decoder.receive_data(chunk)
        if isinstance(event, Request):
            return event.modifier1, dict(event.vars), decoder.trailing_data
        return MODIFIER_PING, {}, b""

    def _run_app(self, exchange: Exchange, environ: dict[str, Any], peer: str) -> None:
        try:
            result = self.app(environ, exchange.start_response)
        except ClientDisconnected as exc:
            log.info("client %s went away while the app read its body: %s", peer, exc)
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
                for chunk in result:
                    if chunk:
                        exchange.send(chunk)
                    elif type(chunk) is not bytes:
                        exchange.send(chunk)  # "" or None: refused there, never skipped
            if not exchange.head_sent:
                exchange.send(b"")
        except ClientDisconnected as exc:
            log.info("client %s: %s", peer, exc)
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
        where = f"{environ.get('REQUEST_METHOD')} {uri}"
        if exchange.head_sent:
            log.error(
                "%s after the response head was sent (%s): cutting the connection",
                what,
                where,
                exc_info=traceback,
            )
            exchange.aborted = True
            # A reset, not a clean close: nginx then reports an upstream error instead of
            # passing a silently truncated body on as complete.
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
