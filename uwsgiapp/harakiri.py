"""A request's own harakiri: :func:`set_harakiri`, the place of uWSGI's
``uwsgi.set_user_harakiri`` and of its routes' ``harakiri:N`` action.

``--harakiri`` bounds every request alike. A request that is meant to last (a server-sent
event stream, a long export) sets its own bound, or none, from the app; the next request on
that thread has ``--harakiri`` again.
"""

from __future__ import annotations

import math
import os
import threading
import time
from collections.abc import Callable

__all__ = ["harakiri_limit", "own_limit", "set_harakiri"]

#: Each request thread's setter (its status slot's or core's), by thread ident: set in the
#: worker only, so the master, ``uwsgiapp dev`` and an app's own threads find none.
_setters: dict[int, Callable[[float], bool]] = {}


def set_harakiri(seconds: float) -> bool:
    """Let the request this thread serves run ``seconds`` more from now before its harakiri,
    whatever ``--harakiri`` says (``0``: no harakiri for this request, for a stream meant to
    last). The next request has ``--harakiri`` again. Returns whether it took effect: False
    outside a request of a ``uwsgiapp serve`` worker (``uwsgiapp dev``, a test client, another
    server, a thread of the app's own).

    Raises ValueError for a negative or non-finite ``seconds``.
    """
    if not (isinstance(seconds, (int, float)) and math.isfinite(seconds) and seconds >= 0):
        raise ValueError(f"set_harakiri: seconds must be 0 (no harakiri) or more, not {seconds!r}")
    setter = _setters.get(threading.get_ident())
    return setter is not None and setter(float(seconds))


def harakiri_limit(own: float, harakiri: float) -> float:
    """A request's harakiri, in seconds from its start: its own where the app set one (inf:
    none), else ``harakiri`` (0: none, inf)."""
    return own or harakiri or math.inf


def own_limit(start: float, seconds: float) -> float:
    """The own harakiri, in seconds from its start, of a request begun at ``start`` (epoch
    seconds) that may run ``seconds`` more from now (0: none, inf)."""
    return math.inf if seconds == 0 else max(time.time() - start, 0.0) + seconds


def serve_in_this_thread(setter: Callable[[float], bool]) -> None:
    """The worker: this thread serves requests; ``setter`` sets its request's own harakiri."""
    _setters[threading.get_ident()] = setter


# A process the app forks from a worker serves none of its requests: its set_harakiri would
# write into the worker's status slot (its next requests had no harakiri).
os.register_at_fork(after_in_child=_setters.clear)
