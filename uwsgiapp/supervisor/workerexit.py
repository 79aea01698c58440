"""How a forked worker ends: always ``os._exit``, after what a normal exit would run.

``os._exit``, because the worker runs inside the master's call stack: unwinding it would run
the master's ``finally`` blocks (which remove the socket file and the pidfile while the master
still serves). Before it, when the worker's loop ended as it was asked to (max-requests, a
reload, TERM, RSS recycling; not a crash), what Python runs at a normal exit: non-daemon
threads are joined (``concurrent.futures``' queued work), then the ``atexit`` handlers run
(sentry-sdk's flush, ``logging.shutdown``), as uWSGI and gunicorn run them in a worker, and a
garbage collection frees what reference cycles hold (a temporary file's finalizer). That
work is bounded by :data:`EXIT_WORK_SECONDS` (a thread that never ends must not keep a worker
that nobody will kill: one that leaves on its own has no kill deadline), and no stop signal can
interrupt it into unwinding the master's stack. A quick stop (INT, QUIT) runs the ``atexit``
handlers alone, for :data:`QUICK_EXIT_WORK_SECONDS` at most: the threads' work is what it cuts,
but the events an error tracker still queues are not (gunicorn's quick stop runs both).

The master's side is :func:`reap`: the exits of its children, collected without waiting.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import gc
import logging
import os
import signal
import threading
import time
from collections.abc import Callable
from typing import Any, NoReturn

from uwsgiapp import unpatched
from uwsgiapp.server.inflight import worker_label
from uwsgiapp.server.logs import flush_std, tell_write_failures
from uwsgiapp.server.stopsignals import quick_stop_began
from uwsgiapp.unpatched import sleep, start_new_thread

__all__ = [
    "EXIT_WORK_SECONDS",
    "QUICK_EXIT_WORK_SECONDS",
    "die_with_parent",
    "end_master",
    "kill_all",
    "leave",
    "reap",
]

PR_SET_PDEATHSIG = 1


def die_with_parent(signum: int = signal.SIGTERM) -> None:
    """Ask Linux to send ``signum`` to this process if the master dies (a worker: TERM, belt
    and braces with the idle check)."""
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signum)


log = logging.getLogger("uwsgiapp.error")

#: The longest the exit work (joining the app's threads, its atexit handlers) may take.
EXIT_WORK_SECONDS = 5
#: The same after a quick stop, counted from its start (the cut requests' unwinding takes its
#: share first): the master's SIGKILL comes QUICK_GRACE (2 s) after its SIGINT.
QUICK_EXIT_WORK_SECONDS = 1.5
#: What the atexit handlers get at least, however long the unwinding took.
QUICK_EXIT_WORK_LEAST = 0.25

#: Held off while the worker leaves: a second Ctrl-C must not raise SystemExit mid-way.
_HELD = {signal.SIGINT, signal.SIGQUIT, signal.SIGTERM, signal.SIGHUP, signal.SIGUSR1}


def _watchdog(code: int, seconds: float, what: str, who: str) -> None:
    """A daemon thread (never joined): ends the process when the exit work runs over. A
    thread, not SIGALRM: a process-directed signal may go to one of the app's threads and
    leave the main thread waiting on its join."""
    sleep(seconds)
    # The line below takes the log's lock, which the stuck exit work may hold: a last resort.
    start_new_thread(_exit_after, (1.0, code))
    log.warning(
        "%s: its exit work (%s) still runs after %g s: leaving without it",
        who,
        what,
        seconds,
    )
    _end(code)


def _quick_share() -> float:
    """A quick stop's exit work: what is left of :data:`QUICK_EXIT_WORK_SECONDS` since it
    began, :data:`QUICK_EXIT_WORK_LEAST` at least."""
    began = quick_stop_began()
    spent = 0.0 if began is None else time.monotonic() - began
    return round(max(QUICK_EXIT_WORK_LEAST, QUICK_EXIT_WORK_SECONDS - spent), 2)


def _exit_after(seconds: float, code: int) -> None:
    sleep(seconds)
    os._exit(code)


def _end(code: int) -> NoReturn:
    try:
        tell_write_failures(final=True)  # a count not yet due was never said after a stop
        for handler in logging.getLogger("uwsgiapp").handlers:
            with contextlib.suppress(Exception):
                handler.flush()
        flush_std()
    finally:
        os._exit(code)


def leave(code: int, *, finish: bool, quick: bool = False, who: str = "") -> NoReturn:
    """End this worker with exit ``code``; ``finish``: run the exit work first; ``quick``
    (a quick stop): its ``atexit`` handlers only; ``who``: how its lines name the process
    (the worker's label by default)."""
    who = who or worker_label()
    try:
        signal.pthread_sigmask(signal.SIG_BLOCK, _HELD)
        if finish or quick:
            bound, what = (
                (EXIT_WORK_SECONDS, "the app's threads, atexit handlers")
                if finish
                else (_quick_share(), "atexit handlers")
            )
            try:
                start_new_thread(_watchdog, (code, bound, what, who))
            except RuntimeError as exc:  # at a thread limit: unbounded work nobody would end
                log.warning(
                    "%s: leaving without its exit work (%s: no thread for its bound: %s)",
                    who,
                    what,
                    exc,
                )
                finish = quick = False
        if finish:
            try:
                threading._shutdown()  # type: ignore[attr-defined]  # joins non-daemon threads
            except Exception:
                log.exception("%s: joining the app's threads at exit failed", who)
        if finish or quick:
            atexit._run_exitfuncs()  # prints a failing handler's traceback itself, goes on
            # As the interpreter's own exit collects: an object in a reference cycle that
            # holds a temporary file (Django's upload of a client that left mid-body) removes
            # it as it is freed; os._exit left the file on disk for good.
            gc.collect()
    finally:
        _end(code)


def end_master(code: int) -> int:
    """The master's last step: ``code`` back when only daemon threads are left. Else a thread
    the app's import started in it (a scheduler, with the preload the master runs) would hold
    the interpreter's exit for ever, past every stop signal, until a SIGKILL: its exit work
    gets :data:`EXIT_WORK_SECONDS`, as a worker's does, and the process ends with ``code``."""
    tell_write_failures(final=True)
    main = threading.main_thread()
    if not any(t is not main and not t.daemon and t.is_alive() for t in threading.enumerate()):
        return code
    # Ignored, not held: a mask holds a signal off the main thread only, and the app's thread
    # would take it (a second TERM then cut the join, and the atexit handlers with it).
    for signum in _HELD:
        signal.signal(signum, signal.SIG_IGN)
    leave(code, finish=True, who=f"master (pid {os.getpid()})")


def reap() -> list[tuple[int, int | None, int | None]]:
    """The children that ended, without waiting: (pid, exit code or None, signal or None)."""
    done: list[tuple[int, int | None, int | None]] = []
    while True:
        try:
            pid, status = unpatched.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            break
        if pid == 0:
            break
        if os.WIFSIGNALED(status):
            done.append((pid, None, os.WTERMSIG(status)))
        else:
            done.append((pid, os.waitstatus_to_exitcode(status), None))
    return done


def kill_all(
    records: dict[int, Any], reaped: Callable[[int, int | None], object] | None = None
) -> None:
    """Kill the children in ``records`` (by pid; the policy gave up on them) and reap them,
    taking each out of ``records`` (``reaped``: told each pid and its signal); 5 s at most."""
    for pid in list(records):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while records and time.monotonic() < deadline:
        for pid, _, signum in reap():
            records.pop(pid, None)
            if reaped is not None:
                reaped(pid, signum)
        time.sleep(0.01)
