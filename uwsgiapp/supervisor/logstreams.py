"""The pieces of ``--log-master`` (:mod:`~uwsgiapp.supervisor.logmaster`) that hold no
process state: how a worker's bytes become whole lines, and the streams our log handlers
write to in the master and in a worker."""

from __future__ import annotations

import contextlib
import io
import json
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TextIO

from uwsgiapp.server.logformat import iso_time
from uwsgiapp.server.throttle import WRITE_FAILURE_INTERVAL, Throttle, tell_dropped

__all__ = [
    "LINE_LIMIT",
    "Channel",
    "LineStream",
    "MasterStream",
    "Output",
    "Pipes",
    "RecordStream",
    "Sink",
    "as_records",
    "direct_streams",
    "identity",
    "make_pipes",
    "output_lines",
    "output_name",
    "take_lines",
    "write_all",
]

#: A line is held at most this long (bytes) waiting for its newline; a longer one is written
#: in pieces of this size, each ended with a newline (uWSGI's log-master-bufsize cuts it off).
LINE_LIMIT = 64 * 1024


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


def output_name(std: list[int]) -> str:
    """The name of a worker's output (the fds 1 and 2 of ``std``) in its JSON records."""
    return "stdout" if std == [1] else "stderr" if std == [2] else "output"


#: A worker's output pipe whose lines become JSON records: (its output's name, the pid).
Output = tuple[str, int] | None


def output_lines(lines: bytes, output: Output) -> bytes:
    """Whole lines of a worker's pipe as they are written: as they came (``output`` None),
    else as :func:`as_records` makes them (as they came if that fails: the thread that
    writes every line must not end on one)."""
    if output is None:
        return lines
    try:
        return as_records(lines, stream=output[0], pid=output[1], when=time.time())
    except Exception:
        return lines


def as_records(lines: bytes, *, stream: str, pid: int, when: float) -> bytes:
    """A worker's output (whole lines; ``stream``: :func:`output_name`'s) as the error log's
    JSON records (``--error-log-format json``): a line a record, of logger ``stream`` and
    level INFO (not ERROR for stderr: logging's default handler writes every level there),
    the text its message; a line that is a JSON object already (an app's own JSON logging)
    as it is, a blank one dropped. A line ends at LF alone (a progress bar's CRs keep it
    one line, as the text log does)."""
    moment = iso_time(when)
    out: list[bytes] = []
    for line in lines.split(b"\n"):
        text = line.rstrip(b"\r")
        if _is_json_object(text):
            out.append(text + b"\n")
        elif text.strip():
            message = text.decode("utf-8", "backslashreplace")
            record = {
                "time": moment,
                "level": "INFO",
                "pid": pid,
                "logger": stream,
                "message": message,
            }
            out.append(json.dumps(record, ensure_ascii=False).encode() + b"\n")
    return b"".join(out)


def _is_json_object(text: bytes) -> bool:
    if not (text.startswith(b"{") and text.endswith(b"}")):
        return False
    try:
        return isinstance(json.loads(text), dict)
    except (ValueError, RecursionError):  # a line of 60,000 '[' is no JSON json can read
        return False


#: A worker's pipes: (sink, for fds 1 and 2?, read end, write end).
Pipes = list[tuple[int, bool, int, int]]


def make_pipes(sinks: list[Sink]) -> Pipes:
    """A new worker's pipes: for each sink, one for its fds 1 and 2 if they are it, one for
    our log handlers if they write to it (OSError: none made, the worker cannot be forked)."""
    made: Pipes = []
    try:
        for index, sink in enumerate(sinks):
            for std in (True, False):
                if sink.std if std else sink.ours:
                    made.append((index, std, *os.pipe()))
    except OSError as exc:
        for _, _, read, write in made:
            os.close(read)
            os.close(write)
        # Said as the fork's failure: which descriptors ran out (2 to 4 a worker).
        raise OSError(exc.errno, f"its --log-master pipes: {exc.strerror}") from exc
    return made


def write_all(fd: int, data: bytes) -> None:
    """Write all of ``data`` to ``fd``, blocking as long as it takes (OSError: refused)."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def identity(fd: int) -> tuple[int, int] | None:
    """The open file ``fd`` is (device, inode), or None (not open)."""
    try:
        st = os.fstat(fd)
    except OSError:
        return None
    return st.st_dev, st.st_ino


@dataclass
class Sink:
    """One target the workers write to: the master's own descriptor of it (``fd``, reopened
    onto at USR1 when it is a file at ``path``), the process's streams that are it (``std``:
    fds 1, 2), and whether our log handlers write to it (``ours``)."""

    fd: int
    path: str = ""
    std: list[int] = field(default_factory=list)
    ours: bool = False
    #: Its lines that could not be written: counted, told on stderr now and then.
    failures: Throttle[OSError] | None = None
    _said: bool = False

    def dropped(self, data: bytes, failure: OSError) -> None:
        """``data`` could not be written: said at once, then counted (one line a minute)."""
        if self.failures is None:
            self.failures = Throttle(WRITE_FAILURE_INTERVAL, self._tell)
        self.failures.add(failure, data.count(b"\n") or 1)

    def _tell(self, count: int, failure: OSError) -> None:
        where = f"--log-master's {self.path or 'stream'}"
        tell_dropped(where, count, failure, first=not self._said)
        self._said = True

    def counting(self) -> bool:
        """Lines it dropped wait to be counted in a line (:meth:`tell_due` says them)."""
        return self.failures is not None and self.failures.count > 0

    def tell_due(self, final: bool = False) -> None:
        """Say the dropped lines' count if its time came (``final``: at the end, now)."""
        if self.failures is not None and (final or self.failures.due()):
            self.failures.flush()

    def reopened(self) -> None:
        """Its file was opened again: what was dropped till now is counted, and a new
        failure is said anew."""
        if self.failures is not None:
            self.failures.flush()
        self.failures, self._said = None, False


class MasterStream:
    """A log handler's stream in the master: each write is handed to ``put`` (the thread's
    queue), which never blocks; ``fd`` is the target itself (for faulthandler, and
    ``--capture-output``'s fds 1 and 2 at a reopen)."""

    def __init__(self, put: Callable[[bytes], None], fd: int, name: str) -> None:
        self._put = put
        self._fd = fd
        self.name = f"<log-master {name}>"

    def write(self, text: str) -> int:
        """Hand ``text`` over."""
        self._put(text.encode("utf-8", "backslashreplace"))
        return len(text)

    def flush(self) -> None:
        """Nothing is held here."""

    def fileno(self) -> int:
        """The target's descriptor."""
        return self._fd


class Channel:
    """A worker's pipe for our log records to one sink (``fd``), and the lock its threads
    take to write one record at a time: a write over 4 KiB to a pipe is not kept whole, and
    a small one from another thread could land inside it. Reentrant: a signal handler's
    record (a harakiri's) may come amid a write. ``raw``: the descriptor faulthandler and
    ``--capture-output`` are given (fd 1 or 2 when they are this sink's)."""

    def __init__(self, fd: int, raw: int) -> None:
        self.fd = fd
        self.raw = raw
        self.lock = threading.RLock()
        # A process the app forks from a worker may be copied while a thread holds it.
        os.register_at_fork(after_in_child=self._new_lock)

    def _new_lock(self) -> None:
        self.lock = threading.RLock()


class RecordStream:
    """A log handler's stream in a worker: what the handler writes of a record is written
    at its flush in one go, under the channel's lock."""

    encoding = "utf-8"

    def __init__(self, channel: Channel) -> None:
        self._channel = channel
        self._parts: list[str] = []
        self.name = "<log-master pipe>"

    def write(self, text: str) -> int:
        """Keep ``text`` for the flush."""
        self._parts.append(text)
        return len(text)

    def flush(self) -> None:
        """Write what was kept (OSError: the master is gone)."""
        if not self._parts:
            return
        data = "".join(self._parts).encode(self.encoding, "backslashreplace")
        self._parts.clear()
        with self._channel.lock:
            write_all(self._channel.fd, data)

    def fileno(self) -> int:
        """The descriptor for faulthandler and ``--capture-output`` (never the records')."""
        return self._channel.raw


class LineStream(RecordStream):
    """The access log's stream in a worker. Without a descriptor, its line writer (no lock of
    its own) writes each line through it, decoded as latin-1: encoded back as that, unchanged,
    and written at once under the lock."""

    def write(self, text: str) -> int:
        """Write ``text`` (whole lines)."""
        data = text.encode("latin-1", "backslashreplace")
        with self._channel.lock:
            write_all(self._channel.fd, data)
        return len(text)

    def fileno(self) -> int:
        """None: see the class."""
        raise io.UnsupportedOperation("the access log's lines go through the lock")


def direct_streams(fds: list[int], wanted: set[int]) -> dict[int, TextIO]:
    """A text stream on each of ``fds`` whose index is in ``wanted``; the others closed.

    A stream opened and never used closes its descriptor when it is collected, and says so
    as a ResourceWarning (``python -W error`` printed one at every HUP's trial import).
    """
    streams: dict[int, TextIO] = {}
    for index, fd in enumerate(fds):
        if index in wanted:
            streams[index] = os.fdopen(fd, "w", encoding="utf-8", errors="backslashreplace")
        else:
            with contextlib.suppress(OSError):
                os.close(fd)
    return streams
