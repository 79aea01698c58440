"""The worker loop: accept on the shared listening sockets, hand each fd to the Handler.

Listening sockets are non-blocking and shared by every worker. An idle worker sleeps in
``epoll`` (``EPOLLEXCLUSIVE``, so a new connection wakes one idle worker, not all) together with
the signal wake-up pipe. Woken, it accepts one connection, serves it, and asks epoll again
without sleeping; only while connections keep waiting does it accept them in a row, until the
queue is empty (:func:`~uwsgiapp.server.decisions.accept_burst`: an accept that finds nothing
costs far more than the check). Signal handlers set flags; the loop acts on them between requests.

A connection whose request (head, or a body of up to ``PREREAD`` bytes) has not fully arrived
does not hold the worker: it is parked in the same epoll and served once the rest is there, or
closed after ``--socket-timeout`` of silence. Slow or stuck clients cost a file descriptor each,
not a worker. At most ``MAX_PARKED`` are parked: past that, a new connection whose request has
not fully arrived is closed at once (a 503 once its head is in), never waited for in place, so
the parked ones are still served and expired on time however many come.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import resource
import select
import time
from collections.abc import Callable
from typing import Protocol

from uwsgiapp import unpatched
from uwsgiapp.server import decisions
from uwsgiapp.server.burst import PARKED_BATCH, accept_run
from uwsgiapp.server.decisions import DRAIN_SECONDS, accept_burst, longest_silent, silent
from uwsgiapp.server.inflight import held_lines, worker_label
from uwsgiapp.server.intake import FIRST_BYTES_WAIT, Handler, Pending
from uwsgiapp.server.lastout import last_out, listening
from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.masterflags import MasterFlags, leaves_at_max_requests
from uwsgiapp.server.stopsignals import StopSignals
from uwsgiapp.server.throttle import Throttle, accept_retries, refused_peers

log = logging.getLogger("uwsgiapp.error")

#: How often an idle worker wakes to check that its master is alive (seconds).
IDLE_TICK = 1.0
#: Parked connections per worker (per request thread: fewer where the open-files limit would
#: run out first, see decisions.parking_cap); past this, a new slow client is closed at once.
MAX_PARKED = 512
#: Seconds between two log lines about connections closed because parking was full.
SHED_LOG_INTERVAL = 1.0


class RequestHooks(Protocol):
    """What the worker reports around each request (the supervisor's shared status slot)."""

    def begin(self) -> None:
        """A connection was accepted and is about to be served."""

    def end(self, requests: int) -> None:
        """The connection is closed; ``requests`` served so far."""


class Worker(StopSignals):
    """Serve connections from ``listeners`` until told to stop."""

    #: Woken by epoll, accept one connection and look again before accepting more
    #: (:func:`~uwsgiapp.server.decisions.accept_burst`); False: accept until the queue is empty.
    one_first = True
    #: Request threads serving (``--request-titles`` counts the busy ones against it).
    serving = 1

    def __init__(
        self,
        handler: Handler,
        listeners: list[Listener],
        *,
        max_requests: int = 0,
        hooks: RequestHooks | None = None,
        master_pid: int = 0,
        should_recycle: Callable[[], bool] | None = None,
        drain_seconds: float = DRAIN_SECONDS,
        on_leaving: Callable[[], None] | None = None,
        master_flags: MasterFlags | None = None,
        loops: int = 1,
    ) -> None:
        self.handler = handler
        self.master_flags = master_flags
        #: Parked connections at most (``loops``: the worker's accept loops, one per thread).
        fd_limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        self.max_parked = decisions.parking_cap(MAX_PARKED, fd_limit, loops)
        #: Called as it stops accepting: its replacement starts then, not after the parked
        self.on_leaving = on_leaving  # requests it still finishes (up to --socket-timeout)
        handler.on_out_of_fds = self._out_of_fds
        self.listeners = listeners
        self.max_requests = max_requests
        self.hooks = hooks
        self.master_pid = master_pid
        self.should_recycle = should_recycle
        self.drain_seconds = drain_seconds
        self.alive = True
        self.drain_backlog = False
        self.requests = 0
        self._wake_r = -1
        self._wake_w = -1
        self._epoll: select.epoll | None = None
        self._by_fd: dict[int, Listener] = {}
        self._listening = False
        self.parked: dict[int, Pending] = {}
        #: No parked deadline is earlier than this (a lower bound: deadlines only move later).
        self._next_expiry = math.inf
        #: Connections closed because parking was full, not logged yet; when the next line may go.
        self._shed: Throttle[int] = Throttle(SHED_LOG_INTERVAL, _log_shed)
        self._refused = refused_peers()
        self._retried = accept_retries()
        self._next_parent_check = 0.0

    # -- loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Accept and serve until stopped; then (on TERM) serve what waits in the backlog.

        Parked connections are in-flight requests: a stopping worker finishes them (or lets them
        time out) before it exits.
        """
        if self._wake_r < 0:
            self.install_signals()
        epoll = unpatched.epoll()
        self._epoll = epoll
        for listener in self.listeners:
            listener.sock.setblocking(False)
            epoll.register(listener.sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
        epoll.register(self._wake_r, select.EPOLLIN)
        self._listening = True
        self._by_fd = {listener.sock.fileno(): listener for listener in self.listeners}
        # What the last epoll wait found ready, and whether to accept more than one from it.
        ready: list[Listener] = []
        burst = False
        try:
            while True:
                more = False
                if self.alive:
                    for listener in ready:
                        more = self._accept_batch(listener, burst=burst) or more
                elif self.drain_backlog:
                    self.drain_backlog = False
                    self._drain()
                else:
                    # Stopped with a connection's wake-up in hand: EPOLLEXCLUSIVE woke only
                    # us, and the connection would wait in the queue until the next one wakes
                    # another worker (a second at light load). Serve it, as our last.
                    for listener in ready:
                        self._accept_batch(listener, last=True)
                if not self.alive:
                    self._stop_listening()  # once: it knows whether it still listens
                if not (self.alive or self.drain_backlog or self.parked):
                    break
                # Stopped with more possibly queued: only look (signals, parked data, another
                # connection); else sleep until one of them comes.
                ready = self._wait(0.0 if more else IDLE_TICK)
                burst = not self.one_first or accept_burst(more, bool(ready))
        finally:  # what the throttles held back is said before the worker goes
            held = (
                self._shed,
                self._refused,
                self._retried,
                self.handler.invalid,
                self.handler.gone,
            )
            for throttle in held:
                throttle.flush()
            for lines in held_lines():
                lines.flush()
            for fd in self.parked:  # only on a quick stop: abandon them
                with contextlib.suppress(OSError):
                    os.close(fd)
            self.parked.clear()
            epoll.close()
            self._epoll = None

    def _accept_batch(
        self,
        listener: Listener,
        draining: bool = False,
        until: float = 0.0,
        *,
        burst: bool = True,
        last: bool = False,
    ) -> bool:
        """Serve connections from one listener until its queue is empty (or we must stop).

        With connections parked, stop after ``PARKED_BATCH`` so that they are looked at too.
        ``until``: when draining, the monotonic time to stop at even if connections keep coming.
        ``burst=False``: serve one connection, then stop (see
        :func:`~uwsgiapp.server.decisions.accept_burst`); ``last``: one connection though
        the worker is stopping. Returns True when it stopped with
        connections possibly still queued, False when accept() found none.
        """
        # The loop itself is compiled in a compiled build (uwsgiapp.server.burst).
        return accept_run(self, listener, draining, until, burst, last)

    def _drain(self) -> None:
        """TERM: serve what waits in the listen queues until each is empty, then close this
        process's copy of each (:meth:`_drained`; with ``--threads``, the last thread done).

        Until empty, not a count taken at TERM: nginx goes on connecting until the listener is
        closed in every process, and a connection still queued then is reset after nginx sent
        its request: a 502 that nginx does not retry for a POST. Once closed everywhere (the
        master closes its copies at TERM), a connect is refused and nginx tries another
        server. The window left is between the accept that finds the queue empty and the
        close. Under a load that never lets a queue empty, ``drain_seconds`` ends the drain.
        """
        until = time.monotonic() + self.drain_seconds
        self._stop_listening()  # before any close: epoll would keep a shared socket
        self._by_fd = {}
        for listener in self.listeners:
            if listener.sock.fileno() < 0:  # a second TERM (systemd signals every process too)
                continue
            self._accept_batch(listener, draining=True, until=until)
            self._drained(listener)

    def _drained(self, listener: Listener) -> None:
        """The TERM drain is done with ``listener`` (its queue found empty, or the drain's time
        over): in a server's stop, the first one here shuts a TCP socket down for every process
        (one still in a long request keeps it too), so that what connects from now on is
        refused, not queued and reset; it takes what queued since, then serves it
        (:func:`~uwsgiapp.server.lastout.last_out`). This process's copy is closed at once (the
        socket file is the master's)."""
        taken = last_out(listener, self.master_flags is not None and self.master_flags.stopping)
        self._let_go(listener)
        if taken is not None:
            accept_run(self, taken, True, math.inf, False, False)

    def _let_go(self, listener: Listener) -> None:
        """Close this process's copy of ``listener``, whose drain is done."""
        listener.close(unlink=False)

    def _stop_listening(self) -> None:
        """Take the listeners out of epoll: done accepting, parked requests may remain (a
        listener left in would end every wait at once while connections queue for others)."""
        if not self._listening or self._epoll is None:
            return
        self._listening = False
        for listener in self.listeners:
            with contextlib.suppress(OSError, ValueError):
                self._epoll.unregister(listener.sock.fileno())
        if self.on_leaving is not None:
            self.on_leaving()

    def _accept_failed(self, listener: Listener, exc: OSError) -> None:
        """``accept`` failed other than for an empty queue: log it; recycle when retrying
        cannot help this process."""
        flags = self.master_flags
        # Another worker's drain may shut the socket down before this one's TERM comes.
        stopping = flags is not None and flags.stopping
        if decisions.accept_error_is_the_stop(exc.errno, stopping and not listening(listener.sock)):
            self._stop_listening()  # a shut socket is readable for ever: no spin till the TERM
            return
        why = decisions.accept_error_recycles(exc.errno, self.served())  # a retry may spin
        said = f"{worker_label()}: accept() on {listener.spec} failed: {exc}"
        if why is None:
            self._retried.add(said + decisions.accept_retry_hint(exc.errno))
            time.sleep(0.1)
        else:
            log.error("%s; recycling this worker%s", said, why)
            self.alive = False  # the connection waits for the fresh worker

    def served(self) -> int:
        """The requests this worker process served (a request thread: all its threads')."""
        return self.requests

    def _step(self, call: Callable[..., Pending | None], *args: object) -> None:
        """Run one step of a connection (begin or resume) inside the status hooks."""
        hooks = self.hooks
        if hooks is not None:
            hooks.begin()
        pending = call(*args)
        if pending is None:
            self.requests += 1
        else:
            self._hold(pending)
        if hooks is not None:
            hooks.end(self.requests)
        if pending is None:
            self._after_request()

    def _hold(self, pending: Pending) -> None:
        """Park a connection still sending its request; past the cap, close one at once.

        A resumed connection always finds room: it was unparked just before. Only a new one can
        be refused; waiting for it here would hold the worker and every parked connection.
        A new one that has sent nothing yet (nginx connects, then writes: its bytes are a moment
        away) takes the place of the parked one that has been silent longest, so that a flood
        of idle or trickling connections cannot shut out the next real request; one that has
        sent part of a request is closed itself.
        """
        if len(self.parked) < self.max_parked:
            self._park(pending)
            return
        victim = longest_silent(self.parked) if silent(pending) else None
        if victim is not None:
            self._unpark(victim)
            self.handler.shed(victim)
            self._park(pending)
        else:
            self.handler.shed(pending)
        self._shed.add(self.max_parked)

    def _after_request(self) -> None:
        if self.max_requests and self.requests >= self.max_requests:
            if self.alive:
                self.alive = not leaves_at_max_requests(self.master_flags, self.requests)
        elif self.should_recycle is not None and self.should_recycle():
            self.alive = False

    def _out_of_fds(self) -> None:
        # The handler's callback (not a per-request check): the app failed with EMFILE.
        log.error(
            "%s: the app ran out of file descriptors (EMFILE); recycling after this request",
            worker_label(),
        )
        self.alive = False

    def _park(self, pending: Pending) -> None:
        assert self._epoll is not None
        self.parked[pending.fd] = pending
        self._epoll.register(pending.fd, select.EPOLLIN)
        if len(self.parked) == PARKED_BATCH:
            self.handler.first_bytes_wait = 0.0
        if pending.deadline < self._next_expiry:
            self._next_expiry = pending.deadline

    def _unpark(self, pending: Pending) -> None:
        assert self._epoll is not None
        del self.parked[pending.fd]
        with contextlib.suppress(OSError):
            self._epoll.unregister(pending.fd)
        if len(self.parked) == PARKED_BATCH - 1:
            self.handler.first_bytes_wait = FIRST_BYTES_WAIT

    def _wait(self, timeout: float) -> list[Listener]:
        """Sleep in epoll up to ``timeout``: signals, parked clients' data, a new connection.

        Serves the parked connections whose data came; returns the listeners with a connection
        waiting.
        """
        assert self._epoll is not None
        parked = self.parked
        ready: list[Listener] = []
        if parked and timeout:
            timeout = min(timeout, max(self._next_expiry - time.monotonic(), 0.0))
        for fd, _ in self._epoll.poll(timeout):
            if fd == self._wake_r:
                with contextlib.suppress(OSError):
                    unpatched.read(self._wake_r, 512)
                continue
            pending = parked.get(fd)
            if pending is not None:
                self._unpark(pending)
                self._step(self.handler.resume, pending)
                continue
            listener = self._by_fd.get(fd)
            if listener is not None:
                ready.append(listener)
        if parked and time.monotonic() >= self._next_expiry:
            self._expire_parked()
        if self._shed.count or self._refused.count:  # attributes: this runs every request
            for throttle in (self._shed, self._refused):
                if throttle.due():
                    throttle.flush()
        if self.master_pid and time.monotonic() >= self._next_parent_check:
            self._next_parent_check = time.monotonic() + IDLE_TICK
            self._tick(self._retried)  # accept's retries: rare, not per request
        return ready

    def _expire_parked(self) -> None:
        """Close the parked connections whose client has been silent for ``--socket-timeout``.

        Looks at them all only once the earliest deadline may have passed, not on every wait.
        """
        now = time.monotonic()
        soonest = math.inf
        for pending in list(self.parked.values()):
            deadline = pending.deadline
            if deadline <= now:
                self._unpark(pending)
                self.handler.expire(pending)
            elif deadline < soonest:
                soonest = deadline
        self._next_expiry = soonest


def _log_shed(count: int, cap: int) -> None:
    log.warning(
        "%s: parking is full (%d connections still sending their request): "
        "closed %s at once (silent the longest, or new with a partial request)%s",
        worker_label(),
        cap,
        f"{count} connection{'' if count == 1 else 's'}",
        decisions.cap_hint(cap, MAX_PARKED, resource.getrlimit(resource.RLIMIT_NOFILE)[0]),
    )
