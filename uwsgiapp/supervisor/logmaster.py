"""``--log-master``: the master alone writes the log lines, whole, whatever their size.

Without it every worker writes its lines straight into the shared target. A pipe (Docker's
``docker logs``, the journal, ``| tee``) keeps a write whole only up to 4 KiB (PIPE_BUF): two
workers writing 10 KB JSON records at once had them interleaved, and the collector read two
broken records. With it, each target the workers write to (the process's stdout and stderr,
the error log file, the access log file: one *sink* per open file, however many names it has)
gets pipes per worker, made before the fork: one that takes the place of fds 1 and 2 when they
are that target (the app's prints and logging, C code, the programs it runs), one for our log
handlers (the error log's records, the access log's lines), which a worker's threads write a
record at a time. One thread of the master reads the pipes and writes whole lines to the
real targets, so that no line mixes with another; under ``--error-log-format json``, a line of
fds 1 and 2 is written as a JSON record (:func:`~uwsgiapp.supervisor.logstreams.as_records`).

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
import time
import warnings
from typing import Any

from uwsgiapp import unpatched
from uwsgiapp.config import Config
from uwsgiapp.logtargets import FUNNELED, moved
from uwsgiapp.server.logs import access_handler, arm_fault_dumps, reopen_failed
from uwsgiapp.server.safefiles import open_append
from uwsgiapp.supervisor.logstreams import (
    Channel,
    LineStream,
    MasterStream,
    Output,
    Pipes,
    RecordStream,
    Sink,
    direct_streams,
    identity,
    make_pipes,
    output_lines,
    output_name,
    take_lines,
    write_all,
)
from uwsgiapp.supervisor.rootpaths import access_log_file
from uwsgiapp.unpatched import OsThread, sleep

__all__ = ["MASTER_BACKLOG", "LogMaster"]

log = logging.getLogger("uwsgiapp.error")

#: The most of the master's own lines (bytes) held while the target does not take them;
#: further lines are dropped and counted.
MASTER_BACKLOG = 4 * 1024 * 1024
#: Seconds the stop waits for the lines still held to be written (a target that takes none).
STOP_WAIT = 5.0
#: Seconds without data that end the stop's reading (the workers are gone by then).
QUIET = 0.05
READ_SIZE = 65536
#: Seconds between the thread's looks at a count of dropped lines that is due (when idle).
COUNT_TICK = 5.0
#: Seconds the thread waits after a wake-up that found lines, for more to come.
BATCH = 0.001
_ACCESS = "uwsgiapp.access"


class LogMaster:
    """The master's funnel of the workers' log lines; made inert (no sink: every method does
    nothing), :meth:`start` turns it on."""

    def __init__(self) -> None:
        self.sinks: list[Sink] = []
        #: Our log handlers it took over: (handler, its sink, the process stream it wrote to
        #: or "", whether it is the access log's).
        self._handlers: list[tuple[logging.StreamHandler[Any], int, Any, bool]] = []
        #: What the main thread hands the thread: (read end, sink) of a new worker's pipes,
        #: and the master's own bytes (sink, data).
        self._adds: collections.deque[tuple[int, int, Output]] = collections.deque()
        self._lines: collections.deque[tuple[int, bytes]] = collections.deque()
        # Bytes queued and written, lines dropped and told: each written by one thread only.
        self._put = self._done = self._dropped = self._told = 0
        self._pending: Pipes = []  # the next worker's
        self._reads: dict[int, int] = {}  # the thread's: read end → sink
        self._outputs: dict[int, Output] = {}  # and → its output as JSON records, if so
        self._json = False
        #: Read ends at their end, closed by the main thread: closed by the thread, their
        #: numbers were reused amid a HUP's re-import, which took a new connection for one
        #: open before it (and did not name it).
        self._ended: collections.deque[int] = collections.deque()
        self._wake = (-1, -1)
        self._stopping = False
        self._thread: OsThread | None = None

    @classmethod
    def serving(cls, config: Config) -> LogMaster:
        """Started for ``--log-master``, else inert; a context that stops it at its end."""
        funnel = cls()
        if config.log_master:
            access = None if config.access_log == "off" else access_log_file(config)
            funnel.start(access, json_output=config.error_log_format == "json")
        return funnel

    def __enter__(self) -> LogMaster:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the master's main thread ------------------------------------------------------------

    def start(self, access: str | None = None, *, json_output: bool = False) -> LogMaster:
        """Take over our log handlers (the access log's for ``access``, made now if it is a
        stream of the process) and the process's stdout and stderr (each distinct open file
        once), and start the thread. ``json_output``: the workers' output (the app's prints,
        what C code writes) is written as JSON records (``--error-log-format json``)."""
        self._json = json_output
        if access is not None:
            access_handler(access)
        by_identity: dict[tuple[int, int], int] = {}

        def sink_of(fd: int, path: str = "") -> int | None:
            ident = identity(fd)
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
        for name in ("uwsgiapp", _ACCESS):
            for handler in logging.getLogger(name).handlers:
                stream = getattr(handler, "stream", None)
                if not isinstance(handler, logging.StreamHandler) or stream is None:
                    continue
                path = getattr(handler, "baseFilename", "")
                with contextlib.suppress(OSError, ValueError, AttributeError):
                    index = sink_of(stream.fileno(), path)
                    if index is not None:
                        self._take(handler, index, "" if path else stream, name == _ACCESS)
        arm_fault_dumps()  # not to a descriptor _take closed
        # Python 3.12+ warns at a fork of a process with threads: this one's holds nothing a
        # fork copies (those the app's import started are named at start-up and each HUP).
        warnings.filterwarnings("ignore", r"This process .* is multi-threaded", DeprecationWarning)
        self._wake = os.pipe()
        for fd in self._wake:
            os.set_blocking(fd, False)
        self._thread = OsThread("log-master", self._run)
        os.register_at_fork(after_in_child=self._in_child)
        return self

    def _take(
        self, handler: logging.StreamHandler[Any], index: int, std: Any, access: bool
    ) -> None:
        """``handler`` writes through the thread from now on (``std``: the process stream it
        wrote to, else "": its file, which the sink holds now)."""
        sink = self.sinks[index]
        sink.ours = True
        handler.acquire()
        try:
            old = handler.stream
            handler.stream = MasterStream(
                lambda data: self.put(index, data), sink.fd, sink.path or "stream"
            )
        finally:
            handler.release()
        if not std:
            with contextlib.suppress(OSError):
                old.close()
        self._handlers.append((handler, index, std, access))
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
        while self._ended:
            os.close(self._ended.popleft())
        self._pending = make_pipes(self.sinks)

    def after_fork(self, pid: int) -> None:
        """In the master, after the fork of worker ``pid`` (0: it failed): its pipes' write
        ends are the worker's alone; the read ends go to the thread."""
        pipes, self._pending = self._pending, []
        for index, std, read, write in pipes:
            os.close(write)
            if pid:
                os.set_blocking(read, False)
                output = (output_name(self.sinks[index].std), pid) if std and self._json else None
                self._adds.append((read, index, output))
            else:
                os.close(read)
        if pipes and pid:
            self._poke()

    def _in_child(self) -> None:
        """In a new worker (its pipes made): fds 1 and 2 and our log handlers write to its
        pipes. In another process forked here (the app's, as it imports at a HUP), the log
        handlers write to the targets themselves. Either closes the master's descriptors."""
        pipes, self._pending = self._pending, []
        if self._thread is None:
            return
        self._thread = None
        theirs = [*self._wake, *self._reads, *self._ended, *(fd for fd, _, _ in self._adds)]
        theirs += [read for _, _, read, _ in pipes]
        if pipes:
            theirs += [sink.fd for sink in self.sinks]
        for fd in theirs:
            with contextlib.suppress(OSError):
                os.close(fd)
        if pipes:
            self._to_pipes(pipes)
        else:
            used = {index for _, index, std, _ in self._handlers if not std}
            direct = direct_streams([sink.fd for sink in self.sinks], used)
            for handler, index, std, _ in self._handlers:
                handler.stream = std or direct[index]
                FUNNELED.discard(handler)
        self.sinks, self._handlers = [], []
        self._reads.clear()
        self._outputs.clear()
        self._adds.clear()
        self._lines.clear()
        arm_fault_dumps()  # off the master's descriptor (a worker's dump file comes after)

    def _to_pipes(self, pipes: Pipes) -> None:
        channels: dict[int, Channel] = {}
        for index, std, _, write in pipes:
            sink = self.sinks[index]
            if std:
                for fd in sink.std:
                    os.dup2(write, fd)
                os.close(write)
            else:
                channels[index] = Channel(write, sink.std[0] if sink.std else write)
        for handler, index, _, access in self._handlers:
            handler.stream = (LineStream if access else RecordStream)(channels[index])

    def reopen(self, moved_only: bool) -> bool | None:
        """USR1 (or, ``moved_only``, a HUP's): open the sinks' files again by path, onto the
        descriptors the thread writes to; True if one was, None if none was to be, False if one
        could not be (:func:`~uwsgiapp.server.logs.reopen_failed`: its sink keeps the old file)."""
        done: bool | None = None
        for sink in self.sinks:
            if not sink.path or (moved_only and not moved(sink.path, sink.fd)):
                continue
            try:
                fd = open_append(sink.path)
            except OSError as exc:
                done = reopen_failed(sink.path, exc)
                continue
            os.dup2(fd, sink.fd, inheritable=False)
            os.close(fd)
            sink.reopened()
            done = done is not False
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
        for handler, index, std, _ in self._handlers:
            FUNNELED.discard(handler)
            if std:
                handler.stream = std
            else:
                sink = os.dup(self.sinks[index].fd)
                handler.stream = os.fdopen(sink, "a", encoding="utf-8", errors="backslashreplace")
        self._handlers = []

    # -- the thread ---------------------------------------------------------------------------

    def _run(self) -> None:
        poll = unpatched.poll()
        poll.register(self._wake[0], select.POLLIN)
        held: dict[int, bytes] = {}
        master: dict[int, bytes] = {}
        quiet_since: float | None = None
        while True:
            self._take_adds(poll, held)
            # The workers' pipes first: a worker's last lines, written before it exited, come
            # before the master's line about its exit.
            wait = 0 if self._lines else QUIET * 1000 if self._stopping else None
            if wait is None and any(sink.counting() for sink in self.sinks):
                wait = COUNT_TICK * 1000  # a count of dropped lines is due in a while
            out: dict[int, list[bytes]] = {}
            for fd, _ in poll.poll(wait):
                if fd == self._wake[0]:
                    with contextlib.suppress(OSError):
                        unpatched.read(fd, 4096)
                elif self._read(fd, poll, held, out):
                    quiet_since = None
            for index, parts in out.items():
                self._emit(index, b"".join(parts))  # whole lines: one write for them all
            self._write_master(master)
            for sink in self.sinks:
                sink.tell_due()
            if out and not self._stopping:
                # Under load, a wake-up (poll, read, write) a line cost 7 µs: the lines of a
                # millisecond go out together instead.
                sleep(BATCH)
            if self._stopping:
                now = time.monotonic()
                quiet_since = quiet_since or now
                if not self._reads or now - quiet_since > QUIET:
                    break
        for fd, rest in held.items():
            if rest:
                self._emit(self._reads[fd], output_lines(rest + b"\n", self._outputs.get(fd)))
        for sink in self.sinks:
            sink.tell_due(final=True)

    def _take_adds(self, poll: select.poll, held: dict[int, bytes]) -> None:
        while self._adds:
            read, index, self._outputs[read] = self._adds.popleft()
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
        if self._dropped > self._told:
            dropped = self._dropped - self._told
            self._told += dropped
            text = f"uwsgiapp: log-master: {dropped} of the master's lines dropped: the log "
            index = self._handlers[0][1] if self._handlers else 0  # the error log's
            self._emit(index, (text + "target took none for a while\n").encode())

    def _read(
        self, fd: int, poll: select.poll, held: dict[int, bytes], out: dict[int, list[bytes]]
    ) -> bool:
        """Read what a worker's pipe holds and put its whole lines in ``out`` (by sink); at
        its end (the worker and what it forked are gone) its last piece too. True if there
        was data."""
        try:
            data = unpatched.read(fd, READ_SIZE)
        except BlockingIOError:
            return False
        except OSError:
            data = b""
        index = self._reads[fd]
        if not data:
            rest = held.pop(fd)
            if rest:
                out.setdefault(index, []).append(output_lines(rest + b"\n", self._outputs.get(fd)))
            poll.unregister(fd)
            del self._reads[fd], self._outputs[fd]
            self._ended.append(fd)
            return False
        ready, held[fd] = take_lines(held[fd], data)
        if ready:
            out.setdefault(index, []).append(output_lines(ready, self._outputs.get(fd)))
        return True

    def _emit(self, index: int, data: bytes) -> None:
        if not data:
            return
        sink = self.sinks[index]
        try:
            write_all(sink.fd, data)
        except OSError as exc:
            sink.dropped(data, exc)
