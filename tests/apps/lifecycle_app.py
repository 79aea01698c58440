"""The WSGI app of the worker-lifecycle tests: what an app does at import and at exit.

At import (in the master): a print, an atexit handler, a thread pool, (with
``LIFECYCLE_IMPORT_THREAD=forever`` or its seconds) a thread that is no daemon, and (with
``LIFECYCLE_DICTCONFIG=1``) a logging dictConfig that disables the loggers it does not name, as
Django's LOGGING does. Events are appended to the file named by ``LIFECYCLE_EVENTS``.
"""

from __future__ import annotations

import atexit
import logging.config
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

StartResponse = Callable[..., Any]

EVENTS = os.environ.get("LIFECYCLE_EVENTS", os.devnull)
POOL = ThreadPoolExecutor(max_workers=1)


def event(text: str) -> None:
    with open(EVENTS, "a") as f:
        f.write(f"{text} {os.getpid()}\n")


print(f"PRINTED AT IMPORT {os.getpid()}")
atexit.register(event, "atexit")
if os.environ.get("LIFECYCLE_DICTCONFIG"):
    logging.config.dictConfig(
        {
            "version": 1,
            "handlers": {"h": {"class": "logging.StreamHandler"}},
            "root": {"handlers": ["h"], "level": "INFO"},
        }
    )


def _late_task() -> None:
    time.sleep(0.5)
    event("task done")


def _forever() -> None:
    while True:
        time.sleep(0.2)


_LIVES = os.environ.get("LIFECYCLE_IMPORT_THREAD")  # "forever", or its seconds
if _LIVES:  # a scheduler started at import, not a daemon
    lives = _forever if _LIVES == "forever" else lambda: time.sleep(float(_LIVES or 0))
    threading.Thread(target=lives, name="scheduler", daemon=False).start()


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    path = environ.get("PATH_INFO", "")
    if path == "/exit":
        os._exit(3)
    if path == "/task":  # work queued to a pool: done before the worker is gone
        POOL.submit(_late_task)
    if path == "/forever":  # a non-daemon thread that never ends
        threading.Thread(target=_forever, daemon=False).start()
    if path == "/cycle":  # a temporary file only a reference cycle holds (Django's upload)
        held: dict[str, Any] = {"file": tempfile.NamedTemporaryFile(dir=os.environ["TMPS"])}  # noqa: SIM115
        held["self"] = held
        name = held["file"].name
        del held
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [name.encode()]
    if path == "/print":
        print(f"PRINTED IN A REQUEST {os.getpid()}")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
