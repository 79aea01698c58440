"""Per-worker status in shared memory: what the master reads for readiness, harakiri, stats.

One fixed-size slot per worker id in an anonymous shared mmap created by the master before
forking. A worker writes only its own slot: two ``pack_into`` calls per request for readiness
and harakiri, and, with ``--stats`` only, three counter increments (no lock, no syscall)
through a ``memoryview`` of 64-bit cells (aligned 8-byte stores, which a reader never sees torn).

Layout of a slot (:data:`SLOT_SIZE` bytes): the header (pid, state, request start, requests
since this process started), then the counters from :data:`HEADER_SIZE`: bytes sent, exceptions,
a matrix of requests by (status class, duration bucket), and the seconds spent serving as a
double. One matrix cell per request rather than a request count, a class count and a bucket
count: a third of the increments, and the master adds rows and columns up. The counters are not
reset when a new process takes the slot: they count for the worker id across respawns.

With ``--threads N`` (N > 1) a slot also has N "cores" after the counters (uWSGI's ``cores``):
each request thread writes its own request start and count there (:class:`CoreWriter`), and the
master reads the oldest start as the worker's (harakiri) and the sum as its requests. With one
thread there are no cores and the header is written as before.
"""

from __future__ import annotations

import bisect
import mmap
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from uwsgiapp.stats.model import DURATION_BOUNDS
from uwsgiapp.wsgi.contract import AccessLogger

if TYPE_CHECKING:  # the policy imports this module without loading the server
    from uwsgiapp.server.intake import Handler

#: pid, state, request start (epoch seconds, 0 = idle), requests served.
SLOT = struct.Struct("<iidQ")
HEADER_SIZE = 32
_BUSY = struct.Struct("<d")  # just the start time, at offset 8
_DONE = struct.Struct("<dQ")  # start time 0 + requests, at offset 8

STATE_FREE = 0
STATE_BOOTING = 1
STATE_READY = 2

# Counter cells (u64 each, from HEADER_SIZE); then the running time, a double.
TX, EXCEPTIONS, MATRIX = 0, 1, 2
#: Matrix rows: no status line (the client left) or an odd one, then 1xx..5xx.
CLASSES = 6
BUCKETS = len(DURATION_BOUNDS) + 1
RUNNING = MATRIX + CLASSES * BUCKETS
_CELLS = struct.Struct(f"<{RUNNING}Qd")
SLOT_SIZE = 640
assert HEADER_SIZE + _CELLS.size <= SLOT_SIZE
#: One request thread's core, from SLOT_SIZE: request start (0 = idle), requests served.
CORE = struct.Struct("<dQ")


@dataclass(frozen=True, slots=True)
class WorkerStatus:
    """One slot as the master sees it."""

    pid: int
    state: int
    request_start: float
    requests: int

    def ready_for(self, pid: int) -> bool:
        """Worker ``pid`` wrote that it loaded the app and accepts (:meth:`SlotWriter.ready`).

        The pid check: a slot is reused by the next worker of that id, and a stale READY from
        the previous one must not count for a worker that is still booting.
        """
        return self.state == STATE_READY and self.pid == pid


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
        """From the raw cell values, in layout order."""
        flat = [int(v) for v in cells[MATRIX:RUNNING]]
        rows = tuple(tuple(flat[i : i + BUCKETS]) for i in range(0, len(flat), BUCKETS))
        return cls(
            tx=int(cells[TX]),
            exceptions=int(cells[EXCEPTIONS]),
            running=float(cells[RUNNING]),
            matrix=rows,
        )

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
        self._all_cores = struct.Struct("<" + "dQ" * cores)

    def reset(self, slot: int, pid: int) -> None:
        """Master: a worker is being started in ``slot`` (its counters carry on)."""
        offset = slot * self.slot_size
        SLOT.pack_into(self._mem, offset, pid, STATE_BOOTING, 0.0, 0)
        if self.cores > 1:
            self._mem[offset + SLOT_SIZE : offset + self.slot_size] = bytes(self.cores * CORE.size)

    def read(self, slot: int) -> WorkerStatus:
        """Master: the slot's current values (with cores: the oldest request, all requests)."""
        status = WorkerStatus(*SLOT.unpack_from(self._mem, slot * self.slot_size))
        if self.cores == 1:
            return status
        cores = self.read_cores(slot)
        starts = [start for start, _ in cores if start]
        return WorkerStatus(
            status.pid, status.state, min(starts, default=0.0), sum(n for _, n in cores)
        )

    def read_cores(self, slot: int) -> list[tuple[float, int]]:
        """Master: each core's (request start or 0, requests served)."""
        if self.cores == 1:
            status = self.read(slot)
            return [(status.request_start, status.requests)]
        flat = self._all_cores.unpack_from(self._mem, slot * self.slot_size + SLOT_SIZE)
        return [(flat[i], int(flat[i + 1])) for i in range(0, len(flat), 2)]

    def counters(self, slot: int) -> SlotCounters:
        """Master: the slot's counters."""
        return SlotCounters.from_cells(
            _CELLS.unpack_from(self._mem, slot * self.slot_size + HEADER_SIZE)
        )

    def hooks(self, slot: int, pid: int) -> SlotWriter:
        """Worker: the writer for its own slot."""
        return SlotWriter(self._mem, slot * self.slot_size, pid)

    def core(self, slot: int, core: int) -> CoreWriter:
        """Worker: the writer for request thread ``core`` (0-based) of its own slot."""
        assert 0 <= core < self.cores
        return CoreWriter(self._mem, slot * self.slot_size + SLOT_SIZE + core * CORE.size)


class CoreWriter:
    """One request thread's hooks: its request start and count in its core of the slot.

    ``started`` keeps the start in this process too, for the harakiri dump to find the stuck
    thread (0 while idle).
    """

    __slots__ = ("_mem", "_offset", "started")

    def __init__(self, mem: mmap.mmap, offset: int) -> None:
        self._mem = mem
        self._offset = offset
        self.started = 0.0

    def begin(self) -> None:
        """A request started now on this thread."""
        self.started = now = time.time()
        _BUSY.pack_into(self._mem, self._offset, now)

    def end(self, requests: int) -> None:
        """The thread's request is done; ``requests`` served by this thread."""
        self.started = 0.0
        _DONE.pack_into(self._mem, self._offset, 0.0, requests)


class SlotWriter:
    """Worker side of a slot; its ``begin``/``end`` are the worker loop's request hooks."""

    __slots__ = ("_mem", "_offset", "_pid")

    def __init__(self, mem: mmap.mmap, offset: int, pid: int) -> None:
        self._mem = mem
        self._offset = offset
        self._pid = pid

    def ready(self) -> None:
        """The app is loaded and the worker is about to accept."""
        SLOT.pack_into(self._mem, self._offset, self._pid, STATE_READY, 0.0, 0)

    def begin(self) -> None:
        """A request started now."""
        _BUSY.pack_into(self._mem, self._offset + 8, time.time())

    def end(self, requests: int) -> None:
        """The request is done; ``requests`` served in total."""
        _DONE.pack_into(self._mem, self._offset + 8, 0.0, requests)

    def cells(self) -> memoryview:
        """This slot's counter cells as 64-bit unsigned integers (without the running time)."""
        start = self._offset + HEADER_SIZE
        return memoryview(self._mem)[start : start + RUNNING * 8].cast("Q")

    def recorder(self, chained: AccessLogger | None = None) -> AccessLogger:
        """The per-request callback (the Responder's access-log point) that counts a request:
        its (status class, duration bucket) cell, bytes sent, seconds. ``chained``: the access
        logger to call too."""
        cells = self.cells()
        start = self._offset + HEADER_SIZE + RUNNING * 8
        running = memoryview(self._mem)[start : start + 8].cast("d")
        rows = {str(digit): MATRIX + digit * BUCKETS for digit in range(1, CLASSES)}.get
        bucket = bisect.bisect_left
        bounds = DURATION_BOUNDS

        def record(environ: dict[str, Any], status: str, sent: int, seconds: float) -> None:
            cells[rows(status[:1], MATRIX) + bucket(bounds, seconds)] += 1
            cells[TX] += sent
            running[0] += seconds

        if chained is None:
            return record

        def record_and_log(environ: dict[str, Any], status: str, sent: int, seconds: float) -> None:
            record(environ, status, sent, seconds)
            chained(environ, status, sent, seconds)

        return record_and_log

    def exception_counter(self) -> Callable[[], None]:
        """What the Responder calls when the app raised or answered badly (a 500 or a cut)."""
        cells = self.cells()

        def count() -> None:
            cells[EXCEPTIONS] += 1

        return count


def count_requests(handler: Handler, slot: SlotWriter) -> None:
    """``--stats``: make ``handler`` count each request in ``slot`` (chosen once, at worker
    start; without it the handler's path is exactly as before)."""
    responder = handler.responder
    responder.access_log = slot.recorder(responder.access_log)
    responder.on_app_error = slot.exception_counter()
