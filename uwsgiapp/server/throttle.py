"""Log lines for events that can come by the thousand (refused peers, shed connections).

The first event of a quiet spell is logged at once; later ones are counted and told in one line
at most every ``interval`` seconds, so a misconfigured peer or a flood cannot fill the log.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable
from typing import Generic, TypeVar, cast

__all__ = [
    "REFUSED_LOG_INTERVAL",
    "WRITE_FAILURE_INTERVAL",
    "Burst",
    "Throttle",
    "accept_failures",
    "accept_retries",
    "body_mismatches",
    "clients_gone",
    "invalid_packets",
    "refused_peers",
    "refused_requests",
    "tell_dropped",
]

T = TypeVar("T")

log = logging.getLogger("uwsgiapp.error")

#: Seconds between two log lines about peers refused by --uwsgi-allow-from.
REFUSED_LOG_INTERVAL = 10.0
#: Seconds between two lines on stderr about a log that cannot be written (a full disk).
WRITE_FAILURE_INTERVAL = 60.0


class Throttle(Generic[T]):
    """Counts events; ``emit(count, last detail)`` at most once per ``interval`` seconds."""

    __slots__ = ("_detail", "_emit", "_next_at", "count", "interval")

    def __init__(self, interval: float, emit: Callable[[int, T], None]) -> None:
        self.interval = interval
        self._emit = emit
        self.count = 0
        self._detail: T | None = None
        self._next_at = 0.0

    def add(self, detail: T, events: int = 1) -> None:
        """One more event (or ``events``); logged now unless a line went out less than
        ``interval`` ago."""
        self.count += events
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


def refused_peers(
    interval: float = REFUSED_LOG_INTERVAL, option: str = "uwsgi-allow-from"
) -> Throttle[tuple[str, str]]:
    """The lines about peers an allow-list (``option``'s) refuses: (peer, listener)."""

    def emit(count: int, last: tuple[str, str]) -> None:
        peer, spec = last
        if count == 1:
            log.warning("refused connection from %s on %s: not in %s", peer, spec, option)
            return
        log.warning(  # the last one's socket: with several, the others may have been another
            "refused %d more connections (the last from %s on %s): not in %s (one line per %g s)",
            count,
            peer,
            spec,
            option,
            interval,
        )

    return Throttle(interval, emit)


def accept_failures(
    where: str, pause: float, interval: float = REFUSED_LOG_INTERVAL
) -> Throttle[OSError]:
    """The lines about ``accept`` failing on ``where`` (out of file descriptors, most often),
    after each of which the listener rests ``pause`` seconds: the first failure at once, then
    a count at most every ``interval`` seconds."""

    def emit(count: int, last: OSError) -> None:
        if count == 1:
            log.warning("%s: accept failed: %s; not accepting for %g s", where, last, pause)
            return
        log.warning(
            "%s: accept failed %d more times (the last: %s); one line per %g s",
            where,
            count,
            last,
            interval,
        )

    return Throttle(interval, emit)


def accept_retries(interval: float = REFUSED_LOG_INTERVAL) -> Throttle[str]:
    """A worker's lines about an ``accept`` that failed and is retried after a pause (the
    system out of files or memory, the worker out of descriptors before its first request):
    what failed, said at once, then a count at most every ``interval`` seconds (each retry was
    a line, ten a second while it lasted)."""

    def emit(count: int, last: str) -> None:
        if count == 1:
            log.error("%s; retrying", last)
            return
        log.error("%s; retrying (%d more times, one line per %g s)", last, count, interval)

    return Throttle(interval, emit)


#: Invalid packets logged one by one in a window of INVALID_LOG_WINDOW seconds; past that, the
#: rest of the window is one line.
INVALID_LOG_BURST = 20
INVALID_LOG_WINDOW = 10.0


class Burst:
    """Lets ``burst`` lines through per ``window`` seconds; past that, counts the events and
    ``summary(count, last detail)`` tells them in one line once the window ends (at the next
    event, or when the caller's loop asks :meth:`due`)."""

    __slots__ = ("_ends", "_last", "_said", "burst", "count", "summary", "window")

    def __init__(self, burst: int, window: float, summary: Callable[[int, str], None]) -> None:
        self.burst = burst
        self.window = window
        self.summary = summary
        self.count = 0  # held back in this window
        self._said = 0
        self._ends = 0.0
        self._last = ""

    def allow(self, detail: str) -> bool:
        """May this event's line go out now? If not, it is counted (``detail`` kept)."""
        now = time.monotonic()
        if now >= self._ends:
            self.flush()
            self._ends = now + self.window
            self._said = 0
        if self._said < self.burst:
            self._said += 1
            return True
        self.count += 1
        self._last = detail
        return False

    def due(self) -> bool:
        """Held-back events whose window has ended (the caller's loop asks)."""
        return bool(self.count) and time.monotonic() >= self._ends

    def flush(self) -> None:
        """Tell the held-back events, now (taken first: request threads flush it too)."""
        count, self.count = self.count, 0
        if count:
            self.summary(count, self._last)


def invalid_packets() -> Burst:
    """The lines about invalid uwsgi packets: one each, up to a burst; then one line a window
    (a local client sending garbage in a loop wrote 21 MB of log in 12 s)."""
    return _burst(logging.WARNING, "invalid uwsgi packets")


def clients_gone() -> Burst:
    """The lines about connections that ended before their request was in (the client went
    away or reset): as for invalid packets (one local client connecting, promising a body and
    hanging up wrote 2.4 MB of log a second)."""
    return _burst(logging.INFO, "connections gone before their whole request")


def body_mismatches() -> Burst:
    """The lines about responses whose body did not fit their head (a body after a 204, the
    app's own mistake on every request of a route), or whose Content-Length is not a length:
    as for invalid packets."""
    return _burst(logging.WARNING, "responses whose body or Content-Length did not fit their head")


def refused_requests() -> Burst:
    """The lines about requests refused before the app (a CONTENT_LENGTH that is not digits,
    or over --limit-post; a control character in SERVER_PROTOCOL): as for invalid packets (one
    local client sending such a request in a loop wrote a line a millisecond)."""
    return _burst(logging.WARNING, "requests refused before the app")


def stalled_clients() -> Burst:
    """The lines about parked clients closed for sending nothing in --socket-timeout: one each
    up to a burst, then a count (3,000 idle connections wrote a thousand lines in 10 s)."""
    return _burst(logging.INFO, "stalled clients closed")


def _burst(level: int, what: str) -> Burst:
    def summary(count: int, last: str) -> None:
        log.log(
            level,
            "%d more %s in %g s, not logged one by one (the last: %s)",
            count,
            what,
            INVALID_LOG_WINDOW,
            last,
        )

    return Burst(INVALID_LOG_BURST, INVALID_LOG_WINDOW, summary)


def tell_dropped(where: str, count: int, failure: OSError, *, first: bool) -> None:
    """Say on stderr that ``count`` lines of ``where`` could not be written (``first``: the
    first time: the failure and what follows; then the count since the last line)."""
    if first:
        lines = f" ({count} so far)" if count > 1 else ""
        text = f"cannot write to {where}: {failure}; dropping its lines{lines}"
        text += f" (a count every {WRITE_FAILURE_INTERVAL:g} s while it fails)"
    else:
        lines = "line" if count == 1 else "lines"
        text = f"{count} more {lines} of {where} dropped, the last for: {failure}"
    # fd 2 itself, not sys.stderr: the app may have pointed sys.stderr at logging, or at
    # the failing file (then this line is lost too, quietly).
    with contextlib.suppress(OSError):
        os.write(2, f"uwsgiapp[{os.getpid()}]: {text}\n".encode(errors="replace"))
