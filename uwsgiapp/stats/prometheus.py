"""The snapshot in Prometheus' text exposition format (version 0.0.4), names prefixed
``uwsgiapp_``.

Per-worker series carry a ``worker`` label: the worker number, 1..N, which a replacement
takes over (a reload, a crash, a recycle), with the number's counters, so that a series' counters
only grow and reloads add no series. A number ``--cheaper`` has never started has no
per-worker series (an ini's ``processes = 128, cheaper = 8`` would list 128 from the start);
one it stopped keeps its series, whose counters come back with it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable

from uwsgiapp.stats.model import WORKER_STATES, ServerStats, WorkerStats

#: The ``Content-Type`` of the text format.
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

Labels = tuple[tuple[str, str], ...]
Sample = tuple[str, Labels, float]


def _escape_label(value: str) -> str:
    return value.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _escape_help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _number(value: float) -> str:
    if isinstance(value, int):
        return str(value)
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    if math.isnan(value):
        return "NaN"
    return repr(float(value))


class _Writer:
    """Accumulates metric families: HELP, TYPE, then the samples."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[Sample]) -> None:
        self.lines.append(f"# HELP {name} {_escape_help(help_text)}")
        self.lines.append(f"# TYPE {name} {kind}")
        for sample_name, labels, value in samples:
            if labels:
                text = ",".join(f'{k}="{_escape_label(v)}"' for k, v in labels)
                self.lines.append(f"{sample_name}{{{text}}} {_number(value)}")
            else:
                self.lines.append(f"{sample_name} {_number(value)}")

    def text(self) -> str:
        return "\n".join(self.lines) + "\n"


def _listed(stats: ServerStats) -> list[WorkerStats]:
    """The workers with series: all but the numbers never started (cheap from the start)."""
    return [w for w in stats.workers if w.status != "cheap" or w.respawn_count]


def _per_worker(
    workers: list[WorkerStats], name: str, value: Callable[[WorkerStats], float]
) -> list[Sample]:
    return [(name, (("worker", str(w.id)),), value(w)) for w in workers]


def _master(out: _Writer, stats: ServerStats) -> None:
    p = "uwsgiapp_"
    out.family(
        p + "info",
        "gauge",
        "Server version and master pid (always 1).",
        [(p + "info", (("version", stats.version), ("pid", str(stats.pid))), 1)],
    )
    out.family(
        p + "listen_queue",
        "gauge",
        "Connections waiting in the fullest listening socket's accept queue.",
        [(p + "listen_queue", (), stats.listen_queue)],
    )
    out.family(
        p + "listen_queue_errors_total",
        "counter",
        "Times a listening socket's accept queue was found full.",
        [(p + "listen_queue_errors_total", (), stats.listen_queue_errors)],
    )
    out.family(
        p + "socket_queue",
        "gauge",
        "Connections waiting in each listening socket's accept queue.",
        [(p + "socket_queue", (("socket", s.name),), s.queue) for s in stats.sockets],
    )
    out.family(
        p + "socket_max_queue",
        "gauge",
        "Each listening socket's accept queue size (backlog).",
        [(p + "socket_max_queue", (("socket", s.name),), s.max_queue) for s in stats.sockets],
    )
    counts = dict.fromkeys(WORKER_STATES, 0)
    for w in stats.workers:
        counts[w.status] += 1
    out.family(
        p + "workers",
        "gauge",
        "Workers in each state (idle, busy, cheap, pause).",
        [(p + "workers", (("state", s),), n) for s, n in counts.items()],
    )


def _requests(out: _Writer, workers: list[WorkerStats]) -> None:
    name = "uwsgiapp_requests_total"
    samples: list[Sample] = []
    for w in workers:
        wid = str(w.id)
        for cls, n in w.statuses.as_dict().items():
            samples.append((name, (("worker", wid), ("status", cls)), n))
        samples.append((name, (("worker", wid), ("status", "other")), w.statuses.other(w.requests)))
    out.family(
        name,
        "counter",
        "Requests served, by worker and response status class"
        " ('other': no status or outside 2xx-5xx).",
        samples,
    )


def _durations(out: _Writer, workers: list[WorkerStats]) -> None:
    name = "uwsgiapp_request_duration_seconds"
    samples: list[Sample] = []
    for w in workers:
        wid = ("worker", str(w.id))
        h = w.durations
        bounds: list[float] = [*h.bounds, math.inf]
        for bound, count in zip(bounds, h.cumulative(), strict=True):
            samples.append((name + "_bucket", (wid, ("le", _number(bound))), count))
        samples.append((name + "_count", (wid,), h.count))
        samples.append((name + "_sum", (wid,), h.sum))
    out.family(name, "histogram", "Time from request start to response end.", samples)


def _workers(out: _Writer, workers: list[WorkerStats]) -> None:
    p = "uwsgiapp_worker_"
    families: list[tuple[str, str, str, Callable[[WorkerStats], float]]] = [
        (
            "busy",
            "gauge",
            "1 while the worker serves a request.",
            lambda w: int(w.status == "busy"),
        ),
        (
            "busy_threads",
            "gauge",
            "The worker's request threads (--threads) serving a request now.",
            lambda w: sum(c.in_request for c in w.cores),
        ),
        (
            "threads",
            "gauge",
            "The worker's request threads (--threads; uWSGI's cores).",
            lambda w: len(w.cores),
        ),
        ("pid", "gauge", "The worker's process id.", lambda w: w.pid),
        ("exceptions_total", "counter", "Requests that raised in the app.", lambda w: w.exceptions),
        (
            "harakiri_total",
            "counter",
            "Workers killed in this slot for a request over the harakiri timeout.",
            lambda w: w.harakiri_count,
        ),
        (
            "spawns_total",
            "counter",
            "Processes started in this slot, the first included (uWSGI's respawn_count).",
            lambda w: w.respawn_count,
        ),
        (
            "last_spawn_timestamp_seconds",
            "gauge",
            "When the current process was started (epoch seconds).",
            lambda w: w.last_spawn,
        ),
        ("rss_bytes", "gauge", "Resident memory of the worker process.", lambda w: w.rss),
        ("vsz_bytes", "gauge", "Virtual memory of the worker process.", lambda w: w.vsz),
        ("transmitted_bytes_total", "counter", "Response bytes sent.", lambda w: w.tx),
        (
            "busy_seconds_total",
            "counter",
            "Time spent serving requests.",
            lambda w: w.running_time / 1e6,
        ),
        (
            "avg_response_seconds",
            "gauge",
            "Average response time (uWSGI's avg_rt).",
            lambda w: w.avg_rt / 1e6,
        ),
    ]
    for suffix, kind, help_text, value in families:
        out.family(p + suffix, kind, help_text, _per_worker(workers, p + suffix, value))


def render_metrics(stats: ServerStats) -> bytes:
    """The whole exposition for ``GET /metrics``, UTF-8 encoded."""
    out = _Writer()
    _master(out, stats)
    workers = _listed(stats)
    _requests(out, workers)
    _durations(out, workers)
    _workers(out, workers)
    return out.text().encode("utf-8")
