"""A worker process's signal handlers (:class:`StopSignals`)."""

from __future__ import annotations

import contextlib
import faulthandler
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Iterable
from threading import Lock
from types import FrameType
from typing import TYPE_CHECKING, Any, Final

from uwsgiapp.server.exchange import Exchange
from uwsgiapp.server.inflight import (
    dump_stuck_request,
    held_lines,
    request_environ,
    request_line,
    worker_label,
    worker_number,
)
from uwsgiapp.server.lastout import HANDSHAKES_WAIT, being_taken, listening
from uwsgiapp.server.listeners import Listener, borrowed_socket
from uwsgiapp.server.logs import arm_fault_dumps, reopen_logs, tell_write_failures
from uwsgiapp.server.logtext import escape_log_text
from uwsgiapp.server.masterflags import MasterFlags
from uwsgiapp.server.transfer import unwinding
from uwsgiapp.unpatched import sleep, start_new_thread
from uwsgiapp.wsgi.contract import AccessLogger
from uwsgiapp.wsgi.errors import QuickStop, RequestCut

if TYPE_CHECKING:
    from uwsgiapp.server.intake import Handler
    from uwsgiapp.server.throttle import Throttle

#: How long a quick stop waits for the access log's lock to write the lines of the requests it
#: cuts (a request thread holding it is stuck writing: a stalled pipe).
SAY_CUT_WAIT = 0.5
#: After the drain's end, the moment a process still holding the sockets shuts them down: the
#: drain loops of the workers that are free end at that end themselves.
REFUSE_MARGIN = 0.25

_quick_began: float | None = None


def quick_stop_began() -> float | None:
    """When this worker's quick stop began (monotonic seconds; None: no quick stop): its cut
    requests' unwinding and its exit work share the grace before the master's SIGKILL."""
    return _quick_began


#: Whether this process said its master is gone (its threads' loops each notice it).
_ORPHAN_SAID: list[bool] = []


def say_cut(
    requests: Iterable[tuple[dict[str, Any], Exchange, float, bytes]],
    access_log: AccessLogger | None,
    lock: Lock,
) -> None:
    """The access lines of ``requests`` (each environ, exchange, start, var block) a quick
    stop cuts where they cannot unwind (their threads stuck in a C call: a sleep, a socket
    read), written by the thread that stops the worker, as an unwound cut's: a response
    begun ends in a reset (nginx passes it on as cut), one not begun is nginx's 502. Not while
    another thread holds the log (its write stalled): the stop does not wait on it."""
    if access_log is None or not lock.acquire(timeout=SAY_CUT_WAIT):
        return
    try:
        for environ, exchange, started, block in requests:
            unwinding(exchange, environ, RequestCut(0))
            access_log(environ, exchange, time.perf_counter() - started, block)
    finally:
        lock.release()


class StopSignals:
    """A worker process's signal handlers (after fork: the master's must not run here). They
    only set flags, which the loop reads between requests; shared by :class:`Worker` and the
    threaded worker's main thread."""

    alive: bool
    drain_backlog: bool
    handler: Handler
    master_pid: int
    listeners: list[Listener]
    drain_seconds: float
    master_flags: MasterFlags | None
    _wake_r: int
    _wake_w: int
    _quick_stopping = False
    _refusal_armed = False
    _orphaned = False
    #: Run each tick: the loop's beat in its status slot (the master kills a worker whose loop
    #: stopped while it is in no request, past --harakiri); set where the worker is made.
    on_tick: Callable[[], None] | None = None
    #: Asked by the USR2 handler: whether the master marked this USR2 as a harakiri's (in the
    #: worker's status slot), faulthandler's copy of the stacks dropped meanwhile
    #: (:func:`~uwsgiapp.supervisor.dumps.judged_usr2`); None: every USR2 is one. Set where
    #: the worker is made.
    judge_usr2: Callable[[], bool] | None = None

    def _tick(self, *more: Throttle[str]) -> None:
        """The loop's once-a-tick work (:data:`~uwsgiapp.server.worker.IDLE_TICK`; getppid is a
        syscall, and a busy worker wakes often): the lines a window held back, the beat, and
        whether the master is still there."""
        for burst in (self.handler.invalid, self.handler.gone, *held_lines()):
            if burst.due():
                burst.flush()
        for throttle in more:
            if throttle.due():
                throttle.flush()
        tell_write_failures()
        if self.on_tick is not None:
            self.on_tick()
        if not self._orphaned and self._master_gone():
            # A stop as a TERM's (the master's death sends one, PR_SET_PDEATHSIG): what queued
            # is served before the exit. This said "exiting" and dropped the drain the TERM had
            # asked for: a busy worker kept the socket to the end of its request, and what
            # queued meanwhile was then reset (a 502).
            self.drain_backlog = self.drain_backlog or self.alive
            self.alive = False

    def _master_gone(self) -> bool:
        """Whether the master is gone (said once a process: each thread's loop ticks)."""
        if not self._orphaned and os.getppid() != self.master_pid:
            self._orphaned = True
            if not _ORPHAN_SAID:
                _ORPHAN_SAID.append(True)
                logging.getLogger("uwsgiapp.error").error(
                    "%s: master %d is gone: serving what waits in the listen queue, then exiting",
                    worker_label(),
                    self.master_pid,
                )
        return self._orphaned

    def _on_graceful(self, signum: int, frame: FrameType | None) -> None:
        # TERM: finish the current request and what already waits in the backlog, then exit.
        # The master's death sends it (PR_SET_PDEATHSIG): an idle worker left without a word.
        self._master_gone()
        self.alive = False
        self.drain_backlog = True
        if not self._refusal_armed and self.master_flags is not None:
            self._refusal_armed = True
            # A bare thread: threading's would take its module lock, which the code this
            # handler interrupted may hold (a deadlock until SIGKILL). None at the process or
            # thread limit (RLIMIT_NPROC, a pids cgroup): raised here, the error ended the
            # request in hand with a 500, or the worker with a traceback; the stop goes on
            # without the late refusal.
            with contextlib.suppress(RuntimeError):
                start_new_thread(self._refuse_late, (self.drain_seconds + REFUSE_MARGIN,))

    def _refuse_late(self, after: float) -> None:
        """``after`` seconds from TERM, the drain is over; if this process still holds the
        listening sockets, a request outlasts it (every worker busy). If the whole server stops,
        shut them down for every process, so that a new connection is refused (nginx tries
        another server, a POST too) rather than queued in a backlog nobody accepts from and
        reset at the exit. Not a socket passed in (systemd's ``fd://``: its copy would die
        too), nor a unix one (its file is gone at TERM: a connect finds none)."""
        sleep(after)
        if self.master_flags is None or not self.master_flags.stopping:
            return  # a TERM sent to this worker alone: the others serve on from these sockets
        held = [
            listener
            for listener in self.listeners
            if listener.is_tcp
            and not listener.spec.startswith("fd://")
            and listening(listener.sock)  # not shut down by a worker's drain, nor closed
        ]
        if any(being_taken(listener.sock) for listener in held):
            # A worker's drain shuts it down once the handshakes under way are in (shut down
            # now, they were reset); unless that worker was killed meanwhile.
            sleep(HANDSHAKES_WAIT + REFUSE_MARGIN)
            held = [listener for listener in held if listening(listener.sock)]
        for listener in held:
            with contextlib.suppress(OSError):  # closed meanwhile by the loop
                listener.sock.shutdown(socket.SHUT_RDWR)
        if held:
            logging.getLogger("uwsgiapp.error").warning(
                "%s: still in a request when the drain ended (%g s after TERM): the sockets "
                "refuse new connections now (nginx tries another server; what queued meanwhile "
                "is reset)",
                worker_label(),
                self.drain_seconds + REFUSE_MARGIN,
            )

    def dump_stuck(self, signum: int, frame: FrameType | None) -> None:
        """USR2 (harakiri): log the stuck request's stack; take no new request, for the
        master kills this process after its grace: one let in once the stuck one ended would
        be killed with it (a 502 for a request within its time, the log naming another); and
        cut the request (:class:`RequestCut` where the handler interrupted it, as gunicorn's
        timeout raises SystemExit), so that the app's finally blocks run and its access line
        is written before the kill (one in a C call that keeps the signal's handler from
        running is left to the kill). One sent by hand (the master marks its own) only logs
        what the worker is doing."""
        harakiri = self._usr2_is_harakiri()
        dump_stuck_request(frame, harakiri)
        self.alive = self.alive and not harakiri
        # In the app (its call, its response, a spooled body's read), as the worker says (no
        # frame: a frame's environ is there in the server's work after it too, its drain of
        # a body left unread, its access line, which a cut there would lose).
        if harakiri and request_environ(None) is not None:
            raise RequestCut(0)

    def _usr2_is_harakiri(self) -> bool:
        """The USR2 that came is the master's harakiri, not one sent by hand."""
        return self.judge_usr2 is None or self.judge_usr2()

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        # The master reloads by starting new workers first; we just finish and leave.
        self.alive = False

    def _on_quick(self, signum: int, frame: FrameType | None) -> None:
        # Once: a terminal's Ctrl-C reaches the worker and the master, which passes it on; a
        # second INT must not cut the finally blocks the first one lets run (SIGKILL stays).
        global _quick_began
        if self._quick_stopping:
            return
        self._quick_stopping = True
        _quick_began = time.monotonic()
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
        say_taken_signals()
        signal.signal(signal.SIGTERM, self._on_graceful)
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGINT, self._on_quick)
        signal.signal(signal.SIGQUIT, self._on_quick)
        signal.signal(signal.SIGUSR1, lambda s, f: reopen_logs())
        # SIGCHLD is left as the app's import set it (a SIG_IGN against zombies): the worker
        # reaps none; the master's handler is gone already (its fork's first step).
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)
        os.register_at_fork(after_in_child=self._forked_by_the_app)

    def _forked_by_the_app(self) -> None:
        """In a process the app forks from this worker (multiprocessing, os.fork): the
        worker's handlers are not its own (``Process.terminate()`` did nothing: TERM set a flag
        no loop reads), and nor are the listening sockets (an orphan kept the port, and the
        next start could not bind it), nor its title (``ps`` named an orphan a worker)."""
        with contextlib.suppress(Exception):
            from setproctitle import getproctitle, setproctitle

            setproctitle(getproctitle().replace("uwsgiapp worker", "uwsgiapp child of worker", 1))
        signal.set_wakeup_fd(-1)
        for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1):
            signal.signal(signum, signal.SIG_DFL)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        with contextlib.suppress(RuntimeError):
            faulthandler.unregister(signal.SIGUSR2)  # the harakiri dump
        signal.signal(signal.SIGUSR2, signal.SIG_DFL)
        arm_fault_dumps(())  # a crash's dump to the log, not to the worker's file
        self.handler.responder.forked = True  # back from the app, it exits: forkedchild.py
        names = set()
        for listener in self.listeners:
            with contextlib.suppress(OSError):
                names.add(listener.sock.getsockname())
            listener.close(unlink=False)
        close_connections(names)


#: The signals a worker handles itself (USR1 is its own from the fork on).
_WORKERS_OWN: Final = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR2)
#: What such a signal's disposition is when nobody set a handler.
_NOBODYS: Final = (signal.SIG_DFL, signal.SIG_IGN, signal.default_int_handler, None)


def say_taken_signals() -> None:
    """Before a worker sets its handlers: those the app's own import (with ``--lazy-apps``,
    in the worker) set for the same signals are replaced, said by worker 1 as it starts (it
    was unsaid: an app's SIGTERM clean-up, or its USR2 profiler toggle, just never ran)."""
    if worker_number() != 1:
        return
    taken = [signum.name for signum in _WORKERS_OWN if signal.getsignal(signum) not in _NOBODYS]
    if taken:
        logging.getLogger("uwsgiapp.error").warning(
            "%s: the app's import set its own handler for %s: the worker's take their place "
            "(at a stop, the app's atexit functions run, not its handler)",
            worker_label(),
            ", ".join(taken),
        )


def close_connections(names: set[object]) -> None:
    """In a process the app forked from a worker (multiprocessing, ``os.fork``): close its
    copies of the worker's client connections (accepted on a socket named one of ``names``;
    on a wildcard one, ``0.0.0.0`` or ``[::]``, by its port). A copy kept the connection
    open as long as this process lived: a response without a Content-Length ends when the
    connection closes, and nginx waited for it (an 8 s job forked by a request made its
    answer 8 s late)."""
    ports = {n[1] for n in names if isinstance(n, tuple) and n[0] in ("0.0.0.0", "::")}
    try:
        fds = [int(name) for name in os.listdir("/proc/self/fd")]
    except OSError:
        return
    for fd in fds:
        mine = False
        with contextlib.suppress(OSError), borrowed_socket(fd) as sock:
            if not sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN):
                name = sock.getsockname()
                mine = name in names or (isinstance(name, tuple) and name[1] in ports)
        if mine:
            with contextlib.suppress(OSError):
                os.close(fd)
