"""The stats server answers while the master's loop waits for a HUP's re-import of the app,
and while the master imports it at the first start (:func:`starting`: no worker yet, so a
health check gets its 503 at once, where it waited out its own timeout).

The import runs in the master's one thread, for as long as the app takes (a warm-up, a remote
config: 20 s is seen); the loop that serves the stats server waits for it, and a container's
health check, which asks the stats server, then failed: Docker marked a container unhealthy
(Swarm replaced it) during a reload that was going fine, with the old workers serving.

So, for the import's duration only, a thread serves the stats server. It is safe because:

- the main thread does not touch what the thread does: the stats server (its listener, clients
  and selector) is served by the loop only, which waits; the snapshot reads the policy's
  records, the status table and the observer, which only the loop changes;
- the thread is started before the import and joined before :func:`reimport` returns, so that
  no worker is forked while it runs (a fork copies only the thread that forks: a worker
  forked mid-answer would hold the selector's state), and it is not among the threads that
  the import started (which the reload names); it is started once the old code's patches are
  out of the standard library (sentry-sdk's ``Thread.start`` ran it in the old code's wrapper,
  which then held every old module);
- signals are handled in the main thread only: a stop during the import still calls it off
  (:mod:`~uwsgiapp.supervisor.mastersignals`), and the join waits at most one poll.

The same thread looks at the workers during a HUP's re-import (:class:`Watch`): it kills a
request stuck past ``--harakiri``, or a worker past its stop deadline (signals only: nothing is
forked while the import runs, and the loop, which waits, touches none of the records), and
takes a worker that exits out of the stats at once, left for the loop to reap (WNOWAIT).

The queue checks (listen_queue_errors) stay with the loop.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING

from uwsgiapp import __version__
from uwsgiapp.config import Config
from uwsgiapp.server.listeners import Listener, somaxconn_cap
from uwsgiapp.server.masterflags import MasterFlags
from uwsgiapp.stats.model import ServerStats
from uwsgiapp.stats.server import StatsServer
from uwsgiapp.supervisor import observe, takeover
from uwsgiapp.supervisor.actions import Action, WorkerRecord
from uwsgiapp.supervisor.roster import RETIRING, STOPPING
from uwsgiapp.supervisor.status import WorkerStatus
from uwsgiapp.unpatched import OsEvent, OsThread

if TYPE_CHECKING:
    from uwsgiapp.supervisor.kills import Kills

log = logging.getLogger("uwsgiapp.error")

#: Seconds the thread waits for a stats client at a time: how long the join may wait.
POLL = 0.05


class Watch:
    """What the master's loop cannot do while a HUP's re-import holds it: the harakiri and
    stop deadlines (:meth:`~uwsgiapp.supervisor.kills.Kills.while_importing`: signals only),
    and the workers that exit meanwhile, left out of the stats until the loop reaps and
    replaces them (a health check said "healthy: 2 workers accept" of two dead ones)."""

    def __init__(
        self,
        policy: Kills,
        status: Callable[[int], WorkerStatus],
        execute: Callable[[list[Action]], object],
        flags: MasterFlags | None = None,
    ) -> None:
        self._policy, self._status, self._execute = policy, status, execute
        self._flags = flags
        self.gone: set[int] = set()
        self._lost: list[int] = []

    def begin(self) -> None:
        """The import starts: the workers hold their max-requests recycles meanwhile, as
        nothing is forked to replace them (:mod:`~uwsgiapp.server.masterflags`)."""
        if self._flags is not None:
            self._flags.publish(self._policy.recycles_held, self._flags.stopping, importing=True)

    def tick(self) -> None:
        """One look (the thread's, each :data:`POLL`)."""
        self._execute(self._policy.while_importing(time.monotonic(), time.time(), self._status))
        for rec in list(self._policy.records.values()):
            seen = rec.pid in self.gone  # looked at again: the app's gevent may reap it still
            if self._look(rec.pid) and not seen:
                self.gone.add(rec.pid)
                # One told to leave (a reload's old worker, a stop's) or already replaced is
                # where it was headed: the loop's reap says its exit, and nothing replaces it.
                if rec.state is not STOPPING and rec.state is not RETIRING:
                    log.warning("%s exited while the master imports the app: replaced once "
                                "the import ends", rec.label)  # fmt: skip

    def _look(self, pid: int) -> bool:
        """Whether the child ``pid`` has exited, left for the loop to reap (WNOWAIT); one that
        another waiter reaped already (the app's gevent, its child watcher), which the loop's
        reap never sees, is kept for :meth:`take_lost`."""
        if pid in self._lost:
            return True
        try:
            return os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None
        except ChildProcessError:
            self._lost.append(pid)
            return True

    def end(self) -> None:
        """The import is over (the thread joined): a last look, then the loop reaps; the
        recycles held for the import are let go."""
        for pid in self.gone:
            self._look(pid)
        self.gone.clear()
        if self._flags is not None:
            self._flags.publish(self._policy.recycles_held, self._flags.stopping)

    def take_lost(self) -> list[tuple[int, int | None, int | None]]:
        """The exits another waiter took (their status unknown), for the loop's reap."""
        lost, self._lost = self._lost, []
        return [(pid, None, None) for pid in lost]

    def alive(self, records: Iterable[WorkerRecord]) -> list[WorkerRecord]:
        """``records`` but the workers seen to exit meanwhile."""
        return [rec for rec in records if rec.pid not in self.gone]


@contextlib.contextmanager
def stats_served(
    stats: StatsServer | None,
    snapshot: Callable[[], ServerStats] | None = None,
    watch: Watch | None = None,
) -> Iterator[None]:
    """While in it (the loop waiting for an import), a thread serves ``stats`` (with
    ``snapshot``'s numbers, where given: the first start's, before the arbiter's) and looks
    at the workers (``watch``: a HUP's re-import)."""
    if stats is None and watch is None:
        yield
        return
    if stats is not None and snapshot is not None:
        stats.snapshot = snapshot
    done = OsEvent()
    thread = OsThread("stats while the app is imported", _serve, stats, done, watch)
    try:
        yield
    finally:
        done.set()
        thread.join()
        if watch is not None:
            watch.end()  # reaped by the loop from now on


def starting(config: Config, listeners: Sequence[Listener]) -> Callable[[], ServerStats]:
    """The stats at the first start, before the master's loop: the sockets (their queues not
    read: that takes a netlink socket of the loop's), no worker yet."""
    backlog = somaxconn_cap(config.listen) or config.listen
    sockets = observe.socket_stats(((lis.spec, lis.sock) for lis in listeners), backlog, _none)
    stats = ServerStats(
        version=__version__,
        pid=os.getpid(),
        uid=os.getuid(),
        gid=os.getgid(),
        cwd=observe.cwd(),
        sockets=sockets,
    )
    return lambda: stats


def first_start(
    stats: StatsServer | None, config: Config, listeners: Sequence[Listener]
) -> contextlib.AbstractContextManager[None]:
    """While in it (the master's first import of the app), a thread serves ``stats`` with
    :func:`starting`'s numbers; not in a USR2's new master, whose stats socket is the old
    master's too: that one answers for its serving workers (the new one said 503 to a probe in
    most of its answers meanwhile)."""
    if takeover.parent():
        return contextlib.nullcontext()
    return stats_served(stats, starting(config, listeners))


def _none(sock: object) -> None:
    return None


def _serve(stats: StatsServer | None, done: OsEvent, watch: Watch | None) -> None:
    while not done.is_set():
        try:
            if stats is not None:
                stats.poll(POLL)
            else:
                done.wait(POLL)
            if watch is not None:
                watch.tick()
        except Exception:  # as the loop's: logged, never the end of the stats server
            log.exception("stats: serving a client failed")
            done.wait(POLL)


def stats_clients(stats: StatsServer | None) -> set[int]:
    """The descriptors of the stats connections open now: the master's own, which a HUP's
    re-import (the stats served meanwhile) must not take for connections the app left open."""
    return stats.client_fds() if stats is not None else set()
