"""A pure-Python stand-in for what sentry-sdk's ``init`` does to the standard library, for the
HUP tests (sentry-sdk itself is not a test dependency): its client wraps
``logging.Logger.callHandlers`` (a record with an exception becomes an event, appended to a
file), ``sys.excepthook``, ``threading.Thread.start`` (each thread's ``run`` then runs in a
function of its own, as sentry-sdk's does) and, in a module of the standard library
first imported by this one, ``http.client.HTTPConnection.putrequest``.

Re-imported by a HUP while the standard library stays loaded, each generation wrapped the
previous one's wrappers: after N reloads an error was sent N+1 times.
"""

from __future__ import annotations

import functools
import http.client
import logging
import sys
import threading
from typing import Any

#: The patched attributes, as (owner, name).
PATCHED = (
    (logging.Logger, "callHandlers"),
    (sys, "excepthook"),
    (threading.Thread, "start"),
    (http.client.HTTPConnection, "putrequest"),
)


class Client:
    """Sends each event (here: appends a line to ``events``, with the client's id)."""

    def __init__(self, events: str) -> None:
        self.events = events

    def capture(self, message: str) -> None:
        """One event."""
        with open(self.events, "a") as f:
            f.write(f"{id(self)} {message}\n")


def _wrap(owner: Any, name: str, client: Client) -> None:
    real = getattr(owner, name)

    @functools.wraps(real)  # copies __module__: it looks like the standard library's
    def patched(*args: Any, **kwargs: Any) -> Any:
        if name == "callHandlers" and args[1].exc_info:
            client.capture(args[1].getMessage())
        if name == "start":  # the thread runs in the client's scope: its code holds it
            args[0].run = _in_scope(args[0].run, client)
        return real(*args, **kwargs)

    setattr(owner, name, patched)


def _in_scope(run: Any, client: Client) -> Any:
    def run_in_scope() -> Any:
        assert client is not None
        return run()

    return run_in_scope


def init(events: str) -> Client:
    """What ``sentry_sdk.init`` does at the app's import: a client, and the patches."""
    client = Client(events)
    for owner, name in PATCHED:
        _wrap(owner, name, client)
    return client


def depths() -> dict[str, int]:
    """How many wrappers deep each patched attribute is (1: patched once)."""
    found = {}
    for owner, name in PATCHED:
        value, depth = getattr(owner, name), 0
        while hasattr(value, "__wrapped__"):
            value, depth = value.__wrapped__, depth + 1
        found[name] = depth
    return found
