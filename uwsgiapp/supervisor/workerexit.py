"""How a forked worker ends: always ``os._exit``, after what a normal exit would run.

``os._exit``, because the worker runs inside the master's call stack: unwinding it would run
the master's ``finally`` blocks (which remove the socket file and the pidfile). Before it, when
the worker's loop ended as it was asked to (max-requests, a reload, TERM, RSS recycling), what
Python runs at a normal exit: non-daemon threads are joined (``concurrent.futures``' queued
work), then the ``atexit`` handlers (sentry-sdk's flush, ``logging.shutdown``), in the worker
too, as uWSGI and gunicorn run them. A handler that hangs is cut by the master's kill deadline.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import threading
from typing import NoReturn

from uwsgiapp.server.logs import flush_std

__all__ = ["leave"]

log = logging.getLogger("uwsgiapp.error")


def leave(code: int, *, finish: bool) -> NoReturn:
    """End this worker with exit ``code``; ``finish``: run the exit work first."""
    if finish:
        try:
            threading._shutdown()  # type: ignore[attr-defined]  # joins non-daemon threads
        except Exception:
            log.exception("worker %d: joining the app's threads at exit failed", os.getpid())
        atexit._run_exitfuncs()  # prints a failing handler's traceback itself, goes on
    for handler in logging.getLogger("uwsgiapp").handlers:
        with contextlib.suppress(Exception):
            handler.flush()
    flush_std()
    os._exit(code)
