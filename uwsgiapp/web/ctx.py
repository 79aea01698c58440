"""Application and request contexts: what the context locals point at while code runs.

The functions views call on them (after_this_request, stream_with_context...) are in
:mod:`uwsgiapp.web.ctxhelpers`.
"""

from __future__ import annotations

import contextlib
import typing as t
from contextvars import Token

from werkzeug.exceptions import HTTPException

from .globals import _cv_app, _cv_request

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment
    from werkzeug.routing import MapAdapter

    from .app import App, UrlRule
    from .sessions import SessionMixin
    from .wrappers import Request

__all__ = ["AppContext", "AppGlobals", "RequestContext"]

_AfterFunc = t.Callable[[t.Any], t.Any]


class AppGlobals:
    """``g``: a plain namespace that lives as long as the application context."""

    # Any attribute may be set and read, and type checkers must allow that (``g.user = ...``
    # under mypy --strict): typed here, plain object behaviour at run time.
    if t.TYPE_CHECKING:

        def __getattr__(self, name: str) -> t.Any: ...

        def __setattr__(self, name: str, value: t.Any) -> None: ...

        def __delattr__(self, name: str) -> None: ...

    def get(self, name: str, default: t.Any = None) -> t.Any:
        """The attribute ``name``, or ``default``."""
        return self.__dict__.get(name, default)

    def pop(self, name: str, *default: t.Any) -> t.Any:
        """Remove and return the attribute ``name`` (``default`` if given and missing)."""
        return self.__dict__.pop(name, *default)

    def setdefault(self, name: str, default: t.Any = None) -> t.Any:
        """The attribute ``name``, first set to ``default`` if missing."""
        return self.__dict__.setdefault(name, default)

    def __contains__(self, name: str) -> bool:
        return name in self.__dict__

    def __iter__(self) -> t.Iterator[str]:
        return iter(self.__dict__)

    def __repr__(self) -> str:
        return f"<uwsgiapp.web.g {self.__dict__!r}>"


class AppContext:
    """Binds ``current_app`` and ``g``; use as ``with app.app_context(): ...``."""

    __slots__ = ("_app_tokens", "_g", "app")

    def __init__(self, app: App) -> None:
        self.app = app
        self._g: AppGlobals | None = None
        self._app_tokens: list[Token[AppContext]] = []

    @property
    def g(self) -> AppGlobals:
        """This context's ``g`` (created on first use)."""
        g = self._g
        if g is None:
            g = self._g = self.app.app_globals_class()
        return g

    def push(self) -> None:
        """Make this the current application context."""
        self._app_tokens.append(_cv_app.set(self))

    def pop(self) -> None:
        """Restore the application context that was current before :meth:`push`."""
        _cv_app.reset(self._app_tokens.pop())

    def __enter__(self) -> AppContext:
        self.push()
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.pop()


class RequestContext(AppContext):
    """Everything one request needs: environ, routing result, lazily made request and session.

    Pushing it sets both ``request``/``session`` and ``current_app``/``g``, and matches the URL
    so ``request.endpoint`` is known to ``before_request`` hooks. The last :meth:`pop` runs the
    teardown hooks, unless a :func:`stream_with_context` generator still holds the context, in
    which case the generator runs them when it finishes or is closed.
    """

    __slots__ = (
        "_after_funcs",
        "_holds",
        "_request",
        "_session",
        "_shared",
        "_tokens",
        "adapter",
        "environ",
        "routing_exception",
        "url_rule",
        "view_args",
    )

    def __init__(self, app: App, environ: WSGIEnvironment, request: Request | None = None) -> None:
        self.app = app
        self._g = None
        self.environ = environ
        self._request = request
        self._session: SessionMixin | None = None
        self._tokens: list[tuple[Token[AppContext], Token[RequestContext]]] = []
        self._holds = 0
        self._after_funcs: list[_AfterFunc] | None = None
        self.adapter: MapAdapter | None = None
        self.url_rule: UrlRule | None = None
        self.view_args: dict[str, t.Any] | None = None
        self.routing_exception: HTTPException | None = None
        #: A :meth:`copy`: its teardown leaves the request (the original's) open.
        self._shared = False

    @property
    def request(self) -> Request:
        """The request object, created on first use."""
        req = self._request
        if req is None:
            req = self._request = self.app.request_class(self.environ)
            self._bind_routing(req)
            config = self.app.config
            max_length = config["MAX_CONTENT_LENGTH"]
            if max_length is not None:
                req.max_content_length = max_length
            # A multipart body's limits (a 413 past them); a view may set tighter ones.
            req.max_form_memory_size = config["MAX_FORM_MEMORY_SIZE"]
            req.max_form_parts = config["MAX_FORM_PARTS"]
            trusted = config["TRUSTED_HOSTS"]
            if trusted is not None:  # request.host, .url, .host_url: SecurityError (400) too
                req.trusted_hosts = trusted
        return req

    @property
    def session(self) -> SessionMixin:
        """The session, read from its cookie on first use (the interface's null session if
        its ``open_session`` returns None, as in Flask)."""
        sess = self._session
        if sess is None:
            interface = self.app.session_interface
            sess = interface.open_session(self.app, self.request)
            if sess is None:
                sess = interface.make_null_session(self.app)
            self._session = sess
        with contextlib.suppress(AttributeError):  # an interface's own may be a plain dict
            sess.accessed = True  # Flask's: reached through the request (its response varies)
        return sess

    def _bind_routing(self, req: Request) -> None:
        req.url_rule = self.url_rule
        req.view_args = self.view_args
        req.routing_exception = self.routing_exception

    def match_request(self) -> None:
        """Match the URL; keep the rule and arguments, or the routing error for dispatch."""
        environ = self.environ
        app = self.app
        try:
            adapter = self.adapter = app._adapter_for(environ)
            path = environ.get("PATH_INFO") or ""
            if not path.isascii():
                path = path.encode("latin-1").decode(errors="replace")
            query = environ.get("QUERY_STRING") or ""
            if query and not query.isascii():
                query = query.encode("latin-1").decode(errors="replace")
            self.url_rule, self.view_args = app._match_url(adapter, environ, path, query)
        except HTTPException as e:
            self.routing_exception = e
        if self._request is not None:
            self._bind_routing(self._request)

    def push(self) -> None:
        """Make this the current request (and application) context and match the URL."""
        if self._g is None:
            outer = _cv_app.get(None)
            if outer is not None and outer.app is self.app:
                self._g = outer.g
        self._tokens.append((_cv_app.set(self), _cv_request.set(self)))
        if self.url_rule is None and self.routing_exception is None:
            self.match_request()

    def pop(self, exc: BaseException | None = None) -> None:
        """Undo the matching :meth:`push`; the last one also tears the request down."""
        try:
            if len(self._tokens) == 1 and not self._holds:
                self._teardown(exc)
        finally:
            app_token, request_token = self._tokens.pop()
            _cv_request.reset(request_token)
            _cv_app.reset(app_token)

    def copy(self) -> RequestContext:
        """A context for the same request and session, to push in another thread or greenlet
        (:func:`copy_current_request_context`). Its ``g`` is the one current where it is
        pushed, or a new one; popping it runs the teardown hooks but leaves the request open
        for its original context. The request object is shared: two threads must not read
        its body at once."""
        ctx = type(self)(self.app, self.environ, self.request)
        ctx._session = self.session
        ctx.adapter, ctx.url_rule = self.adapter, self.url_rule
        ctx.view_args, ctx.routing_exception = self.view_args, self.routing_exception
        ctx._shared = True
        return ctx

    def _teardown(self, exc: BaseException | None) -> None:
        if self._shared:
            self.app.do_teardown_request(exc)
            return
        try:
            self.app.do_teardown_request(exc)
        finally:
            if self.routing_exception is not None and exc is None:
                _drop_tracebacks(self.routing_exception)
            req = self._request
            if req is not None:
                try:
                    req.close()
                finally:
                    _break_request_cycle(req.environ)
            _break_request_cycle(self.environ)

    def _activate(self) -> tuple[Token[AppContext], Token[RequestContext]]:
        return _cv_app.set(self), _cv_request.set(self)

    @staticmethod
    def _deactivate(tokens: tuple[Token[AppContext], Token[RequestContext]]) -> None:
        _cv_request.reset(tokens[1])
        _cv_app.reset(tokens[0])

    def _hold(self) -> None:
        """Defer the teardown past the last :meth:`pop` until the matching :meth:`_release`
        (a streamed response, or the test client's ``with`` block, still uses the context)."""
        self._holds += 1

    def _release(self, exc: BaseException | None = None) -> None:
        self._holds -= 1
        if self._holds == 0 and not self._tokens:
            tokens = self._activate()
            try:
                self._teardown(exc)
            finally:
                self._deactivate(tokens)

    def __enter__(self) -> RequestContext:
        self.push()
        return self

    def __exit__(self, exc_type: object, exc: BaseException | None, tb: object) -> None:
        self.pop(exc)


def _drop_tracebacks(exc: BaseException) -> None:
    """Clear the tracebacks of a handled routing error and of the errors it chains to.

    Their frames (through ``f_back``) hold the request context that stores the error: a cycle
    that would keep the environ, the request and its body until the cycle collector runs.
    """
    seen: set[int] = set()
    pending: list[BaseException | None] = [exc]
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        current.__traceback__ = None
        pending += (current.__cause__, current.__context__)


def _break_request_cycle(environ: WSGIEnvironment) -> None:
    """Drop ``environ["werkzeug.request"]`` if it is a request wrapping this very environ.

    werkzeug's ``Request(environ)`` stores itself there, so the request and its environ refer to
    each other: without this, the request (and the body it read or buffered) would live until the
    cycle collector runs rather than when the server drops the environ (Flask does the same).
    """
    stored = environ.get("werkzeug.request")
    if stored is not None and getattr(stored, "environ", None) is environ:
        environ["werkzeug.request"] = None
