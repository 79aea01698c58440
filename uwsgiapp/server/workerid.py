"""Which worker this process is, as its own log lines name it (the master's numbering)."""

from __future__ import annotations

import os

__all__ = ["set_worker_number", "worker_label", "worker_number"]

_NUMBER = 0


def set_worker_number(number: int) -> None:
    """This process is worker ``number`` (1..N, the master's numbering): set after fork."""
    global _NUMBER
    _NUMBER = number


def worker_number() -> int:
    """This worker's number (1..N; 0 outside a worker)."""
    return _NUMBER


def worker_label() -> str:
    """How a worker's own log lines name it, as the master's do: 'worker 2 (pid 1235)'."""
    return f"worker {_NUMBER} (pid {os.getpid()})" if _NUMBER else f"worker (pid {os.getpid()})"
