"""The JSON document uWSGI's stats server serves, built from a :class:`ServerStats`.

Field names, order and units are uWSGI 2.0's (``core/master_utils.c``; checked against a
real 2.0.31), so tools written for it (uwsgitop, telegraf's uwsgi input, netdata, the
Prometheus uwsgi exporter) read ours unchanged. Fields uWSGI has and we do not (locks,
offloading, per-core vars) are present with their empty or zero value. Our own extras (status
classes, the duration histogram) are in one ``"uwsgiapp"`` object at the end of each worker,
where no uWSGI tool looks.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from uwsgiapp.stats.model import AppStats, CoreStats, ServerStats, SocketStats, WorkerStats

Document = dict[str, Any]


def _socket(s: SocketStats) -> Document:
    return {
        "name": s.name,
        "proto": s.proto,
        "queue": s.queue,
        "max_queue": s.max_queue,
        "shared": 0,
        "can_offload": 0,
    }


def _app(a: AppStats) -> Document:
    return {
        "id": a.id,
        "modifier1": a.modifier1,
        "mountpoint": a.mountpoint,
        "startup_time": a.startup_time,
        "requests": a.requests,
        "exceptions": a.exceptions,
        "chdir": a.chdir,
    }


def _core(c: CoreStats) -> Document:
    return {
        "id": c.id,
        "requests": c.requests,
        "static_requests": 0,
        "routed_requests": 0,
        "offloaded_requests": 0,
        "write_errors": 0,
        "read_errors": 0,
        "in_request": int(c.in_request),
        "vars": [],
        # uWSGI fills req_info only while the core is in a request.
        "req_info": {"request_start": c.request_start} if c.in_request else {},
    }


def _extras(w: WorkerStats) -> Document:
    h = w.durations
    return {
        "statuses": w.statuses.as_dict(),
        "durations": {"bounds": list(h.bounds), "counts": list(h.counts), "sum": h.sum},
    }


def _worker(w: WorkerStats, extended: bool) -> Document:
    doc: Document = {
        "id": w.id,
        "pid": w.pid,
        "accepting": int(w.accepting),
        "requests": w.requests,
        "delta_requests": w.delta_requests,
        "exceptions": w.exceptions,
        "harakiri_count": w.harakiri_count,
        "signals": w.signals,
        "signal_queue": w.signal_queue,
        "status": w.status,
        "rss": w.rss,
        "vsz": w.vsz,
        "running_time": w.running_time,
        "last_spawn": w.last_spawn,
        "respawn_count": w.respawn_count,
        "tx": w.tx,
        "avg_rt": w.avg_rt,
        "apps": [_app(a) for a in w.apps],
        "cores": [_core(c) for c in w.cores],
    }
    if extended:
        doc["uwsgiapp"] = _extras(w)
    return doc


def build_document(stats: ServerStats, *, extended: bool = True) -> Document:
    """The stats document as a dict in uWSGI's key order (``extended``: with our extras)."""
    return {
        "version": stats.version,
        "listen_queue": stats.listen_queue,
        "listen_queue_errors": stats.listen_queue_errors,
        "signal_queue": stats.signal_queue,
        "load": stats.load,
        "pid": stats.pid,
        "uid": stats.uid,
        "gid": stats.gid,
        "cwd": stats.cwd,
        "locks": [],
        "sockets": [_socket(s) for s in stats.sockets],
        "workers": [_worker(w, extended) for w in stats.workers],
    }


def render_json(stats: ServerStats, *, minified: bool = False, extended: bool = True) -> bytes:
    """The document as uWSGI writes it: tab-indented ``"key":value`` lines, or one line when
    ``minified`` (``--stats-minified``). Always ASCII, so a cwd that is not UTF-8 stays JSON."""
    doc = build_document(stats, extended=extended)
    if minified:
        text = json.dumps(doc, separators=(",", ":"))
    else:
        text = json.dumps(doc, indent="\t", separators=(",", ":"))
    return text.encode("ascii")


def http_response(
    body: bytes,
    *,
    content_type: str = "application/json",
    head_only: bool = False,
    status: str = "200 OK",
    more: str = "",
) -> bytes:
    """An HTTP/1.0 response carrying ``body`` with uWSGI's --stats-http headers (and a
    Content-Length, which uWSGI omits); ``more``: header lines to add, each ending in CRLF."""
    head = (
        f"HTTP/1.0 {status}\r\n"
        "Connection: close\r\n"
        "Access-Control-Allow-Origin: *\r\n"
        f"Content-Type: {content_type}\r\n"
        f"{more}"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode("ascii")
    return head if head_only else head + body


def health_verdict(workers: Iterable[tuple[bool, bool]], master_pid: object) -> tuple[bool, str]:
    """(healthy, one line) from each worker's (accepting, busy): healthy while one accepts.

    A busy worker counts: a saturated server is alive, and an orchestrator that replaced it
    would only move its load onto the others.
    """
    rows = list(workers)
    accepting = [busy for ok, busy in rows if ok]
    count = len(accepting)
    line = f"{count} worker{'s' if count != 1 else ''} accept{'s' if count == 1 else ''}"
    line += f" ({sum(accepting)} busy)"
    if leaving := sum(1 for ok, busy in rows if busy and not ok):  # a stop's, a recycle's
        line += f", {leaving} leaving, finishing {'its' if leaving == 1 else 'their'} requests"
    line += f"; master pid {master_pid}"
    if not rows:  # a row per wanted worker once the master runs: none yet, it is starting
        line = f"no worker yet (the master is starting: the app's import); master pid {master_pid}"
    return bool(accepting), ("healthy: " if accepting else "unhealthy: ") + line


def health_response(stats: ServerStats, *, head_only: bool = False) -> bytes:
    """``GET /health`` of ``--stats-http``: 200 while a worker accepts, else 503."""
    healthy, line = health_verdict(
        ((w.accepting, w.status == "busy") for w in stats.workers), stats.pid
    )
    return http_response(
        (line + "\n").encode(),
        content_type="text/plain",
        head_only=head_only,
        status="200 OK" if healthy else "503 Service Unavailable",
    )
