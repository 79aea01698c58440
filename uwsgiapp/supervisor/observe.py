"""The master's side of the stats: what only it knows (spawns, harakiri kills, listen queues,
/proc) and :func:`snapshot`, a pure function from those and the status table to a
:class:`~uwsgiapp.stats.model.ServerStats`.

Worker ids in the stats are the worker numbers 1..N, as in the master's log lines and uWSGI's
stats: a replacement (after a crash, a harakiri, max-requests, a reload) takes the number of the
worker it replaces, though it may run in another status slot (the old process may still be
exiting). A number's counters are the sums of its slots' (a slot counts for one number for
good), so they carry on across its processes and only grow, as uWSGI's per-id counters do;
``delta_requests`` counts from the current process's spawn. ``avg_rt`` is the mean time of
the requests served since the previous stats read (:meth:`Observer.recent`), what uwsgitop's
AVG column, read each second, wants: uWSGI's ``(avg_rt + rt) // 2`` running blend would
cost the worker a read and a write per request, and weighs the last two or three requests only;
the mean over the number's life would hide today's slowness behind last week's requests.
"""

from __future__ import annotations

import itertools
import os
import socket
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace

from uwsgiapp import __version__
from uwsgiapp.stats.model import (
    DURATION_BOUNDS,
    AppStats,
    CoreStats,
    Histogram,
    ServerStats,
    SocketStats,
    StatusCounts,
    WorkerStats,
)
from uwsgiapp.supervisor.actions import WorkerRecord, WorkerState
from uwsgiapp.supervisor.status import (
    ABSENT,
    BUCKETS,
    CLASSES,
    STATE_READY,
    SlotCounters,
    WorkerStatus,
)

#: The slot and counters of a worker number that never ran.
_NEVER = WorkerStatus(0, 0, 0.0, 0)
_NO_COUNTS = SlotCounters(0, 0, 0.0, ((0,) * BUCKETS,) * CLASSES)
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
    #: ``--threads``: each core's requests served by the slot's previous processes (a core
    #: counts from 0 in each process; the stats carry its count on, as uWSGI's).
    core_requests: tuple[int, ...] = ()


@dataclass
class Observer:
    """The master's own stats state: slot histories and listen-queue errors."""

    history: dict[int, SlotHistory] = field(default_factory=dict)
    listen_queue_errors: int = 0
    #: Worker number → (requests, running_time, avg_rt) at the previous stats read.
    last_read: dict[int, tuple[int, int, int]] = field(default_factory=dict)

    def spawned(self, wid: int, wall: float, requests: int, cores: Sequence[int] = ()) -> None:
        """A process is being started in slot ``wid`` whose counter says ``requests``;
        ``cores``: the requests of each of the slot's cores (``--threads``) before its reset."""
        h = self.history.setdefault(wid, SlotHistory())
        h.respawn_count += 1
        h.last_spawn = int(wall)
        h.base_requests = requests
        h.core_requests = add_counts(h.core_requests, cores)

    def recent(self, stats: ServerStats) -> ServerStats:
        """``stats`` with each worker's ``avg_rt`` the mean of the requests it served since
        the previous read: the previous value while it served none, the lifetime mean at the
        first read."""
        workers = []
        for w in stats.workers:
            avg = w.avg_rt
            before = self.last_read.get(w.id)
            if before is not None:
                served = w.requests - before[0]
                avg = max(0, w.running_time - before[1]) // served if served > 0 else before[2]
            self.last_read[w.id] = (w.requests, w.running_time, avg)
            workers.append(replace(w, avg_rt=avg))
        return replace(stats, workers=tuple(workers))

    def check_queues(self, queues: Iterable[SocketStats]) -> None:
        """One look at the listen queues: a queue at its backlog is a listen-queue error."""
        self.listen_queue_errors += sum(1 for q in queues if q.full)


def cwd() -> str:
    """The master's working directory, or "" (removed under it)."""
    try:
        return os.getcwd()
    except OSError:
        return ""


def add_counts(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """``a`` and ``b`` added index by index (the shorter one read as zeros)."""
    return tuple(x + y for x, y in itertools.zip_longest(a, b, fillvalue=0))


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


def longest_queue(
    socks: Iterable[socket.socket], queue: Callable[[socket.socket], int | None]
) -> int | None:
    """The longest accept queue of ``socks`` for the cheaper algorithms; None when one of them
    cannot be read (the connections waiting there are unknown: not an empty queue)."""
    queues = [queue(sock) for sock in socks]
    known = [q for q in queues if q is not None]
    return max(known, default=0) if len(known) == len(queues) else None


def accepts(rec: WorkerRecord, st: WorkerStatus) -> bool:
    """Whether worker ``rec`` accepts now, as its slot says (``st``): the master's own view
    lags by up to a tick (a worker forked a moment ago is ready before the master has looked,
    and one that reached --max-requests stops accepting before the master sees it), and a
    health check read in that lag said that no worker accepted while two recycled."""
    alive = rec.state is WorkerState.READY or rec.state is WorkerState.BOOTING
    return alive and st.pid == rec.pid and st.state == STATE_READY


def _rank(rec: WorkerRecord) -> tuple[bool, int, float]:
    return (rec.state is WorkerState.READY, rec.generation, rec.started)


def _row(
    number: int, wids: list[int], rec: WorkerRecord | None, inputs: Inputs, leaving: list[int]
) -> WorkerStats:
    """The row of worker ``number``: its slots' counters summed, its live process's state,
    with the requests the number's ``leaving`` processes (their slots) are still in."""
    wid = rec.wid if rec is not None else wids[-1]
    cores = _cores(wid, wids, inputs) if rec is not None else None
    if cores is not None and inputs.cores is not None:
        for other in leaving:  # its busy threads, where the new process's are idle
            theirs = inputs.cores(other)
            cores = [
                (theirs[i][0], n)
                if start == 0.0 and i < len(theirs) and theirs[i][0] > 0.0
                else (start, n)
                for i, (start, n) in enumerate(cores)
            ]
    history = inputs.observer.history
    own = history.get(wid, SlotHistory())
    return _worker(
        number,
        rec,
        inputs.status(wid),
        _sum_counters([inputs.counters(w) for w in wids]),
        SlotHistory(
            respawn_count=sum(history[w].respawn_count for w in wids if w in history),
            last_spawn=own.last_spawn,
            base_requests=own.base_requests
            + sum(inputs.counters(w).requests for w in wids if w != wid),
        ),
        sum(inputs.harakiris.get(w, 0) for w in wids),
        inputs.memory(rec.pid) if rec is not None else (0, 0),
        cores,
        min((inputs.status(w).request_start for w in leaving), default=0.0),
    )


def _cores(wid: int, wids: list[int], inputs: Inputs) -> list[tuple[float, int]] | None:
    """``--threads``: slot ``wid``'s cores (its process's request starts), each with the
    requests of that core in all the number's slots and their previous processes."""
    if inputs.cores is None:
        return None
    counts: tuple[int, ...] = ()
    for w in wids:
        past = inputs.observer.history.get(w, SlotHistory()).core_requests
        counts = add_counts(counts, add_counts(past, [n for _, n in inputs.cores(w)]))
    return [(start, counts[i]) for i, (start, _) in enumerate(inputs.cores(wid))]


def _sum_counters(counters: list[SlotCounters]) -> SlotCounters:
    if len(counters) == 1:
        return counters[0]
    return SlotCounters(
        tx=sum(c.tx for c in counters),
        exceptions=sum(c.exceptions for c in counters),
        running=sum(c.running for c in counters),
        matrix=tuple(
            tuple(map(sum, zip(*rows, strict=True)))
            for rows in zip(*(c.matrix for c in counters), strict=True)
        ),
    )


def _worker(
    number: int,
    rec: WorkerRecord | None,
    st: WorkerStatus,
    c: SlotCounters,
    history: SlotHistory,
    harakiris: int,
    mem: tuple[int, int],
    threads: list[tuple[float, int]] | None = None,
    leaving_start: float = 0.0,
) -> WorkerStats:
    """One row: a live process (``rec``), or a number with no process now (``cheap``).

    ``threads``: its request threads' cores (``--threads``); else the worker is its one core.
    ``leaving_start``: when the request began that a leaving process of the number is in.
    """
    busy = rec is not None and bool(st.request_start) and st.pid == rec.pid
    leaving_busy = leaving_start > 0.0
    requests = c.requests
    if threads is None:
        cores: tuple[CoreStats, ...] = (
            CoreStats(
                id=0,
                requests=requests,
                in_request=busy or leaving_busy,
                request_start=int(st.request_start if busy else leaving_start),
            ),
        )
    else:
        cores = tuple(
            CoreStats(id=i, requests=n, in_request=bool(start), request_start=int(start))
            for i, (start, n) in enumerate(threads)
            if start != ABSENT  # a thread that could not start (a thread limit)
        )
    classes = c.classes
    return WorkerStats(
        id=number,
        pid=0 if rec is None else rec.pid,
        accepting=rec is not None and accepts(rec, st),
        requests=requests,
        delta_requests=0 if rec is None else max(0, requests - history.base_requests),
        exceptions=c.exceptions,
        harakiri_count=harakiris,
        status="cheap" if rec is None else "busy" if busy or leaving_busy else "idle",
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
        # The one app, as uWSGI lists it (exporters read the app series from here).
        apps=() if rec is None else (AppStats(requests=requests, exceptions=c.exceptions),),
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
    #: ``--threads``: the cores of a row whose number never ran.
    threads: int = 1
    #: Slot → worker number (the roster's); a slot not in it counts for number slot + 1.
    numbers: Mapping[int, int] = field(default_factory=dict)
    uid: int = 0
    gid: int = 0
    cwd: str = ""
    #: Worker numbers listed even if none of their processes ever ran (``--cheaper``: up to
    #: ``--workers``, each ``cheap`` until started, as uWSGI lists them).
    listed: int = 0


def snapshot(inputs: Inputs) -> ServerStats:
    """The server's numbers now: a row per worker number that ever had a process, by number.

    A number's row shows its live process (the one serving, if a leaving one still exits), with
    the counters of all the number's slots summed. A number with no process now (a worker
    died, its replacement not forked yet; or fewer workers since TTOU) shows as ``cheap`` with
    pid 0, as uWSGI shows a worker that is not running: its counts stay in the sums.
    """
    slots: dict[int, list[int]] = {}
    for wid in sorted(set(inputs.observer.history) | {r.wid for r in inputs.records}):
        slots.setdefault(inputs.numbers.get(wid, wid + 1), []).append(wid)
    live: dict[int, WorkerRecord] = {}
    records = list(inputs.records)
    for rec in records:  # the one that serves, or the newest of a number
        number = inputs.numbers.get(rec.wid, rec.wid + 1)
        if number not in live or _rank(rec) > _rank(live[number]):
            live[number] = rec
    # A number's leaving process (a reload's old worker, a harakiri's in its grace) still in a
    # request: the row says busy, or its requests in flight were nowhere in the stats.
    serving_on: dict[int, list[int]] = {}
    for r in records:
        number = inputs.numbers.get(r.wid, r.wid + 1)
        st = inputs.status(r.wid)
        if r is not live.get(number) and st.pid == r.pid and st.in_requests:
            serving_on.setdefault(number, []).append(r.wid)
    never_cores = [(0.0, 0)] * inputs.threads if inputs.threads > 1 else None
    workers = tuple(
        _row(number, slots[number], live.get(number), inputs, serving_on.get(number, []))
        if number in slots
        else _worker(number, None, _NEVER, _NO_COUNTS, SlotHistory(), 0, (0, 0), never_cores)
        for number in sorted(slots.keys() | set(range(1, inputs.listed + 1)))
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
