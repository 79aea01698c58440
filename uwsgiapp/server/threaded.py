"""``--threads N``: a worker whose N request threads each run the worker loop (uWSGI's design).

Each request thread is a :class:`~uwsgiapp.server.worker.Worker` loop of its own (its own epoll
on the shared listeners with ``EPOLLEXCLUSIVE``, its own parked connections, its own status
core): a thread accepts only while it is idle, so a worker never takes more connections than
it has free threads and the rest wait in the kernel's backlog for any idle thread of any
worker. There is no hand-off between threads: the thread that accepts a connection reads and
serves it, which costs nothing per request beyond the GIL (bench/THREADS.md has the numbers
against an acceptor feeding a pool).

The main thread serves nothing: it takes the signals (Python runs handlers only there), tells
the threads to stop (a flag and a byte on each thread's wake-up pipe), watches the master, and
returns once every thread has finished its request, its parked connections and, on TERM, its
share of the backlog. A thread that stops on its own (max-requests, out of descriptors) stops
the others too: the worker is recycled as a whole, after every thread's request.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from types import FrameType
from typing import Any

from uwsgiapp import unpatched
from uwsgiapp.harakiri import harakiri_limit, serve_in_this_thread
from uwsgiapp.server.accesslog import set_core
from uwsgiapp.server.decisions import DRAIN_SECONDS
from uwsgiapp.server.inflight import (
    ASKED,
    app_stack,
    request_line,
    worker_label,
)
from uwsgiapp.server.intake import Handler
from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.masterflags import MasterFlags
from uwsgiapp.server.stopsignals import StopSignals, say_cut
from uwsgiapp.server.threadstart import CoreHooks, LocalCore, start_threads
from uwsgiapp.server.worker import IDLE_TICK, Worker
from uwsgiapp.wsgi.errors import RequestCut

log = logging.getLogger("uwsgiapp.error")

#: How long a quick stop waits for the request threads it cut to unwind (the master's SIGKILL
#: comes QUICK_GRACE, 2 s, after its SIGINT; the atexit handlers have what is left of 1.5 s).
UNWIND_SECONDS = 1.0


def _raise_in(ident: int) -> None:
    """Raise :class:`RequestCut` in thread ``ident`` when it next runs Python code (nothing
    where Python was built without ctypes)."""
    try:
        import ctypes  # only on a quick stop or a harakiri
    except ImportError:
        return
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), ctypes.py_object(RequestCut))


class _ThreadLoop(Worker):
    """One request thread's loop: a Worker that reports to its :class:`ThreadedWorker`."""

    # Each look at epoll lets the other threads take the GIL: a hand-off per request costs
    # more than the accept that finds the queue empty (bench/THREADS.md).
    one_first = False

    def __init__(
        self,
        owner: ThreadedWorker,
        index: int,
        listeners: list[Listener],
        core: CoreHooks,
        loops: int = 1,
    ) -> None:
        super().__init__(
            owner.handler,
            listeners,
            max_requests=owner.max_requests,
            hooks=core,
            drain_seconds=owner.drain_seconds,
            master_flags=owner.master_flags,
            loops=loops,
        )
        self.owner = owner
        self.index = index
        self.core = core
        self.ident: int | None = None
        # Its own wake-up pipe (so run() installs no signal handlers: those are the main's).
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)

    def run_thread(self) -> None:
        self.ident = threading.get_ident()
        set_core(self.index)
        serve_in_this_thread(self.core.set_harakiri)
        try:
            self.run()
        except RequestCut:
            pass  # the quick stop logged the request
        except BaseException:
            log.exception("%s: request thread %d failed", worker_label(), self.index + 1)
        finally:
            self.owner.thread_ended(self.index)

    def _after_request(self) -> None:
        # max-requests counts the worker's requests, whichever thread served them.
        if (
            self.max_requests
            and (served := next(self.owner.served)) >= self.max_requests
            and (self.master_flags is None or not self.master_flags.holds(served))
        ):
            self.alive = False
            self.owner.recycle(f"served {self.max_requests} requests (max-requests)")

    def _let_go(self, listener: Listener) -> None:
        # Shared by the threads: the last one done with it closes it (ThreadedWorker.drained).
        if self.owner.drained(listener, self.index):
            super()._let_go(listener)

    def served(self) -> int:
        # A thread that has served nothing in a worker that has: its EMFILE is the app's.
        return sum(loop.requests for loop in self.owner.loops)

    def wake(self) -> None:
        with contextlib.suppress(OSError):
            os.write(self._wake_w, b"!")

    def close(self) -> None:
        for fd in (self._wake_r, self._wake_w):
            with contextlib.suppress(OSError):
                os.close(fd)


def _serialized(call: Callable[..., None], lock: threading.Lock) -> Callable[..., None]:
    def serialized(*args: Any) -> None:
        with lock:
            call(*args)

    return serialized


class ThreadedWorker(StopSignals):
    """Serve ``listeners`` on ``threads`` request threads until told to stop.

    ``cores``: each thread's status hooks (one per thread); without them each thread gets a
    :class:`LocalCore`.
    """

    def __init__(
        self,
        handler: Handler,
        listeners: list[Listener],
        *,
        threads: int,
        max_requests: int = 0,
        cores: Sequence[CoreHooks] | None = None,
        master_pid: int = 0,
        drain_seconds: float = DRAIN_SECONDS,
        on_leaving: Callable[[], None] | None = None,
        master_flags: MasterFlags | None = None,
        harakiri: float = 0.0,
    ) -> None:
        self.handler = handler
        #: --harakiri: a request this old when USR2 comes is cut (0: none is).
        self.harakiri = harakiri
        self.listeners = listeners
        self.master_flags = master_flags
        #: Called once when it stops accepting (see Worker.on_leaving).
        self.on_leaving = on_leaving
        self.max_requests = max_requests
        self.drain_seconds = drain_seconds
        self.master_pid = master_pid
        #: The request threads serving: ``threads`` until run() knows how many could start.
        self.serving = threads
        #: The worker's requests so far (next() on it is atomic: no lock on the request path).
        self.served = itertools.count(1)
        self.alive = True
        self.drain_backlog = False
        self._told = (True, False)
        self._wake_r = -1
        self._threads: list[threading.Thread] = []
        self._wake_w = -1
        #: The request threads whose loop has ended (by index; list.append is atomic).
        self._ended: list[int] = []
        #: The request threads (by index) done draining each listener (by id) on a TERM.
        self._drained_by: dict[int, set[int]] = {}
        self._drain_lock = threading.Lock()
        hooks = list(cores) if cores is not None else [LocalCore() for _ in range(threads)]
        assert len(hooks) == threads
        self.loops = [_ThreadLoop(self, i, listeners, hooks[i], threads) for i in range(threads)]
        handler.on_out_of_fds = self._out_of_fds  # after the loops: each one set its own
        # The per-request callbacks shared by the threads: the stats counters are
        # read-modify-write, and the access log's line writer keeps state.
        responder = handler.responder
        responder.threads = {}  # each thread's request, for a quick stop's lines (say_cut)
        self._log_lock = lock = threading.Lock()
        self._log_line = responder.access_log  # the line writer, unserialized (say_cut)
        if responder.access_log is not None:
            responder.access_log = _serialized(responder.access_log, lock)
        if handler.access_line is not None:
            handler.access_line = _serialized(handler.access_line, lock)
        if responder.on_app_error is not None:
            responder.on_app_error = _serialized(responder.on_app_error, lock)

    # -- called from request threads ----------------------------------------------------------

    def recycle(self, why: str) -> None:
        """Stop the worker after every thread's request (a thread hit a recycling limit)."""
        if self.alive:
            self.alive = False
            log.info("%s: %s, recycling", worker_label(), why)
        self._wake()

    def thread_ended(self, index: int) -> None:
        """Request thread ``index`` is about to end (its loop returned or failed)."""
        self._ended.append(index)
        self._wake()

    def drained(self, listener: Listener, index: int) -> bool:
        """Request thread ``index``'s TERM drain is done with ``listener``: whether it is the
        last thread to be, which closes this process's copy right there (left to the main
        thread once all had ended, the close came a wake-up later, and a loaded stop reset the
        5 to 7 POSTs that queued meanwhile). Threads, not calls, are counted: one drains again
        after a TERM, the master's loss, and another TERM."""
        with self._drain_lock:
            done = self._drained_by.setdefault(id(listener), set())
            before = len(done)
            done.add(index)
            return before < len(self._threads) <= len(done)

    def _out_of_fds(self) -> None:
        log.error(
            "%s: the app ran out of file descriptors (EMFILE); recycling after this request",
            worker_label(),
        )
        self.recycle("out of file descriptors")

    def _wake(self) -> None:
        with contextlib.suppress(OSError):
            if self._wake_w >= 0:
                os.write(self._wake_w, b"!")

    # -- the main thread ----------------------------------------------------------------------

    def run(self) -> None:
        """Start the request threads; pass stops on to them; return when all have ended."""
        if self._wake_r < 0:
            self.install_signals()
        threads = self._threads = start_threads(
            [
                threading.Thread(
                    target=loop.run_thread, name=f"request-{loop.index + 1}", daemon=True
                )
                for loop in self.loops
            ],
            worker_label(),
        )
        self.serving = len(threads)
        for loop in self.loops[len(threads) :]:
            loop.core.absent()  # the stats and cheaper count the threads that serve
        next_parent_check = 0.0
        try:
            # Counted as each says it ends, not is_alive(): a thread that woke us is still
            # alive for a moment, and the wake-up it sent would be spent (a second's wait).
            while len(self._ended) < len(threads):
                with contextlib.suppress(InterruptedError):
                    unpatched.select_fds([self._wake_r], [], [], IDLE_TICK)
                with contextlib.suppress(OSError):
                    while unpatched.read(self._wake_r, 512):
                        pass
                if self.alive and self._ended:
                    self.recycle("a request thread stopped")
                now = time.monotonic()
                if self.master_pid and now >= next_parent_check:
                    next_parent_check = now + IDLE_TICK
                    self._tick()  # the threads' loops leave it to this one
                self._tell_threads()
                self._say_leaving()
            # Every thread is done with the sockets. A TERM's drain closed them already (see
            # drained); else (a recycle, a thread's failure, the master gone) close them now.
            for listener in self.listeners:
                listener.close(unlink=False)
            for thread in threads:
                thread.join()
        finally:
            for loop in self.loops:
                loop.close()

    def _say_leaving(self) -> None:
        """Stopped accepting: the master starts the replacement now (it waited for the
        slowest request of the other threads: half the capacity of 2 workers for as long, and
        the stats said this one accepted). It sets that request no deadline (a recycle must
        not cut it); --harakiri still times it."""
        if not self.alive and self.on_leaving is not None:
            self.on_leaving()
            self.on_leaving = None

    def _tell_threads(self) -> None:
        """Pass a change of ``alive`` / ``drain_backlog`` on to every thread, once."""
        state = (self.alive, self.drain_backlog)
        if state == self._told:
            return
        self._told = state
        for loop in self.loops:
            # drain first: a loop that saw alive false without it would just leave.
            loop.drain_backlog = self.drain_backlog
            loop.alive = self.alive
            loop.wake()

    def requests_cut(self, frame: FrameType | None) -> list[str]:
        """The busy request threads' requests, oldest first (this main thread serves none)."""
        frames = sys._current_frames()
        return [
            f"{request_line(frames.get(ident))} (thread {index + 1})"
            for _, index, ident in self._busy()
            if ident is not None
        ]

    def unwind_requests(self) -> None:
        """A quick stop cuts the busy threads' requests: each gets :class:`RequestCut` when it
        next runs Python code, so that the app's finally blocks run, as in a worker without
        threads (one blocked in a C call, a long sleep or a socket read, is not woken: the
        master's SIGKILL ends it). Waits for them at most :data:`UNWIND_SECONDS`."""
        self.alive = False  # the idle threads take no new request while the busy ones unwind
        self.drain_backlog = False  # (the backlog is the next worker's)
        self._tell_threads()
        busy = {ident for _, _, ident in self._busy() if ident is not None}
        for ident in busy:
            _raise_in(ident)
        deadline = time.monotonic() + UNWIND_SECONDS
        for thread in self._threads:
            if thread.ident in busy:
                thread.join(max(0.0, deadline - time.monotonic()))
        # Those still in: their access lines now (they vanished from the access log), and
        # none more from a thread that wakes before the exit (its line is written).
        responder = self.handler.responder
        say_cut(tuple((responder.threads or {}).values()), self._log_line, self._log_lock)
        responder.access_log = None

    def _busy(self) -> list[tuple[float, int, int | None]]:
        """(request start, thread index, thread ident) of the busy request threads, oldest
        first."""
        return sorted(
            (loop.core.started, loop.index, loop.ident) for loop in self.loops if loop.core.started
        )

    # -- harakiri -----------------------------------------------------------------------------

    def dump_stuck(self, signum: int, frame: FrameType | None) -> None:
        """USR2 (harakiri): log the stack of the thread whose request is the oldest, with its
        request line, then the stacks of the other busy threads; cut that request (it gets
        :class:`RequestCut` when it next runs Python code: one in a C call is left to the
        master's kill); stop accepting, so that the other threads' requests can finish before
        the master's kill. One sent by hand (the master marks its own) only logs them."""
        harakiri = self._usr2_is_harakiri()
        self.alive = self.alive and not harakiri
        what, level = ("harakiri", logging.ERROR) if harakiri else (ASKED, logging.WARNING)
        frames = sys._current_frames()
        now = time.time()
        # The one past its harakiri first (an older one may have set its own, or none).
        busy = sorted(self._busy(), key=lambda b: not self._past_harakiri(b[0], b[1], now))
        if not busy:
            log.log(level, "%s: %s: no request thread is busy", what, worker_label())
            return
        # Threads waiting on one thing (a database gone) have one stack: it is written once,
        # and the others name the thread whose stack it is (8 threads wrote ~490 lines).
        written: dict[str, int] = {}
        for rank, (started, index, ident) in enumerate(busy):
            stuck = frames.get(ident) if ident is not None else None
            stack = app_stack(stuck)
            same = written.setdefault(stack, index + 1)
            log.log(
                level,
                "%s: %s thread %d %s %s for %.1fs; its stack%s",
                what,
                worker_label(),
                index + 1,
                ("stuck in" if rank == 0 else "(also busy) in") if harakiri else "in",
                request_line(stuck),
                now - started,
                f":\n{stack}" if same == index + 1 else f" is thread {same}'s, above",
            )
        since, index, cut = busy[0]  # unless it ended since the master looked
        if harakiri and cut is not None and self._past_harakiri(since, index, now):
            _raise_in(cut)

    def _past_harakiri(self, since: float, index: int, now: float) -> bool:
        """The request request thread ``index`` began at ``since`` is past its harakiri (its
        own, or ``--harakiri``)."""
        return now - since >= harakiri_limit(self.loops[index].core.limit, self.harakiri)
