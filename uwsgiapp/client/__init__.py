"""A small uwsgi client: one request or one ping, straight to a uwsgi socket.

Used by ``uwsgiapp request`` and ``uwsgiapp ping`` (debugging and health checks) and by tests.
It builds the vars the way nginx does (``PATH_INFO`` decoded, ``CONTENT_LENGTH`` set, headers as
``HTTP_*``), sends one packet and reads the raw HTTP response until the server closes: whole
(:func:`request`), or the head first and then the body as it arrives (:func:`stream_request`).

Both are bounded, whatever the server does: ``timeout`` is one overall deadline for connecting,
sending and reading (a server trickling a byte at a time cannot extend it), and ``max_size``
caps the bytes received (a server that never stops sending cannot go on for ever, nor exhaust
the memory of a caller that keeps the whole response).
"""

from __future__ import annotations

import contextlib
import dataclasses
import re
import socket
import time
import urllib.parse
from collections.abc import Generator, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Final

import uwsgiproto
from uwsgiapp import addresses
from uwsgiapp.addresses import AddressError, SocketAddress

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "Address",
    "ClientError",
    "ConnectError",
    "Response",
    "ResponseError",
    "ResponseStream",
    "ResponseTimeout",
    "ResponseTooLarge",
    "build_vars",
    "exchange",
    "format_size",
    "parse_address",
    "parse_response",
    "parse_size",
    "ping",
    "receive",
    "request",
    "stream_request",
]


class ClientError(Exception):
    """Talking to the server failed."""


class ConnectError(ClientError):
    """Could not connect (no such socket, refused, timed out connecting)."""


class ResponseError(ClientError):
    """Connected, but the answer was missing, late, or not HTTP / not a pong."""


class ResponseTimeout(ResponseError):
    """The overall deadline passed before the server finished answering."""


class ResponseTooLarge(ResponseError):
    """The server sent more than the response size cap allows."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


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


@dataclass(frozen=True, slots=True, kw_only=True)
class Response:
    """A parsed HTTP response as sent over uwsgi: everything up to the close."""

    status: int
    reason: str
    protocol: str
    headers: tuple[tuple[str, str], ...] = ()
    head: bytes = b""
    """The status line and headers exactly as received, with the blank line."""
    body: bytes = b""

    def header(self, name: str, default: str | None = None) -> str | None:
        """The first header called ``name`` (case-insensitive)."""
        lower = name.lower()
        return next((v for k, v in self.headers if k.lower() == lower), default)


def _head_length(raw: bytes) -> int:
    """Where the head ends in ``raw`` (after its first blank line, CRLF or bare LF); -1 if it
    has not ended yet."""
    ends = [i + len(sep) for sep in (b"\r\n\r\n", b"\n\n") if (i := raw.find(sep)) >= 0]
    return min(ends, default=-1)


def _parse_head(head: bytes) -> Response:
    """The status line and headers of a complete head; :class:`ResponseError` if not HTTP."""
    lines = head.decode("latin-1").splitlines()
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
        raise ResponseError(f"not an HTTP status line: {lines[0][:80]!r}")
    headers: list[tuple[str, str]] = []
    for line in lines[1:]:
        if not line:
            continue
        name, colon, value = line.partition(":")
        if not colon:
            raise ResponseError(f"malformed header line: {line[:80]!r}")
        headers.append((name.strip(), value.strip()))
    return Response(
        status=int(parts[1]),
        reason=parts[2] if len(parts) > 2 else "",
        protocol=parts[0],
        headers=tuple(headers),
        head=head,
    )


def _content_length(response: Response) -> int | None:
    length = response.header("Content-Length")
    return int(length) if length is not None and length.isdigit() else None


def _check_complete(response: Response, body_size: int) -> None:
    length = _content_length(response)
    if length is not None and body_size < length:
        raise ResponseError(f"truncated body: got {body_size} of {length} bytes")


def _no_head(raw: bytes) -> ResponseError:
    """What to say when the server closed before its head ended."""
    if not raw:
        return ResponseError("the server closed the connection without answering")
    return ResponseError(f"incomplete response head ({len(raw)} bytes): {raw[:80]!r}")


def parse_response(raw: bytes) -> Response:
    """Split a raw response into status, headers and body; :class:`ResponseError` if not HTTP."""
    end = _head_length(raw)
    if end < 0:
        raise _no_head(raw)
    response = _parse_head(raw[:end])
    _check_complete(response, len(raw) - end)
    return dataclasses.replace(response, body=raw[end:])


def build_vars(
    path: str = "/",
    *,
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    address: Address | None = None,
    remote_addr: str = "127.0.0.1",
    extra: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The vars nginx would send for this request.

    ``path`` is the request target as typed (``/a%20b?x=1``; non-ASCII is percent-encoded as
    UTF-8). Headers become ``HTTP_<NAME>`` (dashes to underscores, upper-case) except
    Content-Type / Content-Length, which become ``CONTENT_TYPE`` / ``CONTENT_LENGTH`` (the latter
    the real body length, or empty when ``body`` is None, as nginx sends it). Repeated headers
    are joined with ``", "`` (``"; "`` for Cookie). ``extra`` vars come last and override.
    """
    if not path.startswith("/") and path != "*":
        path = "/" + path
    # Percent-encode anything that cannot travel as-is (spaces, non-ASCII) but keep the
    # escapes and reserved characters the user typed.
    target = urllib.parse.quote(path, safe="/%?=&;:@!$'()*+,~#[]")
    target = target.partition("#")[0]
    raw_path, _, query = target.partition("?")
    path_info = urllib.parse.unquote_to_bytes(raw_path).decode("latin-1")

    content_type = ""
    joined: dict[str, str] = {}
    for name, value in headers:
        key = name.strip().upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            content_type = value
            continue
        if key == "CONTENT_LENGTH":
            continue  # always the real body length below
        key = "HTTP_" + key
        if key in joined:
            joined[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            joined[key] = value

    if address is not None and not address.is_unix:
        server_name, server_port = address.host, str(address.port)
    else:
        server_name, server_port = "localhost", "80"
    host = joined.setdefault("HTTP_HOST", server_name)
    hostname, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    if hostname:
        server_name = hostname
        server_port = port if port.isdigit() else server_port

    pairs: dict[str, str] = {
        "QUERY_STRING": query,
        "REQUEST_METHOD": method.upper(),
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": "" if body is None else str(len(body)),
        "REQUEST_URI": target,
        "PATH_INFO": path_info,
        "DOCUMENT_ROOT": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_SCHEME": "http",
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": "0",
        "SERVER_PORT": server_port,
        "SERVER_NAME": server_name,
    }
    pairs.update(joined)
    pairs.update(extra)
    return list(pairs.items())


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
    family = socket.AF_UNIX if address.is_unix else socket.AF_INET
    target: str | tuple[str, int] = address.path
    if not address.is_unix:
        try:
            infos = socket.getaddrinfo(address.host, address.port, type=socket.SOCK_STREAM)
        except OSError as exc:
            raise ConnectError(f"cannot resolve {address.host!r}: {exc}") from None
        family, _, _, _, sockaddr = infos[0]
        target = (str(sockaddr[0]), int(sockaddr[1]))
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        deadline.apply(sock)
        sock.connect(target)
    except OSError as exc:
        sock.close()
        why = "timed out" if isinstance(exc, TimeoutError) else (exc.strerror or str(exc))
        raise ConnectError(f"cannot connect to {address}: {why}") from None
    return sock


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
    """
    deadline = _Deadline(timeout)
    received = 0
    with _connect(address, deadline) as sock:
        try:
            deadline.apply(sock)
            sock.sendall(packet)  # the timeout bounds the whole sendall, not each send
            # The server may already have answered and closed.
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_WR)
            while not limit or received < limit:
                want = 65536
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
                raise ResponseError(f"connection to {address} failed: {exc}") from None
            # A reset after the answer (unread data) still leaves a usable response.


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


class ResponseStream:
    """A response whose head has arrived: :attr:`response` (status and headers, no body), and
    the body as it arrives when iterated, under the request's deadline and size cap.

    Iterating raises :class:`ResponseError` at the end of a body shorter than its
    Content-Length (and what :func:`receive` raises on the way). Use it in a ``with`` block,
    or :meth:`close` it, to drop the connection without reading the rest.
    """

    def __init__(self, response: Response, first: bytes, rest: Generator[bytes, None, None]):
        self.response = response
        self._first = first
        self._rest = rest

    def __iter__(self) -> Iterator[bytes]:
        size = len(self._first)
        if self._first:
            yield self._first
        for chunk in self._rest:
            size += len(chunk)
            yield chunk
        _check_complete(self.response, size)

    def close(self) -> None:
        """Drop the connection (nothing more is read)."""
        self._rest.close()

    def __enter__(self) -> ResponseStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _build_packet(
    address: Address,
    path: str,
    *,
    method: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | None,
    modifier1: int,
    modifier2: int,
    extra: Sequence[tuple[str, str]],
) -> bytes:
    pairs = build_vars(
        path, method=method, headers=headers, body=body, address=address, extra=extra
    )
    try:
        return uwsgiproto.build_request(pairs, body or b"", modifier1, modifier2)
    except uwsgiproto.EncodeError as exc:
        raise ClientError(f"cannot encode the request: {exc}") from None


def stream_request(
    address: Address,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    modifier1: int = 0,
    modifier2: int = 0,
    extra: Sequence[tuple[str, str]] = (),
    timeout: float = 10.0,
    max_size: int = DEFAULT_MAX_RESPONSE_SIZE,
) -> ResponseStream:
    """Send one request and return as soon as the response's head has arrived; the body is
    read as the returned :class:`ResponseStream` is iterated (raises :class:`ClientError`).

    ``timeout`` and ``max_size`` bound the whole exchange, body included (see
    :func:`receive`); a Content-Length over ``max_size`` is refused before any body is read.
    """
    packet = _build_packet(
        address,
        path,
        method=method,
        headers=headers,
        body=body,
        modifier1=modifier1,
        modifier2=modifier2,
        extra=extra,
    )
    chunks = receive(address, packet, timeout=timeout, max_size=max_size)
    try:
        raw = b""
        while (end := _head_length(raw)) < 0:
            chunk = next(chunks, b"")
            if not chunk:
                raise _no_head(raw)
            raw += chunk
        response = _parse_head(raw[:end])
        length = _content_length(response)
        if max_size and length is not None and end + length > max_size:
            raise ResponseTooLarge(
                f"the response from {address} is larger than {format_size(max_size)}"
                f" (Content-Length: {length})",
                limit=max_size,
            )
    except BaseException:
        chunks.close()
        raise
    return ResponseStream(response, raw[end:], chunks)


def request(
    address: Address,
    path: str = "/",
    *,
    method: str = "GET",
    headers: Sequence[tuple[str, str]] = (),
    body: bytes | None = None,
    modifier1: int = 0,
    modifier2: int = 0,
    extra: Sequence[tuple[str, str]] = (),
    timeout: float = 10.0,
    max_size: int = DEFAULT_MAX_RESPONSE_SIZE,
) -> Response:
    """Send one request and read the whole answer (raises :class:`ClientError`).

    ``timeout`` is the overall deadline in seconds and ``max_size`` the cap on the whole
    response in bytes (see :func:`receive`).
    """
    with stream_request(
        address,
        path,
        method=method,
        headers=headers,
        body=body,
        modifier1=modifier1,
        modifier2=modifier2,
        extra=extra,
        timeout=timeout,
        max_size=max_size,
    ) as stream:
        content = b"".join(stream)
    return dataclasses.replace(stream.response, body=content)


@dataclass(frozen=True, slots=True)
class PingResult:
    """A successful ping: how long the round trip took."""

    seconds: float
    answer: bytes = field(default=b"")


def ping(address: Address, *, timeout: float = 3.0) -> PingResult:
    """Send a modifier1 100 ping; return on the pong ``64 00 00 01``, else raise."""
    start = time.monotonic()
    answer = exchange(address, uwsgiproto.build_ping(), timeout=timeout, limit=4)
    elapsed = time.monotonic() - start
    if answer != uwsgiproto.build_pong():
        got = answer.hex(" ") if answer else "nothing (connection closed)"
        raise ResponseError(f"expected pong 64 00 00 01 from {address}, got {got}")
    return PingResult(elapsed, answer)
