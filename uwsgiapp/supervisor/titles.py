"""Process titles: what ``ps``, ``top`` and ``htop`` show for the master and each worker.

``setproctitle`` (a runtime dependency: wheels for CPython on Linux, macOS and Windows)
rewrites the whole command line. Where it cannot be imported (installed with ``--no-deps``,
PyPy without a compiler), Linux still gets a short name through ``prctl(PR_SET_NAME)``: that
is ``/proc/PID/comm``, what ``top`` and ``ps -o comm`` show, at most 15 bytes.
"""

from __future__ import annotations

import contextlib
import ctypes
from collections.abc import Callable

PR_SET_NAME = 15
#: The kernel keeps 15 bytes of a thread name (16 with the terminating NUL).
COMM_MAX = 15


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
