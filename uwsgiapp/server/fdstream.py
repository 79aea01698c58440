"""A log file's text stream with no buffer: each write goes to the file at once, whole, or
fails and keeps nothing for later."""

from __future__ import annotations

import os

__all__ = ["FdTextStream"]


class FdTextStream:
    """The text stream of a log file of ours over its ``fd``: :meth:`write` encodes the text
    and writes all of it, or raises. The buffered stream it replaces kept what a full disk
    refused and wrote it with a later line, out of order, and once more from every worker
    forked meanwhile (a fork copies the buffer): its "dropping its lines" was not so. A line
    a failed write left cut is ended before the next one, as the access log's writer does."""

    def __init__(self, fd: int, encoding: str = "utf-8", errors: str = "backslashreplace") -> None:
        self._fd = fd
        self.encoding = encoding
        self.errors = errors
        self.closed = False
        self._cut = False

    def write(self, text: str) -> int:
        """Write ``text`` whole (an ``OSError`` for what could not be written)."""
        data = text.encode(self.encoding, self.errors)
        if self._cut:
            data = b"\n" + data
        done = 0
        try:
            while done < len(data):
                done += os.write(self._fd, data[done:])
        except OSError:
            self._cut = 0 < done < len(data) or (self._cut and not done)
            raise
        self._cut = False
        return len(text)

    def flush(self) -> None:
        """Nothing is held to flush."""

    def fileno(self) -> int:
        """The file's descriptor (faulthandler's dumps, ``--capture-output`` write to it)."""
        return self._fd

    def isatty(self) -> bool:
        """A log file is no terminal."""
        return False

    def close(self) -> None:
        """Close the descriptor, once."""
        if not self.closed:
            self.closed = True
            os.close(self._fd)
