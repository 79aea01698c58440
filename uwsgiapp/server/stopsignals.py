"""A worker process's signal handlers (:class:`StopSignals`)."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
from types import FrameType

from uwsgiapp.server.inflight import request_environ, request_line
from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.logs import reopen_logs
from uwsgiapp.server.logtext import escape_log_text
from uwsgiapp.wsgi.errors import QuickStop


class StopSignals:
    """A worker process's signal handlers (after fork: the master's must not run here). They
    only set flags, which the loop reads between requests; shared by :class:`Worker` and the
    threaded worker's main thread."""

    alive: bool
    drain_backlog: bool
    listeners: list[Listener]
    _wake_r: int
    _wake_w: int
    _quick_stopping = False

    def _on_graceful(self, signum: int, frame: FrameType | None) -> None:
        # TERM: finish the current request and what already waits in the backlog, then exit.
        self.alive = False
        self.drain_backlog = True

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        # The master reloads by starting new workers first; we just finish and leave.
        self.alive = False

    def _on_quick(self, signum: int, frame: FrameType | None) -> None:
        # Once: a terminal's Ctrl-C reaches the worker and the master, which passes it on; a
        # second INT must not cut the finally blocks the first one lets run (SIGKILL stays).
        if self._quick_stopping:
            return
        self._quick_stopping = True
        for line in self.requests_cut(frame):  # say what is cut (exit code 0 all the same)
            logging.getLogger("uwsgiapp.error").warning(
                "%s: quick stop, cutting %s", signal.Signals(signum).name, escape_log_text(line)
            )
        self.unwind_requests()
        raise QuickStop(0)  # in the request this handler interrupted: its finally blocks run

    def unwind_requests(self) -> None:
        """Before a quick stop's exit: end the requests other threads serve (none here)."""

    def requests_cut(self, frame: FrameType | None) -> list[str]:
        """The requests a quick stop cuts: the one the interrupted ``frame`` serves, if any."""
        return [] if request_environ(frame) is None else [request_line(frame)]

    def install_signals(self) -> None:
        """Worker signal dispositions (after fork: the master's handlers must not run here)."""
        signal.signal(signal.SIGTERM, self._on_graceful)
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGINT, self._on_quick)
        signal.signal(signal.SIGQUIT, self._on_quick)
        signal.signal(signal.SIGUSR1, lambda s, f: reopen_logs())
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        os.register_at_fork(after_in_child=self._forked_by_the_app)

    def _forked_by_the_app(self) -> None:
        """In a process the app forks from this worker (multiprocessing, os.fork): the
        worker's handlers are not its own (``Process.terminate()`` did nothing: TERM set a flag
        no loop reads), and nor are the listening sockets (an orphan kept the port, and the
        next start could not bind it)."""
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with contextlib.suppress(RuntimeError):
            faulthandler.unregister(signal.SIGUSR2)  # the harakiri dump
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)
        for listener in self.listeners:
            listener.sock.close()
