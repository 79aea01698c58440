"""A client that stalled or left while a view read the request body, under ``uwsgiapp serve``.

werkzeug's ``LimitedStream`` turns the server's failed read into its own ``ClientDisconnected``,
a 400: the view's answer went out as an app's 400 (in the access log too), and the server said
nothing of the client. The server's own exception is raised on instead, so that it says it as
for any app: a stall answered 408 with its line, a client gone with its line. Under another
server (the exception is not ``uwsgiapp``'s), werkzeug's 400 stays, as in Flask.
"""

from __future__ import annotations

import sys

from werkzeug.exceptions import ClientDisconnected as BodyCut

__all__ = ["server_gone"]


def server_gone(e: BaseException) -> OSError | None:
    """The server's ``ClientDisconnected`` that ``e`` is or stands for (werkzeug's, raised as
    it caught the server's); None for any other exception. Found where the server loaded it:
    this package imports nothing of the server's."""
    errors = sys.modules.get("uwsgiapp.wsgi.errors")
    if errors is None:
        return None
    if isinstance(e, BodyCut):
        e = e.__cause__ or e.__context__ or e
    return e if isinstance(e, errors.ClientDisconnected) else None
