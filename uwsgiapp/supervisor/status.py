"""Per-worker status in shared memory: what the master reads for readiness, harakiri, stats.

One fixed-size slot per worker id in an anonymous shared mmap created by the master before
forking. A worker writes only its own slot, no lock, no syscall: aligned 8-byte stores (never
seen torn) through memoryviews of the slot from its request hooks, :meth:`SlotWriter.begin`
(the request start, for harakiri) and :meth:`SlotWriter.end` (idle again, requests served).

Layout of a slot (:data:`SLOT_SIZE` bytes): pid, state, request start, requests since this
process started; then the counters, which only a worker of ``serve --stats`` writes
(:class:`CountingSlotWriter`): bytes sent and seconds serving (in the words ``end`` stores to
anyway), exceptions, and a matrix of requests by (status class, duration bucket), one cell per
request: the master adds rows and columns up. They count for the worker id across respawns.

With ``--threads N`` (N > 1) a slot also has N "cores" after its :data:`SLOT_SIZE` bytes
(uWSGI's ``cores``): each request thread writes its own request start and count there
(:class:`CoreWriter`; a thread that could not start, :data:`ABSENT`), and the master reads the
oldest start as the worker's (harakiri) and the sum as its requests. With ``--stats``, threads
count their responses at the Responder's access-log point under the worker's lock
(:class:`ThreadCounter`). With one thread there are no cores.
"""

from __future__ import annotations

import bisect
import mmap
import struct
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Final

from uwsgiapp.harakiri import harakiri_limit, own_limit
from uwsgiapp.stats.model import DURATION_BOUNDS

if TYPE_CHECKING:  # the policy imports this module without loading the server
    from uwsgiapp.server.exchange import Responder
    from uwsgiapp.server.intake import Handler

#: pid, state, request start (epoch seconds, 0 = idle), requests served. Native byte order
#: ("="), as the memoryviews the hooks store through (the table never leaves this machine).
SLOT: Final = struct.Struct("=iidQ")
#: Where the hooks store, in 8-byte words from the slot's start: the request start (a double),
#: the requests served, then (``--stats``) bytes sent, seconds serving (a double), the fast cell.
_START: Final = 1
_REQUESTS: Final = 2
_TX: Final = 3
_RUNNING: Final = 4
_FAST: Final = 5

STATE_FREE = 0
STATE_BOOTING = 1
STATE_READY = 2
#: The worker stopped accepting on its own (max-requests, out of descriptors) and is on its way
#: out (the app's exit work may take a few seconds): the master starts its replacement now.
STATE_LEAVING = 3
_STATE = struct.Struct("=i")  # the state word alone, after the pid

#: Matrix rows: no status line (the client left) or an odd one, then 1xx..5xx.
CLASSES = 6
BUCKETS = len(DURATION_BOUNDS) + 1
#: The matrix cell most requests of a fast app land in (2xx, first duration bucket): kept with
#: the totals, outside the matrix, so that ``end`` stores it with them.
FAST_CELL = 2 * BUCKETS
#: The counters, from offset :data:`COUNTERS`: tx, running (a double), the fast cell,
#: exceptions, the matrix (whose own FAST_CELL stays 0).
COUNTERS = SLOT.size
_COUNTERS = struct.Struct(f"=QdQQ{CLASSES * BUCKETS}Q")
_EXCEPTIONS = COUNTERS + 24
_MATRIX = COUNTERS + 32
SLOT_SIZE = 704
#: The master's word that the SIGUSR2 it sends is a harakiri's (1.0; 0.0 from the worker's
#: start): the worker tells it from one sent by hand, which only asks what it is doing.
MARK: Final = SLOT_SIZE - 16
#: The request's own harakiri, where the app set one (:func:`uwsgiapp.set_harakiri`): seconds
#: from its start (inf: none); 0.0: ``--harakiri``. Reset by the request's end.
LIMIT: Final = SLOT_SIZE - 24
#: The slot's last word: the worker loop's beat (monotonic seconds), once a tick at most.
BEAT: Final = SLOT_SIZE - 8
_BEAT: Final = struct.Struct("=d")
assert COUNTERS + _COUNTERS.size <= LIMIT
assert _TX * 8 == COUNTERS  # the totals' words are the counters' first three
#: One request thread's core, from SLOT_SIZE: request start (0 = idle), requests served, the
#: request's own harakiri (as :data:`LIMIT`).
CORE: Final = struct.Struct("=dQd")
ABSENT: Final = -1.0  # a core's request start when its thread could not start

#: The clock of the request start (the master's harakiri compares it with its own time.time()).
_clock = time.time
#: Status lines seen with a 2xx code (a set lookup is cheaper than reading the first digit).
_OK: Final[set[str]] = set()
_OK_KEPT: Final = 256
_FIRST_BOUND: Final = DURATION_BOUNDS[0]


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """One slot as the master sees it."""

    pid: int
    state: int
    request_start: float
    requests: int
    busy_cores: int = 0  # with --threads: the request threads in a request
    threads: int = 1  # with --threads: those that started (at a thread limit, fewer)
    beat: float = 0.0  # when its loop last ran (monotonic; 0: not since it was forked)
    #: Each request's (start, own harakiri as :data:`LIMIT`); empty: one request, from
    #: ``request_start``, with ``--harakiri``.
    limits: tuple[tuple[float, float], ...] = ()

    def past_harakiri(self, wall: float, harakiri: float) -> tuple[float, float] | None:
        """The request furthest past its harakiri at ``wall`` (epoch seconds), as (its start,
        its limit in seconds): the app's own where it set one, else ``harakiri`` (0: none);
        None while none is."""
        timed = self.limits or (((self.request_start, 0.0),) if self.request_start else ())
        worst: tuple[float, float] | None = None
        for start, own in timed:
            limit = harakiri_limit(own, harakiri)
            if wall - start > limit and (worst is None or start + limit < sum(worst)):
                worst = (start, limit)
        return worst

    @property
    def in_requests(self) -> int:
        """The requests it is in: its busy request threads, else 0 or 1."""
        return self.busy_cores or int(self.request_start != 0.0)

    def ready_for(self, pid: int) -> bool:
        """Worker ``pid`` (not the slot's previous one) wrote that it loaded the app and accepts
        (:meth:`SlotWriter.ready`), or did until it began to leave (:meth:`SlotWriter.leaving`)."""
        return self.state in (STATE_READY, STATE_LEAVING) and self.pid == pid

    def leaving_for(self, pid: int) -> bool:
        """Worker ``pid`` no longer accepts and is on its way out (:meth:`SlotWriter.leaving`)."""
        return self.state == STATE_LEAVING and self.pid == pid


@dataclass(frozen=True, slots=True)
class SlotCounters:
    """A slot's counters as the master reads them (since the worker id's first spawn)."""

    tx: int
    exceptions: int
    #: Seconds spent serving requests.
    running: float
    #: Requests by (status class, duration bucket): rows none-or-odd, 1xx..5xx; columns the
    #: buckets of :data:`~uwsgiapp.stats.model.DURATION_BOUNDS` and +Inf.
    matrix: tuple[tuple[int, ...], ...]

    @classmethod
    def from_cells(cls, cells: tuple[float, ...]) -> SlotCounters:
        """From the raw values, in layout order (tx, running, fast cell, exceptions, matrix)."""
        flat = [int(v) for v in cells[4:]]
        flat[FAST_CELL] += int(cells[2])
        rows = tuple(tuple(flat[i : i + BUCKETS]) for i in range(0, len(flat), BUCKETS))
        return cls(tx=int(cells[0]), exceptions=int(cells[3]), running=float(cells[1]), matrix=rows)

    @property
    def requests(self) -> int:
        """Requests counted (every response, whatever its status)."""
        return sum(map(sum, self.matrix))

    @property
    def classes(self) -> tuple[int, ...]:
        """Requests by status class: (none or odd, 1xx, 2xx, 3xx, 4xx, 5xx)."""
        return tuple(sum(row) for row in self.matrix)

    @property
    def histogram(self) -> tuple[int, ...]:
        """Requests by duration bucket (per bucket, not cumulative)."""
        return tuple(sum(col) for col in zip(*self.matrix, strict=True))

    @property
    def running_time(self) -> int:
        """Microseconds spent serving requests."""
        return int(self.running * 1e6)


class StatusTable:
    """``capacity`` worker slots in shared memory; ``cores``: request threads per worker."""

    def __init__(self, capacity: int, cores: int = 1) -> None:
        self.capacity = capacity
        self.cores = cores
        self.slot_size = SLOT_SIZE if cores == 1 else SLOT_SIZE + cores * CORE.size
        self._mem = mmap.mmap(-1, capacity * self.slot_size)
        self._all_cores = struct.Struct("=" + "dQd" * cores)

    def reset(self, slot: int, pid: int) -> list[int]:
        """Master: a worker starts in ``slot`` (counters carry on); the core counts it zeroes."""
        offset = slot * self.slot_size
        before = [n for _, n in self.read_cores(slot)] if self.cores > 1 else []
        SLOT.pack_into(self._mem, offset, pid, STATE_BOOTING, 0.0, 0)
        _BEAT.pack_into(self._mem, offset + BEAT, 0.0)  # not the previous process's beat
        _BEAT.pack_into(self._mem, offset + MARK, 0.0)  # nor its harakiri
        _BEAT.pack_into(self._mem, offset + LIMIT, 0.0)
        if self.cores > 1:
            self._mem[offset + SLOT_SIZE : offset + self.slot_size] = bytes(self.cores * CORE.size)
        return before

    def read(self, slot: int) -> WorkerStatus:
        """Master: the slot's current values (with cores: the oldest request, all requests)."""
        offset = slot * self.slot_size
        (beat,) = _BEAT.unpack_from(self._mem, offset + BEAT)
        # A request's own limit is read before its start: the worker clears the limit (at the
        # next begin) after the start it was for has gone (at that request's end), so a limit
        # read as cleared is never paired with that start (a stream with none, past
        # --harakiri, would be judged by it as the next request began).
        if self.cores == 1:
            (own,) = _BEAT.unpack_from(self._mem, offset + LIMIT)
            pid, state, start, requests = SLOT.unpack_from(self._mem, offset)
            limits = ((start, own),) if own and start else ()
            return WorkerStatus(pid, state, start, requests, beat=beat, limits=limits)
        owns = self._all_cores.unpack_from(self._mem, offset + SLOT_SIZE)
        pid, state, _, _ = SLOT.unpack_from(self._mem, offset)
        flat = self._all_cores.unpack_from(self._mem, offset + SLOT_SIZE)
        busy = tuple((flat[i], owns[i + 2]) for i in range(0, len(flat), 3) if flat[i] > 0.0)
        return WorkerStatus(
            pid,
            state,
            min((start for start, _ in busy), default=0.0),
            sum(int(flat[i]) for i in range(1, len(flat), 3)),
            len(busy),
            sum(1 for i in range(0, len(flat), 3) if flat[i] != ABSENT),
            beat,
            busy,
        )

    def read_cores(self, slot: int) -> list[tuple[float, int]]:
        """Master: each core's (request start or 0, requests served)."""
        if self.cores == 1:
            status = self.read(slot)
            return [(status.request_start, status.requests)]
        flat = self._all_cores.unpack_from(self._mem, slot * self.slot_size + SLOT_SIZE)
        return [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 3)]

    def counters(self, slot: int) -> SlotCounters:
        """Master: the slot's counters."""
        return SlotCounters.from_cells(
            _COUNTERS.unpack_from(self._mem, slot * self.slot_size + COUNTERS)
        )

    def mark_harakiri(self, slot: int) -> None:
        """Master: the SIGUSR2 it sends next to the worker in ``slot`` is a harakiri's."""
        _BEAT.pack_into(self._mem, slot * self.slot_size + MARK, 1.0)

    def hooks(self, slot: int, pid: int) -> SlotWriter:
        """Worker: the writer for its own slot."""
        return SlotWriter(self._mem, slot * self.slot_size, pid)

    def core(self, slot: int, core: int) -> CoreWriter:
        """Worker: the writer for request thread ``core`` (0-based) of its own slot."""
        assert 0 <= core < self.cores
        return CoreWriter(self._mem, slot * self.slot_size + SLOT_SIZE + core * CORE.size)


def _words(mem: mmap.mmap, offset: int, size: int) -> tuple[memoryview[float], memoryview[int]]:
    """The 8-byte words of ``mem[offset : offset + size]``, seen as doubles and as unsigned
    ints: a store through either is one aligned 8-byte write, never seen torn by a reader."""
    words = memoryview(mem)[offset : offset + size]
    return words.cast("d"), words.cast("Q")


class CoreWriter:
    """One request thread's hooks: its request start and count in its core of the slot.

    ``started`` keeps the start in this process too, for the harakiri dump to find the stuck
    thread (0 while idle), and ``limit`` the request's own harakiri (:data:`LIMIT`).
    """

    __slots__ = ("_d", "_q", "limit", "started")

    def __init__(self, mem: mmap.mmap, offset: int) -> None:
        self._d, self._q = _words(mem, offset, CORE.size)
        self.started = 0.0
        self.limit = 0.0

    def begin(self) -> None:
        """A request started now on this thread."""
        # The last request's own harakiri goes while the core reads idle (the master reads a
        # start before its limit: it never pairs this start with that limit).
        if self.limit:
            self._d[2] = self.limit = 0.0
        self.started = now = time.time()
        self._d[0] = now

    def set_harakiri(self, seconds: float) -> bool:
        """This thread's request may run ``seconds`` more (0: no harakiri); False while idle."""
        if not self.started:
            return False
        self._d[2] = self.limit = own_limit(self.started, seconds)
        return True

    def end(self, requests: int) -> None:
        """The thread's request is done; ``requests`` served by this thread."""
        self.started = 0.0
        self._d[0] = 0.0
        self._q[1] = requests

    def absent(self) -> None:
        """This core's thread could not start: the master counts no capacity here."""
        self._d[0] = ABSENT


class SlotWriter:
    """Worker side of a slot; its ``begin``/``end`` are the worker loop's request hooks."""

    __slots__ = ("_d", "_mem", "_offset", "_own", "_pid", "_q")

    def __init__(self, mem: mmap.mmap, offset: int, pid: int) -> None:
        self._mem = mem
        self._offset = offset
        self._pid = pid
        self._own = False  # the request set its own harakiri (LIMIT)
        # One 8-byte store each (a struct's pack_into costs a method call and a buffer export).
        self._d, self._q = _words(mem, offset, COUNTERS + 24)

    def ready(self) -> None:
        """The app is loaded and the worker is about to accept (its first beat)."""
        self.beat()
        SLOT.pack_into(self._mem, self._offset, self._pid, STATE_READY, 0.0, 0)

    def beat(self) -> None:
        """The worker's loop runs (idle, it wakes once a tick): the master kills one whose loop
        stopped while it is in no request, past ``--harakiri`` (which times requests only)."""
        _BEAT.pack_into(self._mem, self._offset + BEAT, time.monotonic())

    def harakiri_marked(self) -> bool:
        """Whether the master marked a harakiri (its SIGUSR2, not one sent by hand)."""
        return bool(_BEAT.unpack_from(self._mem, self._offset + MARK)[0])

    def leaving(self) -> None:
        """The worker has stopped accepting for good (its exit work comes next)."""
        _STATE.pack_into(self._mem, self._offset + 4, STATE_LEAVING)

    def set_harakiri(self, seconds: float) -> bool:
        """The request may run ``seconds`` more (0: no harakiri); False while idle."""
        start = self._d[_START]
        if not start:
            return False
        _BEAT.pack_into(self._mem, self._offset + LIMIT, own_limit(start, seconds))
        self._own = True
        return True

    def _forget_own(self) -> None:
        """The last request's own harakiri goes, while the slot reads idle (the master reads
        the start before the limit: it never pairs the next start with this limit)."""
        _BEAT.pack_into(self._mem, self._offset + LIMIT, 0.0)
        self._own = False

    def begin(self) -> None:
        """A request started now."""
        if self._own:
            self._forget_own()
        self._d[_START] = _clock()

    def end(self, requests: int) -> None:
        """The request is done; ``requests`` served in total."""
        self._d[_START] = 0.0
        self._q[_REQUESTS] = requests


class CountingSlotWriter(SlotWriter):
    """``--stats``: the hooks also count each response the Responder sent since ``begin``.

    ``end`` takes it from the Responder's ``last`` (None: a step that parked a connection, a
    ping, a packet refused before the app) and counts it from what ``begin`` and the exchange
    already hold: the duration from ``begin``'s clock reading, the status class, the bytes.
    The totals and the fast cell are stored by ``end`` with the request count; any other cell is
    one 8-byte store of a count kept in a local list (a read-modify-write of the mmap costs more).
    """

    __slots__ = ("_cells", "_fast", "_matrix", "_responder", "_running", "_start", "_tx")

    def __init__(self, mem: mmap.mmap, offset: int, pid: int, responder: Responder) -> None:
        super().__init__(mem, offset, pid)
        self._responder = responder
        responder.last = None
        self._start = 0.0
        # The totals of the previous processes of this worker id carry on.
        tx, running, fast, _, *matrix = _COUNTERS.unpack_from(mem, offset + COUNTERS)
        self._tx: int = tx
        self._running: float = running
        self._fast: int = fast
        self._matrix: list[int] = matrix
        end = offset + _MATRIX + CLASSES * BUCKETS * 8  # the matrix alone, not the words after
        self._cells = memoryview(mem)[offset + _MATRIX : end].cast("Q")

    def begin(self) -> None:
        """A request started now (kept for its duration too)."""
        if self._own:
            self._forget_own()
        self._start = now = _clock()
        self._d[_START] = now

    def end(self, requests: int) -> None:
        """Idle again; the response sent since :meth:`begin`, if any, is counted."""
        responder = self._responder
        exchange = responder.last
        if exchange is None:
            self._d[_START] = 0.0
            self._q[_REQUESTS] = requests
            return
        responder.last = None
        elapsed = _clock() - self._start
        if 0.0 <= elapsed <= _FIRST_BOUND and exchange.head_size and exchange.status in _OK:
            self._fast += 1
        else:
            elapsed = max(elapsed, 0.0)  # the wall clock may step back
            self._count_cell(exchange.sent_status, elapsed)
        self._tx += exchange.sent
        self._running += elapsed
        self._d[_START] = 0.0
        self._q[_REQUESTS] = requests
        self._store_totals()

    def _store_totals(self) -> None:
        """Bytes sent, seconds serving and the fast cell, to the slot (one 8-byte store each)."""
        self._q[_TX] = self._tx
        self._d[_RUNNING] = self._running
        self._q[_FAST] = self._fast

    def _count_cell(self, status: str | None, elapsed: float) -> None:
        """Count a request the fast path did not take."""
        digit = status[:1] if status else ""
        row = int(digit) * BUCKETS if digit in ("1", "2", "3", "4", "5") else 0
        if row == FAST_CELL and status is not None and len(_OK) < _OK_KEPT:
            _OK.add(status)
        cell = row
        if elapsed > _FIRST_BOUND:
            cell += bisect.bisect_left(DURATION_BOUNDS, elapsed)
        if cell == FAST_CELL:
            self._fast += 1
        else:
            self._matrix[cell] = count = self._matrix[cell] + 1
            self._cells[cell] = count

    def count_exception(self) -> None:
        """The app raised or answered badly (a 500 or a cut): the Responder's ``on_app_error``."""
        offset = self._offset + _EXCEPTIONS
        (count,) = struct.unpack_from("=Q", self._mem, offset)
        struct.pack_into("=Q", self._mem, offset, count + 1)


class ThreadCounter(CountingSlotWriter):
    """``--stats`` with ``--threads``: counts each response at the Responder's access-log point,
    which the threaded worker calls under its lock (the threads share one Responder, so its
    ``last`` cannot say whose response it was)."""

    __slots__ = ()

    def record(self, environ: dict[str, Any], response: Any, seconds: float, block: bytes) -> None:
        """The access-log hook: count one response (its head too, as the other counters)."""
        elapsed = max(seconds, 0.0)
        status: str = response.sent_status or "-"
        if elapsed <= _FIRST_BOUND and status in _OK:
            self._fast += 1
        else:
            self._count_cell(status, elapsed)
        self._tx += response.sent
        self._running += elapsed
        self._store_totals()


def count_thread_requests(handler: Handler, slot: SlotWriter) -> ThreadCounter:
    """``--stats`` with ``--threads``: count ``handler``'s responses at its access-log point
    (before the threaded worker wraps that point in its lock)."""
    responder = handler.responder
    counter = ThreadCounter(slot._mem, slot._offset, slot._pid, responder)
    record = counter.record
    chained = responder.access_log
    if chained is None:
        responder.access_log = record
    else:

        def record_and_log(*request: Any) -> None:  # the access log's arguments
            record(*request)
            chained(*request)

        responder.access_log = record_and_log
    responder.on_app_error = counter.count_exception
    return counter


def count_requests(handler: Handler, slot: SlotWriter) -> CountingSlotWriter:
    """``--stats``: the hooks for ``slot`` that count ``handler``'s requests (chosen once, at
    worker start; without them the worker's path is exactly as before)."""
    responder = handler.responder
    counting = CountingSlotWriter(slot._mem, slot._offset, slot._pid, responder)
    responder.on_app_error = counting.count_exception
    return counting
