"""Which request a thread is in, read from its Python stack (no bookkeeping on the request path).

The harakiri dumps and ``--request-titles`` look for the ``environ`` of a WSGI call among a
stack's frames: the server's own frames hold one while a request runs, and so does the app's.
:func:`log_client_gone` is the line naming a request whose client went away mid-answer.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import sys
import traceback
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from uwsgiapp.server.logtext import as_sent, escape_log_text
from uwsgiapp.server.throttle import Burst, body_mismatches, refused_requests, stalled_clients
from uwsgiapp.server.workerid import set_worker_number, worker_label, worker_number
from uwsgiapp.unpatched import get_ident, threads_patched_by
from uwsgiapp.wsgi.errors import ClientDisconnected, ClientTimeout
from uwsgiapp.wsgi.response import NOT_DIGITS

if TYPE_CHECKING:
    from uwsgiapp.server.exchange import Exchange

__all__ = [
    "ASKED",
    "app_stack",
    "dump_stuck_request",
    "log_client_gone",
    "read_after_head",
    "request_environ",
    "request_line",
    "request_text",
    "say_app_failed",
    "say_body_length",
    "say_refused",
    "set_request_source",
    "set_worker_number",
    "worker_label",
    "worker_number",
]

log = logging.getLogger("uwsgiapp.error")

#: The package's directory; its frames but those of the framework (uwsgiapp.web) are the
#: server's, not the app's.
_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_FRAMEWORK = os.path.join(_PACKAGE, "web") + os.sep


#: Where a one-thread worker's request is when its stack does not show it, and its thread.
_current: Callable[[], dict[str, Any] | None] | None = None
_serving = 0


def set_request_source(current: Callable[[], dict[str, Any] | None]) -> None:
    """``current()`` gives this process's request environ when no frame holds one (a compiled
    build iterates a streamed response with no Python frame between the worker loop and the
    app's generator); called after fork in a one-thread worker, in the thread that serves."""
    global _current, _serving
    _current, _serving = current, get_ident()


def request_environ(frame: FrameType | None, thread: int | None = None) -> dict[str, Any] | None:
    """The outermost WSGI environ among ``frame`` and its callers, else, in the serving thread
    (``thread``: whose stack ``frame`` is, by default the caller's), the worker's one."""
    found = _stack_environ(frame)
    if found is None and _current is not None and (thread or get_ident()) == _serving:
        found = _current()
    return found


def _stack_environ(frame: FrameType | None) -> dict[str, Any] | None:
    """The outermost WSGI environ among ``frame`` and its callers (None: none of them)."""
    found = None
    while frame is not None:
        environ = frame.f_locals.get("environ")
        if isinstance(environ, dict) and "REQUEST_METHOD" in environ:
            found = environ
        frame = frame.f_back
    return found


#: The environ's key for a body ``--post-buffering`` still reads: (what holds it, its length).
RECEIVING: Final = "uwsgiapp.receiving"


def request_line(frame: FrameType | None) -> str:
    """The request a thread's stack is serving, for a log line (a harakiri's, a quick stop's):
    as :func:`request_text` says it, with its request id; a body still read before the app,
    how much of it came (a harakiri then read as the app's hang)."""
    environ = request_environ(frame)
    if environ is None:
        return "unknown request"
    if (body := environ.get(RECEIVING)) is None:
        return request_text(environ)
    got = f"{body[0].tell()} of {body[1]} bytes in"
    return f"{request_text(environ)} ({got} with --post-buffering: the app is not called yet)"


def app_stack(frame: FrameType | None) -> str:
    """``frame``'s stack as a log shows it, without the server's own outer frames (the
    interpreter's start, the CLI, the worker loop): the app's call and what it called."""
    if frame is None:
        return "(no frame)"
    frames = traceback.extract_stack(frame)
    # The command that started us: pip's bin/uwsgiapp script (`python -m` runs a file of ours).
    script = getattr(sys.modules.get("__main__"), "__file__", None) or "<no script>"
    skipped = 0
    in_server = False
    for summary in frames[:-1]:
        name = summary.filename
        server = name.startswith(_PACKAGE + os.sep) and not name.startswith(_FRAMEWORK)
        # Before the server's first frame, what started the process or the thread: that
        # script, runpy for `python -m` (a file before Python 3.11, frozen since), threading
        # for a request thread. After it, the same file is the app's (an app in that script).
        starting = not in_server and (
            name == script
            or name.startswith("<frozen ")
            or os.path.basename(name) in ("runpy.py", "threading.py")
        )
        if not (server or starting):
            break
        in_server = in_server or server
        skipped += 1
    shown = "".join(traceback.format_list(frames[skipped:])).rstrip()
    return f"({skipped} frames of the server above)\n{shown}" if skipped else shown


#: How a SIGUSR2 sent to a worker by hand is said: it asks what the worker does (uWSGI's
#: workers say it), where the master's (a harakiri's) retires it.
ASKED: Final = "SIGUSR2 (not the master's: no harakiri)"


def dump_stuck_request(frame: FrameType | None, harakiri: bool = True) -> None:
    """USR2 in a worker: log the Python stack of its request, with its request line, as the
    stuck one of a harakiri or (``harakiri`` False) as what it is doing now."""
    frame = waiting_request_frame(frame)
    if harakiri:
        log.error("harakiri: %s stuck in %s; its stack:\n%s", worker_label(),
                  request_line(frame), app_stack(frame))  # fmt: skip
    elif request_environ(frame) is None:
        log.warning("%s: %s is in no request; serving on", ASKED, worker_label())
    else:
        log.warning("%s: %s is in %s, serving on; its stack:\n%s", ASKED, worker_label(),
                    request_line(frame), app_stack(frame))  # fmt: skip


def waiting_request_frame(frame: FrameType | None) -> FrameType | None:
    """``frame``, or, where it serves no request and the app runs on greenlets (gevent's or
    eventlet's patching), the frame where the process's first greenlet waits: a request
    waiting in their hub is suspended there, and the signal's frame is the hub's loop (the
    harakiri's stack named gevent's hub, not the app's line)."""
    greenlet = sys.modules.get("greenlet")
    # Not for an app that runs greenlets without patching (SQLAlchemy's asyncio bridge): its
    # stuck request is in the frame the signal found.
    if greenlet is None or threads_patched_by() is None or _stack_environ(frame) is not None:
        return frame
    root = greenlet.getcurrent()
    while root.parent is not None:
        root = root.parent
    waiting: FrameType | None = getattr(root, "gr_frame", None)
    return waiting if _stack_environ(waiting) is not None else frame


#: Why a read of the body timed out once the response had begun (:func:`read_after_head`).
BODY_AFTER_HEAD = (
    "; the app read its request body after sending the start of its response, and nginx "
    "sends no more of a request body once a response has begun: read the whole body first, "
    "or set --post-buffering (it is then read before the app is called)"
)


#: Why a write of the response timed out: the server cuts it (a warning, not a client gone).
SLOW_READER = (
    "; the response is cut: nginx took none of it for --socket-timeout seconds (behind "
    "uwsgi_buffering off it reads only as fast as its client does: keep nginx's buffering "
    "on for large responses to slow clients, or raise --socket-timeout)"
)


def read_after_head(exc: ClientDisconnected, head_sent: bool) -> bool:
    """Whether a "client gone" is the app's own doing: its read of ``wsgi.input`` (the only
    read once the app runs) timed out after the response head went out. nginx stops passing
    the body on once the head arrives (buffered or not), so a body read then waits for
    ``--socket-timeout`` and the response is cut, though the client has sent it all."""
    return head_sent and isinstance(exc, ClientTimeout) and exc.reading


def log_client_gone(
    peer: object, environ: dict[str, Any], exc: ClientDisconnected, head_sent: bool = False
) -> None:
    """A client gone while its response was written: one line naming the request (and its
    request id, as :func:`request_text` does: nginx's 504 for it has the same). For HEAD,
    nginx closes as soon as it has the head (it needs no body): expected, so debug only. A
    read of the body after the head (:func:`read_after_head`) is the app's mistake: a warning
    that says so."""
    method = environ.get("REQUEST_METHOD", "")
    level = logging.DEBUG if method == "HEAD" else logging.INFO
    hint = ""
    if read_after_head(exc, head_sent):
        level, hint = logging.WARNING, BODY_AFTER_HEAD
    elif isinstance(exc, ClientTimeout) and not exc.reading and method != "HEAD":
        level, hint = logging.WARNING, SLOW_READER
    if log.isEnabledFor(level):
        # The browser's address (nginx's REMOTE_ADDR), and the connection it came over (a
        # unix socket's is only its path).
        log.log(
            level,
            "client %s: %s (%s)%s",
            client_of(environ, peer),
            escape_log_text(str(exc)),
            request_text(environ),
            hint,
        )


def client_of(environ: dict[str, Any], peer: object) -> str:
    """The browser's address (nginx's REMOTE_ADDR) and the connection it came over (a unix
    socket's is only its path, a TCP one's nginx's port): ``10.0.0.7 via /run/app.sock``."""
    remote = environ.get("REMOTE_ADDR")
    return f"{escape_log_text(str(remote))} via {peer}" if remote else str(peer)


def say_body_unread(
    exchange: Exchange, environ: dict[str, Any], peer: object, exc: ClientDisconnected
) -> None:
    """The app's read of its body failed before its response began: the client went away, or
    it stalled past ``--socket-timeout``. A stall is answered 408 (nginx is still there, and a
    close is a 502 to it), as a body read before the app (``--post-buffering``) is."""
    how, answered = "went away", ""
    if isinstance(exc, ClientTimeout):
        how = "stalled"
        with contextlib.suppress(OSError):
            exchange.answer_error("408 Request Timeout", "timeout")
            answered = "; answered 408"
    text = escape_log_text(str(exc)).removeprefix("client stalled: ")
    log.info(
        "client %s %s while the app read its body: %s%s (%s)",
        client_of(environ, peer),
        how,
        text,
        answered,
        request_text(environ),
    )


def request_text(environ: dict[str, Any]) -> str:
    """The request's method and URI for a log line, and its ``X-Request-Id`` if it has one
    (nginx's ``$request_id``, to find its access line and the app's own lines): the client's
    own text (a raw client can put CR/LF or an ANSI escape in it), escaped so that it stays on
    this one line."""
    uri = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    request_id = environ.get("HTTP_X_REQUEST_ID")
    said = f", request id {request_id}" if request_id else ""
    return escape_log_text(as_sent(f"{environ.get('REQUEST_METHOD')} {uri}{said}"))


#: What :func:`say_body_length` says, a burst at a time (the worker flushes it).
BODY_LINES = body_mismatches()
#: What :func:`say_refused` says, likewise.
REFUSED_LINES = refused_requests()
#: What :func:`say_stalled` says, likewise.
STALL_LINES = stalled_clients()


def held_lines() -> tuple[Burst, ...]:
    """The process-wide bursts a worker says the held lines of (each tick, and at its end)."""
    return (BODY_LINES, REFUSED_LINES, STALL_LINES)


def say_stalled(said: str) -> None:
    """A parked client was closed for its silence (``said``: who, and what it had sent)."""
    if STALL_LINES.allow(said):
        log.info("client %s", said)


def say_body_length(environ: dict[str, Any], exchange: Exchange) -> None:
    """The body did not match what the app's head allows: more (``overrun``) was dropped and
    its iteration stopped; bytes fewer than its Content-Length leave nginx to cut the client
    short (not for a HEAD, whose Content-Length is the GET's); a Content-Length that is not
    digits went as given (uWSGI and gunicorn send it too), but nginx 1.23 and later answer it
    with a 502 whose reason only nginx's own log gives."""
    overrun, room = exchange.overrun, exchange.room
    if not overrun and room > 0 and environ.get("REQUEST_METHOD") == "HEAD":
        return  # its Content-Length is the GET's: not a mistake, nor counted as one
    where = request_text(environ)
    if not BODY_LINES.allow(where):
        return
    if overrun:
        log.warning(
            "app sent more body than its head allows (%s): the rest not sent, as PEP 3333 "
            "asks (its Content-Length, or none after a 204 or 304)",
            where,
        )
    elif room == NOT_DIGITS:
        log.warning(
            "app sent a Content-Length that is not a length (%s, %s): sent as given, but nginx "
            '1.23 and later answer it with 502 ("upstream sent invalid "Content-Length" '
            'header")',
            escape_log_text(repr(_content_lengths(exchange.headers))),
            where,
        )
    else:
        log.error(
            "app sent %d bytes fewer than its Content-Length (%s): nginx cuts the client short",
            room,
            where,
        )


def say_file_shrank(environ: dict[str, Any], sent: int, size: int) -> None:
    """A ``wsgi.file_wrapper`` file ended after ``sent`` of the ``size`` bytes it had when its
    sending began: truncated or rewritten in place meanwhile (with a Content-Length, nginx cuts
    the client short; without, the client takes the shorter file for whole)."""
    where = request_text(environ)
    if BODY_LINES.allow(where):
        log.warning(
            "the response's file ended after %d of its %d bytes (%s): it shrank while it was "
            "sent (truncated or rewritten in place; replace a served file by renaming a new "
            "one over it)",
            sent,
            size,
            where,
        )


def _content_lengths(headers: Any) -> list[Any]:
    """The values of ``headers``' Content-Length fields (the head went out: it is well formed)."""
    return [value for name, value in headers if name.lower() == "content-length"]


def say_app_failed(
    environ: dict[str, Any], what: str, head_sent: bool, *, traceback: bool = True
) -> None:
    """The app raised or answered badly (``what``): one error line naming the request, with
    the traceback if ``traceback``, and what the server does about it: a 500 while nothing was
    sent (``head_sent`` false), else the connection cut."""
    done = "after the response head was sent (%s): cutting the connection"
    log.error(
        "%s " + (done if head_sent else "(%s): answering 500"),
        escape_log_text(what),
        request_text(environ),
        exc_info=traceback,
    )


def say_refused(environ: dict[str, Any], peer: object, reason: str) -> None:
    """A request was refused before the app (its 400 or 413 is sent by the caller): one line,
    up to a burst a window (:data:`REFUSED_LINES`)."""
    why = escape_log_text(as_sent(reason))  # '١٢', as written: its latin-1 view was 'Ù¡Ù¢'
    said = f"from {client_of(environ, peer)}: {why} ({request_text(environ)})"
    if REFUSED_LINES.allow(said):
        log.warning("refused request %s", said)


#: nginx's default ``uwsgi_buffer_size``: one memory page (4 KiB on x86-64 and most arm64).
NGINX_HEAD_BUFFER = 4096
_BIG_HEAD_SAID: list[bool] = []


def say_big_head(environ: dict[str, Any], size: int) -> None:
    """A response head over nginx's default ``uwsgi_buffer_size``, which answers it with a 502
    ("upstream sent too big header"), while the access log says 200. Once a worker: behind an
    nginx whose buffer was raised, such heads are fine, and every one would be said."""
    if _BIG_HEAD_SAID:
        return
    _BIG_HEAD_SAID.append(True)
    log.warning(
        "a response head of %d bytes (%s) is over nginx's default uwsgi_buffer_size (%d): "
        'nginx answers it with 502 "upstream sent too big header" unless its '
        "uwsgi_buffer_size was raised; make the head smaller (cookies, long headers) or raise "
        "it (said once per worker)",
        size,
        request_text(environ),
        NGINX_HEAD_BUFFER,
    )


def out_of_fds(exc: BaseException | None) -> bool:
    """Whether the app failed for want of descriptors (EMFILE): an app that leaks them fails
    so on every request from then on, and only a fresh process recovers. The chain is looked
    through: the app may have wrapped the OSError."""
    for _ in range(8):
        if exc is None:
            return False
        if isinstance(exc, OSError) and exc.errno == errno.EMFILE:
            return True
        exc = exc.__cause__ or exc.__context__
    return False
