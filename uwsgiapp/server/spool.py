"""``--post-buffering``: every request body read whole before the app, into a seekable file.

uWSGI's ``post-buffering N``: a body of up to N bytes (or up to 64 KiB, which the worker reads
before the app anyway) is held in memory, a larger one goes to an unnamed temporary file
(``O_TMPFILE`` where the filesystem has it, else a name removed at once: nothing is left behind
when the request ends or the worker dies), in ``--post-buffering-dir``, else ``TMPDIR``, else
``/tmp`` (uWSGI's places). ``wsgi.input`` is that file: the app may read it twice
(``seek(0)``), and after its response has begun (nginx sends no more of a body once a response
head is in). A client that goes away or stalls mid-body never reaches the app: one log line,
as for a small body.

:class:`SpoolingResponder` is the worker's responder when the option is on, chosen once when
the worker's :class:`~uwsgiapp.server.intake.Handler` is built: without the option the
exchange is :class:`~uwsgiapp.server.exchange.Responder`'s, not one step more.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import time
from threading import get_ident
from typing import IO, Any, Final

from uwsgiapp.server.exchange import Exchange, Peer, Responder, one_word
from uwsgiapp.server.forkedchild import leave
from uwsgiapp.server.inflight import RECEIVING, client_of, out_of_fds, request_text
from uwsgiapp.server.io import ClientDisconnected, ClientTimeout, recv
from uwsgiapp.server.transfer import drain, unwinding
from uwsgiapp.wsgi.contract import AccessLogger, WSGIApp
from uwsgiapp.wsgi.environ import BadRequest, parse_content_length

#: A body up to this size is in memory whatever the limit: the worker has read it whole before
#: the app already (:data:`uwsgiapp.server.intake.PREREAD`), and a file would only cost.
IN_MEMORY_ANYWAY: Final = 65536
#: The most one read from the client asks for (a read buffer is allocated at the size asked).
MAX_READ: Final = 1 << 20

_perf_counter: Final = time.perf_counter
log = logging.getLogger("uwsgiapp.error")


def in_memory(length: int, limit: int) -> bool:
    """Whether a body of ``length`` bytes is held in memory under ``--post-buffering limit``
    (up to ``limit`` bytes, or up to :data:`IN_MEMORY_ANYWAY`), rather than spooled to a
    temporary file."""
    return length <= limit or length <= IN_MEMORY_ANYWAY


def default_spool_dir() -> str:
    """Where bodies over the limit go without ``--post-buffering-dir``: Python's temporary
    directory (``TMPDIR``, else ``/tmp``, as uWSGI's)."""
    import tempfile  # with its own imports (random, ...), only where bodies are spooled

    return tempfile.gettempdir()


def temporary_file(directory: str) -> IO[bytes]:
    """A new unnamed temporary file in ``directory`` (removed when closed)."""
    import tempfile

    return tempfile.TemporaryFile(dir=directory)


def spooling_said(post_buffering: int, directory: str, limit_post: int) -> str:
    """The start-up's line on ``--post-buffering``: where bodies go, and how large one may be
    (without ``--limit-post``, a body of any size may fill the directory's disk)."""
    larger = (
        f"larger ones, up to --limit-post {limit_post} bytes,"
        if limit_post
        else "larger ones, of any size (no --limit-post: nginx's client_max_body_size is the "
        "only bound),"
    )
    return (
        f"post-buffering: request bodies are read whole before the app, up to "
        f"{max(post_buffering, IN_MEMORY_ANYWAY)} bytes in memory, {larger} in unnamed files "
        f"in {directory}"
    )


def check_spool_dir(configured: str) -> tuple[str, str]:
    """The spool directory made absolute, and why no temporary file can be made there ('':
    it can). Tried once at start-up as the workers' user: a directory they cannot write
    stops the start, not each large upload later."""
    if not configured:
        try:
            configured = default_spool_dir()
        except OSError as exc:  # none of TMPDIR, /tmp, /var/tmp, /usr/tmp, the cwd is writable
            return "", (
                f"{exc.strerror or exc} (name a directory the workers' user can write, or set "
                "TMPDIR; on a read-only root filesystem, mount a tmpfs on /tmp)"
            )
    where = os.path.abspath(configured)
    try:
        temporary_file(where).close()
    except OSError as exc:
        reason = exc.strerror or str(exc)
        return where, (
            f"cannot make a temporary file in {where}: {reason} (name a directory the "
            "workers' user can write, or set TMPDIR)"
        )
    return where, ""


def spool_body(
    fd: int,
    rest: bytes,
    length: int,
    *,
    limit: int,
    directory: str,
    timeout: float,
    environ: dict[str, Any] | None = None,
) -> IO[bytes]:
    """The whole body of ``length`` bytes (``rest``: what already came with the head), read
    from ``fd`` with ``timeout`` per read, in memory or a temporary file; rewound. Meanwhile
    ``environ`` holds it (:data:`~uwsgiapp.server.inflight.RECEIVING`, for a harakiri's line).

    Raises :class:`ClientDisconnected` (a :class:`ClientTimeout` for a stall) saying how much
    of the body came, or :class:`SpoolFailed` when the server cannot hold it; the file is then
    closed.
    """
    got = min(len(rest), length)
    body: IO[bytes] | None = None  # closed by the caller at the request's end, or below
    try:
        body = io.BytesIO() if in_memory(length, limit) else temporary_file(directory)
        body.write(rest[:length] if len(rest) > length else rest)
        if environ is not None:
            environ[RECEIVING] = (body, length)
        while got < length:
            chunk = recv(fd, min(length - got, MAX_READ), timeout)
            got += len(chunk)
            body.write(chunk)
        body.seek(0)
        if environ is not None:
            del environ[RECEIVING]
    except ClientDisconnected as exc:
        _close(body)
        raise retold(exc, f": {got} of {length} bytes of its body in") from None
    except OSError as exc:
        _close(body)
        raise SpoolFailed(exc, length - got) from exc
    except BaseException:
        _close(body)
        raise
    return body


class SpoolFailed(Exception):
    """The server could not hold a body (a full disk, a file size limit, no descriptors): the
    ``OSError`` it met (``error``), and how many bytes of the body were still to come
    (``unread``). Not an ``OSError`` itself: a compiled build cannot subclass one here."""

    def __init__(self, error: OSError, unread: int) -> None:
        super().__init__(str(error))
        self.error = error
        self.unread = unread


def _close(body: IO[bytes] | None) -> None:
    if body is not None:
        body.close()


def retold(exc: ClientDisconnected, more: str) -> ClientDisconnected:
    """``exc`` (a stall stays a :class:`ClientTimeout`) with ``more`` after its text."""
    said = f"{exc}{more}"
    return ClientTimeout(said) if isinstance(exc, ClientTimeout) else ClientDisconnected(said)


def body_stall(environ: dict[str, Any], got: int, need: int) -> str:
    """What a log line says of a request whose small body did not come: the request, and for
    none of it nginx's directive that sends the length without the body."""
    where = f"({request_text(environ)}: {got} of {need} bytes in)"
    if got:
        return where
    return (
        f"{where}: nginx sent none of it; with `uwsgi_pass_request_body off`, also leave "
        'CONTENT_LENGTH out (`uwsgi_param CONTENT_LENGTH "";`)'
    )


def body_cut(
    exc: ClientDisconnected, environ: dict[str, Any], peer: Peer, more: str = ""
) -> ClientDisconnected:
    """``exc``, which cut a request's body short before the app was called, told with
    ``more``, the request and its client (the line named only the socket nginx came over)."""
    told = retold(exc, f"{more} ({request_text(environ)}); the app is not called")
    told.client = client_of(environ, peer)
    return told


class SpoolingResponder(Responder):
    """A :class:`Responder` that reads each request's whole body before calling the app."""

    def __init__(
        self,
        app: WSGIApp,
        *,
        limit_post: int,
        socket_timeout: float,
        access_log: AccessLogger | None = None,
        post_buffering: int,
        directory: str,
    ) -> None:
        super().__init__(
            app, limit_post=limit_post, socket_timeout=socket_timeout, access_log=access_log
        )
        #: Bodies up to this many bytes are held in memory; larger ones go to ``directory``.
        self.post_buffering = post_buffering
        self.directory = directory

    def serve(
        self, fd: int, peer: Peer, environ: dict[str, Any], rest: bytes, block: bytes
    ) -> None:
        """As :meth:`Responder.serve`, with ``wsgi.input`` the whole body, read first.

        A request without a body, or one refused before the app (a bad ``SERVER_PROTOCOL``
        or ``CONTENT_LENGTH``, over ``--limit-post``), is served as without the option: its
        400 or 413 comes before any of the body is read. Raises ClientDisconnected when the
        client goes away (or stalls) before the body is in: the app is not called.
        """
        protocol: str = environ["SERVER_PROTOCOL"]
        length = 0
        if one_word(protocol):  # else refused as without the option
            with contextlib.suppress(BadRequest):
                length = parse_content_length(environ.get("CONTENT_LENGTH"), self.limit_post)
        if not length:
            super().serve(fd, peer, environ, rest, block)
            return
        started = _perf_counter()
        self.last = exchange = Exchange(fd, protocol, self.timeout)
        self.current = environ  # named by a harakiri's or a stop's line while the body comes
        if self.threads is not None:  # as Responder.serve's
            self.threads[get_ident()] = (environ, exchange, started, block)
        body: IO[bytes] | None = None
        try:
            try:
                body = self._spool(fd, peer, rest, length, environ, exchange)
            except BaseException as exc:
                if not isinstance(exc, Exception):  # a stop's cut: nginx's 502, not the client's
                    unwinding(exchange, environ, exc)
                raise
            if body is not None:
                environ["wsgi.input"] = body
                self._run_app(exchange, environ, peer)
        finally:
            exchange.fd = -1  # as in Responder.serve
            if self.forked:  # the app's own forked process, its response done
                leave(environ, None)
            self.current = None
            if body is not None:
                body.close()
            # Every request gets its line: a 408 for a stalled body, 499 for one cut short.
            if self.threads is not None:
                del self.threads[get_ident()]
            self._end(exchange, environ, started, block)

    def _spool(
        self,
        fd: int,
        peer: Peer,
        rest: bytes,
        length: int,
        environ: dict[str, Any],
        exchange: Exchange,
    ) -> IO[bytes] | None:
        """The whole body (see :func:`spool_body`); None once a failure of the server's own (a
        full disk, the directory gone, no fds left) is logged and answered with a 500."""
        try:
            return spool_body(
                fd,
                rest,
                length,
                limit=self.post_buffering,
                directory=self.directory,
                timeout=self.timeout,
                environ=environ,
            )
        except ClientDisconnected as exc:
            if isinstance(exc, ClientTimeout):  # as a parked body's stall: a 408, never waits
                exchange.timeout = 0.0  # (the app is not called: nothing else is written)
                with contextlib.suppress(OSError):
                    exchange.answer_error("408 Request Timeout", "timeout")
            raise body_cut(exc, environ, peer) from None
        except SpoolFailed as exc:  # not the client's doing: said as the server's, answered
            log.error(
                "post-buffering: cannot hold the body of (%s) in %s: %s; answering 500",
                request_text(environ),
                self.directory,
                exc,
            )
            if self.on_out_of_fds is not None and out_of_fds(exc.error):
                self.on_out_of_fds()  # the worker recycles (as for the app's)
            with contextlib.suppress(OSError):
                exchange.answer_error("500 Internal Server Error", "failed")
                # The rest read away, as for any unread body: closed with it unread, the
                # connection was reset while nginx still sent it, and nginx answered 502.
                drain(fd, exc.unread, self.timeout, self.limit_post)
            return None


def make_responder(
    app: WSGIApp,
    *,
    limit_post: int,
    socket_timeout: float,
    access_log: AccessLogger | None,
    post_buffering: int = 0,
    spool_dir: str = "",
) -> Responder:
    """The worker's responder: a :class:`SpoolingResponder` with ``--post-buffering``, else a
    plain :class:`Responder` (the choice is made here, once, not per request)."""
    if not post_buffering:
        return Responder(
            app, limit_post=limit_post, socket_timeout=socket_timeout, access_log=access_log
        )
    return SpoolingResponder(
        app,
        limit_post=limit_post,
        socket_timeout=socket_timeout,
        access_log=access_log,
        post_buffering=post_buffering,
        directory=spool_dir or default_spool_dir(),
    )
