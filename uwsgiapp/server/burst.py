"""The per-request part of the worker loop: accept a connection, serve it, count it.

:meth:`uwsgiapp.server.worker.Worker._accept_batch` runs :func:`accept_run`. It lives apart so
that a compiled build compiles it (the worker module cannot be: its class is subclassed by an
interpreted one), and then a request runs no interpreted code but the app's: interpreted, this
loop was the largest part of the request's code footprint (the eval loop and the entry points
it goes through, ~90 of the ~890 cache lines a hello request touches, bench/footprint.py), what
the CPU fetches again after every syscall. Compiled, ``handler.begin`` is a native call.

The worker stays the owner of its state: this reads and writes its attributes (``alive``,
``parked``, ``requests``) and calls its methods for what is rare (parking, refusing, recycling).
"""

from __future__ import annotations

import os
import time
from typing import Any, Final

from uwsgiapp.server.intake import Handler

#: Connections accepted in a row before parked ones are looked at again.
PARKED_BATCH: Final = 16

# Bound once (``Final``): compiled, a module attribute would be looked up on every call.
_monotonic: Final = time.monotonic
_close_fd: Final = os.close


def accept_run(
    worker: Any, listener: Any, draining: bool, until: float, burst: bool, last: bool
) -> bool:
    """Serve connections from ``listener`` for ``worker`` until its queue is empty (or the
    worker must stop): :meth:`~uwsgiapp.server.worker.Worker._accept_batch`, which documents
    the arguments and the result."""
    accept = listener.sock._accept  # raw (fd, addr): no socket object
    allow = listener.allow
    handler: Handler = worker.handler
    hooks = worker.hooks
    check_recycle = bool(worker.max_requests) or worker.should_recycle is not None
    # The worker's count, kept here as a native int (one store a request, no read or add of
    # the attribute): only this loop counts while it runs.
    requests: int = worker.requests
    served = 0
    while worker.alive or (draining and _monotonic() < until) or (last and not served):
        if served and not draining and (not burst or (worker.parked and served >= PARKED_BATCH)):
            return True
        try:
            accepted: tuple[int, Any] = accept()
        except BlockingIOError:
            break
        except OSError as exc:
            worker._accept_failed(listener, exc)
            break
        fd, addr = accepted
        served += 1
        if allow is not None and not allow.allows(addr[0]):
            worker._refused.add((addr[0], listener.spec))
            _close_fd(fd)
            continue
        if hooks is not None:
            hooks.begin()
        pending = handler.begin(fd, addr or listener.spec)
        if pending is None:
            requests += 1
            worker.requests = requests
        else:
            worker._hold(pending)
        if hooks is not None:
            hooks.end(requests)
        if pending is None and check_recycle:
            worker._after_request()
    return False
