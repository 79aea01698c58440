"""Apps that need ``--post-buffering`` (no wsgiref validator: its input wrapper has no seek)."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any

StartResponse = Callable[..., Any]


def _head_first(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    # A "duplex" view: its answer begins, then it reads the upload (a progress stream).
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-Accel-Buffering", "no")])
    yield b"started\n"
    stream = environ["wsgi.input"]
    digest = hashlib.sha256()
    total = 0
    while chunk := stream.read(1 << 20):
        digest.update(chunk)
        total += len(chunk)
    yield b"%d %s\n" % (total, digest.hexdigest().encode())


def _twice(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # A webhook's signature check reads the body, then the framework's parsing reads it again.
    stream = environ["wsgi.input"]
    first = hashlib.sha256(stream.read()).hexdigest()
    stream.seek(0)
    again = hashlib.sha256(b"".join(stream)).hexdigest()
    info = {"first": first, "again": again, "length": environ["CONTENT_LENGTH"]}
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(info).encode()]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Routes by the last part of the path: ``head-first`` or ``twice``."""
    if environ["PATH_INFO"].endswith("/twice"):
        return _twice(environ, start_response)
    return _head_first(environ, start_response)
