"""What the master tells every worker at once, in shared memory: held recycles, a server stop.

**Held recycles.** With ``--lazy-apps`` every new worker imports the app, so a deploy whose code
does not import leaves the master retrying a replacement (with back-off) while the workers that
loaded the old code serve. Were those to go on leaving at their ``--max-requests``, the last one
to leave would take the service down (uWSGI and gunicorn stop at the first failure instead).
While a replacement cannot load, a worker that reaches its max-requests serves on (said once);
let go, it recycles after its next request. ``--reload-on-rss`` is not held: the memory it
bounds must not grow on a bad deploy.

**A server stop.** A TERM reaches a worker for a graceful stop of the whole server (a retired
worker gets HUP), but an operator may TERM one worker by hand: only the master's word says that
every worker stops, and that the shared listening sockets may be shut down for all.

**The last one out.** Every process that holds the listening sockets holds the write end of one
pipe too: the master until its TERM, each worker until its drain is done. A worker that lets go
and finds the pipe hung up is the last: on TCP, a connection queued between its last accept and
its close would be reset after nginx sent its request (:func:`last_out`).
"""

from __future__ import annotations

import logging
import mmap
import os
import select

from uwsgiapp.server.inflight import worker_label
from uwsgiapp.server.listeners import Listener, refuse_new_connections

log = logging.getLogger("uwsgiapp.error")

_HOLD = 0
_STOPPING = 1


class MasterFlags:
    """Flags the master writes and its workers read (made before they are forked)."""

    def __init__(self) -> None:
        self._flags = mmap.mmap(-1, 2)  # anonymous, shared: the workers see the master's writes
        self._said = False
        try:  # no pipe (out of descriptors): no process ever knows it is the last
            self._held_r, self._held_w = os.pipe2(os.O_CLOEXEC)
        except OSError:
            self._held_r = self._held_w = -1

    def publish(self, recycles_held: bool, stopping: bool) -> None:
        """Master: hold the workers' max-requests recycles or let them go; the server stops."""
        for index, value in ((_HOLD, recycles_held), (_STOPPING, stopping)):
            if self._flags[index] != value:
                self._flags[index] = int(value)

    @property
    def stopping(self) -> bool:
        """The whole server stops gracefully (the master had a TERM)."""
        return self._flags[_STOPPING] == 1

    def let_go(self) -> None:
        """This process holds the listening sockets no more (the master at TERM, a HUP's trial
        child, a worker done draining)."""
        fd, self._held_w = self._held_w, -1
        if fd >= 0:
            os.close(fd)

    def others_let_go(self) -> bool:
        """After :meth:`let_go`: whether every other process has let go of the sockets too."""
        if self._held_r < 0:
            return False
        poller = select.poll()
        poller.register(self._held_r, 0)  # a hang-up is always reported
        return any(event & select.POLLHUP for _, event in poller.poll(0))

    def holds(self, requests: int) -> bool:
        """Worker at its max-requests, ``requests`` served: whether to serve on."""
        if not self._flags[_HOLD]:
            self._said = False
            return False
        if not self._said:
            self._said = True
            log.warning(
                "%s: served %d requests (max-requests), but new workers cannot load the app: "
                "serving on until one can",
                worker_label(),
                requests,
            )
        return True


def leaves_at_max_requests(flags: MasterFlags | None, requests: int) -> bool:
    """A worker served its max-requests (``requests``): whether it leaves now (said), or
    serves on while the master ``flags`` hold recycles."""
    if flags is not None and flags.holds(requests):
        return False
    log.info("%s: served %d requests (max-requests), recycling", worker_label(), requests)
    return True


def last_out(flags: MasterFlags | None, listener: Listener) -> bool:
    """A worker's TERM drain is done with ``listener``: whether this process is the last of a
    stopping server to hold it, its socket now dropping new connections (then it serves what
    queued since its last accept, and closes it). What queued in between was reset after nginx
    sent its request (a 502 it does not retry for a POST); dropped, a connect is tried again a
    second later, is refused, and nginx tries another server. Not where the socket outlives the
    server (systemd's ``fd://``, a binary upgrade's pair), nor on unix sockets (the master
    removed their files: a connect finds none)."""
    if flags is None or not flags.stopping or not listener.is_tcp:
        return False
    if listener.shared or listener.spec.startswith("fd://"):
        return False
    flags.let_go()
    return flags.others_let_go() and refuse_new_connections(listener.sock)
