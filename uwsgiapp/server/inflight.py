"""Which request a thread is in, read from its Python stack (no bookkeeping on the request path).

The harakiri dumps and ``--request-titles`` look for the ``environ`` of a WSGI call among a
stack's frames: the server's own frames hold one while a request runs, and so does the app's.
"""

from __future__ import annotations

from types import FrameType
from typing import Any

__all__ = ["request_environ", "request_line"]


def request_environ(frame: FrameType | None) -> dict[str, Any] | None:
    """The outermost WSGI environ among ``frame`` and its callers (None: not in a request)."""
    found = None
    while frame is not None:
        environ = frame.f_locals.get("environ")
        if isinstance(environ, dict) and "REQUEST_METHOD" in environ:
            found = environ
        frame = frame.f_back
    return found


def request_line(frame: FrameType | None) -> str:
    """The request a thread's stack is serving (``METHOD URI``), for a log line."""
    environ = request_environ(frame)
    if environ is None:
        return "unknown request"
    uri = environ.get("REQUEST_URI") or environ.get("PATH_INFO", "")
    return f"{environ['REQUEST_METHOD']} {uri}"
