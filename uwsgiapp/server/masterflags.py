"""What the master tells every worker at once, in shared memory: held recycles, a server stop.

**Held recycles.** With ``--lazy-apps`` every new worker imports the app, so a deploy whose code
does not import leaves the master retrying a replacement (with back-off) while the workers that
loaded the old code serve. Were those to go on leaving at their ``--max-requests``, the last one
to leave would take the service down (uWSGI and gunicorn stop at the first failure instead).
While a replacement cannot load, a worker that reaches its max-requests serves on (said once);
let go, it recycles after its next request. ``--reload-on-rss`` is not held: the memory it
bounds must not grow on a bad deploy. They are held too while the master imports a HUP's new
code (seconds, for a big app), during which it forks no replacement: under a steady load every
worker reached its max-requests and left, and nothing served until the import's end.

**A server stop.** A TERM reaches a worker for a graceful stop of the whole server (a retired
worker gets HUP), but an operator may TERM one worker by hand: only the master's word says that
every worker stops, and that the shared listening sockets may be shut down for all.
"""

from __future__ import annotations

import logging
import mmap

from uwsgiapp.server.inflight import worker_label

log = logging.getLogger("uwsgiapp.error")

_HOLD = 0
_STOPPING = 1
#: The hold's values: none, a replacement cannot load the app, the master imports new code.
_CANNOT_LOAD = 1
_IMPORTING = 2


class MasterFlags:
    """Flags the master writes and its workers read (made before they are forked)."""

    def __init__(self) -> None:
        self._flags = mmap.mmap(-1, 2)  # anonymous, shared: the workers see the master's writes
        self._said = False

    def publish(self, recycles_held: bool, stopping: bool, importing: bool = False) -> None:
        """Master: hold the workers' max-requests recycles (a replacement cannot load the app,
        or it imports new code) or let them go; the server stops."""
        hold = _CANNOT_LOAD if recycles_held else _IMPORTING if importing else 0
        for index, value in ((_HOLD, hold), (_STOPPING, int(stopping))):
            if self._flags[index] != value:
                self._flags[index] = value

    @property
    def stopping(self) -> bool:
        """The whole server stops gracefully (the master had a TERM)."""
        return self._flags[_STOPPING] == 1

    def holds(self, requests: int) -> bool:
        """Worker at its max-requests, ``requests`` served: whether to serve on."""
        hold = self._flags[_HOLD]
        if not hold:
            self._said = False
            return False
        if not self._said:
            self._said = True
            if hold == _IMPORTING:  # a moment's wait, as planned: not a warning
                log.info(
                    "%s: served %d requests (max-requests); the master imports new code (a "
                    "reload) and starts no worker meanwhile: serving on until it is done",
                    worker_label(),
                    requests,
                )
            else:
                log.warning(
                    "%s: served %d requests (max-requests), but new workers cannot load the "
                    "app: serving on until one can",
                    worker_label(),
                    requests,
                )
        return True


def leaves_at_max_requests(flags: MasterFlags | None, requests: int) -> bool:
    """A worker served its max-requests (``requests``): whether it leaves now (said), or
    serves on while the master ``flags`` hold recycles."""
    if flags is not None and flags.holds(requests):
        return False
    log.info("%s: served %d requests (max-requests), recycling", worker_label(), requests)
    return True
