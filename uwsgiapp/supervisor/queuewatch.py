"""The master's look at the listen queues, once a second: a queue at its backlog is counted for
the stats (``listen_queue_errors``) and said in the log.

With every worker busy the kernel's accept queue fills, and past its backlog a new connection
is refused (unix: nginx answers 502 at once) or its handshake dropped (TCP: nginx waits, then
answers 504). The log said nothing of it: only nginx's did, and only ``--stats`` counted it.
uWSGI says "listen queue ... full" every second; here the first look that finds a queue full is
said at once, then at most one line every :data:`QUEUE_SAY_EVERY` seconds: while it stays (or
comes back) full, and once it is full no longer. :meth:`QueueWatch.lines` decides, pure.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from uwsgiapp.stats.model import SocketStats
from uwsgiapp.supervisor.observe import Observer

__all__ = ["QUEUE_CHECK", "QUEUE_SAY_EVERY", "QueueWatch"]

log = logging.getLogger("uwsgiapp.error")

#: Seconds between two looks at the listen queues.
QUEUE_CHECK = 1.0
#: Seconds between two lines about a queue that stays full.
QUEUE_SAY_EVERY = 10.0


def _what_nginx_gets(name: str) -> str:
    if name.startswith(("/", "unix:", "@")):
        return "refused: nginx answers 502 at once"
    if name.startswith("fd://"):
        return "refused or dropped: nginx answers 502 or 504"
    return "dropped: nginx waits for its connect, then answers 504"


@dataclass
class _Said:
    at: float = 0.0
    #: Looks that found the queue full since the last line.
    unsaid: int = 0


class QueueWatch:
    """Looks at the listen queues ``sockets()`` gives, at most each :data:`QUEUE_CHECK` s."""

    def __init__(self, sockets: Callable[[], tuple[SocketStats, ...]], observer: Observer) -> None:
        self._sockets = sockets
        self._observer = observer
        self._next = 0.0
        self._said: dict[str, _Said] = {}

    def tick(self, now: float) -> None:
        """The master's loop came round (``now`` monotonic): look if it is time."""
        if now < self._next:
            return
        self._next = now + QUEUE_CHECK
        queues = self._sockets()
        self._observer.check_queues(queues)
        for line in self.lines(queues, now):
            log.warning("%s", line)

    def lines(self, queues: Iterable[SocketStats], now: float) -> list[str]:
        """What one look at ``queues`` says: at most a line a socket each
        :data:`QUEUE_SAY_EVERY` seconds, however often the queue fills and empties."""
        said: list[str] = []
        for queue in queues:
            full = queue.full
            last = self._said.get(queue.name)
            if last is None or now - last.at >= QUEUE_SAY_EVERY:
                if full:
                    said.append(_full_line(queue, last.unsaid if last else 0))
                    self._said[queue.name] = _Said(at=now)
                elif last is not None:
                    more = f" (full at {last.unsaid} more looks since the last line)"
                    said.append(
                        f"listen queue of {queue.name} is full no longer"
                        + (more if last.unsaid else "")
                    )
                    del self._said[queue.name]
            elif full:
                last.unsaid += 1
        return said


def _full_line(queue: SocketStats, unsaid: int) -> str:
    more = f"; full at {unsaid} more looks since the last line" if unsaid else ""
    return (
        f"listen queue of {queue.name} is full ({queue.queue} connections waiting, it holds "
        f"{queue.max_queue}): every worker is busy, and new connections are "
        f"{_what_nginx_gets(queue.name)}; more workers (--workers, --threads, --cheaper) or a "
        f"faster app (a longer --listen only makes them wait){more}"
    )
