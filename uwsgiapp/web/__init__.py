"""uwsgiapp.web: a small Flask-style framework on werkzeug.

Depends only on werkzeug and the standard library; any WSGI server can run it::

    from uwsgiapp.web import App

    app = App(__name__)

    @app.route("/")
    def hello() -> str:
        return "Hello, World!"
"""

from typing import TYPE_CHECKING

from werkzeug.exceptions import HTTPException

from .app import App, UrlRule
from .blueprints import Blueprint
from .config import Config
from .ctx import AppContext, AppGlobals, RequestContext
from .ctxhelpers import (
    after_this_request,
    copy_current_request_context,
    has_app_context,
    has_request_context,
    stream_with_context,
)
from .globals import current_app, g, request, session
from .helpers import (
    abort,
    jsonify,
    make_response,
    redirect,
    send_file,
    send_from_directory,
    url_for,
)
from .notflask import flask_name
from .sessions import NullSession, SecureCookieSession, SessionInterface, SessionMixin
from .testing import AppClient
from .wrappers import Request, Response

if not TYPE_CHECKING:  # typed code keeps its checks of the names it imports

    def __getattr__(name: str) -> object:
        flask_name(__name__, name)


__all__ = [
    "App",
    "AppClient",
    "AppContext",
    "AppGlobals",
    "Blueprint",
    "Config",
    "HTTPException",
    "NullSession",
    "Request",
    "RequestContext",
    "Response",
    "SecureCookieSession",
    "SessionInterface",
    "SessionMixin",
    "UrlRule",
    "abort",
    "after_this_request",
    "copy_current_request_context",
    "current_app",
    "g",
    "has_app_context",
    "has_request_context",
    "jsonify",
    "make_response",
    "redirect",
    "request",
    "send_file",
    "send_from_directory",
    "session",
    "stream_with_context",
    "url_for",
]
