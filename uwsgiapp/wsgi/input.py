"""``wsgi.input``: the request body, bounded by ``CONTENT_LENGTH`` (the only framing uwsgi has)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

#: Reads from the connection: returns 1..n bytes; raises :class:`ClientDisconnected` on EOF,
#: timeout or a socket error.
Reader = Callable[[int], bytes]

CHUNK = 65536


class ClientDisconnected(OSError):
    """The client (nginx) went away or stalled past ``--socket-timeout`` mid-body.

    An ``OSError`` so apps that already handle I/O errors handle it; the server logs it as one
    line, never as an app traceback.
    """


class InputStream:
    """A file-like body reader that returns EOF after exactly ``length`` bytes.

    ``prefix`` holds body bytes that arrived with the packet head; the rest is pulled from
    ``reader`` on demand. A client that sends less than promised makes reads raise
    :class:`ClientDisconnected` (after the server's socket timeout), never hang or return short.
    """

    __slots__ = ("_buf", "_reader", "remaining")

    def __init__(self, reader: Reader, prefix: bytes, length: int) -> None:
        self._reader = reader
        self._buf = prefix[:length]
        #: Body bytes still on the socket (what the server must drain if the app leaves them).
        self.remaining = length - len(self._buf)

    def _fill(self, want: int) -> bool:
        """Pull at least one more chunk into the buffer; False at EOF of the body."""
        if self.remaining <= 0:
            return False
        data = self._reader(min(max(want, CHUNK), self.remaining))
        self.remaining -= len(data)
        self._buf += data
        return True

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes (all that is left when ``size`` is None or negative)."""
        buf = self._buf
        if size is None or size < 0:
            size = len(buf) + self.remaining
        if len(buf) < size and self.remaining > 0:
            parts = [buf]
            have = len(buf)
            while have < size and self.remaining > 0:
                data = self._reader(min(max(size - have, CHUNK), self.remaining))
                self.remaining -= len(data)
                parts.append(data)
                have += len(data)
            buf = b"".join(parts)
        self._buf = buf[size:]
        return buf[:size]

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (up to and including ``\\n``), at most ``size`` bytes when given."""
        limit = -1 if size is None else size
        start = 0
        while True:
            end = self._buf.find(b"\n", start)
            if end >= 0:
                cut = end + 1
                break
            if 0 <= limit <= len(self._buf):
                cut = limit
                break
            start = len(self._buf)
            if not self._fill(limit - start if limit >= 0 else CHUNK):
                cut = len(self._buf)
                break
        if 0 <= limit < cut:
            cut = limit
        line, self._buf = self._buf[:cut], self._buf[cut:]
        return line

    def readlines(self, hint: int = -1) -> list[bytes]:
        """Read lines until EOF, or until about ``hint`` bytes when ``hint`` > 0."""
        lines: list[bytes] = []
        total = 0
        while True:
            line = self.readline()
            if not line:
                return lines
            lines.append(line)
            total += len(line)
            if 0 < hint <= total:
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


class _EmptyInput(InputStream):
    """The body of every request without one: stateless, so one instance serves them all."""

    __slots__ = ()

    def __init__(self) -> None:
        super().__init__(_never_read, b"", 0)

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""


def _never_read(n: int) -> bytes:
    raise AssertionError("the empty input never reads")


EMPTY_INPUT: InputStream = _EmptyInput()
