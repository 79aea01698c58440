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
import contextlib
import os
import select
import selectors
import sys
import time
import traceback
from collections.abc import Callable
from typing import Any, Final

__all__ = [
    "OWN_THREADS",
    "DefaultSelector",
    "OsEvent",
    "OsThread",
    "close",
    "epoll",
    "get_ident",
    "poll",
    "read",
    "select_fds",
    "sleep",
    "start_new_thread",
    "threads_patched_by",
    "waitpid",
]

#: ``os.read``: raises ``BlockingIOError`` on an empty non-blocking fd (eventlet's waits).
read: Final = os.read
#: ``os.close`` (gevent's closes later, from its hub: a pipe end whose close must be seen at
#: once stayed open in a process that never runs the hub).
close: Final = os.close
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
#: ``_thread.start_new_thread``: patched, it starts a greenlet, which never runs while the main
#: thread waits outside the hub (an exit's watchdog, a stop's late refusal).
start_new_thread: Final = _thread.start_new_thread
#: ``_thread.get_ident``, the key of ``sys._current_frames()`` (patched: a greenlet's number).
get_ident: Final = _thread.get_ident
_allocate_lock: Final = _thread.allocate_lock
#: ``time.sleep`` (patched: a wait in the hub, which a thread of ours has none of).
sleep: Final = time.sleep


#: The idents of the server's own threads started through :class:`OsThread`: a thread
#: ``threading`` learns of only when it logs (a ``_DummyThread``) is not the app's.
OWN_THREADS: set[int] = set()


class OsEvent:
    """``threading.Event``'s part the server uses, on real locks: patched, ``threading``'s
    Event waits in the hub, and a master waiting on it for a thread of ours waited for ever."""

    def __init__(self) -> None:
        self._flag = False
        self._guard = _allocate_lock()
        self._gate = _allocate_lock()
        self._gate.acquire()

    def set(self) -> None:
        """Wake the waiters, now and later (twice, or from a signal handler: once)."""
        with self._guard:
            if not self._flag:
                self._flag = True
                self._gate.release()

    def is_set(self) -> bool:
        """Whether :meth:`set` was called."""
        return self._flag

    def wait(self, timeout: float = -1) -> bool:
        """Wait until set or ``timeout`` seconds (-1: no limit); whether it is set."""
        if self._flag:
            return True
        if self._gate.acquire(timeout=timeout):
            self._gate.release()  # the next waiter passes too
        return self._flag


class OsThread:
    """A thread of the operating system's, started with the real ``_thread`` (a daemon:
    the process does not wait for it). Not ``threading.Thread``: patched, its start waits in
    the hub for the thread to say it started (the master hung at a HUP), and one alive as the
    app's import patches ``threading`` broke the import's module lock ("cannot release
    un-acquired lock": gevent's app did not load). An exception that ends it is written to
    stderr with its ``name`` (a raw thread's names only a bound method)."""

    def __init__(self, name: str, target: Callable[..., Any], *args: Any) -> None:
        self.name = name
        self._done = OsEvent()
        start_new_thread(self._run, (target, args))

    def _run(self, target: Callable[..., Any], args: tuple[Any, ...]) -> None:
        OWN_THREADS.add(get_ident())
        try:
            target(*args)
        except BaseException:
            with contextlib.suppress(Exception):
                text = traceback.format_exc()
                os.write(2, f"uwsgiapp: its {self.name} thread failed:\n{text}".encode())
        finally:
            _forget_dummy(get_ident())
            OWN_THREADS.discard(get_ident())
            self._done.set()

    def join(self, timeout: float = -1) -> bool:
        """Wait for its end, ``timeout`` seconds at most (-1: no limit); whether it ended."""
        return self._done.wait(timeout)

    def is_alive(self) -> bool:
        """Whether it still runs."""
        return not self._done.is_set()


def _forget_dummy(ident: int) -> None:
    """Drop the ``threading`` stand-in a line logged from this thread made for it: before
    Python 3.12 it stays listed after the thread ends (the import's thread check then named
    "Dummy-1", the stats thread of the first start, as the app's)."""
    threading: Any = sys.modules.get("threading")
    with contextlib.suppress(Exception):
        if isinstance(threading._active.get(ident), threading._DummyThread):
            del threading._active[ident]


def threads_patched_by() -> str | None:
    """The module whose threads replaced the real ones since this module's import (gevent's
    ``gevent.thread``, eventlet's ``eventlet.green.thread``), or None: ``--threads`` runs its
    request threads, and their locks, on ``threading``, and a green thread blocked in the
    server's real ``epoll`` never lets the others run (a request hung, and the stop with it)."""
    current = _thread.start_new_thread
    if current is start_new_thread:
        return None
    return str(getattr(current, "__module__", None) or "an unknown module")
