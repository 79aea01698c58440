"""What App and Blueprint share: route decorators, request hooks and error handlers."""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
import typing as t

from werkzeug.exceptions import HTTPException, default_exceptions

from .notflask import flask_attribute, refuse_flask_options

__all__ = ["Scaffold"]

F = t.TypeVar("F", bound=t.Callable[..., t.Any])
BeforeRequestFunc = t.Callable[[], t.Any]
AfterRequestFunc = t.Callable[[t.Any], t.Any]
TeardownFunc = t.Callable[[BaseException | None], t.Any]
UrlValuePreprocessor = t.Callable[[str | None, dict[str, t.Any] | None], t.Any]
UrlDefaultFunc = t.Callable[[str, dict[str, t.Any]], t.Any]
ErrorHandler = t.Callable[[t.Any], t.Any]
#: blueprint name (None = app-wide) -> status code (None = any) -> exception class -> handler
ErrorHandlerSpec = dict[str | None, dict[int | None, dict[type[BaseException], ErrorHandler]]]


#: Rule options for what uwsgiapp.web does not do: refused, as a rule that silently matched on
#: every host would expose what was meant for one (an admin subdomain's routes, say).
_HOST_OPTIONS = ("subdomain", "host")


def refuse_async(f: object, what: str) -> None:
    """TypeError for an ``async def`` given as ``what``, when it is registered: uwsgiapp.web (a
    WSGI framework) does not run one, and each request would take its coroutine for a result."""
    if inspect.iscoroutinefunction(f):
        raise TypeError(
            f"{getattr(f, '__name__', repr(f))!r} ({what}) is an async def, which uwsgiapp.web "
            "(a WSGI framework) does not run: make it a plain def, or use Flask with asgiref."
        )


def check_rule(options: t.Mapping[str, t.Any], view_func: t.Callable[..., t.Any] | None) -> None:
    """Raise TypeError for what a rule asks and uwsgiapp.web does not do, when it is added
    rather than at each request: an ``async def`` view (Flask runs it with asgiref; here
    every request was a 500), an option that matches on the host (Flask's ``subdomain``,
    werkzeug's ``host``: uwsgiapp.web routes on the path only)."""
    refuse_async(view_func, "a view")
    for name in _HOST_OPTIONS:
        if name in options:
            raise TypeError(
                f"The route option {name}= is not supported by uwsgiapp.web (it routes on the "
                "path only, so the rule would match on every host): use Flask for subdomains."
            )


def get_root_path(import_name: str) -> str:
    """The directory of the module or package ``import_name`` (the cwd if it has no file)."""
    module = sys.modules.get(import_name)
    filename: str | None = getattr(module, "__file__", None)
    if filename is None and module is None:
        try:
            spec = importlib.util.find_spec(import_name)
        except (ImportError, ValueError):
            spec = None
        filename = spec.origin if spec is not None else None
    if not filename or not os.path.exists(filename):
        return os.getcwd()
    return os.path.dirname(os.path.abspath(filename))


def exception_key(
    code_or_exception: type[BaseException] | int,
) -> tuple[type[BaseException], int | None]:
    """The (exception class, status code) an ``errorhandler`` registration is filed under."""
    if isinstance(code_or_exception, int):
        try:
            return default_exceptions[code_or_exception], code_or_exception
        except KeyError:
            raise ValueError(
                f"{code_or_exception!r} is not an HTTP error code werkzeug knows; register a"
                " subclass of HTTPException with that code instead."
            ) from None
    if isinstance(code_or_exception, BaseException):
        raise TypeError(
            f"{code_or_exception!r} is an exception instance; register its class instead."
        )
    if not (isinstance(code_or_exception, type) and issubclass(code_or_exception, BaseException)):
        raise TypeError(f"{code_or_exception!r} is neither an HTTP status code nor an exception.")
    if issubclass(code_or_exception, HTTPException):
        return code_or_exception, code_or_exception.code
    return code_or_exception, None


class Scaffold:
    """Registration API common to :class:`~uwsgiapp.web.App` and :class:`~uwsgiapp.web.Blueprint`.

    Hooks and error handlers are filed under a key: ``None`` for the whole app, a blueprint's
    name for requests whose endpoint belongs to that blueprint.
    """

    #: Under which key this object's own hooks are filed (``None`` = app-wide).
    _hook_key: str | None = None

    def __init__(
        self, import_name: str, root_path: str | None = None, **flask_only: object
    ) -> None:
        refuse_flask_options(type(self).__name__, flask_only)
        self.import_name = import_name
        self.root_path = root_path if root_path is not None else get_root_path(import_name)
        self.before_request_funcs: dict[str | None, list[BeforeRequestFunc]] = {}
        self.after_request_funcs: dict[str | None, list[AfterRequestFunc]] = {}
        self.teardown_request_funcs: dict[str | None, list[TeardownFunc]] = {}
        self.error_handler_spec: ErrorHandlerSpec = {}
        self.url_value_preprocessors: dict[str | None, list[UrlValuePreprocessor]] = {}
        self.url_default_functions: dict[str | None, list[UrlDefaultFunc]] = {}

    if not t.TYPE_CHECKING:  # typed code keeps its checks of attribute names

        def __getattr__(self, name: str) -> t.Any:
            return flask_attribute(self, name)

    def _check_setup(self, method: str) -> None:
        """Raise if it is too late to change the routing or hooks (an App started serving)."""

    def _check_hook(self, method: str, f: object) -> None:
        """:meth:`_check_setup`, and refuse an ``async def`` hook (see :func:`refuse_async`)."""
        refuse_async(f, method)
        self._check_setup(method)

    def add_url_rule(
        self,
        rule: str,
        endpoint: str | None = None,
        view_func: t.Callable[..., t.Any] | None = None,
        provide_automatic_options: bool | None = None,
        **options: t.Any,
    ) -> None:
        """Map the URL rule ``rule`` to ``endpoint`` and ``view_func``."""
        raise NotImplementedError

    def route(self, rule: str, **options: t.Any) -> t.Callable[[F], F]:
        """Decorator: route ``rule`` (werkzeug syntax, e.g. ``/user/<int:id>``) to the function.

        ``methods`` lists the accepted methods (default ``["GET"]``; HEAD and OPTIONS are added
        automatically), ``endpoint`` names it (default: the function's name); other options go
        to :class:`werkzeug.routing.Rule`.
        """

        def decorator(f: F) -> F:
            endpoint = options.pop("endpoint", None)
            self.add_url_rule(rule, endpoint, f, **options)
            return f

        return decorator

    def _method_route(
        self, method: str, rule: str, options: dict[str, t.Any]
    ) -> t.Callable[[F], F]:
        if "methods" in options:
            raise TypeError("Use the 'route' decorator to pass 'methods'.")
        return self.route(rule, methods=[method], **options)

    def get(self, rule: str, **options: t.Any) -> t.Callable[[F], F]:
        """``route(rule, methods=["GET"])``."""
        return self._method_route("GET", rule, options)

    def post(self, rule: str, **options: t.Any) -> t.Callable[[F], F]:
        """``route(rule, methods=["POST"])``."""
        return self._method_route("POST", rule, options)

    def put(self, rule: str, **options: t.Any) -> t.Callable[[F], F]:
        """``route(rule, methods=["PUT"])``."""
        return self._method_route("PUT", rule, options)

    def delete(self, rule: str, **options: t.Any) -> t.Callable[[F], F]:
        """``route(rule, methods=["DELETE"])``."""
        return self._method_route("DELETE", rule, options)

    def patch(self, rule: str, **options: t.Any) -> t.Callable[[F], F]:
        """``route(rule, methods=["PATCH"])``."""
        return self._method_route("PATCH", rule, options)

    def before_request(self, f: F) -> F:
        """Run ``f()`` before the view; a non-``None`` return becomes the response instead."""
        self._check_hook("before_request", f)
        self.before_request_funcs.setdefault(self._hook_key, []).append(f)
        return f

    def after_request(self, f: F) -> F:
        """Run ``f(response)`` after the view; it returns the (possibly new) response.

        Hooks run in reverse order of registration, blueprint hooks before app hooks.
        """
        self._check_hook("after_request", f)
        self.after_request_funcs.setdefault(self._hook_key, []).append(f)
        return f

    def teardown_request(self, f: F) -> F:
        """Run ``f(exception_or_None)`` when the request ends, even if it failed."""
        self._check_hook("teardown_request", f)
        self.teardown_request_funcs.setdefault(self._hook_key, []).append(f)
        return f

    def url_value_preprocessor(self, f: F) -> F:
        """Run ``f(endpoint, view_args)`` before the ``before_request`` hooks: it may take
        values out of ``view_args`` (a language code in every URL, into ``g``) so the view does
        not get them. ``endpoint`` and ``view_args`` are ``None`` when no URL matched."""
        self._check_hook("url_value_preprocessor", f)
        self.url_value_preprocessors.setdefault(self._hook_key, []).append(f)
        return f

    def url_defaults(self, f: F) -> F:
        """Run ``f(endpoint, values)`` in ``url_for`` before the URL is built: it may fill in
        ``values`` (``values.setdefault("lang_code", g.lang_code)``)."""
        self._check_hook("url_defaults", f)
        self.url_default_functions.setdefault(self._hook_key, []).append(f)
        return f

    def errorhandler(self, code_or_exception: type[BaseException] | int) -> t.Callable[[F], F]:
        """Decorator: handle an HTTP status code or an exception class (and its subclasses).

        The handler gets the exception and returns anything a view may return. A handler for
        the exact code wins over one for a base class; among classes the nearest in the MRO
        wins; blueprint handlers win over app handlers for the blueprint's requests.
        """

        def decorator(f: F) -> F:
            self.register_error_handler(code_or_exception, f)
            return f

        return decorator

    def register_error_handler(
        self, code_or_exception: type[BaseException] | int, f: ErrorHandler
    ) -> None:
        """Non-decorator form of :meth:`errorhandler`."""
        self._check_hook("errorhandler", f)
        self._register_error_handler(self._hook_key, code_or_exception, f)

    def _register_error_handler(
        self, key: str | None, code_or_exception: type[BaseException] | int, f: ErrorHandler
    ) -> None:
        exc_class, code = exception_key(code_or_exception)
        self.error_handler_spec.setdefault(key, {}).setdefault(code, {})[exc_class] = f
