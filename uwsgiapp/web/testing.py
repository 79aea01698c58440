"""The test client ``app.test_client()`` returns: werkzeug's ``Client`` that knows our contexts.

Two things a Flask test suite expects beyond werkzeug's client:

- ``with client:`` keeps the request context of the last request pushed after the call, so a
  test reads ``request``, ``session`` and ``g`` as the view left them; the context is popped,
  and the ``teardown_request`` hooks run, when the next request starts or the block ends;
- ``client.session_transaction()`` opens the session the app would open from the client's
  cookies and, on leaving the block, stores it back into the client's cookie jar.

Requests are made as Flask's client makes them: a path is on the app's ``SERVER_NAME`` (else
``localhost``), under its ``APPLICATION_ROOT``, in its ``PREFERRED_URL_SCHEME``; a full URL keeps
its own scheme and host; ``REMOTE_ADDR`` is 127.0.0.1 and ``User-Agent`` werkzeug's; a ``json``
body is serialised as the app's JSON responses are.
"""

from __future__ import annotations

import json
import typing as t
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cache
from importlib.metadata import version
from types import TracebackType
from urllib.parse import urlsplit

from werkzeug.test import Client, EnvironBuilder, TestResponse
from werkzeug.wrappers import Request

from .helpers import json_default
from .sessions import SessionMixin

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from werkzeug.datastructures import Headers

    from .app import App
    from .ctx import RequestContext

__all__ = ["AppClient", "preserving", "request_arguments"]

#: The callable that keeps the request context (with the request's error) instead of tearing it
#: down, while the test client runs the app in ``with client:``. A context variable, never an
#: environ key: a uwsgi client can send any key, and a string there broke every later request.
_PRESERVE: ContextVar[Callable[[RequestContext, BaseException | None], None] | None] = ContextVar(
    "uwsgiapp.web.preserve", default=None
)


def preserving() -> Callable[[RequestContext, BaseException | None], None] | None:
    """What :meth:`App.wsgi_app` hands its request context to (the test client's ``with``)."""
    return _PRESERVE.get()


def request_arguments(
    app: App, args: tuple[t.Any, ...], kwargs: dict[str, t.Any]
) -> tuple[tuple[t.Any, ...], dict[str, t.Any]]:
    """``EnvironBuilder``'s ``args`` and ``kwargs`` for a test request of ``app``, as Flask
    builds its test requests: without a base URL, on ``SERVER_NAME`` (else ``localhost``),
    ``APPLICATION_ROOT`` as the script root, in ``PREFERRED_URL_SCHEME`` (or a ``url_scheme``
    argument), a path that is a full URL keeping its scheme and host; a ``json`` body
    serialised as the app's responses are (dates, UUIDs, decimals, dataclasses)."""
    if kwargs.get("json") is not None:
        if kwargs.get("data") is not None:
            raise TypeError("Pass 'json' or 'data', not both.")
        body = kwargs.pop("json")  # the bytes Flask's client sends: its separators, not ours
        kwargs["data"] = json.dumps(
            body, default=json_default, sort_keys=app.config["JSON_SORT_KEYS"]
        )
        if kwargs.get("content_type") is None and kwargs.get("mimetype") is None:
            kwargs["content_type"] = "application/json"
    scheme = kwargs.pop("url_scheme", None)
    if "base_url" in kwargs or len(args) > 1:
        if scheme is not None:
            raise TypeError("Pass 'url_scheme' or 'base_url', not both.")
        return args, kwargs
    url = urlsplit(args[0] if args else kwargs.pop("path", "/"))
    config = app.config
    scheme = url.scheme or scheme or config["PREFERRED_URL_SCHEME"]
    host = url.netloc or config["SERVER_NAME"] or "localhost"
    root = (config["APPLICATION_ROOT"] or "/").lstrip("/")
    kwargs["base_url"] = f"{scheme}://{host}/{root}"
    return (f"{url.path}?{url.query}" if url.query else url.path,), kwargs


@cache
def _user_agent() -> str:
    return f"Werkzeug/{version('werkzeug')}"


class AppClient(Client):
    """werkzeug's test :class:`~werkzeug.test.Client` plus ``with client:`` and
    :meth:`session_transaction` (see the module's docstring)."""

    application: App

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        super().__init__(*args, **kwargs)
        #: What every request's environ starts from (a request's ``environ_base`` adds to it).
        self.environ_base: dict[str, t.Any] = {
            "REMOTE_ADDR": "127.0.0.1",
            "HTTP_USER_AGENT": _user_agent(),
        }
        self._preserving = False
        #: The kept request context and the error its request ended with.
        self._kept: tuple[RequestContext, BaseException | None] | None = None
        self._pending: tuple[RequestContext, BaseException | None] | None = None

    def open(
        self, *args: t.Any, buffered: bool = False, follow_redirects: bool = False, **kwargs: t.Any
    ) -> TestResponse:
        """werkzeug's ``open``, the request built as Flask's client builds it (see the module's
        docstring); an ``EnvironBuilder``, environ or request passed alone is used as it is."""
        if kwargs or len(args) != 1 or not isinstance(args[0], (EnvironBuilder, dict, Request)):
            args, kwargs = request_arguments(self.application, args, kwargs)
            kwargs["environ_base"] = {**self.environ_base, **(kwargs.get("environ_base") or {})}
        return super().open(*args, buffered=buffered, follow_redirects=follow_redirects, **kwargs)

    def run_wsgi_app(
        self, environ: WSGIEnvironment, buffered: bool = False
    ) -> tuple[t.Iterable[bytes], str, Headers]:
        """Run the app on ``environ``; inside ``with client:`` keep its request context.

        Called once per request (redirects followed included): each request releases the
        context the previous one kept, so only the last request's stays.
        """
        if not self._preserving:
            return super().run_wsgi_app(environ, buffered)
        self._release()
        token = _PRESERVE.set(self._keep)
        try:
            return super().run_wsgi_app(environ, buffered)
        finally:
            _PRESERVE.reset(token)
            # Also when the view's error propagates (TESTING): the test may look at the request.
            pending, self._pending = self._pending, None
            if pending is not None:
                pending[0].push()
                self._kept = pending

    def _keep(self, ctx: RequestContext, error: BaseException | None) -> None:
        ctx._hold()
        self._pending = (ctx, error)

    def _release(self) -> None:
        kept, self._kept = self._kept, None
        if kept is not None:
            ctx, error = kept
            try:
                ctx.pop(error)
            finally:
                ctx._release(error)

    def __enter__(self) -> AppClient:
        if self._preserving:
            raise RuntimeError("This client is already in a 'with' block: they cannot nest.")
        self._preserving = True
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._preserving = False
        self._release()

    @contextmanager
    def session_transaction(self, *args: t.Any, **kwargs: t.Any) -> Iterator[SessionMixin]:
        """``with client.session_transaction() as session:``: the session the app would open
        from this client's cookies, saved back into them when the block ends.

        Arguments go to :meth:`App.test_request_context` (a path, ``base_url`` for another
        host...): they make the request the session is opened and saved for. No request hook
        runs. Without a ``SECRET_KEY`` the session is the read-only ``NullSession``.
        """
        if self._cookies is None:
            raise TypeError(
                "session_transaction() needs the client's cookies: create the client with"
                " app.test_client(use_cookies=True)."
            )
        app = self.application
        ctx = app.test_request_context(*args, **kwargs)
        self._add_cookies_to_wsgi(ctx.environ)
        interface = app.session_interface
        # The contexts are set (a custom interface may read request or current_app), but this
        # is no request: no URL matching, no teardown hooks.
        tokens = ctx._activate()
        try:
            opened = interface.open_session(app, ctx.request)
        finally:
            ctx._deactivate(tokens)
        session = interface.make_null_session(app) if opened is None else opened
        yield session
        if interface.is_null_session(session):
            return
        response = app.response_class()
        tokens = ctx._activate()
        try:
            interface.save_session(app, session, response)
        finally:
            ctx._deactivate(tokens)
            ctx.request.close()
        request = ctx.request
        self._update_cookies_from_response(
            request.host.partition(":")[0], request.path, response.headers.getlist("Set-Cookie")
        )
