"""The app of bench/bulk.py: big request bodies read every way, big and streamed responses.

Uploads answer ``<length> <sha256>`` of what the app read; downloads send ``n`` bytes of a
repeating pattern (``?n=BYTES``) that the client checks. Plain WSGI, plus werkzeug for the
``request.files`` / ``request.stream`` / ``send_file`` paths Flask apps take.
"""

from __future__ import annotations

import hashlib
import io
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from werkzeug.utils import send_file
from werkzeug.wrappers import Request

StartResponse = Callable[..., Any]
PLAIN = [("Content-Type", "text/plain")]
CHUNK = 65536
#: The download pattern: byte i of a response is PATTERN[i % len(PATTERN)].
PATTERN = bytes(range(256)) * 256
_FILES: dict[int, str] = {}
#: What the last streamed response saw of its end (closed / GeneratorExit / finished).
EVENTS = os.environ.get("BULK_EVENTS", os.path.join(tempfile.gettempdir(), "bulk-events.log"))


def _note(text: str) -> None:
    with open(EVENTS, "a") as out:
        out.write(f"{os.getpid()} {text}\n")


def _answer(start_response: StartResponse, length: int, digest: str) -> list[bytes]:
    start_response("200 OK", PLAIN)
    return [f"{length} {digest}".encode()]


def _read_all(stream: Any, how: str, limit: int) -> tuple[int, str]:
    h = hashlib.sha256()
    total = 0
    if how == "read":
        data = stream.read()
        h.update(data)
        return len(data), h.hexdigest()
    if how == "readn":
        while data := stream.read(CHUNK):
            h.update(data)
            total += len(data)
    elif how == "readline":
        while line := stream.readline(CHUNK):
            h.update(line)
            total += len(line)
    elif how == "iter":
        for line in stream:
            h.update(line)
            total += len(line)
    elif how == "partial":
        data = stream.read(limit)
        h.update(data)
        total = len(data)
    return total, h.hexdigest()


def _upload(environ: dict[str, Any], start_response: StartResponse, how: str) -> list[bytes]:
    query = environ.get("QUERY_STRING", "")
    limit = int(query[2:]) if query.startswith("n=") else CHUNK
    if how in ("files", "stream"):
        request = Request(environ)
        if how == "stream":
            total, digest = _read_all(request.stream, "readn", limit)
        else:
            upload = request.files["file"]
            total, digest = _read_all(upload.stream, "readn", limit)
        return _answer(start_response, total, digest)
    stream = environ["wsgi.input"]
    if how in ("read",) and not environ.get("CONTENT_LENGTH"):
        return _answer(start_response, 0, hashlib.sha256().hexdigest())
    total, digest = _read_all(stream, how, limit)
    return _answer(start_response, total, digest)


def _body(n: int) -> Iterator[bytes]:
    full, rest = divmod(n, len(PATTERN))
    for _ in range(full):
        yield PATTERN
    if rest:
        yield PATTERN[:rest]


def _file(n: int) -> str:
    if n not in _FILES:
        fd, path = tempfile.mkstemp(prefix="bulk-")
        with os.fdopen(fd, "wb") as out:
            for part in _body(n):
                out.write(part)
        _FILES[n] = path
    return _FILES[n]


class _Tracked:
    """A streamed body that notes how its end came (to the events file)."""

    def __init__(self, n: int, pause: float) -> None:
        self.n, self.pause, self.sent = n, pause, 0

    def __iter__(self) -> Iterator[bytes]:
        try:
            while self.n < 0 or self.sent < self.n:
                piece = PATTERN[:CHUNK] if self.pause == 0 else f"{time.time():.6f}\n".encode()
                self.sent += len(piece)
                yield piece
                if self.pause:
                    time.sleep(self.pause)
            _note(f"finished {self.sent}")
        except GeneratorExit:
            _note(f"GeneratorExit after {self.sent}")
            raise

    def close(self) -> None:
        _note(f"close after {self.sent}")


class _NoFileno:
    def __init__(self, data: bytes) -> None:
        self.inner = io.BytesIO(data)

    def read(self, size: int = -1) -> bytes:
        return self.inner.read(size)


def _download(environ: dict[str, Any], start_response: StartResponse, how: str) -> Iterable[bytes]:
    query = dict(p.split("=", 1) for p in environ.get("QUERY_STRING", "").split("&") if "=" in p)
    n = int(query.get("n", "1048576"))
    length = [("Content-Length", str(n))] if n >= 0 else []
    if how == "send_file":
        sent = send_file(_file(n), environ, mimetype="application/octet-stream", conditional=True)
        return sent(environ, start_response)  # type: ignore[no-any-return]
    if how in ("stream", "forever"):
        pause = float(query.get("pause", "0"))
        headers = PLAIN + [("X-Accel-Buffering", "no")] + (length if how == "stream" else [])
        start_response("200 OK", headers)
        return _Tracked(n if how == "stream" else -1, pause)
    write = start_response("200 OK", [("Content-Type", "application/octet-stream"), *length])
    if how == "bytes":
        return [b"".join(_body(n))]
    if how == "gen":
        return (PATTERN[i % len(PATTERN) : i % len(PATTERN) + CHUNK] for i in range(0, n, CHUNK))
    if how == "write":
        for part in _body(n):
            write(part)
        return []
    wrap = environ["wsgi.file_wrapper"]
    if how == "file":
        return wrap(open(_file(n), "rb"), CHUNK)
    if how == "textfile":
        return wrap(open(_file(n), encoding="latin-1"), CHUNK)
    if how == "bytesio":
        return wrap(io.BytesIO(b"".join(_body(n))), CHUNK)
    return wrap(_NoFileno(b"".join(_body(n))), CHUNK)


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``.../up/<how>`` reads the body; ``.../down/<how>?n=`` sends n bytes (any prefix: the
    nginx location's)."""
    kind, how = environ["PATH_INFO"].strip("/").split("/")[-2:]
    if kind == "up":
        return _upload(environ, start_response, how)
    return _download(environ, start_response, how)
