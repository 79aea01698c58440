"""The master's signal handlers: they queue the signal's name for the loop, and wake it.

Two moments need more than that, both around a HUP's re-import of the app, which runs in the
master's one thread (the loop waits for it, for as long as the import takes):

- a stop (TERM, INT, QUIT) during the import must not wait for it: a container manager kills
  what has not stopped in 10 s. While :meth:`MasterSignals.stops_interrupt` is on, a stop is
  queued as always and :class:`StopDuringReimport` is raised where the import is; the
  re-import is called off as a failed one is, and the loop then stops as asked;
- the app's import may install its own handlers (its SIGTERM clean-up, a library's SIGCHLD):
  at start-up the master installs its own after the import, but a re-import would leave the
  app's in place, and a TERM then ran the app's handler instead of stopping.
  :meth:`MasterSignals.reclaim` puts the master's back and names the signals taken.
"""

from __future__ import annotations

import collections
import contextlib
import os
import signal
from collections.abc import Iterator
from types import FrameType

from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.termsignals import STOP_SIGNALS

#: What the master handles: the policy's table, and CHLD (which only wakes the loop to reap).
MASTER_SIGNALS = (*Policy.SIGNAL_HANDLERS, "CHLD")
MASTER_SIGNUMS = frozenset(getattr(signal, f"SIG{name}") for name in MASTER_SIGNALS)
_STOPS = frozenset(signum.name.removeprefix("SIG") for signum in STOP_SIGNALS)
#: The others, whose default action ends (HUP, USR1, USR2) or freezes (TTIN, TTOU) a process:
#: before the master's handlers exist (start-up, the app's import), they are kept for its loop.
EARLY_SIGNUMS = sorted(MASTER_SIGNUMS - {signal.SIGCHLD, *STOP_SIGNALS})
_early: list[str] = []


def keep_for_later(signum: int, frame: FrameType | None) -> None:
    """Start-up's handler of :data:`EARLY_SIGNUMS` (logrotate's USR1 as the app loads)."""
    _early.append(signal.Signals(signum).name[3:])


def forget_early() -> None:
    """Start-up ended before the master's loop: what was kept for it goes (an in-process second
    start must not carry it out)."""
    _early.clear()


class StopDuringReimport(KeyboardInterrupt):
    """A stop signal (its name: 'TERM') arrived during a re-import; a KeyboardInterrupt so that
    it passes through the app importer (which turns other exceptions into an import error)
    and the app's ``except Exception``."""


class MasterSignals:
    """The master's handlers, feeding ``queue`` (signal names) and the wake-up pipe."""

    def __init__(self, queue: collections.deque[str]) -> None:
        self.queue = queue
        self.wake_r = -1
        self.wake_w = -1
        self._interrupting = False
        #: What the app's import set SIGCHLD to (a SIG_IGN against zombies, a library's reaper),
        #: or None: the workers get it back (the master's own handler took its place here).
        self.app_chld: signal._HANDLER = None

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The handler of every master signal: queue its name (a stop during a re-import also
        interrupts the import, once)."""
        name = signal.Signals(signum).name[3:]
        self.queue.append(name)
        if self._interrupting and name in _STOPS:
            self._interrupting = False  # the import unwinds once; a second stop is queued
            raise StopDuringReimport(name)

    def install(self) -> None:
        """The wake-up pipe and the handlers (once, as the master starts)."""
        self.wake_r, self.wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        chld = signal.getsignal(signal.SIGCHLD)  # SIG_DFL before the import (serve's start)
        if chld not in (signal.SIG_DFL, None):
            self.app_chld = chld
        for signum in MASTER_SIGNUMS:
            signal.signal(signum, self.handle)
        # A HUP too: the import may have read the code a deploy was replacing meanwhile.
        self.queue.extend(_early)
        _early.clear()

    def reclaim(self, imported: bool = True) -> list[str]:
        """Put the master's handlers back where something (the app's import) replaced them;
        the names of those signals ('SIGTERM'), in :data:`MASTER_SIGNALS` order. ``imported``:
        the new code's SIGCHLD is the workers' (a failed import's is not: the old code's stays)."""
        taken = []
        chld = signal.getsignal(signal.SIGCHLD)  # the new code's own, for the workers, or none
        if imported:
            self.app_chld = None if chld == self.handle else chld
        for name in MASTER_SIGNALS:
            signum = getattr(signal, f"SIG{name}")
            if signal.getsignal(signum) != self.handle:  # a bound method: equal, not the same
                signal.signal(signum, self.handle)
                if name != "CHLD":
                    taken.append(f"SIG{name}")
        # An event loop made at import (asyncio's add_signal_handler) takes the wake-up fd.
        signal.set_wakeup_fd(self.wake_w, warn_on_full_buffer=False)
        return taken

    @contextlib.contextmanager
    def stops_interrupt(self) -> Iterator[None]:
        """While in it, a stop signal raises :class:`StopDuringReimport` (once)."""
        self._interrupting = True
        try:
            yield
        finally:
            self._interrupting = False
