"""A process the app forks from a worker (``os.fork()`` in a request) that comes back into the
worker's code: it returned from the app, raised through it, or called ``sys.exit()``.

Such a process is a copy of the worker, whose connections it closed at the fork
(:meth:`~uwsgiapp.server.stopsignals.StopSignals._forked_by_the_app`): going on, it answered
nobody (a "Bad file descriptor" line), then ran the worker's loop as a second worker 1, said
the master was gone (its parent is the worker), and wrote "leaving" into the worker's status
slot, for which the master started one more worker for good. It exits there instead, at once
(``os._exit``: the worker's ``atexit`` functions and loop are not its own), with the code a
plain Python process would: 0 for a return or ``sys.exit()``, ``sys.exit(N)``'s N, 1 for an
exception, which is logged with its traceback.
"""

from __future__ import annotations

import logging
import os
import sys
from typing import Any, NoReturn

from uwsgiapp.server.inflight import request_text, worker_number

__all__ = ["leave"]

log = logging.getLogger("uwsgiapp.error")


def exit_code(exc: BaseException | None) -> int:
    """The code a Python process ends with after ``exc`` (None: it returned), as the
    interpreter's own exit gives it; a ``sys.exit("text")`` prints its text to stderr."""
    if exc is None:
        return 0
    if not isinstance(exc, SystemExit):
        return 1
    if exc.code is None or isinstance(exc.code, int):
        return int(exc.code or 0)
    print(exc.code, file=sys.stderr)
    return 1


def leave(environ: dict[str, Any], exc: BaseException | None) -> NoReturn:
    """End the app's forked process that is back from the app (``exc``: what it raised, None
    if it returned, its response sent or not): a line for a return (the app should end it
    itself) or an exception, nothing for ``sys.exit()``."""
    who = f"the process (pid {os.getpid()}) the app forked from worker {worker_number()}"
    what = request_text(environ)
    code = exit_code(exc)
    if exc is None:
        log.warning("%s came back from the app into the server's code in %s: it exits (end "
                    "such a process with os._exit())", who, what)  # fmt: skip
    elif not isinstance(exc, SystemExit):
        log.error("%s raised %s in %s: it exits with code 1", who, type(exc).__name__, what,
                  exc_info=exc)  # fmt: skip
    from uwsgiapp.server.logs import flush_std  # it imports the exchange, which imports this

    flush_std()
    os._exit(code)
