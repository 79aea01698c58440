"""Error log and access log set-up. With the access log off, requests make no logging calls."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import sys
import weakref
from typing import Any

from uwsgiapp.logtargets import FUNNELED, is_stream, open_file_handlers, stream_for
from uwsgiapp.server.accesslog import LOGGERS, PID, LineWriter
from uwsgiapp.server.errortail import ErrorTail as ErrorTail  # the supervisor takes it here
from uwsgiapp.server.fdstream import FdTextStream
from uwsgiapp.server.inflight import worker_number
from uwsgiapp.server.logformat import ERROR_FORMAT, ErrorFormatter, JsonErrorFormatter
from uwsgiapp.server.safefiles import open_append
from uwsgiapp.server.throttle import WRITE_FAILURE_INTERVAL, Throttle, tell_dropped
from uwsgiapp.wsgi.contract import AccessLogger


class QuietFailures(logging.Handler):
    """A handler of ours (the error log's, the access log's) whose failed writes are told on
    stderr once, then as one line with a count at most every ``WRITE_FAILURE_INTERVAL``
    seconds: ``logging``'s own ``handleError`` printed a 47-line traceback per record, which on
    a full disk turned every request into 2.6 KB of stderr (the journal, under systemd).

    Other failures (a record that cannot be formatted: a bug at its call site) keep
    ``logging``'s traceback. ``logging.raiseExceptions`` is left alone: it is the app's too.
    """

    #: What the lines on stderr call this log (set by the code that builds the handler).
    what = "a log"
    _failures: Throttle[OSError] | None = None
    _said = False

    def handleError(self, record: logging.LogRecord) -> None:
        """An ``OSError`` (the write failed) is counted and told as the class says."""
        failure = sys.exc_info()[1]
        if not isinstance(failure, OSError):
            super().handleError(record)
            return
        if self._failures is None:
            self._failures = Throttle(WRITE_FAILURE_INTERVAL, self._tell)
            _FAILED.add(self)
        self._failures.add(failure)

    def _tell(self, count: int, failure: OSError) -> None:
        stream = getattr(self, "stream", None)
        name = getattr(self, "baseFilename", None) or getattr(stream, "name", "")
        where = f"the {self.what} ({name})" if name else f"the {self.what}"
        tell_dropped(where, count, failure, first=not self._said)
        self._said = True


#: The handlers whose writes failed: their counts are told at the loop's tick once due.
_FAILED: weakref.WeakSet[QuietFailures] = weakref.WeakSet()


def _forget_failures() -> None:
    """In a process just forked: the parent's failures are its own to tell (each worker said
    the master's count as "more lines dropped", under its own pid)."""
    for handler in list(_FAILED):
        handler._failures, handler._said = None, False
    _FAILED.clear()


os.register_at_fork(after_in_child=_forget_failures)


def tell_write_failures(final: bool = False) -> None:
    """Tell the lines each failing handler dropped since its last word, once its interval is
    up (the loop's tick): counted only as the next failure came, the count was never said
    once the writes worked again, or stopped. ``final``: now, due or not (the process ends)."""
    for handler in list(_FAILED):
        failures = handler._failures
        if failures is not None and (failures.due() or (final and failures.count)):
            failures.flush()


class QuietStreamHandler(QuietFailures, logging.StreamHandler):  # type: ignore[type-arg]
    """stderr or stdout as a log of ours (see :class:`QuietFailures`)."""


class SafeFileHandler(logging.FileHandler):
    """A log file opened without following links (see :mod:`uwsgiapp.server.safefiles`), at
    start-up and at every reopen: the master may be root and the directory the app user's."""

    def _open(self) -> Any:
        fd = open_append(self.baseFilename)
        # A lone surrogate (a file name from os.listdir, an environment variable) is written
        # escaped, as stderr writes it: strict, the record was lost to "--- Logging error ---".
        errors = self.errors or "backslashreplace"
        encoding = self.encoding if self.encoding not in (None, "locale") else "utf-8"
        return FdTextStream(fd, encoding, errors)  # with no buffer to keep


class KeptFileHandler(QuietFailures, SafeFileHandler):
    """A log file of ours (the error log, the access log). The master opens it and the workers
    write to it; ``logging``'s shutdown, which an app's ``dictConfig`` or ``fileConfig`` runs
    on every handler (Django's set-up does), must not close it: the process would then open
    the file again by path as the dropped user, which fails once logrotate moved it out of a
    directory that user cannot write. Only :meth:`close_for_good` closes it."""

    def close(self) -> None:
        """Kept open (see the class)."""

    def close_for_good(self) -> None:
        """Close the file (the handler is being replaced), even if what it holds cannot be
        written (a full disk)."""
        with contextlib.suppress(OSError):
            super().close()


def _handler(target: str, default: Any, what: str) -> logging.StreamHandler[Any]:
    handler: QuietStreamHandler | KeptFileHandler
    if is_stream(target):
        handler = QuietStreamHandler(stream_for(target, default))
    else:
        handler = KeptFileHandler(os.path.abspath(target))
    handler.what = what
    return handler


def _close(handler: logging.Handler) -> None:
    (handler.close_for_good if isinstance(handler, KeptFileHandler) else handler.close)()


def reopen_failed(path: str, exc: OSError) -> bool:
    """Say that log file ``path`` could not be reopened (False: its writer keeps the old file):
    in the error log, and on stderr too where the log is another file (the error log's lines
    go to the file logrotate moved away, where nobody looks; stderr is the terminal's, or the
    journal's)."""
    message = f"cannot reopen log file {path}, still writing to the old one: {exc}"
    logging.getLogger("uwsgiapp.error").error("%s", message)
    handlers = logging.getLogger("uwsgiapp").handlers
    if _CAPTURE or not any(isinstance(h, logging.FileHandler) for h in handlers):
        return False  # stderr is the log already
    if worker_number():
        return False  # the master's line says it (each worker's would repeat it)
    with contextlib.suppress(OSError, ValueError):
        sys.__stderr__.write(f"uwsgiapp: {message}\n")  # type: ignore[union-attr]
        sys.__stderr__.flush()  # type: ignore[union-attr]
    return False


def reopen_logs(moved_only: bool = False) -> bool:
    """USR1: reopen every log file (after logrotate moved them), ours and the app's logging
    handlers' (a HUP: those moved only, or an app's of mode "w" is emptied); False if one could
    not be (logged), or none had moved. The new file is opened before the old one is closed: a
    path refused (a link planted there) leaves the handler writing to the old file."""
    handlers = open_file_handlers(moved_only)
    reopened = bool(handlers) or not moved_only
    for handler in handlers:
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
                    # Closed even when this raises: the lines a full disk refused are lost.
                    with contextlib.suppress(OSError):
                        old.close()
        finally:
            handler.release()
        if failed is not None:
            reopened = False
            reopen_failed(handler.baseFilename, failed)
    if _CAPTURE:
        _capture(error_stream())
    arm_fault_dumps()  # faulthandler must not keep writing to the closed file's fd
    return reopened


def reopen_said(funneled: bool | None, ours: bool, why: str) -> None:
    """Say a USR1's (or HUP's) reopen done (``why``) when it is: the log master's files
    reopened (``funneled``: True; None if none was to be) and none failed, or, with none of its
    own, the process's handlers' (``ours``: :func:`~uwsgiapp.server.logs.reopen_logs`); a USR1
    with no log file at all (every log on stdout or stderr) says there was none to reopen."""
    if not (funneled is True or (funneled is None and ours)):
        return
    if funneled is None and why.startswith("USR1") and not open_file_handlers(False):
        why = (
            "USR1: the master has no log file to reopen (the server's logs go to stdout and "
            "stderr; the workers reopen the app's, if any)"
        )
    logging.getLogger("uwsgiapp.error").info("%s", why)


#: Whether stdout and stderr (fds 1 and 2) follow the error log's file (``--capture-output``).
_CAPTURE = False


def setup_error_log(
    target: str = "-", level: int = logging.INFO, capture: bool = False, fmt: str = "text"
) -> None:
    """Send the ``uwsgiapp`` loggers to ``target`` ('-' = stderr), one line per event (``fmt``
    text or json); ``capture``: the process's stdout and stderr go to that file too (and follow
    it at USR1)."""
    global _CAPTURE
    logger = logging.getLogger("uwsgiapp")
    for old in list(logger.handlers):
        logger.removeHandler(old)
        _close(old)
    handler = _handler(target, sys.stderr, "error log")
    handler.set_name("uwsgiapp.error_log")  # uwsgiapp.web's default handler finds it by it
    handler.setFormatter(JsonErrorFormatter() if fmt == "json" else ErrorFormatter(ERROR_FORMAT))
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    _CAPTURE = capture and isinstance(handler, logging.FileHandler)
    for std in (sys.stdout, sys.stderr):
        with contextlib.suppress(AttributeError, ValueError):
            # What the app prints, line by line as uWSGI writes it, not a block at the worker's
            # exit (a pipe or file is block-buffered), and each line in one write: with
            # PYTHONUNBUFFERED (write-through) a print was a write per piece, and the
            # other workers' lines and records got in between.
            std.reconfigure(line_buffering=True, write_through=False)  # type: ignore[union-attr]
    if _CAPTURE:
        _capture(handler.stream)


def flush_std() -> None:
    """Write out what sys.stdout and sys.stderr hold (before a fork, an fd change, an exit)."""
    for std in (sys.stdout, sys.stderr):
        # RuntimeError: a worker reopens from its USR1 handler, maybe amid a print's flush.
        with contextlib.suppress(AttributeError, OSError, RuntimeError, ValueError):
            std.flush()


def reclaim_loggers() -> list[str]:
    """Enable the ``uwsgiapp`` loggers again where the app's logging configuration disabled
    them (``dictConfig`` and ``fileConfig`` disable every logger they do not name unless told
    ``disable_existing_loggers: False``; Django's ``LOGGING`` does it): HARAKIRI lines, worker
    exits and reload results would vanish. Returns the names enabled again."""
    names = []
    for name, logger in list(logging.root.manager.loggerDict.items()):
        ours = name == "uwsgiapp" or name.startswith("uwsgiapp.")
        if ours and isinstance(logger, logging.Logger) and logger.disabled:
            logger.disabled = False
            names.append(name)
    return sorted(names)


def borrowed_gunicorn_logger() -> bool:
    """Whether the app took gunicorn's ``gunicorn.error`` logger, which has no handler here
    (Flask's "use gunicorn's handlers" snippet: ``app.logger.handlers =
    logging.getLogger("gunicorn.error").handlers``, which leaves the app's INFO lines
    nowhere)."""
    logger = logging.root.manager.loggerDict.get("gunicorn.error")
    if not isinstance(logger, logging.Logger) or logger.handlers:
        return False
    return not (logger.propagate and logging.getLogger().handlers)  # basicConfig's: not lost


def _capture(stream: Any) -> None:
    """Point fds 1 and 2 at ``stream``'s file: what the app prints, and what C code and
    tracebacks write to the descriptors directly, land in the error log."""
    flush_std()
    for fd in (1, 2):
        os.dup2(stream.fileno(), fd)


def error_stream() -> Any:
    """The error log's open file (a real fd, as faulthandler needs), else stderr."""
    for handler in logging.getLogger("uwsgiapp").handlers:
        stream = getattr(handler, "stream", None)
        if stream is not None and hasattr(stream, "fileno"):
            return stream
    return sys.stderr


#: User signals that dump every thread's stack (see :func:`arm_fault_dumps`); None: not armed.
_DUMP_SIGNALS: tuple[int, ...] | None = None
#: Where the dumps go when not to the error log: a worker's own file, which the master logs.
_DUMP_FD: int | None = None


def arm_fault_dumps(signals: tuple[int, ...] | None = None, fd: int | None = None) -> None:
    """Dump the Python stack of every thread on a fatal signal (SIGSEGV, SIGFPE, SIGABRT,
    SIGBUS, SIGILL) and on each of ``signals`` (chained to their handlers): to the file ``fd``
    if given, else to the error log.

    Called again after the logs are reopened (with no argument: the same signals and file),
    because faulthandler keeps the fd it was given and the old log file's fd may be reused by
    a socket.
    """
    global _DUMP_SIGNALS, _DUMP_FD
    if signals is None:
        if _DUMP_SIGNALS is None:
            return
        signals = _DUMP_SIGNALS
    else:
        _DUMP_FD = fd
    _DUMP_SIGNALS = signals
    stream = error_stream() if _DUMP_FD is None else _DUMP_FD
    try:
        faulthandler.enable(file=stream, all_threads=True)
        for signum in signals:
            faulthandler.register(signum, file=stream, all_threads=True, chain=True)
    except (OSError, ValueError, RuntimeError) as exc:  # a stream without a usable fd
        logging.getLogger("uwsgiapp.error").warning("no stack dumps on fatal signals: %s", exc)


def make_access_log(fmt: str, target: str = "-") -> AccessLogger | None:
    """An access logger for ``fmt`` ('off' → None, 'uwsgi' → uWSGI-like lines, 'json',
    'combined' → Apache's, gunicorn's default, else a uWSGI log-format template).

    Each line is one ``write`` to the handler's file, without a LogRecord (the ``logging``
    machinery costs several times the request); the handler is the ``uwsgiapp.access``
    logger's, which USR1 (:func:`reopen_logs`) reopens."""
    if fmt == "off":
        return None
    writer = LineWriter(access_handler(target))
    if fmt in LOGGERS:
        return LOGGERS[fmt](writer, PID)
    from uwsgiapp.server.logtemplate import template_logger  # for a template alone: memory

    return template_logger(fmt)(writer, PID)


def access_handler(target: str) -> logging.StreamHandler[Any]:
    """The ``uwsgiapp.access`` logger's one handler, for ``target`` ('-' = stdout).

    A handler it already has for the same file is kept: the master opens the access log
    before it forks (and before a ``--uid`` drop), so a worker writes to the file the master
    holds, as uWSGI's workers do. A worker that opened it by path would fail to start once
    logrotate had moved the file out of a directory the dropped user cannot write. Other
    handlers are closed.
    """
    logger = logging.getLogger("uwsgiapp.access")
    path = "" if is_stream(target) else os.path.abspath(target)
    for old in list(logger.handlers):
        kept = isinstance(old, KeptFileHandler) and path == old.baseFilename and old.stream
        # --log-master's: the master made it for this target, its stream is a worker's pipe.
        if isinstance(old, logging.StreamHandler) and (kept or old in FUNNELED):
            return old
        logger.removeHandler(old)
        _close(old)
    handler = _handler(target, sys.stdout, "access log")
    handler.setFormatter(logging.Formatter("%(message)s"))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    return handler
