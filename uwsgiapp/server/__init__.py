"""The only socket code: listeners, the worker loop, and one connection from bytes to response.

- :mod:`~uwsgiapp.server.listeners`: binding unix/TCP/inherited sockets, the TCP allow-list.
- :mod:`~uwsgiapp.server.worker`: the worker loop (accept, park slow clients, stop and recycle);
  :mod:`~uwsgiapp.server.stopsignals`: its signal handlers; :mod:`~uwsgiapp.server.decisions`:
  its decisions, as pure functions.
- :mod:`~uwsgiapp.server.intake`: reading a request (:class:`~uwsgiapp.server.intake.Handler`):
  the packet head through the codec, a small body, parking what has not fully arrived.
- :mod:`~uwsgiapp.server.exchange`: running it: the app call, the response, sendfile, the
  drain of an unread body, the error answers.
- :mod:`~uwsgiapp.server.io`: non-blocking fd reads and writes with a timeout.
- :mod:`~uwsgiapp.server.logs`, :mod:`~uwsgiapp.server.logtext`: error and access logs.
- :mod:`~uwsgiapp.server.safefiles`: opening files as root without following links.

Importing this package imports none of them.
"""
