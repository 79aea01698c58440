"""Log lines for events that can come by the thousand (refused peers, shed connections).

The first event of a quiet spell is logged at once; later ones are counted and told in one line
at most every ``interval`` seconds, so a misconfigured peer or a flood cannot fill the log.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Generic, TypeVar, cast

__all__ = ["REFUSED_LOG_INTERVAL", "Throttle", "refused_peers"]

T = TypeVar("T")

log = logging.getLogger("uwsgiapp.error")

#: Seconds between two log lines about peers refused by --uwsgi-allow-from.
REFUSED_LOG_INTERVAL = 10.0


class Throttle(Generic[T]):
    """Counts events; ``emit(count, last detail)`` at most once per ``interval`` seconds."""

    __slots__ = ("_detail", "_emit", "_next_at", "count", "interval")

    def __init__(self, interval: float, emit: Callable[[int, T], None]) -> None:
        self.interval = interval
        self._emit = emit
        self.count = 0
        self._detail: T | None = None
        self._next_at = 0.0

    def add(self, detail: T) -> None:
        """One more event; logged now unless a line went out less than ``interval`` ago."""
        self.count += 1
        self._detail = detail
        if time.monotonic() >= self._next_at:
            self.flush()

    def due(self) -> bool:
        """Events are waiting and their line may go now (the caller's loop asks)."""
        return bool(self.count) and time.monotonic() >= self._next_at

    def flush(self) -> None:
        """Log what was counted (if anything), now."""
        if self.count:  # then add() has set the detail (which may be None itself)
            self._emit(self.count, cast(T, self._detail))
        self.count = 0
        self._next_at = time.monotonic() + self.interval


def refused_peers(interval: float = REFUSED_LOG_INTERVAL) -> Throttle[tuple[str, str]]:
    """The worker's lines about peers ``--uwsgi-allow-from`` refuses: (peer, listener)."""

    def emit(count: int, last: tuple[str, str]) -> None:
        peer, spec = last
        if count == 1:
            log.warning("refused connection from %s on %s: not in uwsgi-allow-from", peer, spec)
            return
        log.warning(
            "refused %d more connections on %s (the last from %s): not in uwsgi-allow-from "
            "(one line per %g s)",
            count,
            spec,
            peer,
            interval,
        )

    return Throttle(interval, emit)
