"""Non-blocking fd I/O with a timeout: the only place the worker waits on a client.

Accepted sockets are switched to non-blocking and used through ``os.read``/``os.write`` on the
raw fd (a Python socket object costs ~2 µs to create per request, and a socket timeout adds a
``poll`` before every call). We ``poll`` only when the kernel says "would block".
"""

from __future__ import annotations

import contextlib
import os
import select
import socket
from collections.abc import Callable
from typing import Final

from uwsgiapp.unpatched import poll

# Defined apart (uwsgiapp.wsgi.errors) so that this module compiles with mypyc.
from uwsgiapp.wsgi.errors import ClientDisconnected as ClientDisconnected
from uwsgiapp.wsgi.errors import ClientTimeout as ClientTimeout

# Bound once (``Final``): compiled, ``os.write(...)`` looks ``write`` up in the module on every
# call.
_read: Final = os.read
_write: Final = os.write

POLLIN: Final = select.POLLIN
POLLOUT: Final = select.POLLOUT


def wait(fd: int, events: int, timeout: float) -> None:
    """Block until ``fd`` is ready for ``events``; raise ClientTimeout after ``timeout``."""
    poller = poll()
    poller.register(fd, events)
    if not poller.poll(timeout * 1000.0):
        reading = events == POLLIN
        what = "read" if reading else "write"
        stalled = ClientTimeout(f"client stalled: {what} timed out after {timeout:g}s")
        stalled.reading = reading
        raise stalled


def readable(fd: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``fd`` to be readable (or closed by the peer)."""
    poller = poll()
    poller.register(fd, POLLIN)
    return bool(poller.poll(timeout * 1000.0))


def read_now(fd: int, size: int) -> bytes | None:
    """Read what is there, never waiting: None if nothing yet, b"" at EOF (ClientDisconnected
    on a socket error)."""
    try:
        return _read(fd, size)
    except BlockingIOError:
        return None
    except OSError as exc:
        raise ClientDisconnected(exc.errno, f"client connection error: {exc.strerror}") from None


def closed_early() -> ClientDisconnected:
    """The error for a client that closed before sending all it promised."""
    return ClientDisconnected("client closed the connection before sending all it promised")


def recv(fd: int, size: int, timeout: float) -> bytes:
    """Read 1..size bytes; raise ClientDisconnected on EOF, timeout or a socket error."""
    while (data := read_now(fd, size)) is None:
        wait(fd, POLLIN, timeout)
    if not data:
        raise closed_early()
    return data


def reader(fd: int, timeout: float) -> Callable[[int], bytes]:
    """A ``wsgi.input`` reader for ``fd``: ``reader(n)`` → 1..n bytes or ClientDisconnected."""

    def read(size: int) -> bytes:
        return recv(fd, size, timeout)

    return read


def send_all(fd: int, data: bytes | memoryview, timeout: float) -> None:
    """Write all of ``data``; raise ClientDisconnected on timeout or a broken connection (its
    ``written`` says how many went before)."""
    try:
        sent = _write(fd, data)
    except BlockingIOError:
        sent = 0
    except OSError as exc:
        raise ClientDisconnected(exc.errno, f"client connection error: {exc.strerror}") from None
    total = len(data)
    if sent == total:
        return
    view = memoryview(data)
    try:
        while sent < total:
            wait(fd, POLLOUT, timeout)
            try:
                sent += _write(fd, view[sent:])
            except BlockingIOError:
                continue
            except OSError as exc:
                raise ClientDisconnected(
                    exc.errno, f"client connection error: {exc.strerror}"
                ) from None
    except ClientDisconnected as exc:  # what went before (as send_file's): the head, maybe
        exc.written = sent
        raise


def send_file(fd: int, file_fd: int, offset: int, count: int, timeout: float) -> int:
    """``os.sendfile`` ``count`` bytes from ``offset``; returns bytes sent (less only at EOF).

    A ClientDisconnected it raises says in ``written`` how many went before the client left.
    """
    sent = 0
    try:
        while sent < count:
            try:
                n = os.sendfile(fd, file_fd, offset + sent, count - sent)
            except BlockingIOError:
                wait(fd, POLLOUT, timeout)
                continue
            except OSError as exc:
                raise ClientDisconnected(
                    exc.errno, f"client connection error: {exc.strerror}"
                ) from None
            if n == 0:
                break
            sent += n
    except ClientDisconnected as exc:
        exc.written = sent
        raise
    return sent


def reset_on_close(fd: int) -> None:
    """Make the close of socket ``fd`` a reset (``SO_LINGER`` 0), not an orderly end: what
    nginx reports as an upstream error. TCP only: a unix socket has no reset."""
    with contextlib.suppress(OSError):
        sock = socket.socket(fileno=fd)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        sock.detach()
