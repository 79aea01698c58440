"""A snapshot of the server's numbers: the one input of the JSON document, the Prometheus text
and ``uwsgiapp top``.

Values are frozen, slotted, keyword-only dataclasses checked on creation. Units follow uWSGI's
stats server: times spent serving in microseconds, spawn times in epoch seconds, memory and
traffic in bytes. The master builds one :class:`ServerStats` per stats connection from what the
workers wrote in their status slots plus what only it knows (respawns, listen queue, /proc).
"""

from __future__ import annotations

import bisect
import math
from dataclasses import dataclass, field
from typing import Literal

#: What a worker is doing, as uWSGI names it: ``idle`` (waiting in accept), ``busy`` (serving a
#: request), ``cheap`` (stopped by the cheaper subsystem), ``pause`` (suspended).
WorkerState = Literal["idle", "busy", "cheap", "pause"]
WORKER_STATES: tuple[WorkerState, ...] = ("idle", "busy", "cheap", "pause")

#: Upper bounds (seconds) of the request-duration histogram; one more bucket holds the rest
#: (``+Inf``). Prometheus' default buckets, which cover a web request's usual range.
DURATION_BOUNDS: tuple[float, ...] = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
)


def _check_counts(owner: str, **values: int) -> None:
    for name, value in values.items():
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
            raise ValueError(f"{owner}.{name} must be an int >= 0, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Histogram:
    """Request durations: per-bucket counts, *not* cumulative, and their sum in seconds.

    ``counts[i]`` counts durations ``d`` with ``bounds[i-1] < d <= bounds[i]``; the last count
    (``len(bounds)``) those above the top bound. Per-bucket counts are what a worker can keep
    cheaply (one increment per request, no loop); :meth:`cumulative` gives Prometheus' view.
    """

    bounds: tuple[float, ...] = DURATION_BOUNDS
    counts: tuple[int, ...]
    sum: float = 0.0

    def __post_init__(self) -> None:
        if (
            not self.bounds
            or any(not math.isfinite(b) or b <= 0 for b in self.bounds)
            or any(a >= b for a, b in zip(self.bounds, self.bounds[1:], strict=False))
        ):
            raise ValueError(f"histogram bounds must be finite, > 0, increasing: {self.bounds}")
        if len(self.counts) != len(self.bounds) + 1:
            raise ValueError(
                f"histogram needs {len(self.bounds) + 1} counts (one per bound and +Inf), "
                f"got {len(self.counts)}"
            )
        _check_counts("Histogram", **{f"counts[{i}]": c for i, c in enumerate(self.counts)})
        if not math.isfinite(self.sum) or self.sum < 0:
            raise ValueError(f"histogram sum must be finite and >= 0, got {self.sum!r}")

    @classmethod
    def empty(cls, bounds: tuple[float, ...] = DURATION_BOUNDS) -> Histogram:
        """A histogram with no observations."""
        return cls(bounds=bounds, counts=(0,) * (len(bounds) + 1))

    @staticmethod
    def bucket_index(seconds: float, bounds: tuple[float, ...] = DURATION_BOUNDS) -> int:
        """The index of the bucket ``seconds`` falls in (what a worker increments)."""
        return bisect.bisect_left(bounds, seconds)

    @property
    def count(self) -> int:
        """Number of observations."""
        return sum(self.counts)

    def cumulative(self) -> tuple[int, ...]:
        """Prometheus' ``le`` counts: observations ``<=`` each bound, then the total (+Inf)."""
        out: list[int] = []
        total = 0
        for c in self.counts:
            total += c
            out.append(total)
        return tuple(out)

    def observe(self, seconds: float) -> Histogram:
        """A copy with one more observation (tests and simple producers)."""
        i = self.bucket_index(seconds, self.bounds)
        counts = list(self.counts)
        counts[i] += 1
        return Histogram(bounds=self.bounds, counts=tuple(counts), sum=self.sum + seconds)


@dataclass(frozen=True, slots=True, kw_only=True)
class StatusCounts:
    """Responses by HTTP status class. Requests with no status (the client left, the app
    failed before answering) are in no class: see :meth:`other`."""

    c2xx: int = 0
    c3xx: int = 0
    c4xx: int = 0
    c5xx: int = 0

    def __post_init__(self) -> None:
        _check_counts(
            "StatusCounts", c2xx=self.c2xx, c3xx=self.c3xx, c4xx=self.c4xx, c5xx=self.c5xx
        )

    def as_dict(self) -> dict[str, int]:
        """``{"2xx": n, "3xx": n, "4xx": n, "5xx": n}``."""
        return {"2xx": self.c2xx, "3xx": self.c3xx, "4xx": self.c4xx, "5xx": self.c5xx}

    def other(self, requests: int) -> int:
        """Of ``requests``, those in no status class (1xx or out-of-range, or no response)."""
        return max(0, requests - (self.c2xx + self.c3xx + self.c4xx + self.c5xx))


@dataclass(frozen=True, slots=True, kw_only=True)
class CoreStats:
    """One request-serving thread of a worker (uWSGI's "core"); ours have exactly one."""

    id: int
    requests: int = 0
    in_request: bool = False
    #: When the current request started (epoch seconds); 0 when idle.
    request_start: int = 0

    def __post_init__(self) -> None:
        _check_counts("CoreStats", id=self.id, requests=self.requests)
        _check_counts("CoreStats", request_start=self.request_start)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppStats:
    """One application loaded in a worker (uWSGI can mount several; we load one)."""

    id: int = 0
    modifier1: int = 0
    mountpoint: str = ""
    #: Seconds the app took to load.
    startup_time: int = 0
    requests: int = 0
    exceptions: int = 0
    chdir: str = ""

    def __post_init__(self) -> None:
        _check_counts(
            "AppStats",
            id=self.id,
            modifier1=self.modifier1,
            startup_time=self.startup_time,
            requests=self.requests,
            exceptions=self.exceptions,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketStats:
    """A listening socket and its accept queue (``queue`` waiting, ``max_queue`` = backlog)."""

    name: str
    proto: str = "uwsgi"
    queue: int = 0
    max_queue: int = 0

    def __post_init__(self) -> None:
        _check_counts("SocketStats", queue=self.queue, max_queue=self.max_queue)

    @property
    def full(self) -> bool:
        """The accept queue is at its backlog (a ``max_queue`` of 0: unknown, never full)."""
        return bool(self.max_queue) and self.queue >= self.max_queue


@dataclass(frozen=True, slots=True, kw_only=True)
class WorkerStats:
    """One worker slot. Counters count since the slot's first spawn unless noted."""

    id: int
    pid: int
    accepting: bool = True
    requests: int = 0
    #: Requests since this process was spawned (what max-requests compares).
    delta_requests: int = 0
    exceptions: int = 0
    harakiri_count: int = 0
    signals: int = 0
    signal_queue: int = 0
    status: WorkerState = "idle"
    rss: int = 0
    vsz: int = 0
    #: Microseconds spent serving requests.
    running_time: int = 0
    #: When the current process was spawned, epoch seconds.
    last_spawn: int = 0
    respawn_count: int = 0
    #: Bytes sent (response heads and bodies).
    tx: int = 0
    #: Average response time in microseconds.
    avg_rt: int = 0
    statuses: StatusCounts = field(default_factory=StatusCounts)
    durations: Histogram = field(default_factory=Histogram.empty)
    cores: tuple[CoreStats, ...] = ()
    apps: tuple[AppStats, ...] = ()

    def __post_init__(self) -> None:
        _check_counts(
            "WorkerStats",
            id=self.id,
            pid=self.pid,
            requests=self.requests,
            delta_requests=self.delta_requests,
            exceptions=self.exceptions,
            harakiri_count=self.harakiri_count,
            signals=self.signals,
            signal_queue=self.signal_queue,
            rss=self.rss,
            vsz=self.vsz,
            running_time=self.running_time,
            last_spawn=self.last_spawn,
            respawn_count=self.respawn_count,
            tx=self.tx,
            avg_rt=self.avg_rt,
        )
        if self.status not in WORKER_STATES:
            raise ValueError(f"WorkerStats.status must be one of {WORKER_STATES}: {self.status!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerStats:
    """The whole server at one instant: the master's own numbers and every worker slot."""

    version: str
    pid: int
    uid: int
    gid: int
    cwd: str
    #: Connections waiting in the fullest socket's accept queue (uWSGI: max over sockets).
    listen_queue: int = 0
    #: How many times a socket's accept queue was found full.
    listen_queue_errors: int = 0
    #: uWSGI sets it to the listen queue too.
    load: int = 0
    signal_queue: int = 0
    sockets: tuple[SocketStats, ...] = ()
    workers: tuple[WorkerStats, ...] = ()

    def __post_init__(self) -> None:
        _check_counts(
            "ServerStats",
            pid=self.pid,
            uid=self.uid,
            gid=self.gid,
            listen_queue=self.listen_queue,
            listen_queue_errors=self.listen_queue_errors,
            load=self.load,
            signal_queue=self.signal_queue,
        )

    @property
    def requests(self) -> int:
        """Requests served by all workers."""
        return sum(w.requests for w in self.workers)
