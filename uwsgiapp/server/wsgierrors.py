"""What the app writes for the error log reaches it: ``wsgi.errors`` where the error log is a
file (or JSON) writes into it, as gunicorn's does (Flask's default handler writes its records
there during a request, an exception's traceback among them: they went to the process's
stderr unless ``--capture-output``); and a record no handler of the app's sees is the error
log's, not logging's last resort's bare line on stderr."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterable

from uwsgiapp.server.logformat import JsonErrorFormatter
from uwsgiapp.server.logs import QuietFailures

__all__ = ["ErrorLogStream", "take_unhandled_records"]

#: Flask's default format, ``[time] LEVEL in module: message``: its level and module are the
#: JSON record's.
_FLASK_LINE = re.compile(r"\[[^\]\n]*\] (DEBUG|INFO|WARNING|ERROR|CRITICAL) in ([\w.]+): ")


class ErrorLogStream:
    """``wsgi.errors`` writing into the error log's file (to stderr while there is none).

    With ``--error-log-format text`` each write goes in at once, under the handler's lock (a
    record of the server's does not land in the middle of it). With ``json`` each write is one
    record (a logging handler's record is one write: a traceback in it is the record's
    ``traceback``), of Flask's level and module when it is in Flask's format, else an ERROR of
    the ``wsgi.errors`` logger; nothing is held (held text was glued to another request's
    record, or lost): a ``print`` in pieces is a record a piece, blank ones dropped. A failed
    write is counted as the handler counts its own (a full disk)."""

    def write(self, text: str) -> int:
        """Write ``text`` to the error log."""
        handler = _error_log()
        stream = getattr(handler, "stream", None)
        if handler is None or stream is None:
            return sys.stderr.write(text)
        if isinstance(handler.formatter, JsonErrorFormatter):
            self._record(handler, text)
            return len(text)
        with handler.lock or contextlib.nullcontext():
            try:
                stream.write(text)
                stream.flush()
            except OSError:
                handler.handleError(logging.makeLogRecord({"msg": text}))
        return len(text)

    def _record(self, handler: logging.Handler, text: str) -> None:
        whole = text.rstrip("\r\n")
        if not whole.strip():
            return
        level, name, message = logging.ERROR, "wsgi.errors", whole
        flask = _FLASK_LINE.match(whole)
        if flask is not None and not flask[2].startswith("uwsgiapp"):  # never the server's
            level = int(logging.getLevelName(flask[1]))  # one of the five names: its number
            name, message = flask[2], whole[flask.end() :]
        record = logging.LogRecord(name, level, "", 0, message, None, None)
        handler.handle(record)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each of ``lines`` (PEP 3333's ``writelines``)."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing held: each write is written at once."""


def _error_log() -> QuietFailures | None:
    """The error log's handler (the ``uwsgiapp`` logger's of ours), looked up at each use: a
    reload may replace it."""
    handlers = logging.getLogger("uwsgiapp").handlers
    return next((h for h in handlers if isinstance(h, QuietFailures)), None)


class _ToErrorLog(logging.Handler):
    """``logging.lastResort`` under ``serve``: a WARNING or worse of a logger no handler sees
    (an app that configured no logging) goes to the error log, in its format (a JSON record
    with its traceback), where it went to stderr as a bare line."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)

    def emit(self, record: logging.LogRecord) -> None:
        """Hand ``record`` to the error log's handler (whose text format escapes an app's
        message; JSON escapes it itself)."""
        handler = _error_log()
        if handler is None:
            _STDERR_LAST_RESORT.handle(record)
            return
        handler.handle(record)


_STDERR_LAST_RESORT = logging.lastResort or logging.StreamHandler()


def take_unhandled_records() -> None:
    """Send what no handler sees (``logging.lastResort``) to the error log."""
    logging.lastResort = _ToErrorLog()
