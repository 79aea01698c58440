"""``wsgi.errors`` where the error log is a file: what the app writes there goes to that file,
as gunicorn's does. Flask's default handler writes its records there during a request, an
exception's traceback among them: they went to the process's stderr unless
``--capture-output``."""

from __future__ import annotations

import contextlib
import logging
import re
import sys
from collections.abc import Iterable

from uwsgiapp.server.logformat import JsonErrorFormatter
from uwsgiapp.server.logs import QuietFailures

__all__ = ["ErrorLogStream"]

#: Flask's default format, ``[time] LEVEL in module: message``: its level and module are the
#: JSON record's.
_FLASK_LINE = re.compile(r"\[[^\]\n]*\] (DEBUG|INFO|WARNING|ERROR|CRITICAL) in ([\w.]+): ")


class ErrorLogStream:
    """``wsgi.errors`` writing into the error log's file (to stderr while there is none).

    With ``--error-log-format text`` each write goes in at once, under the handler's lock (a
    record of the server's does not land in the middle of it). With ``json`` the text is held
    up to its last newline, and what came before is one record (a traceback in its
    ``traceback``), of Flask's level and module when it is in Flask's format, else an ERROR of
    the ``wsgi.errors`` logger. A failed write is counted as the handler counts its own (a full
    disk)."""

    def __init__(self) -> None:
        self._held = ""

    def write(self, text: str) -> int:
        """Write ``text`` to the error log."""
        handler = next(
            (h for h in logging.getLogger("uwsgiapp").handlers if isinstance(h, QuietFailures)),
            None,
        )
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
        with handler.lock or contextlib.nullcontext():
            whole, newline, self._held = (self._held + text).rpartition("\n")
        if not newline:
            return
        level, name, message = logging.ERROR, "wsgi.errors", whole
        flask = _FLASK_LINE.match(whole)
        if flask is not None:
            level = _LEVELS[flask[1]]
            name, message = flask[2], whole[flask.end() :]
        record = logging.LogRecord(name, level, "", 0, message, None, None)
        handler.handle(record)

    def writelines(self, lines: Iterable[str]) -> None:
        """Write each of ``lines`` (PEP 3333's ``writelines``)."""
        for line in lines:
            self.write(line)

    def flush(self) -> None:
        """Nothing held in text format (each write is flushed); in JSON, a line waits for its
        end."""


_LEVELS = {
    "DEBUG": logging.DEBUG,
    "INFO": logging.INFO,
    "WARNING": logging.WARNING,
    "ERROR": logging.ERROR,
    "CRITICAL": logging.CRITICAL,
}
