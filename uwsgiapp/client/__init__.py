"""A small uwsgi client: one request or one ping, straight to a uwsgi socket.

Used by ``uwsgiapp request`` and ``uwsgiapp ping`` (debugging and health checks) and by tests.
It builds the vars the way nginx does (``PATH_INFO`` decoded, ``CONTENT_LENGTH`` set, headers as
``HTTP_*``), sends one packet and reads the raw HTTP response until the server closes: whole
(:func:`request`), or the head first and then the body as it arrives (:func:`stream_request`).

Both are bounded, whatever the server does: ``timeout`` is one overall deadline for connecting,
sending and reading (a server trickling a byte at a time cannot extend it), and ``max_size``
caps the bytes received (a server that never stops sending cannot go on for ever, nor exhaust
the memory of a caller that keeps the whole response).

Three parts, in the order of an exchange: :mod:`~uwsgiapp.client.build` (the vars and the
packet), :mod:`~uwsgiapp.client.transport` (connect, send, receive under the deadline and the
cap) and :mod:`~uwsgiapp.client.response` (the raw response read and parsed); the errors are in
:mod:`~uwsgiapp.client.errors`. This module joins them: :func:`request`,
:func:`stream_request` and :func:`ping`.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import uwsgiproto

from .build import build_packet, build_vars
from .errors import (
    ClientError,
    ConnectError,
    ResponseCut,
    ResponseError,
    ResponseTimeout,
    ResponseTooLarge,
)
from .response import Response, ResponseStream, parse_response, read_head
from .transport import (
    DEFAULT_MAX_RESPONSE_SIZE,
    Address,
    exchange,
    format_size,
    parse_address,
    parse_size,
    receive,
)

__all__ = [
    "DEFAULT_MAX_RESPONSE_SIZE",
    "Address",
    "ClientError",
    "ConnectError",
    "Response",
    "ResponseCut",
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
    A response that has no body (to HEAD; a 204, a 304) ends with its head, whatever follows.
    """
    packet = build_packet(
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
        response, first = read_head(chunks, address, max_size, method=method)
    except BaseException:
        chunks.close()
        raise
    return ResponseStream(response, first, chunks, method=method)


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
        raise ResponseError(f"expected pong 64 00 00 01 from {address}, got {_not_pong(answer)}")
    return PingResult(elapsed, answer)


def _not_pong(answer: bytes) -> str:
    """What a ping got instead of the pong (its first 4 bytes: the rest is not read), and
    what it looks like."""
    if not answer:
        return "nothing (connection closed)"
    shown = answer.hex(" ")
    if answer.startswith(b"HTTP"):
        return f"{shown}: an HTTP server's answer (the uwsgi socket is another)"
    if answer[:1] in (b"{", b"#"):
        return f"{shown}: a stats document (--stats's socket: read it with uwsgiapp top)"
    return shown
