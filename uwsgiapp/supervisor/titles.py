"""Process titles: what ``ps``, ``top`` and ``htop`` show for the master and each worker.

``setproctitle`` (a runtime dependency: wheels for CPython on Linux, macOS and Windows)
rewrites the whole command line. Where it cannot be imported (installed with ``--no-deps``,
PyPy without a compiler), Linux still gets a short name through ``prctl(PR_SET_NAME)``: that
is ``/proc/PID/comm``, what ``top`` and ``ps -o comm`` show, at most 15 bytes.

``--request-titles`` (off by default: two title changes cost ~4% of a hello-world request)
adds ``idle`` or ``busy METHOD /path`` to each worker's title, as it happens.
"""

from __future__ import annotations

import contextlib
import ctypes
import threading
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from uwsgiapp.server.logtext import escape_log_text
from uwsgiapp.wsgi.contract import StartResponse, WSGIApp

if TYPE_CHECKING:
    from uwsgiapp.server.worker import RequestHooks

PR_SET_NAME = 15
#: The kernel keeps 15 bytes of a thread name (16 with the terminating NUL).
COMM_MAX = 15
#: Characters of ``METHOD /path`` a busy title keeps (the rest becomes ``...``).
REQUEST_SHOWN = 80


def _prctl_name(name: str) -> None:
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_NAME, name.encode()[:COMM_MAX], 0, 0, 0)


def _load() -> Callable[[str], None] | None:
    try:
        from setproctitle import setproctitle
    except ImportError:
        return None
    typed: Callable[[str], None] = setproctitle  # Any where setproctitle is not installed
    return typed


_setproctitle = _load()


def set_title(title: str, comm: str = "") -> None:
    """Show ``title`` as the process's command line (``comm``: the short fallback name)."""
    if _setproctitle is not None:
        _setproctitle(title)
    else:
        _prctl_name(comm or title)


def master_title(app: str) -> tuple[str, str]:
    """(title, short name) of the master."""
    return f"uwsgiapp master [{app}]", "uwsgiapp master"


def worker_title(number: int, app: str) -> tuple[str, str]:
    """(title, short name) of worker ``number`` (counted from 1)."""
    return f"uwsgiapp worker {number} [{app}]", f"uwsgiapp w{number}"


def request_titles_available() -> bool:
    """Whether ``--request-titles`` can work (it needs ``setproctitle``: ``comm`` is too short)."""
    return _setproctitle is not None


def shown_request(environ: dict[str, Any]) -> str:
    """``METHOD /path`` for a title: no query string (``ps`` shows it to every local user),
    control characters escaped, cut to :data:`REQUEST_SHOWN` characters."""
    path = environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", "")
    text = escape_log_text(f"{environ.get('REQUEST_METHOD', '-')} {path or '/'}")
    return text if len(text) <= REQUEST_SHOWN else text[: REQUEST_SHOWN - 3] + "..."


class RequestTitles:
    """``--request-titles`` in one worker: its title says ``idle``, or ``busy`` and the request.

    :meth:`wrap` shows a request when the app is called (where its environ is known);
    :meth:`hooks` wraps a thread's status hooks so that its request's end shows idle again.
    With ``threads`` > 1 the title counts the busy threads and names the latest request.
    ``setter``: what changes the title (``setproctitle`` unless given).
    """

    def __init__(
        self, base: str, threads: int = 1, setter: Callable[[str], None] | None = None
    ) -> None:
        setter = setter or _setproctitle
        assert setter is not None, "check request_titles_available() first"
        self._set = setter
        self._base = base
        self._threads = threads
        self._busy = 0
        self._lock = threading.Lock()
        self._mine = threading.local()  # whether this thread's request is counted in _busy
        self._set(f"{base} idle")

    def title(self, busy: int, request: str = "") -> str:
        """The title for ``busy`` threads in a request (``request``: the latest one shown)."""
        if not busy:
            return f"{self._base} idle"
        count = f" {busy}/{self._threads}" if self._threads > 1 else ""
        return f"{self._base} busy{count} {request}".rstrip()

    def wrap(self, app: WSGIApp) -> WSGIApp:
        """``app``, showing each request in the title before it runs."""
        show = self.show

        def titled(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
            show(environ)
            return app(environ, start_response)

        return titled

    def show(self, environ: dict[str, Any]) -> None:
        """The calling thread is now in the request ``environ``."""
        request = shown_request(environ)
        with self._lock:
            if not getattr(self._mine, "busy", False):
                self._mine.busy = True
                self._busy += 1
            self._set(self.title(self._busy, request))

    def done(self) -> None:
        """The calling thread's connection ended (idle again, if it was in a request)."""
        if getattr(self._mine, "busy", False):
            with self._lock:
                self._mine.busy = False
                self._busy -= 1
                self._set(self.title(self._busy))

    def hooks(self, inner: RequestHooks) -> TitledHooks:
        """``inner`` (a thread's status hooks), also showing idle at each request's end."""
        return TitledHooks(inner, self.done)


class TitledHooks:
    """Status hooks that call ``done`` after the inner ``end`` (see :class:`RequestTitles`)."""

    __slots__ = ("_done", "_end", "begin", "inner")

    def __init__(self, inner: RequestHooks, done: Callable[[], None]) -> None:
        self.inner = inner
        self.begin = inner.begin
        self._end = inner.end
        self._done = done

    @property
    def started(self) -> float:
        """The inner hooks' request start (threaded workers' cores keep one)."""
        started: float = getattr(self.inner, "started", 0.0)
        return started

    def end(self, requests: int) -> None:
        """The inner ``end``, then idle again in the title."""
        self._end(requests)
        self._done()
