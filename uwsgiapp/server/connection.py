"""Compatibility names: the connection code is now :mod:`uwsgiapp.server.intake` (reading the
request) and :mod:`uwsgiapp.server.exchange` (running the app and sending the response).

Import from those modules; this one only keeps older imports of ``Handler`` working.
"""

from uwsgiapp.server.exchange import AppError, Exchange, Responder
from uwsgiapp.server.intake import PREREAD, Handler, Pending

__all__ = ["PREREAD", "AppError", "Exchange", "Handler", "Pending", "Responder"]
