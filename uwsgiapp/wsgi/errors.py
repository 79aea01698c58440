"""The errors a client's I/O raises to the app: kept out of the modules a compiled build compiles.

mypyc cannot compile a subclass of ``OSError``, so these two live in this interpreted module;
:mod:`uwsgiapp.wsgi.input` and :mod:`uwsgiapp.server.io` re-export them, under which names they
are documented (and shown: ``__module__`` says so).
"""

from __future__ import annotations


class ClientDisconnected(OSError):
    """The client (nginx) went away or stalled past ``--socket-timeout`` mid-body.

    An ``OSError`` so apps that already handle I/O errors handle it; the server logs it as one
    line, never as an app traceback.
    """

    __module__ = "uwsgiapp.wsgi.input"

    #: Bytes the failed call had written before it failed (set by ``send_file``, as
    #: ``BlockingIOError.characters_written``): what the access log and the stats count.
    written = 0


class ClientTimeout(ClientDisconnected):
    """The client stalled past the socket timeout (it may still be connected)."""

    __module__ = "uwsgiapp.server.io"

    #: Whether it was a read (of the request body) that timed out, not a write.
    reading = False


class QuickStop(SystemExit):
    """A worker's quick stop (INT, QUIT, a stop's deadline) unwinding the request it cuts: a
    ``SystemExit`` of its own, told apart from one the app raises (``sys.exit()``)."""

    __module__ = "uwsgiapp.server.stopsignals"
