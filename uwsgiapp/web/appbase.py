"""What an app is before it serves a request (Flask's ``sansio.App``): its settings, the
registration of routes and blueprints, the URL adapters routing uses, the lookup of error
handlers, and the static files view. :class:`uwsgiapp.web.App` adds the request pipeline.
"""

from __future__ import annotations

import logging
import os
import sys
import typing as t
from datetime import timedelta
from functools import cached_property
from urllib.parse import quote as _url_quote

from werkzeug.exceptions import HTTPException
from werkzeug.routing import Map, MapAdapter, Rule
from werkzeug.wsgi import get_host

from .applog import create_logger
from .blueprints import Blueprint, check_registration
from .config import DEFAULT_CONFIG, Config, debug_flag
from .ctx import AppGlobals, RequestContext
from .globals import _cv_request
from .helpers import max_age_seconds, send_from_directory
from .scaffold import ErrorHandler, F, Scaffold, check_rule
from .sessions import SessionInterface, session_lifetime
from .wrappers import Request, Response

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

__all__ = ["AppBase", "UrlRule", "scopes_of"]

_MAX_CACHED_ADAPTERS: t.Final = 128
#: Most (adapter, path, method) results of routes without arguments an app keeps.
_MAX_CACHED_MATCHES: t.Final = 1024
_ANCHOR_SAFE: t.Final = "%!#$&'()*+,/:;=?@"  # what a fragment keeps as it is ("it's")


class UrlRule(Rule):
    """A werkzeug rule that records whether the app answers OPTIONS, and whose hooks apply."""

    provide_automatic_options: bool = False
    #: The keys of the hooks and handlers for its requests: ``None`` (the app's), then each
    #: blueprint its endpoint is in, outermost first (``"shop.admin.users"``: ``None``,
    #: ``"shop"``, ``"shop.admin"``). Set by :meth:`AppBase.add_url_rule`, once.
    scopes: tuple[str | None, ...] = (None,)
    #: :attr:`scopes` reversed (after-request and teardown hooks, error handlers).
    scopes_inner_first: tuple[str | None, ...] = (None,)


_APP_SCOPE: t.Final[tuple[str | None, ...]] = (None,)


def scopes_of(ctx: RequestContext | None, inner_first: bool = False) -> tuple[str | None, ...]:
    """The hook keys of the request ``ctx`` (see :attr:`UrlRule.scopes`); only the app's when
    there is no request or its URL matched no rule."""
    if (rule := ctx.url_rule if ctx is not None else None) is None:
        return _APP_SCOPE
    return rule.scopes_inner_first if inner_first else rule.scopes


def _scopes(endpoint: str) -> tuple[str | None, ...]:
    parts = endpoint.split(".")[:-1]
    return (None, *(".".join(parts[: i + 1]) for i in range(len(parts))))


class AppBase(Scaffold):
    """The setup side of :class:`~uwsgiapp.web.App` (which see); not used on its own."""

    request_class: type[Request] = Request
    response_class: type[Response] = Response
    url_rule_class: type[UrlRule] = UrlRule
    app_globals_class: type[AppGlobals] = AppGlobals
    session_interface: SessionInterface = SessionInterface()

    def __init__(
        self,
        import_name: str,
        static_url_path: str | None = None,
        static_folder: str | None = "static",
        root_path: str | None = None,
        **flask_only: object,
    ) -> None:
        super().__init__(import_name, root_path, **flask_only)
        self.config = Config(DEFAULT_CONFIG, root_path=self.root_path)
        self.config["DEBUG"] = debug_flag()
        self.view_functions: dict[str, t.Callable[..., t.Any]] = {}
        self.url_map = Map()
        self.blueprints: dict[str, Blueprint] = {}
        #: What extensions-style code registers (Flask's ``app.extensions``).
        self.extensions: dict[str, t.Any] = {}
        self._adapters: dict[tuple[t.Any, ...], MapAdapter] = {}
        self._matches: dict[tuple[MapAdapter, str, str], UrlRule] = {}
        self._got_first_request = False
        self.static_folder = (
            os.path.join(self.root_path, static_folder) if static_folder is not None else None
        )
        # Whether or not the folder exists yet (nginx may serve /static/ from elsewhere, a
        # build step create it later), as in Flask: url_for("static", ...) must build.
        if self.static_folder is not None and static_url_path is None:
            static_url_path = "/" + os.path.basename(self.static_folder.rstrip(os.sep))
        self.static_url_path = static_url_path  # as Flask's (None without a static folder)
        if self.static_folder is not None:
            self.add_url_rule(
                f"{(static_url_path or '').rstrip('/')}/<path:filename>",
                endpoint="static",
                view_func=self.send_static_file,
            )

    # -- settings -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        """The app's name: its import name, or the script's name when run as ``__main__``."""
        if self.import_name == "__main__":
            filename: str | None = getattr(sys.modules["__main__"], "__file__", None)
            if filename:
                return os.path.splitext(os.path.basename(filename))[0]
        return self.import_name

    @property
    def debug(self) -> bool:
        """Debug mode (``config["DEBUG"]``): unhandled errors propagate to the debugger."""
        return bool(self.config["DEBUG"])

    @debug.setter
    def debug(self, value: bool) -> None:
        self.config["DEBUG"] = value

    @property
    def testing(self) -> bool:
        """Testing mode (``config["TESTING"]``): unhandled errors propagate to the test."""
        return bool(self.config["TESTING"])

    @testing.setter
    def testing(self, value: bool) -> None:
        self.config["TESTING"] = value

    @property
    def secret_key(self) -> str | bytes | None:
        """The key that signs session cookies (``config["SECRET_KEY"]``)."""
        return t.cast("str | bytes | None", self.config["SECRET_KEY"])

    @secret_key.setter
    def secret_key(self, value: str | bytes | None) -> None:
        self.config["SECRET_KEY"] = value

    @property
    def permanent_session_lifetime(self) -> timedelta:
        """A permanent session's lifetime (``config["PERMANENT_SESSION_LIFETIME"]``)."""
        return session_lifetime(self.config["PERMANENT_SESSION_LIFETIME"])

    @permanent_session_lifetime.setter
    def permanent_session_lifetime(self, value: timedelta | float) -> None:
        self.config["PERMANENT_SESSION_LIFETIME"] = value

    @cached_property
    def logger(self) -> logging.Logger:
        """The logger named after the app. If logging is unconfigured it gets a handler that
        writes to stderr, or to the error log of the ``uwsgiapp serve`` running the app, in that
        log's format (:mod:`uwsgiapp.web.applog`)."""
        return create_logger(self.name, self.debug)

    # -- setup ----------------------------------------------------------------------------

    def _check_setup(self, method: str) -> None:
        if self._got_first_request:
            raise RuntimeError(
                f"App.{method}() was called after the app handled its first request. Register"
                " every route, hook, error handler and blueprint before serving requests."
            )

    def add_url_rule(
        self,
        rule: str,
        endpoint: str | None = None,
        view_func: t.Callable[..., t.Any] | None = None,
        provide_automatic_options: bool | None = None,
        **options: t.Any,
    ) -> None:
        """Map the URL rule ``rule`` to ``endpoint`` and ``view_func`` (see :meth:`route`)."""
        self._check_setup("add_url_rule")
        check_rule(options, view_func)
        if endpoint is None:
            if view_func is None:
                raise TypeError("add_url_rule() needs an endpoint or a view function.")
            endpoint = view_func.__name__
        methods = options.pop("methods", None)
        if methods is None:
            methods = getattr(view_func, "methods", None) or ("GET",)
        if isinstance(methods, str):
            raise TypeError("'methods' must be a list of strings, e.g. methods=['POST'].")
        method_set = {m.upper() for m in methods}
        if provide_automatic_options is None:
            provide_automatic_options = getattr(view_func, "provide_automatic_options", None)
        if provide_automatic_options is None:  # PROVIDE_AUTOMATIC_OPTIONS: Flask 3.1's switch
            provide_automatic_options = "OPTIONS" not in method_set and bool(
                self.config["PROVIDE_AUTOMATIC_OPTIONS"]
            )
        if provide_automatic_options:
            method_set.add("OPTIONS")
        rule_obj = self.url_rule_class(rule, methods=method_set, endpoint=endpoint, **options)
        rule_obj.provide_automatic_options = provide_automatic_options
        if "." in endpoint:
            rule_obj.scopes = _scopes(endpoint)
            rule_obj.scopes_inner_first = rule_obj.scopes[::-1]
        self.url_map.add(rule_obj)
        if view_func is not None:
            self._set_view(endpoint, view_func)

    def endpoint(self, endpoint: str) -> t.Callable[[F], F]:
        """Decorator: make the function the view of ``endpoint``, for a rule added without one
        (``app.add_url_rule("/", endpoint="index")``)."""

        def decorator(f: F) -> F:
            self._check_hook("endpoint", f)
            self._set_view(endpoint, f)
            return f

        return decorator

    def _set_view(self, endpoint: str, view_func: t.Callable[..., t.Any]) -> None:
        existing = self.view_functions.get(endpoint)
        if existing is not None and existing is not view_func:
            raise ValueError(
                f"Endpoint {endpoint!r} is already mapped to {existing.__qualname__}; give"
                " the new view a different endpoint name."
            )
        self.view_functions[endpoint] = view_func

    def register_blueprint(self, blueprint: Blueprint, **options: t.Any) -> None:
        """Add ``blueprint``'s routes, hooks and handlers; options: ``url_prefix``, ``name``."""
        self._check_setup("register_blueprint")
        check_registration(options)
        blueprint.register(self, options)

    # -- errors ---------------------------------------------------------------------------

    def _find_error_handler(
        self, e: BaseException, keys: tuple[str | None, ...]
    ) -> ErrorHandler | None:
        """The handler for ``e`` among the handlers filed under ``keys``, the first key's
        first: a code's handler before one for any code, then the nearest class in the MRO."""
        spec = self.error_handler_spec
        if not spec:
            return None
        code = e.code if isinstance(e, HTTPException) else None
        mro = type(e).__mro__
        for c in (code, None) if code is not None else (None,):
            for key in keys:
                by_class = spec.get(key, {}).get(c)
                if not by_class:
                    continue
                for cls in mro:
                    handler = by_class.get(cls)
                    if handler is not None:
                        return handler
        return None

    # -- URLs -----------------------------------------------------------------------------

    def url_for(
        self,
        endpoint: str,
        *,
        _anchor: str | None = None,
        _method: str | None = None,
        _scheme: str | None = None,
        _external: bool | None = None,
        **values: t.Any,
    ) -> str:
        """Build a URL for ``endpoint``; see :func:`uwsgiapp.web.url_for`."""
        ctx = _cv_request.get(None)
        if ctx is not None:
            adapter = ctx.adapter or self._adapter_for(ctx.environ)
            if endpoint[:1] == ".":
                rule = ctx.url_rule
                blueprint = rule.scopes[-1] if rule is not None else None
                endpoint = f"{blueprint}{endpoint}" if blueprint else endpoint[1:]
            if _external is None:
                _external = _scheme is not None
        else:
            adapter = self.create_url_adapter(None)
            if _external is None:
                _external = True
        if _scheme is not None and not _external:
            raise ValueError("url_for(): '_scheme' needs '_external=True'.")
        if self.url_default_functions:
            self.inject_url_defaults(endpoint, values)
        rv = adapter.build(
            endpoint, values, method=_method, url_scheme=_scheme, force_external=_external
        )
        if _anchor is not None:
            rv = f"{rv}#{_url_quote(_anchor, safe=_ANCHOR_SAFE)}"
        return rv

    def inject_url_defaults(self, endpoint: str, values: dict[str, t.Any]) -> None:
        """Let the ``url_defaults`` functions fill ``values`` in: the app's, then those of each
        blueprint ``endpoint`` is in, outermost first."""
        funcs = self.url_default_functions
        for key in _scopes(endpoint):
            for f in funcs.get(key, ()):
                f(endpoint, values)

    def create_url_adapter(self, environ: WSGIEnvironment | None) -> MapAdapter:
        """A URL adapter for ``environ``; outside a request one from ``SERVER_NAME``.

        With ``SERVER_NAME`` set, a request's adapter builds URLs on that host (``url_for``
        with ``_external``, the redirect that adds a trailing slash), whatever ``Host`` the
        client sent, as in Flask; it still matches requests for any host.
        """
        server_name = self.config["SERVER_NAME"]
        if environ is not None:
            if server_name is None:
                return self.url_map.bind_to_environ(environ)
            # subdomain="": no subdomain matching (unsupported), so no Host comparison.
            return self.url_map.bind_to_environ(environ, server_name=server_name, subdomain="")
        if server_name is None:
            raise RuntimeError(
                "Unable to build URLs outside a request without SERVER_NAME configured: set"
                " app.config['SERVER_NAME'] (and APPLICATION_ROOT, PREFERRED_URL_SCHEME) or"
                " use app.test_request_context()."
            )
        return self.url_map.bind(
            server_name,
            script_name=self.config["APPLICATION_ROOT"],
            url_scheme=self.config["PREFERRED_URL_SCHEME"],
        )

    def _adapter_for(self, environ: WSGIEnvironment) -> MapAdapter:
        trusted = self.config["TRUSTED_HOSTS"]
        if trusted is not None:
            # Checked on each request, before the cache: a SecurityError (400) for a Host not
            # in the list, so that no URL is ever built on it (routing errors become 400s,
            # and url_for in an error handler fails rather than name the attacker's host).
            get_host(environ, trusted)
        # An adapter depends only on these; the path and query are passed to match() per call.
        key = (
            environ.get("HTTP_HOST"),
            environ.get("SERVER_NAME"),
            environ.get("SERVER_PORT"),
            environ.get("SCRIPT_NAME"),
            environ.get("wsgi.url_scheme"),
            environ.get("REQUEST_METHOD"),
        )
        adapter = self._adapters.get(key)
        if adapter is None:
            adapter = self.create_url_adapter(environ)
            if "HTTP_UPGRADE" not in environ:
                # Host is client-controlled: bound the cache rather than trusting it.
                if len(self._adapters) >= _MAX_CACHED_ADAPTERS:
                    self._adapters.clear()
                    self._matches.clear()  # they hold the adapters: let them go too
                self._adapters[key] = adapter
        return adapter

    def _match_url(
        self, adapter: MapAdapter, environ: WSGIEnvironment, path: str, query: str
    ) -> tuple[UrlRule, dict[str, t.Any]]:
        """``adapter.match(path, method, return_rule=True, query_args=query)`` for the adapter
        :meth:`_adapter_for` gave for ``environ``, remembered for rules without arguments
        (werkzeug counts a rule's defaults as arguments): matching is most of the cost of a
        simple view.

        Only results are kept, never a routing error or redirect (those depend on the query
        string, and a 404 path is the client's choice); a rule without arguments matches one
        path, so the cache holds a few entries per route. A rule added to the map later (by
        ``url_map.add``; ``add_url_rule`` refuses) could not take a kept path over: werkzeug
        tries a path's static parts before converters, and the rules of one path in the order
        they were added.
        """
        method = environ["REQUEST_METHOD"]
        key = (adapter, path, method)
        hit = self._matches.get(key)
        if hit is not None:
            return hit, {}  # a new dict: a request may change its view_args
        matched, args = adapter.match(path, method, return_rule=True, query_args=query)
        rule = t.cast(UrlRule, matched)
        # An upgrade request's adapter is not cached (see _adapter_for): nor is its match.
        if not rule.arguments and "HTTP_UPGRADE" not in environ:
            if len(self._matches) >= _MAX_CACHED_MATCHES:
                self._matches.clear()
            self._matches[key] = rule
        return rule, t.cast("dict[str, t.Any]", args)  # werkzeug's is a dict

    # -- static files ---------------------------------------------------------------------

    def get_send_file_max_age(self, filename: str | None) -> int | None:
        """Seconds a client may cache a file sent without ``max_age`` (``send_file``, static
        files): ``SEND_FILE_MAX_AGE_DEFAULT``, seconds or a timedelta; None (the default) sends
        ``no-cache``, so it is revalidated. As in Flask; override it to vary by file."""
        return max_age_seconds(self.config["SEND_FILE_MAX_AGE_DEFAULT"])

    def send_static_file(self, filename: str) -> Response:
        """The view behind the ``static`` endpoint: a file from :attr:`static_folder`."""
        if self.static_folder is None:
            raise RuntimeError("This app has no static folder.")
        return send_from_directory(self.static_folder, filename)
