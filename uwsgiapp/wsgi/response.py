"""The response head and ``wsgi.file_wrapper``: pure, no I/O.

The head is ``<SERVER_PROTOCOL> <status>\\r\\n``, headers, blank line — raw HTTP, never chunked
(nginx would pass chunk markers through to the browser).
"""

from __future__ import annotations

import re
from http import HTTPStatus
from typing import IO, Any, Final

from uwsgiapp.wsgi.errors import AppError


class HeaderError(ValueError):
    """A status or header the server refuses to send (bad type, a control character,
    non-latin-1)."""


#: The standard reason phrase of each code, for an app that sends a bare "200" (as uWSGI adds).
_REASONS: Final = {int(s): s.phrase for s in HTTPStatus}
#: A header name: an HTTP token (RFC 9110). A space or colon in one breaks the response in nginx.
_TOKEN: Final = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
#: The control characters a status or a header value may not hold (RFC 9110 allows HTAB;
#: CR and LF are counted apart): nginx passes a NUL in the status on to the browser, and answers
#: 502 for one in a value while the access log says 200.
_CONTROL: Final = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
#: Names already found to be tokens: a head whose values change (Content-Length, Set-Cookie)
#: misses the head cache every request, and its few names are then a set lookup each.
_GOOD_NAMES: Final[set[str]] = set()


class Rendered:
    """A head, what it was rendered from (``headers``: a copy of the app's list) and the body
    it allows: ``length`` bytes (its Content-Length; 0 for a 1xx, 204 or 304), -1 for any,
    :data:`NOT_DIGITS` for any after a Content-Length that is not digits."""

    __slots__ = ("head", "headers", "length", "protocol", "status")

    def __init__(
        self, protocol: str, status: Any, headers: list[Any], head: bytes, length: int
    ) -> None:
        self.protocol = protocol
        self.status = status
        self.headers = headers
        self.head = head
        self.length = length


#: :attr:`Rendered.length` of a head whose Content-Length is not digits: it bounds nothing.
NOT_DIGITS: Final = -2


#: Heads already rendered and checked, by (protocol, status, *headers): most apps send the same
#: few heads again and again. Bounded: emptied when full.
_HEADS: Final[dict[tuple[Any, ...], Rendered]] = {}
HEAD_CACHE_SIZE: Final = 256


#: The head rendered or found last, in a list of one: replaced whole, so that threads never see
#: one head's status with another's headers.
_LAST: Final = [Rendered("", None, [], b"", -1)]


def render_head(protocol: str, status: Any, headers: Any) -> bytes:
    """The checked response head (:func:`render`)."""
    return render(protocol, status, headers).head


def render(protocol: str, status: Any, headers: Any) -> Rendered:
    """Render and check the response head; raise :class:`HeaderError` rather than send a bad one.

    Checks: status is ``"NNN reason"`` (a bare ``"NNN"`` gets its standard reason); headers a list
    of 2-tuples of ``str`` whose names are HTTP tokens; no CR or LF anywhere
    but the line ends (counted once over the joined head, cheaper than per header), no other
    control character but HTAB; latin-1 only; no two Content-Lengths that differ.
    """
    if type(headers) is list:
        # The same head as last time (an app sends few): comparing costs less than the cache's
        # key. Only heads that passed the checks are kept, so one that equals them is good too
        # (equal as its types say: a str subclass whose == calls other text equal gets that
        # text's head; checking each item's type here would cost every request).
        last = _LAST[0]
        # ``is`` first: an app's status is often the same constant object every time.
        if (
            (status is last.status or status == last.status)
            and protocol == last.protocol
            and headers == last.headers
        ):
            return last
        try:
            key = (protocol, status, *headers)
            found = _HEADS.get(key)
        except TypeError:  # an unhashable header item: let the checks below name it
            key = ()
            found = None
        if found is None:
            head, exact, text, pairs = _render_head(protocol, status, headers)
            found = Rendered(protocol, status, list(headers), head, _body_allowed(text, pairs))
            # Only heads of exact str are kept: a str subclass's own == could match another.
            if key and exact:
                if len(_HEADS) >= HEAD_CACHE_SIZE:
                    _HEADS.clear()
                _HEADS[key] = found
                _LAST[0] = found
        else:
            _LAST[0] = found
        return found
    head, _, text, pairs = _render_head(protocol, status, headers)
    return Rendered(protocol, status, [], head, _body_allowed(text, pairs))


def _body_allowed(status: str, headers: list[tuple[str, str]]) -> int:
    """The body bytes a checked head allows: none after a 204 or 304 (RFC 9110), its
    Content-Length (PEP 3333: no more), else -1 (any). One that is not a length (not digits,
    or 19 and more of them) bounds nothing (:data:`NOT_DIGITS`, which the server says) and
    goes as given, as uWSGI and gunicorn send it (nginx 1.22 serves it; 1.23 on answers 502);
    the same one twice too. Two that differ are refused, one of them not a length too: which
    one frames the body?"""
    length = -1
    odd: str | None = None
    for name, value in headers:
        if len(name) == 14 and name.lower() == "content-length":
            text = value.strip()
            if not (text.isascii() and text.isdigit() and len(text) < 19):
                odd = text if odd is None else odd
            elif length not in (-1, int(text)):
                raise HeaderError(f"two Content-Lengths, {length} and {int(text)}")
            else:
                length = int(text)
            if odd is not None and length != -1:
                raise HeaderError(f"two Content-Lengths, {length} and {odd[:40]!r}")
    if status[:3] in ("204", "304"):
        return 0  # a 1xx is refused before
    return length if odd is None else NOT_DIGITS


def _render_head(
    protocol: str, status: Any, headers: Any
) -> tuple[bytes, bool, str, list[tuple[str, str]]]:
    """The checked head; whether status and headers were all exact ``str``; and the status
    and headers as the text they hold: a subclass (a ``StrEnum`` member, ``Markup``) is
    written as that, as uWSGI writes it, not as its ``__str__``, and read as that."""
    # status and headers are what the app passed: Any, so that a compiled build lets these
    # checks name what is wrong instead of failing on the annotations first.
    exact = type(status) is str
    if not exact and isinstance(status, str):
        status = str.__str__(status)
    if type(status) is str and len(status) == 3 and status.isdigit() and status.isascii():
        # PEP 3333 wants a reason; uWSGI and gunicorn send a bare code, and apps rely on it.
        status = f"{status} {_REASONS.get(int(status), '')}"
    if (
        not isinstance(status, str)
        or len(status) < 4
        or status[3] != " "
        or not (status[:3].isdigit() and status[:3].isascii())
    ):
        raise HeaderError(f"invalid status {status!r}: must be 'NNN reason'")
    if status[0] in "01":  # nginx takes a 1xx for an interim head and waits for the final one
        raise HeaderError(f"invalid status {status!r}: a response's status is 200 or more")
    if not isinstance(headers, list):
        raise HeaderError(f"headers must be a list of (name, value) tuples, got {headers!r:.80}")
    # nginx's SERVER_PROTOCOL of an HTTP/0.9 request ("GET /x" alone) is empty, and " 200 OK"
    # is no head to nginx (a 502): HTTP/1.0 there, as uWSGI writes. Only when not cached.
    parts = [protocol or "HTTP/1.0", " ", status, "\r\n"]
    pairs: list[tuple[str, str]] = []
    for item in headers:
        # A tuple, as PEP 3333 (and uWSGI) require: a 2-character str would unpack too.
        if not isinstance(item, tuple) or len(item) != 2:
            raise HeaderError(f"header {item!r:.80} must be a (name, value) tuple")
        name, value = item
        if type(name) is not str or type(value) is not str:
            if not (isinstance(name, str) and isinstance(value, str)):
                raise HeaderError(f"header {item!r}: name and value must be str")
            exact = False
            name, value = str.__str__(name), str.__str__(value)
        pairs.append((name, value))
        if status[:3] == "204" and name.lower() == "content-length":
            continue  # RFC 9110: never in a 204 (nginx passes it on); checked still
        parts += (name, ": ", value, "\r\n")
    parts.append("\r\n")
    head = "".join(parts)
    lines = (len(parts) - 2) // 4 + 2  # the status line, each header written, the blank one
    if head.count("\n") != lines or head.count("\r") != lines:
        bad = next((h for h in pairs if any(c in h[0] + h[1] for c in "\r\n")), None)
        what = f"header {bad!r}" if bad else f"status {status!r}"
        raise HeaderError(f"{what} contains CR or LF")
    control = _CONTROL.search(head)
    if control is not None:
        bad = next((h for h in pairs if _CONTROL.search(h[0] + h[1])), None)
        what = f"header {bad!r}" if bad else f"status {status!r}"
        raise HeaderError(f"{what} contains the control character {control.group()!r}")
    _check_names(pairs)
    try:
        return head.encode("latin-1"), exact, status, pairs
    except UnicodeEncodeError as exc:
        raise HeaderError(f"status or header is not latin-1: {exc}") from None


def _check_names(headers: list[tuple[str, str]]) -> None:
    """Each header name is an HTTP token (the names seen good are remembered)."""
    for name, _ in headers:
        if name not in _GOOD_NAMES:
            if not _TOKEN.fullmatch(name):
                raise HeaderError(
                    f"header name {name!r} is not an HTTP token (letters, digits, !#$%&'*+-.^_`|~)"
                )
            if len(_GOOD_NAMES) >= HEAD_CACHE_SIZE:
                _GOOD_NAMES.clear()
            _GOOD_NAMES.add(name)


#: The HTTP versions a status line may name as they come (another is answered as HTTP/1.0).
HTTP_VERSIONS: Final = frozenset({"HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/3.0"})
#: The headers of :func:`error_response` (what the access log counts).
ERROR_HEADERS: Final = [("Content-Type", "text/plain"), ("Content-Length", "")]


def error_response(protocol: str, status: str, text: str) -> bytes:
    """A complete plain-text response (head and body) for an error the server answers itself."""
    # SERVER_PROTOCOL is the client's (nginx sends a sane one; a raw uwsgi client may not): the
    # normal path refuses CR/LF in it through render_head, and this path must not echo them.
    if protocol not in HTTP_VERSIONS:
        protocol = "HTTP/1.0"
    body = text.encode("latin-1", "replace") + b"\n"
    return (
        f"{protocol} {status}\r\nContent-Type: text/plain\r\nContent-Length: {len(body)}\r\n\r\n"
    ).encode("latin-1") + body


def whole_head_size(response: bytes) -> int:
    """The length of a whole response's head (through the blank line)."""
    return response.find(b"\r\n\r\n") + 4


class FileWrapper:
    """``wsgi.file_wrapper``: iterates a file in blocks; the server sends real files with
    ``os.sendfile`` instead of iterating.

    Its own iterator, seekable when the file is: werkzeug answers a ``Range`` request by
    seeking it (else it would read and drop every byte before the range, the whole file for
    its last kilobyte).
    """

    __slots__ = ("blksize", "filelike")

    def __init__(self, filelike: IO[bytes] | Any, blksize: int = 65536) -> None:
        self.filelike = filelike
        self.blksize = blksize

    def __iter__(self) -> FileWrapper:
        return self

    def __next__(self) -> bytes:
        block: bytes = self.filelike.read(self.blksize)
        if not block:
            raise StopIteration
        return block

    def seekable(self) -> bool:
        """Whether the wrapped file can seek."""
        seekable = getattr(self.filelike, "seekable", None)
        return bool(seekable()) if seekable is not None else False

    def seek(self, offset: int, whence: int = 0) -> int:
        """Seek the wrapped file."""
        position: int = self.filelike.seek(offset, whence)
        return position

    def tell(self) -> int:
        """The wrapped file's position."""
        position: int = self.filelike.tell()
        return position

    def close(self) -> None:
        """Close the wrapped file, as PEP 3333 asks."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()


def body_bytes(data: Any) -> bytes:
    """A body item other than exact ``bytes``, as ``bytes``; AppError for a non-bytes one."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise AppError(f"response body must be bytes, got {type(data).__name__}")
    return bytes(data)


def iterable_type(kind: type) -> bool:
    """Whether ``iter()`` takes a ``kind`` at all (an ``__iter__`` or a ``__getitem__``)."""
    return hasattr(kind, "__iter__") or hasattr(kind, "__getitem__")


def not_iterable(result: Any) -> AppError:
    """The error for an app that returned ``result``, which ``iter()`` refuses, or whose items
    are no bytes: a bare ``bytes`` (its items are ints: "got int" pointed the wrong way), a
    ``str``, a ``dict`` (its keys)."""
    what = "None" if result is None else type(result).__name__
    fix = _FIXES.get(what, "")
    return AppError(f"app returned {what}, not an iterable of bytes{fix}")


def mistaken_return(result: Any) -> bool:
    """Whether ``result``, whose items are no bytes, is a value returned for a list of them
    (a bare ``bytes``, ``str`` or ``dict``), to be said as such (:func:`not_iterable`)."""
    return isinstance(result, (bytes, bytearray, str, dict))


#: How to return what an app returned by mistake: a list of bytes.
_FIXES: Final = {
    "bytes": ": return [body] (a bytes object's items are ints)",
    "bytearray": ": return [body]",
    "str": ": return [text.encode()]",
    "dict": " (its items are its keys): return [json.dumps(d).encode()]",
}
