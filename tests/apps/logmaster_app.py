"""The app of the --log-master tests: workers that write long log lines, all at once."""

from __future__ import annotations

import json
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import parse_qs

StartResponse = Callable[..., Any]
#: Under the server's ``uwsgiapp`` logger: its records are the error log's (JSON with a
#: traceback under --error-log-format json).
log = logging.getLogger("uwsgiapp.app")


def _records(args: dict[str, str]) -> None:
    """``count`` records of about ``size`` bytes each (the traceback holds them), named
    ``tag`` and numbered; ``pause`` seconds before each."""
    for i in range(int(args.get("count", "1"))):
        time.sleep(float(args.get("pause", "0")))
        try:
            raise ValueError("v" * int(args.get("size", "100")))
        except ValueError:
            log.exception("rec %s %d", args.get("tag", ""), i)


def _piece(args: dict[str, str]) -> None:
    """One JSON line on fd 1 in three writes, a pause between them."""
    tag = args.get("tag", "").encode()
    for part in (b'{"piece": "' + tag, b'", "fill": "' + b"p" * 20000, b'"}\n'):
        os.write(1, part)
        time.sleep(0.05)


def _die(args: dict[str, str]) -> None:
    """Half a line on fd 1, then this worker is killed."""
    os.write(1, b'{"dying": "' + args.get("tag", "").encode())
    os.kill(os.getpid(), signal.SIGKILL)


def _print(args: dict[str, str]) -> None:
    """A print, a line on fd 2 with a byte that is no UTF-8, and a JSON line of the app's."""
    tag = args.get("tag", "")
    print("printed", tag, flush=True)
    os.write(2, b"to stderr \xff " + tag.encode() + b"\r\n\n")
    print(json.dumps({"own": tag}), flush=True)


def _sleep(args: dict[str, str]) -> None:
    time.sleep(float(args.get("seconds", "1")))


def _sleep_in_c(args: dict[str, str]) -> None:
    # As a C library that retries on EINTR: the worker's USR2 handler cannot run here, so a
    # harakiri's only stack is faulthandler's dump (its Python handler's, where it can run).
    threading.Thread(target=time.sleep, args=(60,), daemon=True).start()  # takes the signal
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
    time.sleep(float(args.get("seconds", "1")))


ROUTES = {
    "/records": _records,
    "/piece": _piece,
    "/die": _die,
    "/print": _print,
    "/sleep": _sleep,
    "/sleep-in-c": _sleep_in_c,
}


def app(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    """Run the route named by PATH_INFO with the query's arguments; answer with the pid."""
    args = {k: v[-1] for k, v in parse_qs(environ.get("QUERY_STRING", "")).items()}
    route = ROUTES.get(environ.get("PATH_INFO", ""))
    if route is not None:
        route(args)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"pid %d" % os.getpid()]
