"""The master's side of the stats: what only it knows (spawns, harakiri kills, listen queues,
/proc) and :func:`snapshot`, a pure function from those and the status table to a
:class:`~uwsgiapp.stats.model.ServerStats`.

Worker ids in the stats are the slot ids counted from 1, as in the master's log lines. Counters
are per slot: a worker respawned in the same slot carries on from its predecessor's counts
(``requests``), and ``delta_requests`` counts from its own spawn. ``avg_rt`` is
``running_time // requests`` (the mean over the slot's life), not uWSGI's
``(avg_rt + rt) // 2`` running blend, which would cost the worker a read and a write per
request and weighs the last few requests only.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from uwsgiapp import __version__
from uwsgiapp.stats.model import (
    DURATION_BOUNDS,
    CoreStats,
    Histogram,
    ServerStats,
    SocketStats,
    StatusCounts,
    WorkerStats,
)
from uwsgiapp.supervisor.actions import WorkerRecord, WorkerState
from uwsgiapp.supervisor.status import SlotCounters, WorkerStatus

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


@dataclass
class SlotHistory:
    """What the master remembers about one worker id across its processes."""

    #: Processes started in this slot (uWSGI counts the first spawn too).
    respawn_count: int = 0
    #: When the current process was spawned, epoch seconds.
    last_spawn: int = 0
    #: The slot's request counter when the current process was spawned.
    base_requests: int = 0


@dataclass
class Observer:
    """The master's own stats state: slot histories and listen-queue errors."""

    history: dict[int, SlotHistory] = field(default_factory=dict)
    listen_queue_errors: int = 0

    def spawned(self, wid: int, wall: float, requests: int) -> None:
        """A process is being started in slot ``wid`` whose counter says ``requests``."""
        h = self.history.setdefault(wid, SlotHistory())
        h.respawn_count += 1
        h.last_spawn = int(wall)
        h.base_requests = requests

    def check_queues(self, queues: Iterable[SocketStats]) -> None:
        """One look at the listen queues: a queue at its backlog is a listen-queue error."""
        self.listen_queue_errors += sum(1 for q in queues if q.max_queue and q.queue >= q.max_queue)


def memory(pid: int) -> tuple[int, int]:
    """(rss, vsz) of ``pid`` in bytes from /proc/PID/statm; (0, 0) if it is gone."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as f:
            fields = f.read().split()
        return int(fields[1]) * _PAGE, int(fields[0]) * _PAGE
    except (OSError, ValueError, IndexError):
        return 0, 0


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MB (0 if it is gone): ``--reload-on-rss``'s measure."""
    return memory(pid)[0] / (1024 * 1024)


def socket_stats(
    listeners: Iterable[tuple[str, socket.socket]],
    backlog: int,
    queue: Callable[[socket.socket], int | None],
) -> tuple[SocketStats, ...]:
    """Each listener's name and accept queue (0 when the kernel cannot tell)."""
    return tuple(
        SocketStats(name=name, queue=queue(sock) or 0, max_queue=backlog)
        for name, sock in listeners
    )


def _worker(
    wid: int,
    rec: WorkerRecord | None,
    st: WorkerStatus,
    c: SlotCounters,
    history: SlotHistory,
    harakiris: int,
    mem: tuple[int, int],
    threads: list[tuple[float, int]] | None = None,
) -> WorkerStats:
    """One row: a live process (``rec``), or a slot whose last process is gone (``cheap``).

    ``threads``: its request threads' cores (``--threads``); else the worker is its one core.
    """
    busy = rec is not None and bool(st.request_start) and st.pid == rec.pid
    requests = c.requests
    if threads is None:
        cores: tuple[CoreStats, ...] = (
            CoreStats(
                id=0,
                requests=requests,
                in_request=busy,
                request_start=int(st.request_start) if busy else 0,
            ),
        )
    else:
        cores = tuple(
            CoreStats(id=i, requests=n, in_request=bool(start), request_start=int(start))
            for i, (start, n) in enumerate(threads)
        )
    classes = c.classes
    return WorkerStats(
        id=wid + 1,
        pid=0 if rec is None else rec.pid,
        accepting=rec is not None and rec.state is WorkerState.READY,
        requests=requests,
        delta_requests=0 if rec is None else max(0, requests - history.base_requests),
        exceptions=c.exceptions,
        harakiri_count=harakiris,
        status="cheap" if rec is None else "busy" if busy else "idle",
        rss=mem[0],
        vsz=mem[1],
        running_time=c.running_time,
        last_spawn=history.last_spawn,
        respawn_count=history.respawn_count,
        tx=c.tx,
        avg_rt=c.running_time // requests if requests else 0,
        statuses=StatusCounts(c2xx=classes[2], c3xx=classes[3], c4xx=classes[4], c5xx=classes[5]),
        durations=Histogram(bounds=DURATION_BOUNDS, counts=c.histogram, sum=c.running),
        cores=cores,
    )


@dataclass(frozen=True, slots=True, kw_only=True)
class Inputs:
    """Everything :func:`snapshot` reads (the arbiter fills it; tests build it by hand)."""

    pid: int
    records: Iterable[WorkerRecord]
    status: Callable[[int], WorkerStatus]
    counters: Callable[[int], SlotCounters]
    observer: Observer
    harakiris: dict[int, int]
    sockets: tuple[SocketStats, ...]
    memory: Callable[[int], tuple[int, int]] = memory
    #: ``--threads``: each request thread's (request start or 0, requests) of a slot.
    cores: Callable[[int], list[tuple[float, int]]] | None = None
    uid: int = 0
    gid: int = 0
    cwd: str = ""


def snapshot(inputs: Inputs) -> ServerStats:
    """The server's numbers now: a row per worker id that ever had a process, by id.

    A slot whose process is gone and not replaced in that slot (a harakiri or a reload puts
    the replacement in another slot while the old process still exits) stays as a ``cheap``
    row with pid 0, as uWSGI shows a worker that is not running: its counts stay in the sums.
    Live processes of one slot (never two at once) come first.
    """
    live = {rec.wid: rec for rec in inputs.records}
    history = inputs.observer.history
    workers = tuple(
        _worker(
            wid,
            live.get(wid),
            inputs.status(wid),
            inputs.counters(wid),
            history.get(wid, SlotHistory()),
            inputs.harakiris.get(wid, 0),
            inputs.memory(live[wid].pid) if wid in live else (0, 0),
            inputs.cores(wid) if inputs.cores is not None and wid in live else None,
        )
        for wid in sorted(set(live) | set(history))
    )
    queue = max((s.queue for s in inputs.sockets), default=0)
    return ServerStats(
        version=__version__,
        pid=inputs.pid,
        uid=inputs.uid,
        gid=inputs.gid,
        cwd=inputs.cwd,
        listen_queue=queue,
        listen_queue_errors=inputs.observer.listen_queue_errors,
        load=queue,
        sockets=inputs.sockets,
        workers=workers,
    )
