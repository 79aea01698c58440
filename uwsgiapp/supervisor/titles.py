"""Process titles: what ``ps``, ``top`` and ``htop`` show for the master and each worker.

``setproctitle`` (a runtime dependency: wheels for CPython on Linux, macOS and Windows)
rewrites the whole command line. Where it cannot be imported (installed with ``--no-deps``,
PyPy without a compiler), Linux still gets a short name through ``prctl(PR_SET_NAME)``: that
is ``/proc/PID/comm``, what ``top`` and ``ps -o comm`` show, at most 15 bytes.

``--request-titles`` adds ``idle`` or ``busy METHOD /path`` to each worker's title, sampled
twice a second by a thread of the worker (see :class:`RequestTitles`).
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import sys
from collections.abc import Callable
from typing import Any

from uwsgiapp.server.inflight import request_environ
from uwsgiapp.server.logtext import as_sent, escape_log_text
from uwsgiapp.unpatched import OsEvent, OsThread, get_ident

PR_SET_NAME = 15
#: The kernel keeps 15 bytes of a thread name (16 with the terminating NUL).
COMM_MAX = 15
#: Characters of ``METHOD /path`` a busy title keeps (the rest becomes ``...``).
REQUEST_SHOWN = 80
#: Seconds between two looks at what a worker's threads are doing (``--request-titles``).
SAMPLE_INTERVAL = 0.5


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
    text = escape_log_text(as_sent(f"{environ.get('REQUEST_METHOD', '-')} {path or '/'}"))
    return text if len(text) <= REQUEST_SHOWN else text[: REQUEST_SHOWN - 3] + "..."


class RequestTitles:
    """``--request-titles`` in one worker: its title says ``idle``, or ``busy`` and the request.

    A daemon thread looks at the worker's stacks every :data:`SAMPLE_INTERVAL` seconds
    (:func:`~uwsgiapp.server.inflight.request_environ`, as the harakiri dump does) and changes
    the title when what it would show changed: the request path pays nothing, and requests
    shorter than the interval seldom show. With ``threads`` > 1 the title counts the busy
    threads and names one of their requests (``threads``: a number, or what asks the worker
    how many serve: fewer than ``--threads`` at a thread limit). ``setter``: what changes the
    title (``setproctitle`` unless given).
    """

    def __init__(
        self,
        base: str,
        threads: int | Callable[[], int] = 1,
        setter: Callable[[str], None] | None = None,
    ) -> None:
        setter = setter or _setproctitle
        assert setter is not None, "check request_titles_available() first"
        self._set = setter
        self._base = base
        self._threads = threads if callable(threads) else lambda: threads
        self._shown = ""
        self._stop = OsEvent()

    def title(self, requests: list[dict[str, Any]]) -> str:
        """The title while ``requests`` (their environs) are in progress."""
        if not requests:
            return f"{self._base} idle"
        threads = self._threads()
        count = f" {len(requests)}/{threads}" if threads > 1 else ""
        return f"{self._base} busy{count} {shown_request(requests[0])}"

    def sample(self) -> str:
        """Look at the other threads' stacks once; show (and return) the title they make."""
        me = get_ident()
        requests = [
            environ
            for ident, frame in sys._current_frames().items()
            if ident != me and (environ := request_environ(frame, ident)) is not None
        ]
        text = self.title(requests)
        if text != self._shown:
            self._shown = text
            self._set(text)
        return text

    def start(self, interval: float = SAMPLE_INTERVAL) -> OsThread | None:
        """Show the idle title now and sample every ``interval`` seconds until :meth:`stop`
        (None: no thread could start, at a process or thread limit: the title stays idle)."""
        self.sample()

        def run() -> None:
            while not self._stop.wait(interval):
                with contextlib.suppress(Exception):  # a title is never worth a worker
                    self.sample()

        try:
            return OsThread("request titles", run)
        except RuntimeError as exc:  # "can't start new thread": the worker serves on without
            logging.getLogger("uwsgiapp.error").warning(
                "--request-titles: no thread for the titles (%s): they stay as they are", exc
            )
            return None

    def stop(self) -> None:
        """End the sampling thread (at its next wake-up)."""
        self._stop.set()
