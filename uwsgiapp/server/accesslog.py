"""The access log's per-request path: one line formatted and written with one ``write``.

Compiled in a compiled build (it runs once per request when the access log is on); the set-up
(handlers, files, USR1) stays in :mod:`uwsgiapp.server.logs`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from typing import Any, Final

from uwsgiapp.server.exchange import Exchange
from uwsgiapp.server.inflight import worker_number
from uwsgiapp.server.logtext import CONTROL_CODES, as_sent, escape_log_text
from uwsgiapp.wsgi.contract import AccessLogger
from uwsgiproto import count_vars

#: Bound once: compiled, ``os.write(...)`` would look the name up in the module on every call.
_write: Final = os.write
_time: Final = time.time
#: The request thread a line's request ran on (``--threads``; uWSGI's "core"): 0 unless set.
#: Read through the thread's ``__dict__``: a ``getattr`` with a default that finds nothing
#: builds an AttributeError and its message first (4,500 instructions, a sixth of a line's).
_thread: Final = threading.local()


def set_core(index: int) -> None:
    """This thread serves as core ``index`` (0-based): its access-log lines say so."""
    _thread.core = index


def current_core() -> int:
    """The core (request thread, 0-based) this thread serves as: 0 unless :func:`set_core`."""
    core: int = _thread.__dict__.get("core", 0)
    return core


class Clock:
    """Formatted wall-clock time of a second, recomputed when the second changes rather than
    per request."""

    __slots__ = ("_fmt", "_second", "_text")

    def __init__(self, fmt: str) -> None:
        self._fmt = fmt
        self._second = -1
        self._text = ""

    def at(self, second: int) -> str:
        """The time ``second`` (epoch) as the format says."""
        if second != self._second:
            self._second = second
            self._text = time.strftime(self._fmt, time.localtime(second))
        return self._text


class Pid:
    """This process's id, kept up to date across fork (getpid is a syscall in glibc)."""

    __slots__ = ("text", "value")

    def __init__(self) -> None:
        self._forked()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.value = os.getpid()
        #: The id as text, for the lines that print it.
        self.text = str(self.value)


#: This process's id (see :class:`Pid`).
PID = Pid()


class Served:
    """The requests this process answered, logged or not: the ``uwsgi`` line's ``req``
    (:func:`keep_only` counts the ones it leaves out)."""

    __slots__ = ("count",)

    def __init__(self) -> None:
        self.count = 0


#: This process's requests (see :class:`Served`): a worker starts at the master's 0.
SERVED: Final = Served()


#: A translation table that changes the bytes a line must not carry (the controls of
#: :mod:`uwsgiapp.server.logtext`, newline included) and keeps every other byte.
_MARK_CONTROLS: Final = bytes(0x80 if byte in CONTROL_CODES else byte for byte in range(256))


class LineWriter:
    """Writes whole lines to a logging handler's stream: one ``write`` to its fd a line.

    The fd is written to directly, without the text and buffer layers; it is looked up again
    whenever the handler's stream changes (USR1 reopens the file).
    """

    __slots__ = ("_cut", "_fd", "_handler", "_stream")

    def __init__(self, handler: logging.StreamHandler[Any]) -> None:
        self._handler = handler
        self._stream: Any = None
        self._fd = -1
        self._cut = False

    def write(self, data: bytes) -> None:
        """Write ``data`` (one or more whole lines); a failure goes to the handler's
        ``handleError``, as a log call's would. A line a failed write left cut (a full disk)
        is ended before the next one: the next record was glued to its first half, and
        neither could be read (two JSON records lost)."""
        handler = self._handler
        stream = handler.stream
        done = 0
        if self._cut and stream is self._stream:
            data = b"\n" + data
        try:
            if stream is not self._stream:
                stream.flush()  # what was written through the stream goes first
                self._stream = stream
                self._cut = False  # a new file (USR1): nothing of it was cut
                try:
                    self._fd = stream.fileno()
                except (OSError, ValueError):  # no real fd (a captured or in-memory stream)
                    self._fd = -1
            fd = self._fd
            if fd < 0:
                stream.write(data.decode("latin-1"))
                stream.flush()
                self._cut = False
                return
            done = _write(fd, data)
            while done < len(data):
                done += _write(fd, data[done:])
            self._cut = False
        except (OSError, ValueError):
            self._cut = 0 < done < len(data) or (self._cut and not done)
            handler.handleError(logging.makeLogRecord({"msg": data.decode("latin-1")}))


def encode_line(text: str) -> bytes:
    """``text`` as the bytes of one log line (its newline added), control characters escaped.

    latin-1: the environ's strings are the request's bytes decoded as latin-1, so this writes
    exactly the bytes nginx sent (as uWSGI does).
    """
    data = text.encode("latin-1", "backslashreplace")
    # One C loop over the bytes, under half the time of str.isprintable: CPython's translate()
    # returns its argument itself when the table changed no byte (where it does not, the
    # escaping below gives the same line).
    if data.translate(_MARK_CONTROLS) is data:
        return data + b"\n"
    return (escape_log_text(text) + "\n").encode("latin-1", "backslashreplace")


def json_text(environ: dict[str, Any], name: str) -> Any:
    """A JSON line's value of ``name`` (the access line's, an error record's): the request's
    text as the client wrote it (:func:`~uwsgiapp.server.logtext.as_sent`); an app's None or
    number as it is."""
    value = environ.get(name, "")
    return as_sent(value) if isinstance(value, str) else value


def json_uri(environ: dict[str, Any]) -> Any:
    """A JSON line's ``uri``: REQUEST_URI, else (a client's packet without it) PATH_INFO."""
    return json_text(environ, "REQUEST_URI" if "REQUEST_URI" in environ else "PATH_INFO")


def json_access_log(writer: LineWriter, pid: Pid) -> AccessLogger:
    """The 'json' access logger: one JSON object a line; ``time`` is when the request
    started, RFC 3339 with milliseconds (``2026-12-04T21:57:33.048+00:00``); ``worker`` the
    worker's number (0 outside one), ``core`` its request thread (0-based, as the uwsgi line's
    core; the harakiri lines' "thread N" is core N-1), ``request_id`` its ``X-Request-Id`` (""
    without)."""
    iso = Clock("%Y-%m-%dT%H:%M:%S")
    zone = Clock("%z")

    def access_json(
        environ: dict[str, Any], response: Exchange, seconds: float, block: bytes
    ) -> None:
        start = _time() - seconds
        second = int(start)
        offset = zone.at(second)
        # None sent: the client left (nginx's 499), or the server cut it (nginx answers 502).
        status: str = response.sent_status or ("502" if response.aborted else "499")
        line = json.dumps(  # ASCII, controls escaped: json.dumps escapes them itself
            {
                "time": f"{iso.at(second)}.{int((start - second) * 1000):03d}"
                f"{offset[:3]}:{offset[3:]}",
                "pid": pid.value,
                "worker": worker_number(),
                "core": _thread.__dict__.get("core", 0),
                "remote_addr": environ.get("REMOTE_ADDR", ""),
                "method": json_text(environ, "REQUEST_METHOD"),
                "uri": json_uri(environ),
                "protocol": json_text(environ, "SERVER_PROTOCOL"),
                "status": int(status[:3]) if status[:3].isdigit() else 0,
                "bytes": response.sent - response.head_size,
                "duration_ms": round(seconds * 1000, 3),
                "request_id": json_text(environ, "HTTP_X_REQUEST_ID"),
                "referer": json_text(environ, "HTTP_REFERER"),
                "user_agent": json_text(environ, "HTTP_USER_AGENT"),
            }
        )
        writer.write((line + "\n").encode("ascii"))

    return access_json


def uwsgi_access_log(writer: LineWriter, pid: Pid) -> AccessLogger:
    """The 'uwsgi' access logger: uWSGI's default line, field for field, so that what parses
    uWSGI's log parses this one::

        [pid: 12|app: 0|req: 5/5] 127.0.0.1 () {28 vars in 302 bytes} [Fri Dec  4 21:55:56 2026]
        GET /slow => generated 5 bytes in 300 msecs (HTTP/1.1 200) 1 headers in 45 bytes
        (1 switches on core 0)

    (one line; the core is the request thread, with ``--threads``). ``req`` counts the
    requests this process answered, logged or not (:data:`SERVED`), twice (uWSGI: the worker's,
    then all workers');
    the vars and their bytes are the packet's var block, as nginx sent it (uWSGI counts a name
    and its value as two: 14 variables are "28 vars"); the time is when the request started.
    """
    clock = Clock("%a %b %e %H:%M:%S %Y")

    # The response typed Exchange: compiled, its counts are then read from the slots directly.
    def access_uwsgi(
        environ: dict[str, Any], response: Exchange, seconds: float, block: bytes
    ) -> None:
        SERVED.count = served = SERVED.count + 1
        status: str = response.sent_status or "0"  # none sent: uWSGI's 0
        head: int = response.head_size
        # environ.get, not a bound alias: compiled, each call is a direct dict lookup
        line = (
            f"[pid: {pid.text}|app: 0|req: {served}/{served}] "
            f"{environ.get('REMOTE_ADDR', '-')} ({environ.get('REMOTE_USER', '')}) "
            f"{{{count_vars(block) * 2} vars in {len(block)} bytes}} "
            f"[{clock.at(int(_time() - seconds))}] "
            f"{environ.get('REQUEST_METHOD', '-')} "
            f"{environ.get('REQUEST_URI') or environ.get('PATH_INFO') or '-'} "
            f"=> generated {response.sent - head} bytes in {int(seconds * 1000)} msecs "
            f"({environ.get('SERVER_PROTOCOL', '-')} {status[:3]}) "
            f"{len(response.headers) if head else 0} headers in {head} bytes "
            f"(1 switches on core {_thread.__dict__.get('core', 0)})"
        )
        writer.write(encode_line(line))

    return access_uwsgi


def _quoted(text: str) -> str:
    """``text`` for a double-quoted field of the combined line: ``\\`` and ``"`` escaped, as
    Apache escapes them (the line's controls are escaped when it is encoded)."""
    if "\\" in text or '"' in text:
        return text.replace("\\", "\\\\").replace('"', '\\"')
    return text


def combined_access_log(writer: LineWriter, pid: Pid) -> AccessLogger:
    """The 'combined' access logger: Apache's combined format, gunicorn's default access line
    (``%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"``), which GoAccess's
    COMBINED and grok's COMBINEDAPACHELOG parse::

        10.0.0.7 - - [04/Dec/2026:21:55:56 +0000] "GET /x?y=1 HTTP/1.1" 200 5 "-" "curl/8.5"

    The time is when the request started; ``-`` for an empty body, user, referer or agent;
    where no status went out, 499 (nginx's "client closed request") if the client left, 502
    (what nginx then answers) if the server cut the request (a stop's, the app's
    ``sys.exit()``). (``pid`` is unused.)"""
    clock = Clock("%d/%b/%Y:%H:%M:%S %z")

    def access_combined(
        environ: dict[str, Any], response: Exchange, seconds: float, block: bytes
    ) -> None:
        # None sent: the client left (nginx's 499), or the server cut it (nginx answers 502).
        status: str = response.sent_status or ("502" if response.aborted else "499")
        body: int = response.sent - response.head_size
        request = (
            f"{environ.get('REQUEST_METHOD', '-')} "
            f"{environ.get('REQUEST_URI') or environ.get('PATH_INFO') or '-'} "
            f"{environ.get('SERVER_PROTOCOL', '-')}"
        )
        line = (
            f"{environ.get('REMOTE_ADDR', '-')} - {environ.get('REMOTE_USER') or '-'} "
            f"[{clock.at(int(_time() - seconds))}] "
            f'"{_quoted(request)}" {status[:3]} {body or "-"} '
            f'"{_quoted(environ.get("HTTP_REFERER") or "-")}" '
            f'"{_quoted(environ.get("HTTP_USER_AGENT") or "-")}"'
        )
        writer.write(encode_line(line))

    return access_combined


#: The access loggers by ``--access-log`` format.
LOGGERS: Final = {
    "uwsgi": uwsgi_access_log,
    "json": json_access_log,
    "combined": combined_access_log,
}


def keep_only(inner: AccessLogger, classes: str, slow: float, big: int) -> AccessLogger:
    """``inner`` for the requests that meet one of the filters (uWSGI's ``log-4xx``,
    ``log-5xx``, ``log-slow``, ``log-big``): a status whose first digit is in ``classes``,
    ``slow`` seconds or more, a body of ``big`` bytes or more (0: no such filter)."""

    def access_some(
        environ: dict[str, Any], response: Exchange, seconds: float, block: bytes
    ) -> None:
        status: str = response.sent_status or ("502" if response.aborted else "")
        if (
            (status and status[0] in classes)
            or (slow and seconds >= slow)
            or (big and response.sent - response.head_size >= big)
        ):
            inner(environ, response, seconds, block)
        else:
            SERVED.count += 1

    return access_some
