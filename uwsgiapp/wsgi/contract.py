"""Types of the callables a WSGI exchange involves (PEP 3333), and the server's access-log hook.

Types only: importing this module loads nothing else of the package.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Protocol

#: ``start_response(status, headers, exc_info=None)`` → ``write``.
StartResponse = Callable[..., Any]
#: A WSGI application: ``app(environ, start_response)`` → an iterable of bytes.
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
#: What ``sys.exc_info()`` gives while an exception is handled (``start_response``'s third arg).
ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
#: Called after each request when the access log is on: (environ, response, seconds, block),
#: the response being the exchange's state: ``status`` (str, or None if none was sent), ``sent``
#: (bytes, head and body), ``head_size`` (the head's bytes) and ``headers`` (the app's list);
#: ``block`` the request's var block as it arrived (the packet's, whatever the app did to the
#: environ).
AccessLogger = Callable[[dict[str, Any], Any, float, bytes], None]


class ErrorStream(Protocol):
    """``wsgi.errors`` (PEP 3333): a text stream with ``write``, ``writelines``, ``flush``."""

    def write(self, text: str, /) -> int: ...

    def writelines(self, lines: Iterable[str], /) -> None: ...

    def flush(self) -> None: ...


__all__ = ["AccessLogger", "ErrorStream", "ExcInfo", "StartResponse", "WSGIApp"]
