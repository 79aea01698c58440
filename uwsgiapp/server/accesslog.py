"""The access log's per-request path: one line formatted and written with one ``write``.

Compiled in a compiled build (it runs once per request when the access log is on); the set-up
(handlers, files, USR1) stays in :mod:`uwsgiapp.server.logs`.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable
from typing import Any

from uwsgiapp.server.logtext import escape_log_text
from uwsgiapp.wsgi.contract import AccessLogger


class Clock:
    """Formatted wall-clock time, recomputed once a second rather than per request."""

    __slots__ = ("_fmt", "_second", "_text")

    def __init__(self, fmt: str) -> None:
        self._fmt = fmt
        self._second = -1
        self._text = ""

    def now(self) -> str:
        second = int(time.time())
        if second != self._second:
            self._second = second
            self._text = time.strftime(self._fmt, time.localtime(second))
        return self._text


class Pid:
    """This process's id, kept up to date across fork (getpid is a syscall in glibc)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = os.getpid()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.value = os.getpid()


#: This process's id (see :class:`Pid`).
PID = Pid()


def line_writer(handler: logging.StreamHandler[Any]) -> Callable[[str], None]:
    """A function writing one line to ``handler``'s stream (for
    :func:`uwsgiapp.server.logs.make_access_log`)."""
    # The stream's fd, written to directly: one syscall per line without the text and buffer
    # layers. Looked up again whenever the stream changes (USR1 reopens the file).
    fd_of: Any = None
    fd = -1

    def emit(line: str) -> None:
        nonlocal fd_of, fd
        stream = handler.stream
        try:
            if stream is not fd_of:
                stream.flush()  # what was written through the stream goes first
                fd_of = stream
                try:
                    fd = stream.fileno()
                except (OSError, ValueError):  # no real fd (a captured or in-memory stream)
                    fd = -1
            if fd < 0:
                stream.write(line)
                stream.flush()
                return
            # latin-1: the environ's strings are the request's bytes decoded as latin-1, so
            # this writes exactly the bytes nginx sent (as uWSGI does).
            data = line.encode("latin-1", "backslashreplace")
            done = os.write(fd, data)
            while done < len(data):
                done += os.write(fd, data[done:])
        except (OSError, ValueError):
            handler.handleError(logging.makeLogRecord({"msg": line}))

    return emit


def json_access_log(emit: Callable[[str], None], pid: Pid) -> AccessLogger:
    """The 'json' access logger: one JSON object a line."""
    iso = Clock("%Y-%m-%dT%H:%M:%S%z")

    def access_json(environ: dict[str, Any], status: str, sent: int, seconds: float) -> None:
        emit(
            json.dumps(
                {
                    "time": iso.now(),
                    "pid": pid.value,
                    "remote_addr": environ.get("REMOTE_ADDR", ""),
                    "method": environ.get("REQUEST_METHOD", ""),
                    "uri": environ.get("REQUEST_URI", environ.get("PATH_INFO", "")),
                    "protocol": environ.get("SERVER_PROTOCOL", ""),
                    "status": int(status[:3]) if status[:3].isdigit() else 0,
                    "bytes": sent,
                    "duration_ms": round(seconds * 1000, 3),
                }
            )
            + "\n"
        )

    return access_json


def uwsgi_access_log(emit: Callable[[str], None], pid: Pid) -> AccessLogger:
    """The 'uwsgi' access logger: uWSGI's default line."""
    clock = Clock("%a %b %d %H:%M:%S %Y")

    def access_uwsgi(environ: dict[str, Any], status: str, sent: int, seconds: float) -> None:
        get = environ.get
        line = (
            f"[pid: {pid.value}] {get('REMOTE_ADDR', '-')} [{clock.now()}] "
            f"{get('REQUEST_METHOD', '-')} {get('REQUEST_URI') or get('PATH_INFO', '')} "
            f"=> generated {sent} bytes in {int(seconds * 1000)} msecs "
            f"({get('SERVER_PROTOCOL', '-')} {status[:3]})"
        )
        emit(escape_log_text(line) + "\n")  # one check for the whole line

    return access_uwsgi
