"""The App: a WSGI application that routes requests to view functions.

One request goes through short named stages, as in Flask::

    __call__ -> wsgi_app -> RequestContext.push (URL matched here)
        -> full_dispatch_request: preprocess_request -> dispatch_request
           -> finalize_request: make_response -> process_response
        -> response(environ, start_response) -> RequestContext.pop (teardown)

The per-request path is kept lean: the bound URL adapter is reused across requests with the
same host/scheme/script name/method, the request object and session are created only when used,
and hook loops are skipped when no hooks are registered.
"""

from __future__ import annotations

import typing as t
from collections.abc import Iterator

from werkzeug.datastructures import Headers
from werkzeug.exceptions import (
    BadRequest,
    BadRequestKeyError,
    HTTPException,
    InternalServerError,
)
from werkzeug.routing import MapAdapter, RequestRedirect
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response as _WResponse

from .appbase import AppBase, UrlRule, scopes_of
from .clientgone import server_gone
from .ctx import AppContext, RequestContext
from .globals import _cv_request
from .helpers import dumps
from .testing import AppClient, preserving, request_arguments
from .wrappers import Response

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment

__all__ = ["App", "UrlRule"]


_VALID_RETURNS: t.Final = (
    "a view must return a str, bytes, dict, list, Response, iterator, WSGI app"
    " or a tuple (body, status), (body, headers) or (body, status, headers)."
)
#: C0 controls and DEL as ``\xNN``, for client text in a log line.
_CONTROL_ESCAPES: t.Final = {code: f"\\x{code:02x}" for code in (*range(32), 127)}


class App(AppBase):
    """A WSGI application: ``app = App(__name__)``, then ``@app.route("/")`` views.

    Usable with any WSGI server, ``app.run()`` for werkzeug's development server, or
    ``app.test_client()`` in tests. Settings, route registration, URL adapters and the error
    handler lookup are in :class:`~uwsgiapp.web.appbase.AppBase`; this class handles requests.
    """

    #: What :meth:`test_client` makes.
    test_client_class: type[AppClient] = AppClient

    # -- WSGI entry and the pipeline ------------------------------------------------------

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """The WSGI application; wrap :meth:`wsgi_app` to add middleware."""
        return self.wsgi_app(environ, start_response)

    def wsgi_app(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """Handle one request: push its context, run the pipeline, serve, pop the context."""
        self._got_first_request = True
        ctx = RequestContext(self, environ)
        error: BaseException | None = None
        try:
            try:
                ctx.push()
                response = self.full_dispatch_request()
            except Exception as e:
                error = e
                if server_gone(e) is e:  # the server's: its 408, or its line (clientgone.py)
                    raise
                response = self.handle_exception(e)
            except BaseException as e:
                error = e
                raise
            return response(environ, start_response)
        finally:
            preserve = environ.get("werkzeug.debug.preserve_context")
            if preserve is not None:  # werkzeug's debugger: its console runs in this context
                preserve(ctx)
            if ctx._tokens:
                keep = preserving()
                try:
                    if keep is not None:  # the test client's `with client:` (testing.py)
                        keep(ctx, error)
                finally:
                    ctx.pop(error)
            # The error's traceback holds this frame: keep no reference back to it, so the
            # request it reaches is freed now, not by the cycle collector.
            error = None

    def full_dispatch_request(self) -> Response:
        """Before-request hooks, the view, and error handling; then :meth:`finalize_request`."""
        try:
            rv = self.preprocess_request()
            if rv is None:
                rv = self.dispatch_request()
        except Exception as e:
            rv = self.handle_user_exception(e)
        try:
            return self.finalize_request(rv)
        finally:
            del rv  # may be the exception, whose traceback holds this frame (a cycle)

    def preprocess_request(self) -> t.Any:
        """Run the ``url_value_preprocessor`` functions, then the ``before_request`` hooks (each
        the app's, then the blueprints' outermost first); return the first hook's non-None."""
        funcs = self.before_request_funcs
        preprocessors = self.url_value_preprocessors
        if not funcs and not preprocessors:
            return None
        ctx = _cv_request.get()
        scopes = scopes_of(ctx)
        if preprocessors:
            endpoint = ctx.url_rule.endpoint if ctx.url_rule is not None else None
            for key in scopes:
                for preprocess in preprocessors.get(key, ()):
                    preprocess(endpoint, ctx.view_args)
        for key in scopes:
            for f in funcs.get(key, ()):
                rv = f()
                if rv is not None:
                    return rv
        return None

    def dispatch_request(self) -> t.Any:
        """Raise the routing error, answer automatic OPTIONS, or call the view."""
        ctx = _cv_request.get()
        if ctx.routing_exception is not None:
            raise ctx.routing_exception
        rule = t.cast(UrlRule, ctx.url_rule)
        if rule.provide_automatic_options and ctx.environ["REQUEST_METHOD"] == "OPTIONS":
            return self.make_default_options_response()
        view_args = t.cast("dict[str, t.Any]", ctx.view_args)
        return self.view_functions[rule.endpoint](**view_args)

    def finalize_request(self, rv: t.Any, from_error_handler: bool = False) -> Response:
        """:meth:`make_response` then :meth:`process_response`.

        When already handling an error, a failure here is logged rather than raised, so the
        error response still goes out.
        """
        response = self.make_response(rv)
        try:
            return self.process_response(response)
        except Exception:
            if not from_error_handler:
                raise
            self.logger.exception("Request finalizing failed while handling an error")
            return response

    def make_response(self, rv: t.Any) -> Response:
        """Turn a view's return value into a :attr:`response_class` instance.

        Accepted: ``str``/``bytes`` (HTML body), ``dict``/``list`` (JSON), a response object, an
        iterator (streamed body), an ``HTTPException``, any WSGI callable, or a tuple
        ``(body, status)``, ``(body, headers)`` or ``(body, status, headers)``.
        """
        response_class = self.response_class
        if type(rv) is str:
            return response_class(rv)
        status: t.Any = None
        headers: t.Any = None
        if isinstance(rv, tuple):
            if len(rv) == 3:
                rv, status, headers = rv
            elif len(rv) == 2:
                if isinstance(rv[1], (Headers, dict, tuple, list)):
                    rv, headers = rv
                else:
                    rv, status = rv
            else:
                raise TypeError(
                    "A view returned a tuple of the wrong size: use (body, status),"
                    " (body, headers) or (body, status, headers)."
                )
        if rv is None:
            raise TypeError(
                f"The view for endpoint {_endpoint_name()!r} returned None: {_VALID_RETURNS}"
            )
        if not isinstance(rv, response_class):
            if isinstance(rv, (str, bytes, bytearray, Iterator)):
                rv = response_class(t.cast("t.Iterable[bytes]", rv), status=status, headers=headers)
                status = headers = None
            elif isinstance(rv, (dict, list)):
                rv = self.json_response(rv)
            elif isinstance(rv, _WResponse):
                rv = response_class.force_type(rv)
            elif isinstance(rv, HTTPException):
                rv = response_class.force_type(rv.get_response(_request_environ()))
            elif callable(rv):
                rv = response_class.force_type(rv, _request_environ())
            else:
                kind = type(rv).__name__
                raise TypeError(
                    f"The view for endpoint {_endpoint_name()!r} returned {_a(kind)} {kind},"
                    f" which is not a valid response: {_VALID_RETURNS}"
                )
        response = t.cast(Response, rv)
        if status is not None:
            if isinstance(status, (bytes, bytearray)):
                status = bytes(status).decode("latin-1")
            if isinstance(status, str):
                response.status = status
            else:
                response.status_code = status
        if headers:
            response.headers.update(headers)
        return response

    def process_response(self, response: Response) -> Response:
        """Run ``after_this_request`` functions and ``after_request`` hooks; save the session."""
        ctx = _cv_request.get()
        if ctx._after_funcs:
            for f in ctx._after_funcs:
                response = f(response)
        funcs = self.after_request_funcs
        if funcs:
            for key in scopes_of(ctx, inner_first=True):
                for f in reversed(funcs.get(key, ())):
                    response = f(response)
        session = ctx._session
        if session is None and "HTTP_COOKIE" in ctx.environ:
            session = self.session_interface.session_to_refresh(self, ctx.request)
        if session is not None:
            self.session_interface.save_session(self, session, response)
        return response

    def do_teardown_request(self, exc: BaseException | None = None) -> None:
        """Run ``teardown_request`` hooks (blueprints' innermost first, then app's; each newest
        first)."""
        funcs = self.teardown_request_funcs
        if not funcs:
            return
        for key in scopes_of(_cv_request.get(), inner_first=True):
            for f in reversed(funcs.get(key, ())):
                f(exc)

    def make_default_options_response(self) -> Response:
        """The automatic answer to OPTIONS: empty, with ``Allow`` listing the URL's methods."""
        ctx = _cv_request.get()
        adapter = t.cast(MapAdapter, ctx.adapter)
        response = self.response_class()
        response.allow.update(adapter.allowed_methods(ctx.request.path))
        return response

    def json_response(self, data: t.Any) -> Response:
        """A JSON response for ``data`` (compact, or indented in debug mode)."""
        body = dumps(data, debug=self.debug, sort_keys=self.config["JSON_SORT_KEYS"]) + "\n"
        return self.response_class(body, mimetype="application/json")

    # -- errors ---------------------------------------------------------------------------

    def handle_http_exception(self, e: HTTPException) -> t.Any:
        """A registered handler's result for ``e``, or ``e`` itself (it renders as a page).

        Redirects raised by routing (e.g. a missing trailing slash) are never handled.
        """
        if e.code is None or isinstance(e, RequestRedirect):
            return e
        handler = self._find_error_handler(e, scopes_of(_cv_request.get(None), inner_first=True))
        if handler is None:
            return e
        return handler(e)

    def trap_http_exception(self, e: HTTPException) -> bool:
        """Whether the HTTP error ``e`` is raised like any exception (to the debugger; a 500
        otherwise) rather than answered with its status, as in Flask: every one with
        ``TRAP_HTTP_EXCEPTIONS``, a 400 with ``TRAP_BAD_REQUEST_ERRORS``; that left None, in
        debug mode, a key missing from ``request.form``/``args``/``files``."""
        config = self.config
        if config["TRAP_HTTP_EXCEPTIONS"]:
            return True
        trap = config["TRAP_BAD_REQUEST_ERRORS"]
        if trap is None:
            return self.debug and isinstance(e, BadRequestKeyError)
        return bool(trap) and isinstance(e, BadRequest)

    def handle_user_exception(self, e: Exception) -> t.Any:
        """Handle an exception from a hook or view; re-raise it if no handler matches."""
        if (gone := server_gone(e)) is not None:  # reading the body: clientgone.py
            raise gone
        if isinstance(e, HTTPException):
            if isinstance(e, BadRequestKeyError) and (
                self.debug or self.config["TRAP_BAD_REQUEST_ERRORS"]
            ):
                e.show_exception = True  # its page names the missing key
            if not self.trap_http_exception(e):
                return self.handle_http_exception(e)
        handler = self._find_error_handler(e, scopes_of(_cv_request.get(None), inner_first=True))
        if handler is None:
            try:
                raise e
            finally:
                del e  # the re-raised traceback holds this frame: no cycle through it
        return handler(e)

    def handle_exception(self, e: Exception) -> Response:
        """An unhandled exception: re-raise in debug/testing, else log it and answer 500."""
        propagate = self.config["PROPAGATE_EXCEPTIONS"]
        if propagate is None:
            propagate = self.testing or self.debug
        if propagate:
            try:
                raise e
            finally:
                del e  # the re-raised traceback holds this frame: no cycle through it
        self.log_exception(e)
        server_error = InternalServerError(original_exception=e)
        handler = self._find_error_handler(
            server_error, scopes_of(_cv_request.get(None), inner_first=True)
        )
        rv: t.Any = handler(server_error) if handler is not None else server_error
        return self.finalize_request(rv, from_error_handler=True)

    def log_exception(self, e: BaseException) -> None:
        """Log an unhandled exception with its traceback on :attr:`logger`."""
        ctx = _cv_request.get(None)
        where = ""
        if ctx is not None:
            # The client's path (nginx decodes %0A): escaped, or it could forge log lines.
            path = str(ctx.environ.get("PATH_INFO", "")).translate(_CONTROL_ESCAPES)
            where = f" on {path} [{ctx.environ.get('REQUEST_METHOD')}]"
        self.logger.error("Exception%s", where, exc_info=e)

    # -- contexts, testing, serving -------------------------------------------------------

    def app_context(self) -> AppContext:
        """An application context: ``with app.app_context(): ...`` binds ``current_app``/``g``."""
        return AppContext(self)

    def request_context(self, environ: WSGIEnvironment) -> RequestContext:
        """A request context for ``environ``; ``with`` it to use ``request`` outside a server."""
        return RequestContext(self, environ)

    def test_request_context(self, *args: t.Any, **kwargs: t.Any) -> RequestContext:
        """A request context for a request built by werkzeug's ``EnvironBuilder(*args, **kw)``
        as the test client's are (:func:`~uwsgiapp.web.testing.request_arguments`): without a
        ``base_url``, on the app's ``SERVER_NAME``, ``APPLICATION_ROOT`` and
        ``PREFERRED_URL_SCHEME`` (or ``url_scheme``)."""
        args, kwargs = request_arguments(self, args, kwargs)
        builder = EnvironBuilder(*args, **kwargs)
        try:
            return RequestContext(self, builder.get_environ())
        finally:
            builder.close()

    def test_client(self, use_cookies: bool = True, **kwargs: t.Any) -> AppClient:
        """A test client (:attr:`test_client_class`, werkzeug's ``Client`` with ``with client:``
        and ``session_transaction()``) calling this app; cookies kept unless ``use_cookies``
        is false. ``kwargs`` go to the class."""
        return self.test_client_class(self, use_cookies=use_cookies, **kwargs)

    def run(
        self,
        host: str | None = None,
        port: int | None = None,
        debug: bool | None = None,
        load_dotenv: bool = True,
        **options: t.Any,
    ) -> None:
        """Serve with werkzeug's development server, as Flask's ``run`` does
        (:func:`uwsgiapp.web.devrun.run`); not for production."""
        from uwsgiapp.web.devrun import run

        run(self, host, port, debug, load_dotenv, **options)


def _endpoint_name() -> str | None:
    ctx = _cv_request.get(None)
    return None if ctx is None or ctx.url_rule is None else str(ctx.url_rule.endpoint)


def _request_environ() -> WSGIEnvironment:
    return _cv_request.get().environ


def _a(word: str) -> str:
    return "an" if word[:1].lower() in "aeiou" else "a"
