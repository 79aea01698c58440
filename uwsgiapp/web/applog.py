"""``app.logger``: the logger named after the app, and the handler it gets when logging is left
unconfigured.

That handler writes Flask's plain lines to stderr, except in a process ``uwsgiapp serve`` runs:
there it hands each record to the server's error log, which formats it as the server's own
lines (``--error-log-format text`` or ``json``) and writes it where they go. A view's exception
is then one JSON record, its traceback inside, rather than twenty plain lines that a log
collector reads as twenty records. The framework imports nothing of the server: it finds the
error log's handler by the name the server gives it (:data:`SERVER_ERROR_LOG`), so under
``uwsgiapp dev``, in tests and under any other WSGI server nothing changes.
"""

from __future__ import annotations

import logging
import sys

__all__ = ["SERVER_ERROR_LOG", "DefaultHandler", "create_logger", "server_error_log"]

#: The name of the handler ``uwsgiapp serve`` puts on the ``uwsgiapp`` logger for its error log
#: (``uwsgiapp/server/logs.py``: ``setup_error_log``).
SERVER_ERROR_LOG = "uwsgiapp.error_log"

_PLAIN_FORMAT = "[%(asctime)s] %(levelname)s in %(module)s: %(message)s"


def server_error_log() -> logging.Handler | None:
    """The error log's handler of the ``uwsgiapp serve`` running this process, or ``None``.

    Looked up at each record: a reload (HUP) replaces the handler, and the app may be imported,
    and its logger made, before the server set its log up.
    """
    for handler in logging.getLogger("uwsgiapp").handlers:
        if handler.get_name() == SERVER_ERROR_LOG:
            return handler
    return None


class DefaultHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """stderr in Flask's plain format; under ``uwsgiapp serve``, the server's error log."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)
        self.setFormatter(logging.Formatter(_PLAIN_FORMAT))

    def handle(self, record: logging.LogRecord) -> bool:
        """Pass ``record`` to the server's error log if there is one, else write it here."""
        server = server_error_log()
        if server is not None:
            return bool(server.handle(record))
        return bool(super().handle(record))


def create_logger(name: str, debug: bool) -> logging.Logger:
    """The logger ``name``: DEBUG level in ``debug`` mode unless a level was set, and a
    :class:`DefaultHandler` if no handler would see its records (the app configured no
    logging)."""
    logger = logging.getLogger(name)
    if debug and not logger.level:
        logger.setLevel(logging.DEBUG)
    if not logger.hasHandlers():
        logger.addHandler(DefaultHandler())
    return logger
