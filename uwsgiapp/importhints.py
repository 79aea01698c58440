"""What an app's failed import adds to its error: what to use instead of uWSGI's own modules,
a sys.path entry the dropped user cannot read, a port the old code's server holds, a module
run outside the package it belongs to."""

from __future__ import annotations

import errno
import functools
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

from uwsgiapp.pathreach import unreachable_hint

__all__ = ["PORT_TAKEN", "app_like_names", "failure_hint", "is_asgi", "is_factory", "not_wsgi"]

#: uWSGI's own modules, which exist only inside uWSGI: what to use instead.
_UWSGI_MODULES = {
    "uwsgidecorators": "for @postfork use 'from uwsgiapp import postfork'; its other decorators"
    " (@timer, @cron, @spool, @mulefunc…) have no counterpart: run those jobs as a process of"
    " their own",
    "uwsgi": "guard its uses (try: import uwsgi / except ImportError), and for"
    " uwsgi.register_postfork use 'from uwsgiapp import postfork', for uwsgi.set_user_harakiri"
    " 'from uwsgiapp import set_harakiri'; a library's uWSGI mode has a"
    " multi-process one (prometheus_flask_exporter: MultiprocessInternalPrometheusMetrics with"
    " PROMETHEUS_MULTIPROC_DIR, not UWsgiPrometheusMetrics)",
}

#: A server the import starts (a metrics endpoint) found its port taken: at a HUP's re-import,
#: by the one the old code started, which keeps running in the master.
PORT_TAKEN = (
    "\nthe app's import starts a server whose port is taken; at a HUP, by the one the old"
    " code started at its import, which stays in the master: start it in the workers (a"
    " uwsgiapp.postfork function), or use --lazy-apps, or --no-reload-preloaded"
)


def failure_hint(
    exc: BaseException, app_file: Callable[[], tuple[str, str]] = lambda: ("", "app")
) -> str:
    """The lines to add to an import failure's message ("" for none); ``app_file``: the file
    of the app's module and what the spec names in it, looked up for a relative import's
    only (the lookup may import a package)."""
    missing = (exc.name or "") if isinstance(exc, ModuleNotFoundError) else ""
    top = missing.partition(".")[0]
    if top in _UWSGI_MODULES:
        return (
            f"\n{top!r} is uWSGI's own module (it exists only inside uWSGI): uwsgiapp has none;"
            f" {_UWSGI_MODULES[top]} (README: 'Coming from uWSGI or gunicorn')"
        )
    if missing:
        unreachable = unreachable_hint(sys.path, os.getuid())
        if unreachable or _found(top):  # found: a module of it is missing (the app's own)
            return unreachable
        # A package the app needs, not installed where this uwsgiapp runs (another venv's): on
        # the exception's line, which the stderr summary of a failed start shows.
        return (
            f" (this uwsgiapp runs {sys.executable}, prefix {sys.prefix}: is {top!r} installed "
            "there? uwsgiapp must be installed in the app's virtualenv)"
        )
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return PORT_TAKEN
    if isinstance(exc, ImportError) and "no known parent package" in str(exc):
        path, attrs = app_file()
        return _package_hint(path, attrs) if path else ""
    return ""


def _package_hint(app_file: str, attrs: str) -> str:
    """A relative import in the app's module loaded as a top-level one: name it by its
    package, as flask run finds it (``mypkg/app.py`` has ``from . import models``)."""
    parts = [os.path.splitext(os.path.basename(app_file))[0]]
    where = os.path.dirname(os.path.abspath(app_file))
    # Up to / at most (an __init__.py in / itself, a project copied there, looped for ever).
    while os.path.basename(where) and os.path.isfile(os.path.join(where, "__init__.py")):
        parts.insert(0, os.path.basename(where))
        where = os.path.dirname(where)
    if len(parts) < 2:
        return ""
    return (
        f"\n{app_file} is in the package {parts[0]!r} (its directory has __init__.py): name the "
        f"app by its package, {'.'.join(parts)}:{attrs}, with {where} on the path (--chdir or "
        "--pythonpath)"
    )


def app_like_names(module: ModuleType, *, besides: str = "") -> list[str]:
    """The module's names (other than ``besides``) that look like its WSGI app: ``app`` or
    ``application``, then an object with a ``wsgi_app`` method (Flask's, werkzeug's,
    uwsgiapp.web's), as ``flask run`` finds an app named otherwise."""
    names = vars(module)
    found = [n for n in ("application", "app") if n != besides and callable(names.get(n))]
    found += [
        name
        for name, value in names.items()
        if not (name.startswith("_") or isinstance(value, type) or name in found)
        and name != besides
        # looked up on the class: an instance's lookup runs Flask's request proxies
        and callable(getattr(type(value), "wsgi_app", None))
    ]
    return found


def not_wsgi(app: Any, spec: str, called: bool) -> str | None:
    """Why the callable ``spec`` names is no WSGI app (an ASGI app; a factory, unless
    ``called``: ``spec`` calls it), or None: what to say instead of a 500 a request."""
    if is_asgi(app):
        return (
            f"app {spec!r} is an ASGI app (async, called as app(scope, receive, send)): "
            "uwsgiapp runs WSGI apps, called as app(environ, start_response); serve it with an "
            "ASGI server (uvicorn, hypercorn), or name the project's WSGI app (Django's "
            "wsgi.py application, not asgi.py's)"
        )
    if called or not is_factory(app):
        return None
    kind, looks = (
        ("a class", "its instances are the app")
        if inspect.isclass(app)
        else ("a function", "it looks like an app factory")
    )
    return (
        f"app {spec!r} is {kind} that cannot take (environ, start_response): {looks}; "
        f"call it: '{spec}()'"
    )


def is_asgi(obj: Any) -> bool:
    """An ASGI app: a coroutine function, or an instance whose ``__call__`` is one (Starlette,
    FastAPI, Django's ``get_asgi_application()``)."""
    while isinstance(obj, functools.partial):  # partial(app, ...) is the app it wraps
        obj = obj.func
    if inspect.isclass(obj) or not callable(obj):
        return False
    call = obj if inspect.isroutine(obj) else type(obj).__call__
    return inspect.iscoroutinefunction(call)


def is_factory(obj: Any) -> bool:
    """A plain function or a class whose signature refuses two positional arguments
    (``create_app()``, ``create_app(config=None)``, a class whose instances are the app): what
    a WSGI server would call with two and fail each request. (A class taking them is an app,
    as PEP 3333 allows.)"""
    if not (inspect.isfunction(obj) or inspect.isclass(obj)):
        return False
    try:
        inspect.signature(obj).bind(None, None)
    except TypeError:
        return True
    except ValueError:  # no signature to read
        return False
    return False


def _found(top: str) -> bool:
    """Whether the top-level module ``top`` can be found on the path (not imported), as a
    module or a package of its own (a namespace one, ``google`` of google-auth, is shared:
    its missing ``google.protobuf`` is another distribution's)."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return False
    return spec is not None and spec.origin not in (None, "namespace")
