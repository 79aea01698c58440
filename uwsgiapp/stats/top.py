"""``uwsgiapp top [ADDR]``: a live terminal view of a stats server, ours or uWSGI's.

It reads the stats JSON document by field name only (the fields uWSGI 2.0 writes), so it works
against ``uwsgi --stats`` as well as ``uwsgiapp serve --stats``: a unix socket path (or
``unix:PATH``, ``@abstract``), ``host:port`` / ``[v6]:port``, or an ``http://`` URL for a stats
server in HTTP mode; without ADDR, the server's own setting (``$UWSGIAPP_STATS``, read as the
health check reads it). ``--once`` prints one plain-text snapshot (no escape codes) and exits;
otherwise a curses view refreshes every ``--interval`` seconds until ``q``.

Exit status: 0 ok, 2 usage error, 3 cannot connect, 4 no valid stats document.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from uwsgiapp.server.logtext import escape_log_text
from uwsgiapp.stats.reader import (
    EXIT_OK,
    EXIT_USAGE,
    FetchError,
    Source,
    fetch,
    stats_source,
)

if TYPE_CHECKING:
    import curses

# --- the view -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Sample:
    """A document and when it was read (monotonic seconds)."""

    at: float
    doc: dict[str, Any]


def _int(obj: dict[str, Any], key: str) -> int:
    value = obj.get(key, 0)
    return int(value) if isinstance(value, int | float) else 0


def human_size(n: float) -> str:
    """Bytes as 512, 1.5K, 20.3M, 1.1G."""
    for unit, scale in (("G", 1 << 30), ("M", 1 << 20), ("K", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f}{unit}"
    return f"{int(n)}"


def rates(previous: Sample | None, current: Sample) -> dict[int, float]:
    """Requests per second per worker id since ``previous`` (nothing without one)."""
    if previous is None or current.at <= previous.at:
        return {}
    before = {_int(w, "id"): _int(w, "requests") for w in previous.doc.get("workers", [])}
    dt = current.at - previous.at
    out: dict[int, float] = {}
    for w in current.doc.get("workers", []):
        wid = _int(w, "id")
        if wid in before:
            # a respawned worker's counter may start over: never a negative rate
            out[wid] = max(0, _int(w, "requests") - before[wid]) / dt
    return out


#: Index of the column titles in :func:`render`'s lines.
TITLE_LINE = 4

COLUMNS = (
    ("WID", 4),
    ("PID", 8),
    ("STATE", 10),
    ("REQ", 10),
    ("REQ/S", 8),
    ("AVG ms", 9),
    ("RSS", 8),
    ("EXC", 6),
    ("RESPAWN", 8),
    ("HARAKIRI", 8),
)


def _state(w: dict[str, Any]) -> str:
    """The worker's status; with ``--threads`` (several cores), and its busy threads of all
    (``busy 3/4``), as its process title says."""
    status = w.get("status", "?")
    text = status if isinstance(status, str) else "?"
    cores = [c for c in w.get("cores", ()) if isinstance(c, dict)]
    if len(cores) > 1:
        text += f" {sum(1 for c in cores if c.get('in_request'))}/{len(cores)}"
    return text


def _row(w: dict[str, Any], rate: float | None) -> str:
    cells = (
        str(_int(w, "id")),
        str(_int(w, "pid")),
        _state(w),
        str(_int(w, "requests")),
        "-" if rate is None else f"{rate:.1f}",
        f"{_int(w, 'avg_rt') / 1000:.1f}",
        human_size(_int(w, "rss")),
        str(_int(w, "exceptions")),
        str(_int(w, "respawn_count")),
        str(_int(w, "harakiri_count")),
    )
    return " ".join(cell.rjust(width) for cell, (_, width) in zip(cells, COLUMNS, strict=True))


def render(previous: Sample | None, current: Sample, source: str) -> list[str]:
    """The screen as plain lines: three header lines, a blank, the column titles (line
    :data:`TITLE_LINE`), one line per worker."""
    doc = current.doc
    workers = [w for w in doc.get("workers", []) if isinstance(w, dict)]
    per_worker = rates(previous, current)
    states: dict[str, int] = {}
    for w in workers:
        states[str(w.get("status", "?"))] = states.get(str(w.get("status", "?")), 0) + 1
    state_text = ", ".join(f"{n} {s}" for s, n in sorted(states.items())) or "none"
    total_rate = f"{sum(per_worker.values()):.1f}" if per_worker else "-"
    clock = time.strftime("%H:%M:%S")
    lines = [
        f"uwsgiapp top - {source} - version {doc.get('version', '?')} - "
        f"master pid {_int(doc, 'pid')} - {clock}",
        f"workers: {len(workers)} ({state_text}) - requests: "
        f"{sum(_int(w, 'requests') for w in workers)} - req/s: {total_rate}",
        f"exceptions: {sum(_int(w, 'exceptions') for w in workers)} - "
        f"harakiri: {sum(_int(w, 'harakiri_count') for w in workers)} - "
        f"tx: {human_size(sum(_int(w, 'tx') for w in workers))} - "
        f"listen queue: {_int(doc, 'listen_queue')} (errors {_int(doc, 'listen_queue_errors')})",
        "",
        " ".join(title.rjust(width) for title, width in COLUMNS),
    ]
    for w in sorted(workers, key=lambda w: _int(w, "id")):
        lines.append(_row(w, per_worker.get(_int(w, "id")) if per_worker else None))
    return lines


def _draw(screen: curses.window, lines: list[str]) -> None:
    import curses

    screen.erase()
    height, width = screen.getmaxyx()
    for y, line in enumerate(lines[:height]):
        attr = curses.A_REVERSE if y == TITLE_LINE else curses.A_NORMAL
        if y > TITLE_LINE and " busy " in line:
            attr = curses.A_BOLD
        # A line that does not fit a tiny window raises: drawing what fits is enough.
        with contextlib.suppress(curses.error):
            screen.addnstr(y, 0, line, max(1, width - 1), attr)
    screen.refresh()


def _live(screen: curses.window, source: Source, interval: float, timeout: float) -> int:
    import curses

    with contextlib.suppress(curses.error):
        curses.curs_set(0)
    screen.timeout(int(interval * 1000))
    previous: Sample | None = None
    while True:
        try:
            current = Sample(time.monotonic(), fetch(source, timeout))
            lines = render(previous, current, source.text)
            previous = current
        except FetchError as exc:
            lines = [f"uwsgiapp top - {source.text} - {time.strftime('%H:%M:%S')}", str(exc)]
        lines.append("")
        lines.append("q: quit")
        _draw(screen, lines)
        key = screen.getch()
        if key in (ord("q"), ord("Q"), 27):
            return EXIT_OK


def run(
    address: str,
    *,
    interval: float = 1.0,
    once: bool = False,
    timeout: float = 3.0,
    http: bool = False,
) -> int:
    """The ``top`` command: returns its exit status."""
    try:
        source = _source(address, http)
    except ValueError as exc:
        print(f"uwsgiapp top: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    if not 0 < interval < 86400 or not 0 < timeout < 86400:
        print("uwsgiapp top: error: --interval and --timeout take seconds > 0", file=sys.stderr)
        return EXIT_USAGE
    if once:
        try:
            doc = fetch(source, timeout)
        except FetchError as exc:
            print(f"uwsgiapp top: error: {exc}", file=sys.stderr)
            return exc.code
        # The document's text is the server's (or whoever listens there): no control character
        # of it reaches the terminal (a title, a cleared screen, a forged line).
        lines = render(None, Sample(time.monotonic(), doc), source.text)
        print("\n".join(escape_log_text(line) for line in lines))
        return EXIT_OK
    if not sys.stdout.isatty():
        print(
            "uwsgiapp top: error: the live view needs a terminal (docker exec -t, kubectl exec "
            "-t); --once prints one snapshot as plain text",
            file=sys.stderr,
        )
        return EXIT_USAGE
    import curses

    try:
        code: int = curses.wrapper(_live, source, interval, timeout)
    except curses.error as exc:  # setupterm: a TERM unset, or one this system has no entry for
        print(
            f"uwsgiapp top: error: cannot drive this terminal (TERM={os.environ.get('TERM', '')!r}"
            f": {exc}): set TERM to one this system knows, e.g. TERM=xterm, or use --once",
            file=sys.stderr,
        )
        return EXIT_USAGE
    return code


def _source(address: str, http: bool) -> Source:
    """``address`` (over HTTP with ``http``: a unix socket's ``--stats-http`` has no URL), or
    with none the server's own stats setting, found as the health check finds it (the
    uwsgiapp image sets it: ``docker exec CONTAINER uwsgiapp top``)."""
    return stats_source(address, {} if address else os.environ, http)


def add_parser(sub: argparse._SubParsersAction[Any], summary: str) -> None:
    """Declare ``uwsgiapp top`` on the command line's sub-command parser."""
    p = sub.add_parser(
        "top",
        help=summary,
        description=(
            "Show the workers of a server with a stats socket (uwsgiapp serve --stats, or "
            "uWSGI's --stats): state, requests and req/s, average time, RSS, respawns, and the "
            "listen queue. Refreshes every --interval seconds; q quits."
        ),
        epilog="exit status: 0 ok, 2 usage error, 3 cannot connect, 4 no valid stats document",
    )
    p.add_argument(
        "address",
        nargs="?",
        default="",
        metavar="ADDR",
        help="stats socket: unix path, host:port, [v6]:port, @abstract, or http://host:port/ "
        "(default: $UWSGIAPP_STATS, over HTTP when $UWSGIAPP_STATS_HTTP is on, as the "
        "uwsgiapp image sets them)",
    )
    p.add_argument(
        "--interval", type=float, default=1.0, metavar="S", help="refresh every S seconds (1)"
    )
    p.add_argument("--once", action="store_true", help="print one plain-text snapshot and exit")
    p.add_argument("--http", action="store_true", help="ADDR speaks HTTP (--stats-http)")
    p.add_argument(
        "--timeout", type=float, default=3.0, metavar="S", help="deadline per read (3 seconds)"
    )
    p.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    return run(
        args.address, interval=args.interval, once=args.once, timeout=args.timeout, http=args.http
    )
