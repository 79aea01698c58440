"""Context locals: ``request``, ``session``, ``g`` and ``current_app``.

Each is a werkzeug :class:`~werkzeug.local.LocalProxy` over a :class:`contextvars.ContextVar`, so
every thread (and every asyncio task or ``contextvars.Context``) sees its own request. Contexts set
the variables with ``ContextVar.set`` and undo them with the token it returned.
"""

from __future__ import annotations

import typing as t
from contextvars import ContextVar

from werkzeug.local import LocalProxy

if t.TYPE_CHECKING:
    from .app import App
    from .ctx import AppContext, AppGlobals, RequestContext
    from .sessions import SessionMixin
    from .wrappers import Request

__all__ = ["current_app", "g", "request", "session"]

_NO_APP = """\
Working outside of application context.

current_app and g only exist while the app handles a request or inside `with app.app_context():`.
Push an application context for code that runs outside a request (CLI commands, setup scripts)."""

_NO_REQUEST = """\
Working outside of request context.

request and session only exist while the app handles a request. In tests, use
`app.test_client()` or `with app.test_request_context():`. A generator response that reads them
after the view has returned must be wrapped in `stream_with_context`."""

_cv_app: ContextVar[AppContext] = ContextVar("uwsgiapp.web.app_ctx")
_cv_request: ContextVar[RequestContext] = ContextVar("uwsgiapp.web.request_ctx")

current_app: App = t.cast("App", LocalProxy(_cv_app, "app", unbound_message=_NO_APP))
g: AppGlobals = t.cast("AppGlobals", LocalProxy(_cv_app, "g", unbound_message=_NO_APP))
request: Request = t.cast(
    "Request", LocalProxy(_cv_request, "request", unbound_message=_NO_REQUEST)
)
session: SessionMixin = t.cast(
    "SessionMixin", LocalProxy(_cv_request, "session", unbound_message=_NO_REQUEST)
)


def __getattr__(name: str) -> object:
    # Flask's flask.globals.request_ctx and app_ctx: say what stands for them.
    from .notflask import flask_name

    flask_name(__name__, name)
