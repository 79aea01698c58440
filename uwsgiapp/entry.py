"""The ``uwsgiapp`` command's entry point (the console script and ``python -m uwsgiapp``).

A stop signal (TERM, INT, QUIT) ends the command from its first instant, before the rest is
imported. As PID 1 in a container the kernel drops a signal its target has no handler for, so
a ``docker stop`` soon after ``docker run`` would otherwise wait out its whole timeout and end
in a SIGKILL. ``serve`` takes these signals over with its own start-up handler, which cleans up
what it made; the other commands get Python's defaults back (:func:`restore_defaults`).
"""

from __future__ import annotations

import signal
from types import FrameType

__all__ = ["main", "restore_defaults"]

_STOPS = (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT)


def _stop(signum: int, frame: FrameType | None) -> None:
    raise SystemExit(128 + signum)


def restore_defaults() -> None:
    """Give the stop signals Python's usual handling back, where :func:`main` set its own."""
    for signum in _STOPS:
        if signal.getsignal(signum) is _stop:
            default = signal.default_int_handler if signum == signal.SIGINT else signal.SIG_DFL
            signal.signal(signum, default)


def main() -> int:
    """Run the ``uwsgiapp`` command line; return the exit code."""
    for signum in _STOPS:
        signal.signal(signum, _stop)
    from uwsgiapp.cli import main as run

    return run()
