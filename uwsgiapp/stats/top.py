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
import json
import os
import socket
import sys
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from uwsgiapp.server.logtext import escape_log_text

if TYPE_CHECKING:
    import curses

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_BAD_RESPONSE = 4

#: A stats document larger than this is refused (uWSGI's are a few KB per worker).
MAX_DOCUMENT = 64 * 1024 * 1024


class FetchError(Exception):
    """The stats could not be read; ``code`` is the exit status it calls for."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Where the stats are: a unix socket ``path``, or ``host``/``port`` (``http``: an URL)."""

    text: str
    path: str = ""
    host: str = ""
    port: int = 0
    http_path: str = ""

    @property
    def http(self) -> bool:
        """The server wraps the document in an HTTP response (``--stats-http``)."""
        return bool(self.http_path)


def _host_port(text: str, whole: str) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"bad address {whole!r} (expected [v6]:port)")
    else:
        host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {whole!r}")
    return host or "127.0.0.1", int(port)


def parse_source(text: str) -> Source:
    """Parse a stats address; ValueError names what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("empty stats address")
    if text.startswith("http://"):
        rest = text[7:]
        hostport, slash, path = rest.partition("/")
        if ":" not in hostport.rpartition("]")[2]:
            hostport += ":80"
        host, port = _host_port(hostport, text)
        return Source(text=text, host=host, port=port, http_path=slash + path or "/")
    if "://" in text:
        raise ValueError(f"unsupported scheme in {text!r} (use http://, a path or host:port)")
    if text.startswith("unix:"):
        return Source(text=text, path=text[5:])
    if text.startswith("@"):
        return Source(text=text, path="\0" + text[1:])
    if "/" in text or ":" not in text:
        return Source(text=text, path=text)
    host, port = _host_port(text, text)
    return Source(text=text, host=host, port=port)


def _read_until_close(sock: socket.socket, deadline: float, hint: str = "") -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError("timed out reading the stats" + hint, EXIT_BAD_RESPONSE)
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise FetchError("timed out reading the stats" + hint, EXIT_BAD_RESPONSE) from None
        except OSError as exc:
            raise FetchError(f"reading the stats failed: {exc}", EXIT_BAD_RESPONSE) from None
        if not data:
            return b"".join(chunks)
        size += len(data)
        if size > MAX_DOCUMENT:
            raise FetchError("stats document too large", EXIT_BAD_RESPONSE)
        chunks.append(data)


def _connect(source: Source, timeout: float) -> socket.socket:
    try:
        if source.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(source.path)
            except BaseException:
                sock.close()
                raise
            return sock
        return socket.create_connection((source.host, source.port), timeout=timeout)
    except OSError as exc:
        raise FetchError(f"cannot connect to {source.text}: {exc}", EXIT_CONNECT) from None


def _silence_hint(source: Source, hint: str) -> str:
    """What a stats read that got nothing may have reached instead: a stats server in HTTP
    mode (``hint``), or the server's uwsgi socket, which waits for a request too."""
    if source.http:
        return hint
    also = "; or this is a uwsgi socket" if hint else " (is this a uwsgi socket? then"
    return (
        f"{hint[:-1] if hint else ''}{also}: give --stats's address "
        f"(`uwsgiapp ping {source.text}` answers on a uwsgi socket))"
    )


def fetch(source: Source, timeout: float = 3.0) -> dict[str, Any]:
    """Read one stats document (one connection, as uWSGI serves it)."""
    deadline = time.monotonic() + timeout
    # A stats server in HTTP mode waits for a request that a plain read never sends.
    plain_tcp = source.host and not source.http
    hint = f" (with --stats-http, give http://{source.text}/)" if plain_tcp else ""
    with _connect(source, timeout) as sock:
        if source.http:
            request = f"GET {source.http_path} HTTP/1.0\r\nHost: {source.host}\r\n\r\n"
            try:
                sock.sendall(request.encode("latin-1"))
            except OSError as exc:
                raise FetchError(f"sending the request failed: {exc}", EXIT_BAD_RESPONSE) from None
        raw = _read_until_close(sock, deadline, _silence_hint(source, hint))
    if source.http:
        head, sep, raw = raw.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].split(b" ", 2)
        if not sep or len(status) < 2 or status[1] != b"200":
            line = head.split(b"\r\n", 1)[0][:80].decode("latin-1")
            raise FetchError(f"not an HTTP 200 answer: {line!r}", EXIT_BAD_RESPONSE)
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FetchError(
            "the answer is not a JSON stats document" + hint, EXIT_BAD_RESPONSE
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("workers", []), list):
        raise FetchError("the answer is not a stats document", EXIT_BAD_RESPONSE)
    return doc


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


def run(address: str, *, interval: float = 1.0, once: bool = False, timeout: float = 3.0) -> int:
    """The ``top`` command: returns its exit status."""
    try:
        source = parse_source(address) if address else _configured_source()
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
    import curses

    code: int = curses.wrapper(_live, source, interval, timeout)
    return code


def _configured_source() -> Source:
    """No ADDR: the server's own stats setting, found as the health check finds it (the
    uwsgiapp image sets it: ``docker exec CONTAINER uwsgiapp top``)."""
    from uwsgiapp.stats.health import stats_source  # health imports this module

    return stats_source("", os.environ)


def add_parser(sub: argparse._SubParsersAction[Any]) -> None:
    """Declare ``uwsgiapp top`` on the command line's sub-command parser."""
    p = sub.add_parser(
        "top",
        help="live view of a stats server (ours or uWSGI's): workers, req/s, listen queue",
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
    p.add_argument(
        "--timeout", type=float, default=3.0, metavar="S", help="deadline per read (3 seconds)"
    )
    p.set_defaults(handler=_command)


def _command(args: argparse.Namespace) -> int:
    return run(args.address, interval=args.interval, once=args.once, timeout=args.timeout)
