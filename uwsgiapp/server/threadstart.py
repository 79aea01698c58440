"""Starting a worker's request threads under a process or thread limit; their status hooks.

Linux counts each thread as a task against the user's ``RLIMIT_NPROC`` and the pids cgroup's
``pids.max``: with ``--threads`` a worker forks fine and then cannot start its threads. Each
worker crashed with a traceback at its first thread, and the next one did the same, a crash
loop with no server. Now a worker serves with the threads it could start and says so once; one
that can start none says why in one line and exits as a crash (the master's crash hold paces
the next tries).
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Protocol

from uwsgiapp.exitcodes import WorkerExit
from uwsgiapp.harakiri import own_limit
from uwsgiapp.oslimits import THREAD_LIMIT

__all__ = ["CoreHooks", "LocalCore", "start_threads"]

#: Linux refuses a thread for a task limit, or for want of memory for its stack.
_CAUSE = f"{THREAD_LIMIT}; or no memory for its stack (ulimit -v, a memory cgroup)"

log = logging.getLogger("uwsgiapp.error")


def start_threads(threads: list[threading.Thread], label: str) -> list[threading.Thread]:
    """Start ``threads`` in order until one cannot start: those that started (``label``: the
    worker's, for the lines). None started: raises ``SystemExit`` (a crash)."""
    for started, thread in enumerate(threads):
        try:
            thread.start()
        except RuntimeError as exc:  # "can't start new thread"
            if not started:
                log.error(
                    "%s: cannot start any of its %d request threads: %s (%s)",
                    label,
                    len(threads),
                    exc,
                    _CAUSE,
                )
                raise SystemExit(WorkerExit.CRASHED) from None
            log.warning(
                "%s: serving with %d of its %d request threads: the next one could not "
                "start: %s (%s)",
                label,
                started,
                len(threads),
                exc,
                _CAUSE,
            )
            return threads[:started]
    return threads


class CoreHooks(Protocol):
    """A request thread's status hooks; ``started`` is its request's start (0 when idle),
    ``limit`` its own harakiri (seconds from its start; 0: ``--harakiri``)."""

    started: float
    limit: float

    def begin(self) -> None:
        """A request started on this thread."""

    def end(self, requests: int) -> None:
        """This thread's request is done; ``requests`` served by the thread."""

    def absent(self) -> None:
        """This thread could not start (a thread limit): no capacity to count here."""

    def set_harakiri(self, seconds: float) -> bool:
        """This thread's request may run ``seconds`` more (0: none); False while idle."""


class LocalCore:
    """:class:`CoreHooks` without a status slot (tests, tools): only remembers the start."""

    __slots__ = ("limit", "started")

    def __init__(self) -> None:
        self.started = 0.0
        self.limit = 0.0

    def begin(self) -> None:
        self.started = time.time()
        self.limit = 0.0

    def set_harakiri(self, seconds: float) -> bool:
        if not self.started:
            return False
        self.limit = own_limit(self.started, seconds)
        return True

    def end(self, requests: int) -> None:
        self.started = 0.0

    def absent(self) -> None:
        pass
