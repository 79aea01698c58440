"""Reading the request: one connection's packet head (and small body) off its fd, never waiting.

:class:`Handler` is built once per worker (everything that can be precomputed is). The worker
loop calls :meth:`Handler.begin` per accepted fd: the whole head almost always arrives in the
first read (nginx writes it at once) and goes straight to :func:`uwsgiproto.packet_end`; a
request not fully there yet comes back as a :class:`Pending` that the loop parks, and resumes
with :meth:`Handler.resume` once the fd is readable (a :class:`uwsgiproto.Decoder` collects its
head). Once the request is in, :class:`~uwsgiapp.server.exchange.Responder` runs the exchange.
Nothing here raises: every failure becomes one log line and, where a response can still be
sent, the right status.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Any, Final

from uwsgiapp.server.exchange import Exchange, Peer
from uwsgiapp.server.inflight import say_stalled
from uwsgiapp.server.io import closed_early, read_now, readable, send_all
from uwsgiapp.server.logtext import escape_log_text
from uwsgiapp.server.spool import body_cut, body_stall, make_responder
from uwsgiapp.server.throttle import clients_gone, invalid_packets
from uwsgiapp.wsgi.contract import AccessLogger, WSGIApp
from uwsgiapp.wsgi.environ import EnvironBuilder, EnvironSettings, build_environ
from uwsgiapp.wsgi.input import ClientDisconnected
from uwsgiapp.wsgi.response import FileWrapper
from uwsgiproto import (
    BLOCK_START,
    MODIFIER_PING,
    NEED_DATA,
    Decoder,
    Limits,
    ProtocolError,
    Request,
    build_pong,
    packet_end,
)

log = logging.getLogger("uwsgiapp.error")

# Bound once (``Final``): compiled, ``os.read(...)`` looks ``read`` up in the module on every
# call, which costs as much again as the call itself.
_set_blocking: Final = os.set_blocking
_read: Final = os.read
_close_fd: Final = os.close

#: What to change when a request exceeds a codec limit (``PacketTooLarge.limit``): nginx then
#: answers 502, and the log line is all the user sees.
LIMIT_FIXES = {
    "buffer_size": "; raise --buffer-size (uWSGI's buffer-size, at most 65535): nginx sends "
    "every request header in this block, so large cookies need it (nginx's own limit for "
    "them is large_client_header_buffers)",
    "max_vars": "; raise --max-vars (uWSGI's max-vars): nginx sends a var for each of its "
    "params and each request header",
}

PONG: Final = build_pong()
#: Seconds a just-accepted connection with nothing to read yet is waited for before parking.
#: Not while many are parked already: under a flood of silent connections, the wait for each
#: one would hold the worker (1,100 of them cost 2.8 s of every worker's time).
FIRST_BYTES_WAIT: Final = 0.005
#: Bodies up to this size are read whole before the app is called, without holding the worker
#: while a slow client sends them (larger ones stream to the app as it reads).
PREREAD: Final = 65536


class Pending:
    """A connection whose request has not fully arrived, parked until its fd is readable.

    While the head is incomplete ``decoder`` holds it; then ``head`` is (var block, environ) and
    ``body`` the part of a small body received so far, ``need`` its full length.
    """

    __slots__ = ("body", "deadline", "decoder", "fd", "head", "need", "peer")

    def __init__(self, fd: int, peer: Peer, deadline: float) -> None:
        self.fd = fd
        self.peer = peer
        #: Monotonic time after which the client has been silent for ``--socket-timeout``.
        self.deadline = deadline
        self.decoder: Decoder | None = None
        self.head: tuple[bytes, dict[str, Any]] = (b"", {})
        self.body = b""
        self.need = 0


class Handler:
    """Serves requests for one worker: reads each request, then hands it to the Responder."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        limits: Limits,
        settings: EnvironSettings,
        socket_timeout: float,
        access_log: AccessLogger | None = None,
        post_buffering: int = 0,
        spool_dir: str = "",
    ) -> None:
        self.limits = limits
        self.mount = settings.mount
        self.timeout = socket_timeout
        self.template = settings.template()
        if settings.file_wrapper is None:
            # Ours, so that the Responder can recognise it and use sendfile.
            self.template["wsgi.file_wrapper"] = FileWrapper
        self.environ = EnvironBuilder(self.template, limits, self.mount)
        self._buffer_size = limits.buffer_size
        # One read normally takes the whole head plus the start of the body.
        self.read_size = max(16384, limits.buffer_size + 4)
        self.preread = PREREAD
        #: The lines about invalid packets: a flood of them is told in one line a window.
        self.invalid = invalid_packets()
        #: The lines about connections that ended before their request was in: likewise.
        self.gone = clients_gone()
        #: Set to 0 by the worker while many connections are parked (see FIRST_BYTES_WAIT).
        self.first_bytes_wait = FIRST_BYTES_WAIT
        #: The access log alone (the Responder's may count for the stats too): parked requests'.
        self.access_line = access_log
        self.responder = make_responder(
            app,
            limit_post=settings.limit_post,
            socket_timeout=socket_timeout,
            access_log=access_log,
            post_buffering=post_buffering,
            spool_dir=spool_dir,
        )

    @property
    def app(self) -> WSGIApp:
        """The WSGI application the Responder calls."""
        return self.responder.app

    @app.setter
    def app(self, app: WSGIApp) -> None:
        self.responder.app = app

    @property
    def on_out_of_fds(self) -> Callable[[], None] | None:
        """Called when the app fails for want of file descriptors (the worker recycles)."""
        return self.responder.on_out_of_fds

    @on_out_of_fds.setter
    def on_out_of_fds(self, callback: Callable[[], None] | None) -> None:
        self.responder.on_out_of_fds = callback

    # -- the worker loop's entry points --------------------------------------------------------

    def begin(self, fd: int, peer: Peer) -> Pending | None:
        """Start serving a just-accepted ``fd``.

        Returns None when the connection was served (or refused) and closed, or a
        :class:`Pending` when its request has not fully arrived: the caller waits until ``fd`` is
        readable and calls :meth:`resume`, or :meth:`expire` once ``pending.deadline`` passed.
        """
        try:
            _set_blocking(fd, False)
            try:
                data = _read(fd, self.read_size)
            except BlockingIOError:
                # Accepted between nginx's connect and its write: the bytes are a moment away.
                # Waiting that moment here keeps a worker at one connection from nginx at a
                # time (a kill -9 then loses one request, not a parked one as well).
                data = None
                wait = self.first_bytes_wait
                if wait and readable(fd, wait):
                    data = _read(fd, self.read_size)
            if data:
                # Fast path: the whole head arrived in one read (almost always, from nginx).
                # parse_packet's two halves, each a native call compiled (see packet_end).
                end = packet_end(data, self._buffer_size)
                if end >= 0:
                    block = data[BLOCK_START:end]
                    environ = self.environ.build(block)
                    return self._head_done(fd, peer, data[0], environ, data[end:], block)
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
            if pending.decoder is not None:
                chunk = read_now(fd, self.read_size)
                if chunk is None:
                    return pending
                pending.deadline = time.monotonic() + self.timeout
                return self._resume_head(pending, chunk)
            had = len(pending.body)
            if not self._read_available(pending):
                if len(pending.body) > had:
                    pending.deadline = time.monotonic() + self.timeout
                return pending
            self._body_done(fd, peer, pending.head, pending.body)
        except BaseException as exc:
            self._failed(fd, peer, exc)
        return None

    def expire(self, pending: Pending) -> None:
        """A parked client sent nothing for ``--socket-timeout``: log one line and close."""
        decoder = pending.decoder
        what = "its request head" if decoder is not None else "its body"
        sent = (
            f"({decoder.buffered} bytes in)"
            if decoder is not None
            else body_stall(pending.head[1], len(pending.body), pending.need)
        )
        say_stalled(
            f"{pending.peer} stalled: {what} incomplete, read timed out after {self.timeout:g} s "
            f"{sent}; closing"
        )
        if decoder is None:  # the head was fine: say why, as nginx would
            self._answer_parked(pending, "408 Request Timeout", "timeout", self.timeout)
        self._close(pending.fd)

    def shed(self, pending: Pending) -> None:
        """Close a connection that cannot be parked (the worker has too many), at once.

        A 503 once its head is in (best effort, never waits); the worker counts and logs these.
        """
        if pending.decoder is None:
            self._answer_parked(pending, "503 Service Unavailable", "busy", 0.0)
        self._close(pending.fd)

    def _answer_parked(self, pending: Pending, status: str, text: str, seconds: float) -> None:
        """Answer a parked request whose head is in with ``status`` (best effort, never
        waits), and give it its access line (a --log-4xx count missed these 408s)."""
        block, environ = pending.head
        exchange = Exchange(pending.fd, environ.get("SERVER_PROTOCOL", ""), 0.0)  # no wait
        with contextlib.suppress(OSError):
            if status:  # else the client is gone: nothing to answer
                exchange.answer_error(status, text)
        if self.access_line is not None:  # not the stats': the loop counted no request here
            self.access_line(environ, exchange, seconds, block)

    # -- waiting in place (tests, tools) --------------------------------------------------------

    def handle(self, fd: int, peer: Peer) -> None:
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

    # -- steps ---------------------------------------------------------------------------------

    def _resume_head(self, pending: Pending, chunk: bytes) -> Pending | None:
        """Feed a parked head's decoder; once the head is complete, go on as :meth:`begin`."""
        decoder = pending.decoder
        assert decoder is not None
        if not chunk:
            if not decoder.buffered:
                log.debug("client %s closed the connection without a request", pending.peer)
                self._close(pending.fd)
                return None
            decoder.eof()  # raises: closed mid-packet
        decoder.receive_data(chunk)
        event = decoder.next_event()
        if event is NEED_DATA:
            return pending
        pending.decoder = None
        if isinstance(event, Request):
            environ = build_environ(dict(event.vars), self.template, self.mount)
            return self._head_done(
                pending.fd,
                pending.peer,
                event.modifier1,
                environ,
                decoder.trailing_data,
                decoder.var_block,
            )
        return self._head_done(pending.fd, pending.peer, MODIFIER_PING, {}, b"", b"")

    def _head_done(
        self,
        fd: int,
        peer: Peer,
        modifier1: int,
        environ: dict[str, Any],
        rest: bytes,
        block: bytes,
    ) -> Pending | None:
        """The head is parsed: answer a ping, wait for a small body, or serve the request."""
        if modifier1 == MODIFIER_PING:
            send_all(fd, PONG, self.timeout)  # the app is never called for a ping
        else:
            length_var = environ.get("CONTENT_LENGTH")
            if (
                isinstance(length_var, str)  # compiled, its truth is then a length, not a call
                and length_var
                and len(length_var) <= 7
                and length_var.isascii()
                and length_var.isdigit()
                and len(rest) < int(length_var) <= self.preread
            ):
                # A small body that has not fully arrived: read on while it comes, rather than
                # let a slow client hold the worker while the app reads.
                pending = Pending(fd, peer, time.monotonic() + self.timeout)
                pending.head, pending.body, pending.need = (block, environ), rest, int(length_var)
                if not self._read_available(pending):
                    return pending
                rest = pending.body
            self.responder.serve(fd, peer, environ, rest, block)
        # Not contextlib.suppress: this runs for every request, and that costs ~1 µs more.
        try:  # noqa: SIM105
            _close_fd(fd)
        except OSError:
            pass
        return None

    def _body_done(
        self, fd: int, peer: Peer, head: tuple[bytes, dict[str, Any]], body: bytes
    ) -> None:
        """A parked small body is all in: serve the request (no more waiting) and close."""
        self.responder.serve(fd, peer, head[1], body, head[0])
        self._close(fd)

    def _read_available(self, pending: Pending) -> bool:
        """Append to a small body what the kernel already holds of it (never waits): whether
        it is all in. A client gone before (a close, a reset) gets its access line (the
        client's 499) and the error raised names the request and its client."""
        while len(pending.body) < pending.need:
            try:
                chunk = read_now(pending.fd, pending.need - len(pending.body))
                if chunk == b"":
                    raise closed_early()
            except ClientDisconnected as exc:
                self._answer_parked(pending, "", "", 0.0)
                got = f": {len(pending.body)} of {pending.need} bytes of its body in"
                raise body_cut(exc, pending.head[1], pending.peer, got) from None
            if chunk is None:
                return False
            pending.body += chunk
        return True

    def _failed(self, fd: int, peer: Peer, exc: BaseException) -> None:
        """One log line for what ended a connection, then close it (BaseException re-raised)."""
        try:
            if isinstance(exc, ProtocolError):
                said = f"from {peer}: {escape_log_text(str(exc))}"
                if self.invalid.allow(said):
                    log.warning(
                        "invalid uwsgi packet %s%s",
                        said,
                        LIMIT_FIXES.get(getattr(exc, "limit", ""), ""),
                    )
            elif isinstance(exc, OSError):  # ClientDisconnected too
                what = "" if isinstance(exc, ClientDisconnected) else "connection error: "
                client = getattr(exc, "client", "") or peer
                said = f"client {client}: {what}{escape_log_text(str(exc))}"
                if self.gone.allow(said):
                    log.info("%s", said)
            elif isinstance(exc, Exception):
                log.error("internal error serving %s", peer, exc_info=exc)
            else:
                raise exc
        finally:
            self._close(fd)

    @staticmethod
    def _close(fd: int) -> None:
        with contextlib.suppress(OSError):
            _close_fd(fd)
