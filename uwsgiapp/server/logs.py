"""Error log and access log set-up. With the access log off, requests make no logging calls."""

from __future__ import annotations

import faulthandler
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from typing import Any

from uwsgiapp.server.logtext import escape_log_text
from uwsgiapp.server.safefiles import open_append
from uwsgiapp.wsgi.contract import AccessLogger

ERROR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"


class SafeFileHandler(logging.FileHandler):
    """A log file opened without following links (see :mod:`uwsgiapp.server.safefiles`), at
    start-up and at every reopen: the master may be root and the directory the app user's."""

    def _open(self) -> Any:
        fd = open_append(self.baseFilename)
        return os.fdopen(fd, "a", encoding=self.encoding or "utf-8", errors=self.errors)


def _handler(target: str, default: Any) -> logging.StreamHandler[Any]:
    if target in ("", "-"):
        return logging.StreamHandler(default)
    return SafeFileHandler(target)


def reopen_logs() -> None:
    """USR1: reopen every file handler of our loggers (after logrotate moved the files).

    The new file is opened before the old one is closed: a path that is refused (a link
    planted in its place) leaves the handler writing to the old file, with one error line.
    """
    for name in ("uwsgiapp.error", "uwsgiapp.access", "uwsgiapp"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    try:
                        stream = handler._open()
                    except OSError as exc:
                        failed: OSError | None = exc
                    else:
                        failed = None
                        old, handler.stream = handler.stream, stream
                        if old is not None:
                            old.close()
                finally:
                    handler.release()
                if failed is not None:
                    logging.getLogger("uwsgiapp.error").error(
                        "cannot reopen log file, still writing to the old one: %s", failed
                    )
    arm_fault_dumps()  # faulthandler must not keep writing to the closed file's fd


def setup_error_log(target: str = "-", level: int = logging.INFO) -> None:
    """Send the ``uwsgiapp`` loggers to ``target`` ('-' = stderr), one line per event."""
    logger = logging.getLogger("uwsgiapp")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler = _handler(target, sys.stderr)
    handler.setFormatter(logging.Formatter(ERROR_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False


def error_stream() -> Any:
    """The error log's open file (a real fd, as faulthandler needs), else stderr."""
    for handler in logging.getLogger("uwsgiapp").handlers:
        stream = getattr(handler, "stream", None)
        if stream is not None and hasattr(stream, "fileno"):
            return stream
    return sys.stderr


#: User signals that dump every thread's stack (see :func:`arm_fault_dumps`); None: not armed.
_DUMP_SIGNALS: tuple[int, ...] | None = None


def arm_fault_dumps(signals: tuple[int, ...] | None = None) -> None:
    """Dump the Python stack of every thread to the error log on a fatal signal (SIGSEGV,
    SIGFPE, SIGABRT, SIGBUS, SIGILL) and on each of ``signals`` (chained to their handlers).

    Called again after the logs are reopened (with no argument: the same signals), because
    faulthandler keeps the fd it was given and the old log file's fd may be reused by a socket.
    """
    global _DUMP_SIGNALS
    if signals is None:
        if _DUMP_SIGNALS is None:
            return
        signals = _DUMP_SIGNALS
    _DUMP_SIGNALS = signals
    stream = error_stream()
    try:
        faulthandler.enable(file=stream, all_threads=True)
        for signum in signals:
            faulthandler.register(signum, file=stream, all_threads=True, chain=True)
    except (OSError, ValueError, RuntimeError) as exc:  # a stream without a usable fd
        logging.getLogger("uwsgiapp.error").warning("no stack dumps on fatal signals: %s", exc)


class _Clock:
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


class _Pid:
    """This process's id, kept up to date across fork (getpid is a syscall in glibc)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value = os.getpid()
        os.register_at_fork(after_in_child=self._forked)

    def _forked(self) -> None:
        self.value = os.getpid()


_PID = _Pid()


def make_access_log(fmt: str, target: str = "-") -> AccessLogger | None:
    """An access logger for ``fmt`` ('off' → None, 'uwsgi' → uWSGI-like lines, 'json').

    Each line is one ``write`` to the handler's file, without a LogRecord: the ``logging``
    machinery costs several times the request. The handler still belongs to the
    ``uwsgiapp.access`` logger, so USR1 (:func:`reopen_logs`) reopens
    the file.
    """
    if fmt == "off":
        return None
    emit = _line_writer(_access_handler(target))
    if fmt == "json":
        return _json_access_log(emit, _PID)
    return _uwsgi_access_log(emit, _PID)


def _access_handler(target: str) -> logging.StreamHandler[Any]:
    """The ``uwsgiapp.access`` logger's one handler, for ``target`` ('-' = stdout); the
    handlers it had before are closed."""
    logger = logging.getLogger("uwsgiapp.access")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        old.close()
    handler = _handler(target, sys.stdout)
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler


def _line_writer(handler: logging.StreamHandler[Any]) -> Callable[[str], None]:
    """A function writing one line to ``handler``'s stream (see :func:`make_access_log`)."""
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
            while data:
                data = data[os.write(fd, data) :]
        except (OSError, ValueError):
            handler.handleError(logging.makeLogRecord({"msg": line}))

    return emit


def _json_access_log(emit: Callable[[str], None], pid: _Pid) -> AccessLogger:
    """The 'json' access logger: one JSON object a line."""
    iso = _Clock("%Y-%m-%dT%H:%M:%S%z")

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


def _uwsgi_access_log(emit: Callable[[str], None], pid: _Pid) -> AccessLogger:
    """The 'uwsgi' access logger: uWSGI's default line."""
    clock = _Clock("%a %b %d %H:%M:%S %Y")

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
