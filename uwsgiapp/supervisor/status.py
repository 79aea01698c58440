"""Per-worker status in shared memory: what the master reads for readiness, harakiri, stats.

One fixed-size slot per worker id in an anonymous shared mmap created by the master before
forking. A worker writes only its own slot: two ``pack_into`` calls per request.
"""

from __future__ import annotations

import mmap
import struct
import time
from dataclasses import dataclass

#: pid, state, request start (epoch seconds, 0 = idle), requests served.
SLOT = struct.Struct("<iidQ")
SLOT_SIZE = 32
_BUSY = struct.Struct("<d")  # just the start time, at offset 8
_DONE = struct.Struct("<dQ")  # start time 0 + requests, at offset 8

STATE_FREE = 0
STATE_BOOTING = 1
STATE_READY = 2


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


class StatusTable:
    """``capacity`` worker slots in shared memory."""

    def __init__(self, capacity: int) -> None:
        self.capacity = capacity
        self._mem = mmap.mmap(-1, capacity * SLOT_SIZE)

    def reset(self, slot: int, pid: int) -> None:
        """Master: a worker is being started in ``slot``."""
        SLOT.pack_into(self._mem, slot * SLOT_SIZE, pid, STATE_BOOTING, 0.0, 0)

    def read(self, slot: int) -> WorkerStatus:
        """Master: the slot's current values."""
        return WorkerStatus(*SLOT.unpack_from(self._mem, slot * SLOT_SIZE))

    def hooks(self, slot: int, pid: int) -> SlotWriter:
        """Worker: the writer for its own slot."""
        return SlotWriter(self._mem, slot * SLOT_SIZE, pid)


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
