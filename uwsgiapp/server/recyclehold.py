"""Held recycles: while replacements cannot load the app, a worker at ``--max-requests`` serves on.

With ``--lazy-apps`` every new worker imports the app, so a deploy whose code does not import
leaves the master retrying a replacement (with back-off) while the workers that loaded the
old code serve. Were those to go on leaving at their ``--max-requests``, the last one to leave
would take the service down (uWSGI and gunicorn stop at the first failure instead). The master
sets one shared byte while a replacement cannot load; a worker that reaches its max-requests
reads it, and held, serves on (said once); let go, it recycles after its next request.
``--reload-on-rss`` is not held: the memory it bounds must not grow on a bad deploy.
"""

from __future__ import annotations

import logging
import mmap

from uwsgiapp.server.inflight import worker_label

log = logging.getLogger("uwsgiapp.error")


class RecycleHold:
    """One flag the master writes and its workers read (made before they are forked)."""

    def __init__(self) -> None:
        self._flag = mmap.mmap(-1, 1)  # anonymous, shared: the workers see the master's writes
        self._said = False

    def set(self, held: bool) -> None:
        """Master: hold the workers' max-requests recycles, or let them go."""
        if self._flag[0] != held:
            self._flag[0] = int(held)

    def holds(self, requests: int) -> bool:
        """Worker at its max-requests, ``requests`` served: whether to serve on."""
        if not self._flag[0]:
            self._said = False
            return False
        if not self._said:
            self._said = True
            log.warning(
                "%s: served %d requests (max-requests), but new workers cannot load the app: "
                "serving on until one can",
                worker_label(),
                requests,
            )
        return True


def leaves_at_max_requests(hold: RecycleHold | None, requests: int) -> bool:
    """A worker served its max-requests (``requests``): whether it leaves now (said), or
    serves on under a ``hold``."""
    if hold is not None and hold.holds(requests):
        return False
    log.info("%s: served %d requests (max-requests), recycling", worker_label(), requests)
    return True
