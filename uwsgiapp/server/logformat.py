"""The error log's formats: uWSGI-like text lines, or one JSON object a line
(``--error-log-format json``); an exception's text escaped as request text is."""

from __future__ import annotations

import json
import logging
import sys
import time
import traceback
from types import TracebackType
from typing import Any

from uwsgiapp.server.logtext import escape_log_text

__all__ = ["ERROR_FORMAT", "ErrorFormatter", "JsonErrorFormatter", "iso_time"]

#: Where a traceback written into a message as text starts (a failed import's: its error
#: carries it), for the JSON line's ``traceback``.
_TRACEBACK = "\nTraceback (most recent call last):\n"

ERROR_FORMAT = "%(asctime)s [%(process)d] [%(levelname)s] %(message)s"

#: What every log record holds (and what formatting adds): the rest of a record's attributes
#: are its ``extra``, which a JSON line carries as fields of its own.
_RECORD_ATTRIBUTES = frozenset(
    (*logging.makeLogRecord({}).__dict__, "message", "asctime", "traceback", "taskName")
)


class ErrorFormatter(logging.Formatter):
    """The error log's lines; a traceback's exception texts have their control characters
    escaped (``\\xNN``, as in every other line that may carry request text).

    An app's exception often quotes the request (``ValueError(f"bad path {path}")``, and
    nginx sends PATH_INFO with ``%0A`` decoded): printed as it is, its CR/LF would start lines
    that look like the server's own, and an ANSI escape would reach the terminal that tails
    the log. The traceback's other lines are the code's own (file names, source lines).
    """

    def format(self, record: logging.LogRecord) -> str:
        """The line; its traceback formatted here even where another handler's formatter
        already left its own, unescaped, in ``record.exc_text`` (logging's cache). The
        message of a record of the app's (any logger but the server's) is escaped as the
        server's lines escape request text: an app logs what a request sent, and a CR/LF in
        it started a line that looked like the server's (``app.logger`` did so; a logger with
        no handler did not)."""
        name = record.name or "uwsgiapp"
        if name != "uwsgiapp" and not name.startswith("uwsgiapp."):  # not uwsgiapp_site's
            record = logging.makeLogRecord(record.__dict__)
            record.msg, record.args = escape_log_text(record.getMessage()), None
        cached = record.exc_text
        record.exc_text = None
        try:
            text = super().format(record)
        finally:
            record.exc_text = cached
        # The traceback a line of ours stands for (a HUP's failed import: its line names the
        # file and line), under it as an exception's is: the text log had only the line. An
        # app's record's "traceback" extra stays out (its text could forge a line of ours).
        detail = getattr(record, "traceback", "") if name.startswith("uwsgiapp") else ""
        if detail and not record.exc_info:
            lines = str(detail).rstrip().splitlines()
            text += "".join(f"\n{escape_log_text(line)}" for line in lines)
        return text

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        """logging's local time, with its UTC offset (``2026-12-07 14:24:32,902 +0000``, as
        gunicorn's lines have it): with ``TZ`` set, a line without it could not be placed in
        time by a log collector (the JSON lines had it)."""
        offset = time.strftime("%z", self.converter(record.created))
        return f"{super().formatTime(record, datefmt)} {offset}"

    def formatException(
        self,
        ei: tuple[type[BaseException], BaseException, TracebackType | None]
        | tuple[None, None, None],
    ) -> str:
        if ei[1] is None:
            return super().formatException(ei)
        report = traceback.TracebackException.from_exception(ei[1])
        _escape_exception_texts(report, set())
        return "".join(report.format()).rstrip("\n")


class JsonErrorFormatter(ErrorFormatter):
    """``--error-log-format json``: one object a line (time with its UTC offset, level, pid,
    logger, message, and a ``traceback`` when there is one), so that a collector that splits
    on newlines keeps a traceback or a harakiri's stack dump in its record.

    A record made in a worker says its ``worker`` number; one made while a request is served
    (the app's ``logger.error(...)``, the server's lines about it) says the request's
    ``method``, ``uri`` and ``request_id`` (its ``X-Request-Id``, "" without), as its JSON
    access line does, so that a collector joins the two. A record's ``extra`` fields are
    fields of the line (as text where JSON has no type for them); they replace none of these
    but an empty ``request_id`` (the app's own id for a request that came without one).
    """

    def format(self, record: logging.LogRecord) -> str:
        """The record as one line of JSON."""
        line: dict[str, Any] = {
            "time": iso_time(record.created),
            "level": record.levelname,
            "pid": record.process,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info and record.exc_info[1] is not None:
            line["traceback"] = self.formatException(record.exc_info)
        elif detail := getattr(record, "traceback", ""):  # one it stands for (a HUP's import)
            line["traceback"] = str(detail)
        elif _TRACEBACK in line["message"]:  # one the line carries as text (an app's import)
            message, _, rest = line["message"].partition(_TRACEBACK)
            line["message"], line["traceback"] = message, _TRACEBACK.lstrip("\n") + rest
        _add_request(line)
        for key, value in record.__dict__.items():
            extra = isinstance(key, str) and key not in _RECORD_ATTRIBUTES and key[:1] != "_"
            if extra and line.get(key) in (None, ""):  # ours win, but an empty request_id
                line[key] = _extra(value)
        return json.dumps(line, ensure_ascii=False, default=_as_text, allow_nan=False)


def iso_time(when: float) -> str:
    """``when`` (a Unix time) in local time, RFC 3339 with milliseconds and the UTC offset
    (``2026-12-07T21:14:37.945+00:00``), as a JSON log line says it."""
    moment = time.localtime(when)
    offset = time.strftime("%z", moment)
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", moment)
    return f"{stamp}.{int(when % 1 * 1000):03d}{offset[:3]}:{offset[3:]}"


def _extra(value: object) -> object:
    """An ``extra`` value as JSON can hold it: as it is, else its text (a dict with other keys
    than text, a cycle, a NaN: ``json.dumps`` would raise, and the record be lost)."""
    try:
        json.dumps(value, default=_as_text, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return _as_text(value)
    return value


def _as_text(value: object) -> str:
    """A value JSON has no type for, as its text (``repr`` where ``str`` fails)."""
    try:
        return str(value)
    except Exception:
        return object.__repr__(value)


def _add_request(line: dict[str, Any]) -> None:
    """The worker's number, and the request being served, in this thread, into ``line``."""
    inflight = sys.modules.get("uwsgiapp.server.inflight")
    if inflight is None:  # not a server's process (a start-up warning)
        return
    if number := inflight.worker_number():
        line["worker"] = number
    environ = inflight.request_environ(sys._getframe())
    if environ is None:
        return
    from uwsgiapp.server.accesslog import json_text, json_uri  # loaded with inflight

    line["method"] = json_text(environ, "REQUEST_METHOD")
    line["uri"] = json_uri(environ)
    line["request_id"] = json_text(environ, "HTTP_X_REQUEST_ID")


def _escape_exception_texts(report: traceback.TracebackException, seen: set[int]) -> None:
    """Escape the text of ``report``'s exception and of those chained to or grouped in it."""
    if id(report) in seen:
        return
    seen.add(id(report))
    text = getattr(report, "_str", None)  # what format_exception_only prints after "Type: "
    if isinstance(text, str):
        report._str = escape_log_text(text)  # type: ignore[attr-defined]
    notes = getattr(report, "__notes__", None)
    if isinstance(notes, list):
        # Through the instance dict: Python 3.10's TracebackException declares no __notes__.
        vars(report)["__notes__"] = [escape_log_text(str(note)) for note in notes]
    linked = [report.__cause__, report.__context__, *(getattr(report, "exceptions", None) or ())]
    for other in linked:
        if other is not None:
            _escape_exception_texts(other, seen)
