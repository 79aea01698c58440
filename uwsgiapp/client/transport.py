"""The exchange: where to connect, and one packet sent and the answer received, under one
overall deadline and a cap on the bytes received (whatever the server does).

Nothing here knows HTTP: :func:`receive` yields the raw bytes as they arrive, and
:mod:`uwsgiapp.client.response` reads them.
"""

from __future__ import annotations

import contextlib
import re
import socket
import time
from collections.abc import Generator
from typing import Final

from uwsgiapp import addresses
from uwsgiapp.addresses import AddressError, SocketAddress

from .errors import ConnectError, ResponseCut, ResponseError, ResponseTimeout, ResponseTooLarge

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "Address",
    "exchange",
    "format_size",
    "parse_address",
    "parse_size",
    "receive",
]

#: The default cap on a whole response received (status line, headers and body).
DEFAULT_MAX_RESPONSE_SIZE: Final = 64 * 1024 * 1024

_SIZE: Final = re.compile(r"\s*([0-9]+)\s*(?:([KMG])(?:I?B)?|B)?\s*", re.IGNORECASE)
_SIZE_UNITS: Final = {"": 1, "K": 1024, "M": 1024**2, "G": 1024**3}


def parse_size(text: str) -> int:
    """A positive byte count: ``1048576``, ``512K``, ``64M``, ``1G`` (units of 1024, as curl's
    ``--max-filesize``; ``64MiB``/``64MB`` are read the same way)."""
    match = _SIZE.fullmatch(text)
    size = int(match[1]) * _SIZE_UNITS[(match[2] or "").upper()] if match else 0
    if size <= 0:
        raise ValueError(f"bad size {text!r} (expected a positive number of bytes, e.g. 64M)")
    return size


def format_size(size: int) -> str:
    """``size`` bytes for a message: ``64 MiB``, ``512 KiB``, or ``1000 bytes``."""
    for unit, factor in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if size >= factor and size % factor == 0:
            return f"{size // factor} {unit}"
    return f"{size} byte{'' if size == 1 else 's'}"


#: Where a uwsgi server listens (the server's own socket address type).
Address = SocketAddress


def parse_address(text: str) -> Address:
    """Parse where to connect: ``host:port``, ``[v6]:port``, ``:port`` (loopback), ``unix:PATH``,
    ``@abstract`` or a unix socket path (the grammar of :mod:`uwsgiapp.addresses`).

    :class:`ValueError` (an :class:`~uwsgiapp.addresses.AddressError`) for anything else,
    including a URL and the server-only ``fd://N``, with a message that says what is wanted.
    """
    address = addresses.parse_address(text)
    if address.is_fd:
        raise AddressError(
            f"{text.strip()!r} is an inherited socket for 'serve'; connect to a unix socket "
            "path or host:port"
        )
    if address.is_tcp:
        if address.port == 0:
            raise AddressError(f"bad socket {text.strip()!r}: cannot connect to port 0")
        if not address.host:
            return Address(host="127.0.0.1", port=address.port)
    return address


class _Deadline:
    """What is left of an overall time budget, applied to a socket before each blocking call."""

    __slots__ = ("end",)

    def __init__(self, seconds: float) -> None:
        self.end = time.monotonic() + seconds

    def apply(self, sock: socket.socket) -> None:
        """Give ``sock``'s next call what remains; raise :class:`TimeoutError` if nothing does."""
        left = self.end - time.monotonic()
        if left <= 0:
            raise TimeoutError
        sock.settimeout(left)


def _connect(address: Address, deadline: _Deadline) -> socket.socket:
    targets: list[tuple[int, str | tuple[str, int]]] = [(socket.AF_UNIX, address.path)]
    if not address.is_unix:
        try:
            infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectError(f"cannot resolve {address.host!r}: {exc}") from None
        # Each address the name has, in turn (localhost may be ::1 first, and the server
        # listen on 127.0.0.1 only), as socket.create_connection tries them.
        targets = [(info[0], (str(info[4][0]), int(info[4][1]))) for info in infos]
    why = ""
    for family, target in targets:
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            deadline.apply(sock)
            sock.connect(target)
        except OSError as exc:
            sock.close()
            why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
            if isinstance(exc, TimeoutError):
                break  # the deadline is spent: no time for the next address
            continue
        return sock
    raise ConnectError(f"cannot connect to {address}: {why}")


def receive(
    address: Address,
    packet: bytes,
    *,
    timeout: float = 10.0,
    limit: int = 0,
    max_size: int = DEFAULT_MAX_RESPONSE_SIZE,
) -> Generator[bytes, None, None]:
    """Connect, send ``packet``, half-close, and yield what the server sends as it arrives,
    until it closes (or ``limit`` bytes when > 0). Closing the generator drops the connection.

    ``timeout`` is the deadline for all of it, from the connect to the last byte
    (:class:`ResponseTimeout` once it passes, however steadily the server trickles, and
    however slowly the caller consumes). More than ``max_size`` bytes received raises
    :class:`ResponseTooLarge` (0: no cap); what was yielded before stays within the cap.
    A reset (or another socket error) once some bytes have come raises :class:`ResponseCut`:
    a server cuts a response it cannot finish that way.
    """
    deadline = _Deadline(timeout)
    received = 0
    unsent: OSError | None = None
    with _connect(address, deadline) as sock:
        try:
            deadline.apply(sock)
            unsent = _send(sock, packet)
            while not limit or received < limit:
                want = 65536 if not limit else min(65536, limit - received)
                if max_size:
                    want = min(want, max_size + 1 - received)  # one past the cap tells
                deadline.apply(sock)
                chunk = sock.recv(want)
                if not chunk:
                    break
                received += len(chunk)
                if max_size and received > max_size:
                    raise ResponseTooLarge(
                        f"the response from {address} is larger than {format_size(max_size)}"
                        f" (stopped reading after {received} bytes)",
                        limit=max_size,
                    )
                yield chunk
        except TimeoutError:
            raise ResponseTimeout(
                f"no complete answer from {address} within {timeout:g}s ({received} bytes received)"
            ) from None
        except OSError as exc:
            if not received:
                raise ResponseError(f"connection to {address} failed: {unsent or exc}") from None
            # Whether what came is nonetheless whole is for the reader of the answer to say.
            raise _cut(exc, received) from None
    if unsent is not None and not received:
        raise ResponseError(f"connection to {address} failed: {unsent}")


def _send(sock: socket.socket, packet: bytes) -> OSError | None:
    """Send ``packet`` and half-close; the error that stopped the send, if any. A server may
    answer before it has read the whole body (a 413 to a large upload) and close: its answer
    waits to be read, as nginx reads it."""
    try:
        sock.sendall(packet)  # the timeout bounds the whole sendall, not each send
    except TimeoutError:
        raise
    except OSError as exc:
        return exc
    with contextlib.suppress(OSError):  # the server may already have answered and closed
        sock.shutdown(socket.SHUT_WR)
    return None


def _cut(exc: OSError, received: int) -> ResponseCut:
    """The error for a connection that failed after ``received`` bytes had arrived."""
    if isinstance(exc, ConnectionResetError):
        return ResponseCut(f"connection reset after {received} bytes", received=received)
    why = exc.strerror or str(exc)
    return ResponseCut(f"connection failed after {received} bytes: {why}", received=received)


def exchange(
    address: Address,
    packet: bytes,
    *,
    timeout: float = 10.0,
    limit: int = 0,
    max_size: int = DEFAULT_MAX_RESPONSE_SIZE,
) -> bytes:
    """Everything :func:`receive` yields, joined (the same deadline and cap)."""
    return b"".join(receive(address, packet, timeout=timeout, limit=limit, max_size=max_size))
