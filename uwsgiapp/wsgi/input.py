"""``wsgi.input``: the request body, bounded by ``CONTENT_LENGTH`` (the only framing uwsgi has)."""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator

# Defined apart (uwsgiapp.wsgi.errors) so that this module compiles with mypyc.
from uwsgiapp.wsgi.errors import ClientDisconnected as ClientDisconnected

#: Reads from the connection: returns 1..n bytes; raises :class:`ClientDisconnected` on EOF,
#: timeout or a socket error.
Reader = Callable[[int], bytes]

CHUNK = 65536
#: The most one read asks of the connection: a read buffer is allocated at the size asked for,
#: so ``read(n)`` with a hostile CONTENT_LENGTH (no limit-post) must not ask for ``n`` at once.
MAX_PULL = 16 * CHUNK


class InputStream:
    """A file-like body reader that returns EOF after exactly ``length`` bytes.

    ``prefix`` holds body bytes that arrived with the packet head; the rest is pulled from
    ``reader`` on demand. A client that sends less than promised makes reads raise
    :class:`ClientDisconnected` (after the server's socket timeout), never hang or return short;
    after that the stream keeps that ``failure`` and raises again without waiting a second time.
    Each such exception is marked ``from_body``: the server tells a failure the app let through
    from one it caught and went on from.
    """

    # The buffer is consumed by moving ``_pos``, never by slicing off the front: a copy of the
    # rest of the buffer per readline() made iterating over short lines quadratic.
    __slots__ = ("_buf", "_pos", "_reader", "failure", "remaining")

    def __init__(self, reader: Reader, prefix: bytes, length: int) -> None:
        self._reader = reader
        self._buf = prefix[:length] if len(prefix) > length else prefix
        self._pos = 0
        #: Body bytes still on the socket (what the server must drain if the app leaves them).
        self.remaining = length - len(self._buf)
        #: What the reader failed with (client gone or stalled): nothing more will come.
        self.failure: ClientDisconnected | None = None

    def _pull(self, want: int) -> bytes:
        """One read from the connection: 1..max(want, CHUNK) bytes (at most MAX_PULL), never
        past the body."""
        if self.failure is not None:
            again = ClientDisconnected("the request body was already cut short (client gone)")
            again.from_body = True
            raise again
        try:
            data = self._reader(min(max(want, CHUNK), self.remaining, MAX_PULL))
        except ClientDisconnected as exc:
            exc.from_body = True
            self.failure = exc
            raise
        self.remaining -= len(data)
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when ``size`` is None or negative)."""
        buf = self._buf
        pos = self._pos
        avail = len(buf) - pos
        if size is None or size < 0:
            size = avail + self.remaining
        if size <= avail:
            self._pos = pos + size
            return buf[pos : pos + size]
        if avail == 0:
            self._buf = b""
            if self.remaining <= 0:
                return b""
            # Nothing buffered: a pull that brings all asked for is returned as it came.
            data = self._pull(size)
            if len(data) >= size:
                if len(data) > size:
                    self._buf, self._pos = data, size
                    return data[:size]
                return data
            return self._read_more(size, data)
        return self._read_more(size, buf[pos:])

    def _read_more(self, size: int, first: bytes) -> bytes:
        """Pull until ``size`` bytes (``first`` included) or the end of the body.

        The pieces go into a BytesIO, whose ``getvalue()`` hands over its own buffer: a join
        of the pieces held them and their copy at once (twice the body, 2 GB for a 1 GB
        ``read()``).
        """
        acc = io.BytesIO()
        acc.write(first)
        have = len(first)
        self._buf, self._pos = b"", 0
        try:
            while have < size and self.remaining > 0:
                data = self._pull(size - have)
                need = size - have
                if len(data) > need:  # the last pull may bring more than asked: keep the rest
                    acc.write(memoryview(data)[:need])
                    self._buf, self._pos = data, need
                    break
                acc.write(data)
                have += len(data)
        except ClientDisconnected:
            self._buf = acc.getvalue()  # keep what arrived; the next read raises again
            raise
        return acc.getvalue()

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (up to and including ``\\n``), at most ``size`` bytes when given."""
        buf = self._buf
        pos = self._pos
        if size is None or size < 0:
            size = -1
            nl = buf.find(b"\n", pos)
        else:
            nl = buf.find(b"\n", pos, pos + size)
            if nl < 0 and pos + size <= len(buf):
                self._pos = pos + size
                return buf[pos : pos + size]
        if nl >= 0:
            self._pos = nl + 1
            return buf[pos : nl + 1]
        if self.remaining <= 0:
            self._pos = len(buf)
            return buf[pos:]
        return self._readline_more(size)

    def _readline_more(self, size: int) -> bytes:
        """The line goes past the buffer: pull until a newline, ``size`` bytes, or the end
        (into a BytesIO, as in :meth:`_read_more`: a long line is held once)."""
        acc = io.BytesIO()
        have = acc.write(self._buf[self._pos :])
        self._buf, self._pos = b"", 0
        try:
            while self.remaining > 0:
                data = self._pull(size - have if size >= 0 else CHUNK)
                end = len(data) if size < 0 else min(len(data), size - have)
                nl = data.find(b"\n", 0, end)
                if nl >= 0 or have + end == size:
                    if nl >= 0:
                        end = nl + 1
                    acc.write(memoryview(data)[:end])
                    self._buf, self._pos = data, end
                    break
                have += acc.write(data)
        except ClientDisconnected:
            self._buf = acc.getvalue()
            raise
        return acc.getvalue()

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Read lines until EOF, or until about ``hint`` bytes when ``hint`` > 0."""
        lines: list[bytes] = []
        total = 0
        limit = hint if hint is not None and hint > 0 else -1
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < limit <= total:
                return lines

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        line = self.readline()
        if not line:
            raise StopIteration
        return line

    def close(self) -> None:
        """Nothing to release; the server owns the connection."""

    def end(self) -> None:
        """The request is over and its connection about to close: a later read (an app's
        thread) gets what was already buffered, then :class:`ClientDisconnected`, and never
        reads the descriptor again, which the next request's connection may have by then."""
        self._reader = _request_ended


class _EmptyInput(InputStream):
    """The body of every request without one: stateless, so one instance serves them all."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(_never_read, b"", 0)

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""


def _request_ended(n: int) -> bytes:
    raise ClientDisconnected(
        "wsgi.input read after its request ended: read the body before the response is "
        "done, or use --post-buffering"
    )


def _never_read(n: int) -> bytes:
    raise AssertionError("the empty input never reads")


EMPTY_INPUT: InputStream = _EmptyInput()
