"""The WSGI app of the live stats tests: a known status per route, a sleeping route."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]
PLAIN = [("Content-Type", "text/plain")]


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``/ok`` 200, ``/missing`` 404, ``/boom`` raises (a 500), ``/sleep?S`` sleeps S s,
    ``/gate?PATH`` waits until the file PATH exists (30 s at most)."""
    path = environ["PATH_INFO"]
    if path == "/boom":
        raise RuntimeError("boom, on purpose")
    if path == "/sleep":
        time.sleep(float(environ["QUERY_STRING"] or "2"))
    if path == "/gate":
        deadline = time.monotonic() + 30
        while not os.path.exists(environ["QUERY_STRING"]) and time.monotonic() < deadline:
            time.sleep(0.01)
    status = "404 Not Found" if path == "/missing" else "200 OK"
    start_response(status, PLAIN)
    return [b"%s pid %d\n" % (status.encode(), os.getpid())]
