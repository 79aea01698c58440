"""The standard library's own waiting and reading functions, as they were before the app.

gevent's ``monkey.patch_all()`` and eventlet's ``monkey_patch()`` at the top of an app module
(Flask-SocketIO apps, many older ones) replace them in the modules themselves, in the master
(which imports the app) and in every worker forked from it: ``select.epoll`` is deleted (the
worker could not start), ``select.select`` and ``select.poll`` wait in their hub, and eventlet's
``os.read`` waits for the fd to be readable where the real one raises ``BlockingIOError`` (the
master's loop, emptying its non-blocking wake-up pipe, then waited for the next signal: a TERM
was never acted on). The server's loops run on these, bound when this module is first imported,
before any app is: the app keeps its patched functions for its own code, as under gunicorn's
sync worker and uWSGI, whose loops never call them.

A leaf module (it imports only the standard library), imported with the server's and the
supervisor's modules, which are all loaded before the app (with ``--lazy-apps`` too).
"""

from __future__ import annotations

import _thread
import os
import select
import selectors
from typing import Final

__all__ = [
    "DefaultSelector",
    "epoll",
    "poll",
    "read",
    "select_fds",
    "threads_patched_by",
    "waitpid",
]

#: ``os.read``: raises ``BlockingIOError`` on an empty non-blocking fd (eventlet's waits).
read: Final = os.read
#: ``os.waitpid`` (gevent's and eventlet's wait in their hub).
waitpid: Final = os.waitpid
#: ``select.select``.
select_fds: Final = select.select
#: ``select.poll``.
poll: Final = select.poll
#: ``select.epoll`` (deleted by gevent's and eventlet's patching).
epoll: Final = select.epoll
#: ``selectors.DefaultSelector`` (gevent's and eventlet's is their own).
DefaultSelector: Final = selectors.DefaultSelector
_start_new_thread: Final = _thread.start_new_thread


def threads_patched_by() -> str | None:
    """The module whose threads replaced the real ones since this module's import (gevent's
    ``gevent.thread``, eventlet's ``eventlet.green.thread``), or None: ``--threads`` runs its
    request threads, and their locks, on ``threading``, and a green thread blocked in the
    server's real ``epoll`` never lets the others run (a request hung, and the stop with it)."""
    current = _thread.start_new_thread
    if current is _start_new_thread:
        return None
    return str(getattr(current, "__module__", None) or "an unknown module")
