"""``uwsgiapp dev``'s log lines: werkzeug's without their colours where no terminal reads
them, and serve's error lines on stderr as serve writes them."""

from __future__ import annotations

import logging
import os
import re
import sys

__all__ = ["error_lines", "plain_logs_unless_terminal", "uwsgi_sent_here"]

#: An SGR escape sequence (colour, bold, reset), as werkzeug's log lines carry them.
_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _StripAnsi(logging.Filter):
    """Drop werkzeug's colour codes from its log lines (for a file, a pipe, ``NO_COLOR``)."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "\x1b[" in message:
            record.msg, record.args = _ANSI.sub("", message), None
        return True


class _UwsgiSentHere(logging.Filter):
    """werkzeug's 400 for a uwsgi packet (nginx's ``uwsgi_pass`` pointed at dev): its line
    showed the packet's bytes, and nginx answered 504 a minute later; what to use is said."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        if "code 400, message" in message and "\\x00" in message:  # a NUL, as werkzeug shows it
            record.msg, record.args = message + _UWSGI_HINT, None
        return True


_UWSGI_HINT = (
    " (the uwsgi protocol, nginx's uwsgi_pass, sent to uwsgiapp dev, which speaks HTTP: "
    "proxy_pass http://HOST:PORT to dev, or uwsgi_pass to uwsgiapp serve)"
)


def uwsgi_sent_here() -> None:
    """Have werkzeug's line about a uwsgi packet sent to dev say what to use instead."""
    logger = logging.getLogger("werkzeug")
    if not any(isinstance(f, _UwsgiSentHere) for f in logger.filters):
        logger.addFilter(_UwsgiSentHere())


def plain_logs_unless_terminal() -> None:
    """Colour only for a terminal: anything else (a log file, ``| tee``, a test) gets none."""
    stream = sys.stderr
    if os.environ.get("NO_COLOR") or stream is None or not stream.isatty():
        logger = logging.getLogger("werkzeug")
        if not any(isinstance(f, _StripAnsi) for f in logger.filters):
            logger.addFilter(_StripAnsi())


def error_lines() -> None:
    """serve's error lines (a response it refuses, a body that does not match its head) on
    stderr as serve writes them; without a handler, Python's last resort prints them bare."""
    from uwsgiapp.server.logformat import ERROR_FORMAT, ErrorFormatter

    logger = logging.getLogger("uwsgiapp.error")
    if not logger.handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(ErrorFormatter(ERROR_FORMAT))
        logger.addHandler(handler)
        logger.propagate = False
