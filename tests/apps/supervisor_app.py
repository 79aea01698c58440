"""The WSGI app of the supervisor tests: who runs me, memory growth, slow requests."""

from __future__ import annotations

import gc
import json
import os
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

StartResponse = Callable[..., Any]
PLAIN = [("Content-Type", "text/plain")]

#: Memory the /grow route keeps alive for the rest of the worker's life.
HOARD: list[bytearray] = []


def _ids(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "application/json")])
    info = {
        "pid": os.getpid(),
        "uid": os.getuid(),
        "euid": os.geteuid(),
        "gid": os.getgid(),
        "egid": os.getegid(),
        "groups": sorted(os.getgroups()),
    }
    return [json.dumps(info).encode()]


def _modules(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", PLAIN)
    return ["\n".join(sorted(sys.modules)).encode()]


def _grow(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Grow this worker's RSS by QUERY_STRING MB (pages touched, so they are resident)."""
    megabytes = int(environ["QUERY_STRING"] or "10")
    HOARD.append(bytearray(b"\x01" * (megabytes * 1024 * 1024)))
    time.sleep(0.3)  # still in the request when the master sees the RSS
    start_response("200 OK", PLAIN)
    return [b"grew %d pid %d" % (megabytes, os.getpid())]


def _gc(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", PLAIN)
    return [b"frozen %d tracked %d" % (gc.get_freeze_count(), len(gc.get_objects()))]


def _sleep(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``/sleep?SECONDS``; ``/sleep?SECONDS&PATH`` first writes PATH, for a test to wait on."""
    seconds, _, marker = environ["QUERY_STRING"].partition("&")
    if marker:
        with open(marker, "w") as file:
            file.write(str(os.getpid()))
    time.sleep(float(seconds or "0.2"))
    start_response("200 OK", PLAIN)
    return [b"slept pid %d" % os.getpid()]


def _poll(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """``/poll?SECONDS&PATH[&CLEANUP]``: writes PATH, waits in short sleeps (as a loop polling
    a queue does), and whatever ends the wait, appends "finally" to PATH on the way out, after
    CLEANUP seconds of clean-up in short steps."""
    seconds, marker, cleanup = [*environ["QUERY_STRING"].split("&"), "0"][:3]
    with open(marker, "w") as file:
        file.write(str(os.getpid()))
    try:
        end = time.monotonic() + float(seconds)
        while time.monotonic() < end:
            time.sleep(0.05)
    finally:
        end = time.monotonic() + float(cleanup)
        while time.monotonic() < end:
            time.sleep(0.05)
        with open(marker, "a") as file:
            file.write(" finally")
    start_response("200 OK", PLAIN)
    return [b"polled"]


def _pid(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", PLAIN)
    return [b"pid %d" % os.getpid()]


ROUTES: dict[str, Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
    "ids": _ids,
    "grow": _grow,
    "modules": _modules,
    "sleep": _sleep,
    "poll": _poll,
    "gc": _gc,
}


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Dispatch on the first path segment; anything else answers its pid."""
    first = environ["PATH_INFO"].strip("/").split("/", 1)[0]
    return ROUTES.get(first, _pid)(environ, start_response)
