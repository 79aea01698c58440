"""The errors a client's I/O raises to the app, and the server's own exceptions: kept out of
the modules a compiled build compiles.

mypyc cannot compile a subclass of ``OSError``, so the client's errors live in this interpreted
module; :mod:`uwsgiapp.wsgi.input` and :mod:`uwsgiapp.server.io` re-export them, under which
names they are documented (and shown: ``__module__`` says so). The others are here so that the
exchange and the request threads can tell them apart without importing each other.
"""

from __future__ import annotations


class ClientDisconnected(OSError):
    """The client (nginx) went away or stalled past ``--socket-timeout`` mid-body.

    An ``OSError`` so apps that already handle I/O errors handle it; the server logs it as one
    line, never as an app traceback.
    """

    __module__ = "uwsgiapp.wsgi.input"

    #: Who the client was, where the server knew its request when it failed (nginx's
    #: REMOTE_ADDR and the connection, :func:`~uwsgiapp.server.inflight.client_of`); "": the
    #: connection alone.
    client = ""
    #: Bytes the failed call had written before it failed (set by ``send_file``, as
    #: ``BlockingIOError.characters_written``): what the access log and the stats count.
    written = 0
    #: Raised by a read of the request body (``wsgi.input``), not by a write of the response.
    from_body = False


class ClientTimeout(ClientDisconnected):
    """The client stalled past the socket timeout (it may still be connected)."""

    __module__ = "uwsgiapp.server.io"

    #: Whether it was a read (of the request body) that timed out, not a write.
    reading = False


class QuickStop(SystemExit):
    """A worker's quick stop (INT, QUIT, a stop's deadline) unwinding the request it cuts: a
    ``SystemExit`` of its own, told apart from one the app raises (``sys.exit()``)."""

    __module__ = "uwsgiapp.server.stopsignals"


class RequestCut(SystemExit):
    """Raised in a request thread by a quick stop or a harakiri, so that the app's finally
    blocks run."""

    __module__ = "uwsgiapp.server.threaded"


class AppError(Exception):
    """The app broke the WSGI contract (bad status/headers, non-bytes body, write before start)."""

    __module__ = "uwsgiapp.server.exchange"


#: The exceptions the server raises in a request to end it (not the app's own).
OUR_STOPS = (QuickStop, RequestCut)
