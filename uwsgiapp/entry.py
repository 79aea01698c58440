"""The ``uwsgiapp`` command's entry point (the console script and ``python -m uwsgiapp``).

A stop signal (TERM, INT, QUIT) ends the command from its first instant, before the rest is
imported. As PID 1 in a container the kernel drops a signal its target has no handler for, so
a ``docker stop`` soon after ``docker run`` would otherwise wait out its whole timeout and end
in a SIGKILL. ``serve`` takes these signals over with its own start-up handler, which cleans up
what it made; the other commands get back what the signals did before (:func:`restore_defaults`);
a signal the command was started with ignored (a shell's background job) stays ignored.
"""

from __future__ import annotations

import signal
import sys
from types import FrameType

from uwsgiapp.termsignals import STOP_SIGNALS

__all__ = ["main", "restore_defaults"]

#: What each stop signal did before :func:`main` (given back by :func:`restore_defaults`).
_BEFORE: dict[int, object] = {}


def _stop(signum: int, frame: FrameType | None) -> None:
    args = sys.argv[1:]
    checks = {"--check-config", "--print-config"}
    if next((a for a in args if not a.startswith("-")), "") == "serve" and checks.isdisjoint(args):
        # serve's stops end in 0 ("stopped on TERM, INT or QUIT"), as its own start-up
        # handler's do a moment later: a TERM in the first 0.3 s gave 143 (a failure, to
        # whatever reads the status: a deploy script, a supervisor)
        sys.stderr.write(
            f"uwsgiapp serve: {signal.Signals(signum).name} during start-up: stopped\n"
        )
        raise SystemExit(0)
    raise SystemExit(128 + signum)


def restore_defaults() -> None:
    """Give the stop signals back what they did before :func:`main` set its own."""
    for signum in STOP_SIGNALS:
        if signal.getsignal(signum) is _stop:
            signal.signal(signum, _BEFORE[signum])  # type: ignore[arg-type]


def main() -> int:
    """Run the ``uwsgiapp`` command line; return the exit code."""
    for signum in STOP_SIGNALS:
        before = signal.getsignal(signum)
        if before is not signal.SIG_IGN:  # a background job's ignored INT stays ignored
            _BEFORE[signum] = before
            signal.signal(signum, _stop)
    from uwsgiapp.cli import main as run

    return run()
