"""The app of the ``--threads`` tests: slow requests, an echo of each request's own input, a
stuck request for harakiri; every answer says which process and thread served it."""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]


def _who(environ: dict[str, Any]) -> dict[str, Any]:
    return {
        "pid": os.getpid(),
        "thread": threading.current_thread().name,
        "multithread": environ["wsgi.multithread"],
    }


def _sleep(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # CLOCK_MONOTONIC is one clock for every process: the test compares them across workers.
    began = time.monotonic()
    time.sleep(float(environ["QUERY_STRING"] or "0.05"))
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({**_who(environ), "began": began, "ended": time.monotonic()}).encode()]


def _echo(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # Read in pieces with a pause between them, so that other threads run in the middle of
    # this request: a shared environ or input stream would show here.
    stream = environ["wsgi.input"]
    length = int(environ.get("CONTENT_LENGTH") or 0)
    first = stream.read(length // 2)
    time.sleep(0.001)
    body = first + stream.read(length - len(first))
    answer = {
        "tag": environ.get("HTTP_X_TAG", ""),
        "query": environ["QUERY_STRING"],
        "sha256": hashlib.sha256(body).hexdigest(),
        "length": len(body),
        **_who(environ),
    }
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps(answer).encode()]


def stuck_here(seconds: float) -> None:
    time.sleep(seconds)


def _stuck(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    stuck_here(float(environ["QUERY_STRING"] or "60"))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unstuck"]


def _spin(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # Stuck in Python code (a runaway loop), not in a C call: a harakiri can cut it there.
    end = time.monotonic() + float(environ["QUERY_STRING"] or "60")
    try:
        while time.monotonic() < end:
            pass
    finally:
        print("spin: finally ran", flush=True)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"spun to the end"]


ROUTES = {"/sleep": _sleep, "/echo": _echo, "/stuck": _stuck, "/spin": _spin}


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    route = ROUTES.get(environ["PATH_INFO"])
    if route is None:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]
    return route(environ, start_response)
