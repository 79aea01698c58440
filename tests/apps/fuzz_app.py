"""The app the reliability tests (live fuzzing, slow clients, limits) serve.

Unlike ``nginx_app:app`` it is not wrapped in wsgiref's validator: fuzzed packets that are still
valid reach the app with odd PATH_INFO or methods, and the validator would raise on them (an app
traceback that says nothing about the server). Every route here is total: any environ gets an
answer.

``/__rel/*`` routes read the body in the ways the disconnect tests need. When the environment
variable ``FUZZ_APP_REPORT`` names a file, routes append one JSON line per event to it (what the
app saw, so a test can check it from outside the worker).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

StartResponse = Callable[..., Any]
JSON = [("Content-Type", "application/json")]


def _record(**entry: Any) -> None:
    path = os.environ.get("FUZZ_APP_REPORT")
    if path:
        entry["pid"] = os.getpid()
        with open(path, "a") as f:
            f.write(json.dumps(entry) + "\n")


def _length(environ: dict[str, Any]) -> int:
    # The server has already refused anything but digits (400) or over limit-post (413).
    return int(environ.get("CONTENT_LENGTH") or 0)


def _echo(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Read the whole body, answer what arrived (a lost or short body shows in the answer)."""
    body = environ["wsgi.input"].read(_length(environ))
    info = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "content_length": environ.get("CONTENT_LENGTH", ""),
        "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "vars": len(environ),
        "longest_var": max((len(str(v)) for v in environ.values()), default=0),
    }
    _record(route="echo", path=environ["PATH_INFO"], body_len=len(body))
    start_response("200 OK", JSON)
    return [json.dumps(info).encode()]


def _read_escape(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Reads the body and lets any error escape (the server must log one line, no traceback)."""
    _record(route="read-escape", event="reading")
    body = environ["wsgi.input"].read(_length(environ))
    _record(route="read-escape", event="read", body_len=len(body))
    start_response("200 OK", JSON)
    return [b"read all"]


def _read_catch(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Catches what the body read raises and reports it (in the answer and the report file)."""
    stream = environ["wsgi.input"]
    _record(route="read-catch", event="reading")
    try:
        stream.read(_length(environ))
    except Exception as exc:
        caught = type(exc)
        started = time.monotonic()
        try:
            stream.read()  # what arrived, then more: must raise again, without a second wait
            again = "returned"
        except Exception as second:
            again = type(second).__name__
        info = {
            "caught": f"{caught.__module__}.{caught.__qualname__}",
            "is_oserror": isinstance(exc, OSError),
            "mro": [c.__name__ for c in caught.__mro__],
            "message": str(exc),
            "second_read": again,
            "second_read_seconds": round(time.monotonic() - started, 3),
        }
    else:
        info = {"caught": None}
    _record(route="read-catch", **info)
    start_response("200 OK", JSON)
    return [json.dumps(info).encode()]


def _read_in_iter(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    """Reads the body lazily, while the server iterates the response."""
    start_response("200 OK", JSON)
    yield b"["
    stream = environ["wsgi.input"]
    _record(route="read-in-iter", event="reading")
    yield json.dumps(len(stream.read(_length(environ)))).encode()
    yield b"]"


ROUTES: dict[str, Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
    "/__rel/read-escape": _read_escape,
    "/__rel/read-catch": _read_catch,
    "/__rel/read-in-iter": _read_in_iter,
}


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Route on the exact PATH_INFO; everything else is the echo."""
    return ROUTES.get(environ["PATH_INFO"], _echo)(environ, start_response)
