"""Reading the response: the raw HTTP response a uwsgi server sends, its head parsed
(:class:`Response`), whole (:func:`parse_response`) or streamed (:func:`read_head`, then the
body from a :class:`ResponseStream`)."""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Generator, Iterator
from dataclasses import dataclass

from .errors import ResponseCut, ResponseError, ResponseTooLarge
from .transport import Address, format_size

__all__ = ["Response", "ResponseStream", "parse_response", "read_head"]


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
    # Only CR LF and LF end a line: str.splitlines also splits on bytes a header value may
    # hold (0x85, which UTF-8's "Å" has; a form feed).
    lines = re.split(r"\r?\n", head.decode("latin-1"))
    parts = lines[0].split(" ", 2)
    if len(parts) < 2 or not parts[0].startswith("HTTP/") or not _STATUS.fullmatch(parts[1]):
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
    """The body's length, None if not given; :class:`ResponseError` for a value nginx refuses
    (not digits; two that differ): it answers 502 for it."""
    lengths = {v for k, v in response.headers if k.lower() == "content-length"}
    if not lengths:
        return None
    if len(lengths) > 1:
        given = ", ".join(sorted(lengths))
        raise ResponseError(f"conflicting Content-Length headers ({given}): nginx answers 502")
    (length,) = lengths
    if not _DIGITS.fullmatch(length):
        raise ResponseError(f"invalid Content-Length header {length[:40]!r}: nginx answers 502")
    return int(length)


#: A status nginx takes: three ASCII digits, the first not 0 (str.isdigit took '²00').
_STATUS = re.compile(r"[1-9][0-9][0-9]")
_DIGITS = re.compile(r"[0-9]+")


#: Statuses whose response ends with its head, whatever its Content-Length says.
_NO_BODY_STATUSES = frozenset({204, 304})


def _has_body(response: Response, method: str) -> bool:
    """Whether ``response`` to a ``method`` request has a body (HTTP's rule, and nginx's):
    an answer to HEAD has none (its Content-Length is the GET's), nor has a 204 or a 304."""
    return method.upper() != "HEAD" and response.status not in _NO_BODY_STATUSES


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
    length = _content_length(response)
    return dataclasses.replace(response, body=raw[end : None if length is None else end + length])


class ResponseStream:
    """A response whose head has arrived: :attr:`response` (status and headers, no body), and
    the body as it arrives when iterated, under the request's deadline and size cap.

    Iterating raises :class:`ResponseError` at the end of a body shorter than its
    Content-Length, and what :func:`receive` raises on the way (but not a reset once the
    body has all come). A response that has no body (the answer to a HEAD ``method``, a 204
    or a 304) yields nothing, whatever the server sent after its head. Use it in a ``with`` block,
    or :meth:`close` it, to drop the connection without reading the rest.
    """

    def __init__(
        self,
        response: Response,
        first: bytes,
        rest: Generator[bytes, None, None],
        *,
        method: str = "GET",
    ):
        self.response = response
        self._first = first
        self._rest = rest
        self._method = method
        self.excess = 0
        """Bytes that came past the body's Content-Length, dropped (nginx drops them); only
        those read with the body's last bytes: the connection is dropped there."""

    def __iter__(self) -> Iterator[bytes]:
        if not _has_body(self.response, self._method):
            self.close()  # what follows the head is no part of the answer (nginx drops it)
            return
        length = _content_length(self.response)
        size = 0
        try:
            for chunk in self._chunks():
                if length is not None and size + len(chunk) >= length:
                    self.excess = size + len(chunk) - length
                    if length > size:
                        yield chunk[: length - size]
                    size = length
                    self.close()
                    break
                size += len(chunk)
                yield chunk
        except ResponseCut:
            # A reset once the whole body has come (its Content-Length) cut nothing: a server
            # that answers without reading all of the request (an early 401 or 413) resets
            # the connection when it closes. Without a length, nothing says the body had
            # ended: that reset is how the server cuts a response it cannot finish.
            if length is None or size < length:
                raise
        _check_complete(self.response, size)

    def _chunks(self) -> Iterator[bytes]:
        if self._first:
            yield self._first
        yield from self._rest

    def close(self) -> None:
        """Drop the connection (nothing more is read)."""
        self._rest.close()

    def __enter__(self) -> ResponseStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def read_head(
    chunks: Generator[bytes, None, None], address: Address, max_size: int, *, method: str = "GET"
) -> tuple[Response, bytes]:
    """Read ``chunks`` (from :func:`~uwsgiapp.client.transport.receive`) until the head has
    ended; the parsed head and the body's first bytes. A Content-Length over ``max_size`` is
    refused (:class:`ResponseTooLarge`) before any body is read, unless the response has no
    body (the answer to a HEAD ``method``, a 204 or a 304)."""
    raw = b""
    while (end := _head_length(raw)) < 0:
        chunk = next(chunks, b"")
        if not chunk:
            raise _no_head(raw)
        raw += chunk
    response = _parse_head(raw[:end])
    length = _content_length(response)
    if max_size and length is not None and end + length > max_size and _has_body(response, method):
        raise ResponseTooLarge(
            f"the response from {address} is larger than {format_size(max_size)}"
            f" (Content-Length: {length})",
            limit=max_size,
        )
    return response, raw[end:]
