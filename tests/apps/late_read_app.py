"""An app whose thread reads ``wsgi.input`` after the response, and one that reads its body
late: what the thread gets must be its own request's bytes or an error, never another's."""

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


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``/later``, ``/slow-digest`` and ``/late-result`` (JSON)."""
    path = environ["PATH_INFO"]
    if path == "/later":
        return _read_later(environ, start_response)
    if path == "/slow-digest":
        return _slow_digest(environ, start_response)
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(LATE.get("result")).encode()]
