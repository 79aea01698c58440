"""``--log-master``: the master alone writes the log lines, whole, whatever their size.

Without it every worker writes its lines straight into the shared target. A pipe (Docker's
``docker logs``, the journal, ``| tee``) keeps a write whole only up to 4 KiB (PIPE_BUF): two
workers writing 10 KB JSON records at once had them interleaved, and the collector read two
broken records. With it, each target the workers write to (the process's stdout and stderr,
the error log file, the access log file: one *sink* per open file, however many names it has)
gets a pipe per worker, made before the fork. In the worker the pipe takes the target's place
(fds 1 and 2 are pointed at it, the log handlers write to it), so that everything written
there goes through it: our log lines, the app's prints and logging, C code, the programs it
runs. One thread of the master reads the pipes and writes whole lines to the real targets,
one ``write`` a batch of lines of one worker, so that no line mixes with another.

The master's supervision never waits on the target: its own log records are queued for the
thread in memory (bounded: :data:`MASTER_BACKLOG`); the thread alone blocks on a slow target,
then the workers' pipes fill and their writes block (back-pressure, not loss). The thread
uses only ``os.read``, ``os.write``, ``poll`` and lock-free deques: a fork amid its work
copies no lock that the new worker could wait on. The master holds the files (opened before a
``--uid`` drop; USR1 and a HUP reopen them in the master, onto the same descriptors); a worker
opens none of them.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import select
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from uwsgiapp.logtargets import FUNNELED, moved
from uwsgiapp.server.logs import arm_fault_dumps
from uwsgiapp.server.safefiles import open_append

__all__ = ["LINE_LIMIT", "MASTER_BACKLOG", "LogMaster", "take_lines"]

log = logging.getLogger("uwsgiapp.error")

#: A line is held at most this long (bytes) waiting for its newline; a longer one is written
#: in pieces of this size, each ended with a newline (uWSGI's log-master-bufsize cuts it off).
LINE_LIMIT = 64 * 1024
#: The most of the master's own lines (bytes) held while the target does not take them;
#: further lines are dropped and counted.
MASTER_BACKLOG = 4 * 1024 * 1024
#: Seconds the stop waits for the lines still held to be written (a target that takes none).
STOP_WAIT = 5.0
#: Seconds without data that end the stop's reading (the workers are gone by then).
QUIET = 0.05
READ_SIZE = 65536
_OUR_LOGGERS = ("uwsgiapp", "uwsgiapp.access")


def take_lines(held: bytes, data: bytes, limit: int = LINE_LIMIT) -> tuple[bytes, bytes]:
    """Split ``held + data`` into what may be written now (whole lines; and a line without
    its newline yet, once it reaches ``limit`` bytes, in pieces of ``limit`` each ended with a
    newline) and what waits for its newline."""
    held += data
    cut = held.rfind(b"\n") + 1
    ready, rest = held[:cut], held[cut:]
    if len(rest) < limit:
        return ready, rest
    pieces = [ready]
    while len(rest) >= limit:
        pieces.append(rest[:limit] + b"\n")
        rest = rest[limit:]
    return b"".join(pieces), rest


def write_all(fd: int, data: bytes) -> bool:
    """Write all of ``data`` to ``fd`` (blocking); False if the target refused it."""
    view = memoryview(data)
    while view:
        try:
            view = view[os.write(fd, view) :]
        except OSError:
            return False
    return True


@dataclass
class Sink:
    """One target the workers write to: the master's own descriptor of it (``fd``, reopened
    onto at USR1 when it is a file at ``path``), and the process's streams that are it."""

    fd: int
    path: str = ""
    std: list[int] = field(default_factory=list)
    failed: bool = False


class _MasterStream:
    """A log handler's stream in the master: each write is queued for the thread."""

    def __init__(self, funnel: LogMaster, sink: int) -> None:
        self._funnel = funnel
        self._sink = sink
        self.name = f"<log-master {funnel.sinks[sink].path or 'stream'}>"

    def write(self, text: str) -> int:
        """Queue ``text`` for the thread; never blocks."""
        self._funnel.put(self._sink, text.encode("utf-8", "backslashreplace"))
        return len(text)

    def flush(self) -> None:
        """Nothing held here."""

    def fileno(self) -> int:
        """The target itself (faulthandler in the master, ``--capture-output``'s fds 1, 2)."""
        return self._funnel.sinks[self._sink].fd


def _identity(fd: int) -> tuple[int, int] | None:
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


class LogMaster:
    """The master's funnel of the workers' log lines; made inert (no sink: every method does
    nothing), :meth:`start` turns it on."""

    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        #: Our log handlers it took over: (handler, its sink, the process stream it wrote to).
        self._handlers: list[tuple[logging.StreamHandler[Any], int, Any]] = []
        #: What the main thread hands the thread: (read end, sink) of a new worker's pipes,
        #: (-1, sink) with the master's own bytes in ``_lines``.
        self._adds: collections.deque[tuple[int, int]] = collections.deque()
        self._lines: collections.deque[tuple[int, bytes]] = collections.deque()
        self._put = self._done = self._dropped = 0  # each written by one thread only
        self._pending: list[tuple[int, int]] = []  # the next worker's pipes, one per sink
        self._reads: dict[int, int] = {}  # the thread's: read end → sink
        self._wake = (-1, -1)
        self._stopping = False
        self._thread: threading.Thread | None = None

    # -- the master's main thread ------------------------------------------------------------

    def start(self) -> LogMaster:
        """Take over our log handlers and the process's stdout and stderr (each distinct open
        file once) and start the thread."""
        by_identity: dict[tuple[int, int], int] = {}

        def sink_of(fd: int, path: str = "") -> int | None:
            ident = _identity(fd)
            if ident is None:
                return None
            if ident not in by_identity:
                by_identity[ident] = len(self.sinks)
                self.sinks.append(Sink(os.dup(fd)))
            index = by_identity[ident]
            self.sinks[index].path = self.sinks[index].path or path
            return index

        for std in (1, 2):
            if (index := sink_of(std)) is not None:
                self.sinks[index].std.append(std)
        for name in _OUR_LOGGERS:
            for handler in logging.getLogger(name).handlers:
                stream = getattr(handler, "stream", None)
                if not isinstance(handler, logging.StreamHandler) or stream is None:
                    continue
                path = getattr(handler, "baseFilename", "")
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    index = sink_of(stream.fileno(), path)
                    if index is not None:
                        self._take(handler, index, "" if path else stream)
        arm_fault_dumps()  # not to the file descriptor closed above
        self._wake = os.pipe()
        for fd in self._wake:
            os.set_blocking(fd, False)
        self._thread = threading.Thread(target=self._run, name="uwsgiapp-log-master", daemon=True)
        self._thread.start()
        os.register_at_fork(after_in_child=self._in_child)
        return self

    def _take(self, handler: logging.StreamHandler[Any], index: int, std: Any) -> None:
        """``handler`` writes through the thread from now on (``std``: the process stream it
        wrote to, else "": its file, which the sink holds now)."""
        handler.acquire()
        try:
            old, handler.stream = handler.stream, _MasterStream(self, index)
        finally:
            handler.release()
        if not std:
            with contextlib.suppress(OSError):
                old.close()
        self._handlers.append((handler, index, std))
        FUNNELED.add(handler)

    def put(self, sink: int, data: bytes) -> None:
        """The master's own bytes for ``sink``, queued for the thread (dropped, counted, when
        :data:`MASTER_BACKLOG` is held already)."""
        if self._put - self._done > MASTER_BACKLOG:
            self._dropped += 1
            return
        self._put += len(data)
        self._lines.append((sink, data))
        self._poke()

    def _poke(self) -> None:
        with contextlib.suppress(OSError):  # full: the thread is awake anyway
            os.write(self._wake[1], b"\0")

    def before_fork(self) -> None:
        """Make the next worker's pipes (OSError: none made, the worker cannot be forked)."""
        made: list[tuple[int, int]] = []
        try:
            for _ in self.sinks:
                made.append(os.pipe())
        except OSError:
            for pair in made:
                for fd in pair:
                    os.close(fd)
            raise
        self._pending = made

    def after_fork(self, pid: int) -> None:
        """In the master, after the fork of worker ``pid`` (0: it failed): its pipes' write
        ends are the worker's alone; the read ends go to the thread."""
        pipes, self._pending = self._pending, []
        for index, (read, write) in enumerate(pipes):
            os.close(write)
            if pid:
                os.set_blocking(read, False)
                self._adds.append((read, index))
            else:
                os.close(read)
        if pipes and pid:
            self._poke()

    def _in_child(self) -> None:
        """In a new worker (its pipes made): every log line, and fds 1 and 2, go to its
        pipes. In another process forked here (the app's, as it imports at a HUP), the log
        handlers write to the targets themselves. Either closes the master's descriptors."""
        pipes, self._pending = self._pending, []
        if self._thread is None:
            return
        self._thread = None
        theirs = [*self._wake, *self._reads, *(fd for fd, _ in self._adds)]
        theirs += [read for read, _ in pipes]
        if pipes:
            theirs += [sink.fd for sink in self.sinks]
        for fd in theirs:
            with contextlib.suppress(OSError):
                os.close(fd)
        writers: dict[int, Any] = {}
        for index, sink in enumerate(self.sinks):
            if pipes:
                for std in sink.std:
                    os.dup2(pipes[index][1], std)
            fd = pipes[index][1] if pipes else sink.fd
            writers[index] = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace")
        for handler, index, std in self._handlers:
            handler.stream = std or writers[index]
            if not pipes:
                FUNNELED.discard(handler)
        self.sinks, self._handlers = [], []
        self._reads.clear()
        self._adds.clear()
        self._lines.clear()
        arm_fault_dumps()  # off the master's descriptor (a worker's dump file comes after)

    def reopen(self, moved_only: bool) -> bool:
        """USR1 (or, ``moved_only``, a HUP's): open the sinks' files again by path, onto the
        descriptors the thread writes to; True if one was. A path that cannot be opened leaves
        its sink writing to the old file (logged)."""
        done = False
        for sink in self.sinks:
            if not sink.path or (moved_only and not moved(sink.path, sink.fd)):
                continue
            try:
                fd = open_append(sink.path)
            except OSError as exc:
                log.error("cannot reopen log file, still writing to the old one: %s", exc)
                continue
            os.dup2(fd, sink.fd, inheritable=False)
            os.close(fd)
            sink.failed, done = False, True
        return done

    def stop(self) -> None:
        """At the master's end: write what is still held (the workers are gone; a target that
        takes nothing for :data:`STOP_WAIT` seconds loses it), then write directly again."""
        if self._thread is None:
            return
        self._stopping = True
        self._poke()
        self._thread.join(STOP_WAIT)
        self._thread = None
        for handler, index, std in self._handlers:
            FUNNELED.discard(handler)
            if std:
                handler.stream = std
            else:
                stream = os.fdopen(os.dup(self.sinks[index].fd), "a", encoding="utf-8")
                handler.stream = stream
        self._handlers = []

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        poll = select.poll()
        poll.register(self._wake[0], select.POLLIN)
        held: dict[int, bytes] = {}
        master: dict[int, bytes] = {}
        quiet_since: float | None = None
        while True:
            self._take_adds(poll, held)
            self._write_master(master)
            if self._stopping:
                now = time.monotonic()
                quiet_since = quiet_since or now
                if not self._reads or now - quiet_since > QUIET:
                    break
            ready = poll.poll(QUIET * 1000 if self._stopping else None)
            for fd, _ in ready:
                if fd == self._wake[0]:
                    with contextlib.suppress(OSError):
                        os.read(fd, 4096)
                elif self._read(fd, poll, held):
                    quiet_since = None
        for fd, rest in held.items():
            if rest:
                write_all(self.sinks[self._reads[fd]].fd, rest + b"\n")

    def _take_adds(self, poll: select.poll, held: dict[int, bytes]) -> None:
        while self._adds:
            read, index = self._adds.popleft()
            self._reads[read] = index
            held[read] = b""
            poll.register(read, select.POLLIN)

    def _write_master(self, master: dict[int, bytes]) -> None:
        """The master's own queued bytes: whole lines, by sink."""
        while self._lines:
            index, data = self._lines.popleft()
            self._done += len(data)
            ready, master[index] = take_lines(master.get(index, b""), data, MASTER_BACKLOG)
            self._emit(index, ready)
        if self._dropped:
            dropped, self._dropped = self._dropped, 0  # a race loses a count, not a line
            text = f"uwsgiapp: log-master: {dropped} of the master's lines dropped: the log "
            index = self._handlers[0][1] if self._handlers else 0  # the error log's
            self._emit(index, (text + "target took none for a while\n").encode())

    def _read(self, fd: int, poll: select.poll, held: dict[int, bytes]) -> bool:
        """Read what a worker's pipe holds and write its whole lines; at its end (the worker
        and what it forked are gone) its last piece too. True if there was data."""
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        index = self._reads[fd]
        if not data:
            rest = held.pop(fd)
            if rest:
                self._emit(index, rest + b"\n")
            poll.unregister(fd)
            del self._reads[fd]
            os.close(fd)
            return False
        ready, held[fd] = take_lines(held[fd], data)
        self._emit(index, ready)
        return True

    def _emit(self, index: int, data: bytes) -> None:
        if not data or index >= len(self.sinks):
            return
        sink = self.sinks[index]
        if write_all(sink.fd, data) or sink.failed:
            return
        sink.failed = True  # said once, until a reopen
        with contextlib.suppress(OSError):
            text = f"uwsgiapp: log-master: cannot write to {sink.path or 'a stream'}; dropping"
            os.write(2, f"{text} its lines\n".encode())
