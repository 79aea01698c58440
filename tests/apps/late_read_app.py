"""Apps whose thread reads ``wsgi.input`` or calls ``write()`` after the response, and slow
ones served meanwhile: the thread must get its own request's bytes or an error, and write
nothing into another request's response."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]
PLAIN = [("Content-Type", "text/plain")]
#: What the late reader saw: filled by its thread, answered by ``/late-result``.
LATE: dict[str, Any] = {}


def _read_later(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # A "fire and forget" hand-off: the view answers at once, a thread reads the upload.
    stream = environ["wsgi.input"]

    def later() -> None:
        time.sleep(1.0)
        try:
            data = stream.read()
            LATE["result"] = {"read": len(data), "foreign": data.count(b"B")}
        except OSError as exc:
            LATE["result"] = {"error": str(exc)}

    LATE.clear()
    threading.Thread(target=later, daemon=True).start()
    start_response("200 OK", PLAIN)
    return [b"answered"]


def _slow_digest(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    time.sleep(2.0)  # the late reader of the request before runs meanwhile
    data = environ["wsgi.input"].read()
    start_response("200 OK", PLAIN)
    return [b"%d %s" % (len(data), hashlib.sha256(data).hexdigest().encode())]


def _write_later(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", PLAIN)

    def later() -> None:
        time.sleep(1.0)
        try:
            write(b"FROM-THE-REQUEST-BEFORE")
            LATE["result"] = {"wrote": True}
        except OSError as exc:
            LATE["result"] = {"error": str(exc)}

    LATE.clear()
    threading.Thread(target=later, daemon=True).start()
    return [b"answered"]


def _slow_hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    time.sleep(2.0)
    start_response("200 OK", PLAIN)
    return [b"hello"]


ROUTES = {
    "/later": _read_later,
    "/slow-digest": _slow_digest,
    "/write-later": _write_later,
    "/slow-hello": _slow_hello,
}


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """The :data:`ROUTES`, else ``/late-result`` (JSON: what the late thread saw)."""
    route = ROUTES.get(environ["PATH_INFO"])
    if route is not None:
        return route(environ, start_response)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(LATE.get("result")).encode()]
