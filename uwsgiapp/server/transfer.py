"""Moving body bytes in bulk, off the common request path: a ``wsgi.file_wrapper`` response
sent with ``sendfile``, and the unread rest of a request body read away.

Interpreted even in the compiled build: neither runs for a plain request, and each is a few
system calls whatever its size.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import socket
import stat
import time
from typing import TYPE_CHECKING, Any

from uwsgiapp.server.forkedchild import leave
from uwsgiapp.server.inflight import (
    client_of,
    log_client_gone,
    request_text,
    say_body_unread,
    say_file_shrank,
    say_refused,
)
from uwsgiapp.server.io import recv, reset_on_close, send_file
from uwsgiapp.server.logtext import escape_log_text
from uwsgiapp.wsgi.contract import AccessLogger
from uwsgiapp.wsgi.environ import BadRequest
from uwsgiapp.wsgi.errors import OUR_STOPS, ClientTimeout
from uwsgiapp.wsgi.input import ClientDisconnected, InputStream
from uwsgiapp.wsgi.response import FileWrapper

if TYPE_CHECKING:
    from uwsgiapp.server.exchange import Exchange

__all__ = [
    "DRAIN_CAP",
    "REFUSED_DRAIN_CAP",
    "cut",
    "drain",
    "gone_mid_response",
    "refuse",
    "say_body_caught",
    "send_wrapped_file",
    "unwinding",
]

log = logging.getLogger("uwsgiapp.error")

#: Unread body bytes we are willing to read and discard so nginx never sees a reset.
DRAIN_CAP = 16 * 1024 * 1024
#: The same for a body refused for its size (over ``--limit-post``): nginx accepted it (up to
#: its ``client_max_body_size``) and sends it all before it reads the 413.
REFUSED_DRAIN_CAP = 1024 * 1024 * 1024
#: The longest a drain holds the worker: nginx's buffered body comes at memory speed (1 GiB
#: in about a second), a client's (``uwsgi_request_buffering off``) at its own.
DRAIN_SECONDS = 30.0
#: After its first second, a drain goes on only while the body comes at least this fast on
#: average: nginx's buffered one does by far; a peer that trickles it (a byte a second under a
#: 413 held the worker for the 30 s, each worker in turn) is let go.
DRAIN_MIN_RATE = 256 * 1024
DRAIN_GRACE = 1.0
#: File objects whose reads are their file's bytes (tempfile's wrappers: their ``file``).
_PLAIN_FILES = (io.FileIO, io.BufferedReader, io.BufferedRandom, io.TextIOWrapper)


def send_wrapped_file(
    exchange: Exchange,
    wrapper: FileWrapper,
    timeout: float,
    head_only: bool,
    environ: dict[str, Any],
) -> None:
    """Send a ``wsgi.file_wrapper`` response: a regular file with ``sendfile`` from its
    position (no more than the app's Content-Length), anything else by iterating it; for a
    HEAD (``head_only``), the head alone (Django's ``FileResponse`` leaves the body to the
    server to drop: the whole file went to nginx, which dropped it). A file that shrank while
    it was sent is said as such (``environ``: its request), not as the app's short body."""
    if head_only:
        exchange.send(b"")
        return
    filelike = wrapper.filelike
    try:
        # Only a reader that gives the file's bytes as they are: gzip.open's (bz2, lzma)
        # has the compressed file's fileno, and sendfile sent the compressed bytes.
        plain = isinstance(getattr(filelike, "file", filelike), _PLAIN_FILES)
        file_fd = filelike.fileno()
        st = os.fstat(file_fd)
        regular = plain and stat.S_ISREG(st.st_mode)
    except (AttributeError, OSError, ValueError):
        regular = False
    # A file longer than the app's Content-Length is sent as a slice of it (PEP 3333: no
    # more than that), not as a mistake of the app's.
    if not regular:
        for chunk in wrapper:
            if chunk:
                exchange.send(chunk)
                if exchange.room == 0:  # its Content-Length sent: not read further
                    exchange.overrun = False
                    break
        return
    offset = filelike.tell() if hasattr(filelike, "tell") else 0
    count = max(st.st_size - offset, 0)
    exchange.send(b"")  # the head
    if 0 <= exchange.room < count:
        count = exchange.room
    try:
        sent = send_file(exchange.fd, file_fd, offset, count, timeout)
    except ClientDisconnected as exc:
        # What went before the client left: the access log said 0 bytes for a cut download.
        exchange.sent += exc.written
        raise
    exchange.sent += sent
    if exchange.room >= 0:
        exchange.room -= sent
    if sent < count:  # sendfile met the file's end: it was truncated meanwhile
        say_file_shrank(environ, sent, count)
        exchange.room = -1  # said here: not as "app sent fewer bytes than its Content-Length"


def drain(fd: int, remaining: int, timeout: float, up_to: int = 0) -> None:
    """The app left ``remaining`` body bytes unread: end our side first, then read them away
    (at most :data:`DRAIN_CAP`, or ``up_to`` if larger: ``--limit-post`` for a body the
    server accepted, :data:`REFUSED_DRAIN_CAP` for one refused as over it).

    Closing with unread data makes the kernel send a reset, and nginx then answers 502 even
    though the response was complete (uWSGI's behaviour for an early 401 to a large POST).
    """
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=fd)
        try:
            sock.shutdown(socket.SHUT_WR)
        finally:
            sock.detach()
    cap = max(DRAIN_CAP, up_to)
    budget = whole = min(remaining, cap)
    start = time.monotonic()
    deadline = start + DRAIN_SECONDS
    slow = gone = False
    try:
        while budget > 0:
            # when the bytes read so far fall behind the least rate, or the drain's time is up
            due = min(deadline, start + DRAIN_GRACE + (whole - budget) / DRAIN_MIN_RATE)
            if slow := (wait := due - time.monotonic()) <= 0:
                break
            budget -= len(recv(fd, min(budget, 262144), min(timeout, wait)))
    except ClientTimeout:
        slow = time.monotonic() >= start + DRAIN_GRACE  # it stalled: the close resets the rest
    except ClientDisconnected:
        # nginx, its response whole, closed the connection: nothing left to reset.
        gone = True
    if (remaining > cap or slow) and not gone:
        log.warning(
            "left %d unread body bytes after draining %d%s: the close resets the connection, "
            "and nginx may answer 502 for the response (refuse large bodies in nginx with "
            "client_max_body_size and set --limit-post to the same size: unread bodies up "
            "to it are read away; or read them in the app)",
            remaining - (whole - budget),
            whole - budget,
            f" in {time.monotonic() - start:.1f} s (a drain goes on for {DRAIN_SECONDS:g} s at "
            f"most, and while the body comes at {DRAIN_MIN_RATE // 1024} KiB/s or faster)"
            if slow
            else "",
        )


def unwinding(
    exchange: Exchange, environ: dict[str, Any], exc: BaseException, forked: bool = False
) -> None:
    """The request ends in an exception the worker does not survive: said if the app raised
    SystemExit itself (the master only sees an exit code); once its head is out, the
    connection ends in a reset (a clean close would pass the cut stream on as whole).
    ``forked``: in a process the app forked, which exits here (forkedchild.py)."""
    if forked:
        leave(environ, exc)
    if not isinstance(exc, OUR_STOPS):  # KeyboardInterrupt, GeneratorExit: not only exit()
        raised = type(exc).__name__
        if isinstance(exc, SystemExit):
            raised = f"SystemExit({exc.code!r}) (sys.exit)"
        what = request_text(environ)
        log.error("the app raised %s in %s: this worker exits", raised, what, exc_info=exc)
    if exchange.head_sent:
        cut(exchange)
    else:  # closed with no answer: nginx's 502 for it in the access log, not a client's 499
        exchange.aborted = True


def gone_mid_response(
    exchange: Exchange,
    environ: dict[str, Any],
    peer: object,
    exc: ClientDisconnected,
    forked: bool = False,
) -> bool:
    """The client went away or stalled. Before the head only a read of the body can say
    so (the head counts as sent once taken): the app's call or its iterable's read it.
    ``forked``: in a process the app forked, whose copy of the connection was closed (by the
    server, at the fork: its sends and reads fail, the end of its way back from the app).
    Returns whether the failure said was the body's (else :func:`say_body_caught` may be due)."""
    if forked:
        leave(environ, None)
    if not exchange.head_sent:
        say_body_unread(exchange, environ, peer, exc)  # a stall answered 408
        return True
    stream = exchange.body  # not the app's wsgi.input: a middleware may have put its own
    if exc.from_body or stream is None or stream.failure is None:
        log_client_gone(peer, environ, exc, True)
    # else: the app caught its body's failure and its answer failed too; say_body_caught
    # says both in one line
    if isinstance(exc, ClientTimeout):
        cut(exchange)  # nginx stopped reading, but is there: the rest is not coming
    return exc.from_body


def say_body_caught(
    exchange: Exchange, environ: dict[str, Any], peer: object, stream: InputStream, length: int
) -> None:
    """The app's read of its body failed and the app caught it and went on (Django answers
    500, werkzeug's stream 400): said here, as the app's own answer (if any) does not say
    that the client went away or stalled, nor how much of the body came."""
    failure = stream.failure
    how = "stalled" if isinstance(failure, ClientTimeout) else "went away"
    came = length - stream.remaining  # (the app may have changed its CONTENT_LENGTH)
    status = exchange.sent_status
    answered = f"answered {status[:3]}" if status else "its answer did not go out"
    log.info(
        "client %s %s while the app read its body (%s of %s bytes came: %s); the app caught "
        "it and went on: %s (%s)",
        client_of(environ, peer),
        how,
        came,
        length,
        escape_log_text(str(failure)).removeprefix("client stalled: "),
        answered,
        request_text(environ),
    )


def refuse(
    refused: Exchange,
    peer: object,
    environ: dict[str, Any],
    exc: BadRequest,
    rest: bytes,
    block: bytes,
    access_log: AccessLogger | None,
) -> None:
    """Answer a request refused before the app (a bad CONTENT_LENGTH, a control character or a
    space in its protocol) with ``exc``'s status, read away a body refused for its size, and log
    it."""
    started = time.perf_counter()
    say_refused(environ, peer, exc.reason)
    try:
        refused.answer_error(exc.status, exc.status[4:])  # details: the log only
        length_var = environ.get("CONTENT_LENGTH") or ""
        if exc.status[:3] == "413" and len(length_var) <= 18:
            # Too large, but well-formed: read it away as for any unread body, so nginx
            # gets the 413 and not a reset (a 502): all of it, as it is over --limit-post.
            drain(refused.fd, int(length_var) - len(rest), refused.timeout, REFUSED_DRAIN_CAP)
    finally:
        if access_log is not None:
            access_log(environ, refused, time.perf_counter() - started, block)


def cut(exchange: Exchange) -> None:
    """End a response short of its end with a reset, not a clean close: nginx then reports an
    upstream error and cuts the client off instead of passing the truncated body on as whole.
    TCP only: a unix socket has no reset (tests/reliability/test_bad_apps.py shows both)."""
    exchange.aborted = True
    reset_on_close(exchange.fd)
