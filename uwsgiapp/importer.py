"""Load the WSGI application named by an app spec.

Accepted specs::

    module                    # attribute ``app``, else ``application``
    module:attr               # also dotted: module:attr.sub
    module:factory()          # called; literal arguments only: module:make('x', debug=True)
    path/to/file.py           # a file, loaded as a module (its directory goes first on sys.path)
    path/to/file.py:attr
    ./site.wsgi               # any file named with a '/' is read as Python source (uWSGI's
                              # wsgi-file: indico.wsgi, keystone-wsgi-public)

The attribute part is parsed with :mod:`ast` and only names, attribute access and one call with
literal arguments are accepted; nothing is ever evaluated. Every failure raises
:class:`AppImportError`, whose message says which step failed (module missing, an error raised
while importing it with the inner traceback, attribute missing, not callable, factory failed).
"""

from __future__ import annotations

import ast
import contextlib
import importlib
import importlib.machinery
import importlib.util
import logging
import os
import sys
import traceback
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import CodeType, ModuleType
from typing import Any

from uwsgiapp.freshcode import CheckedSourceLoader, check_bytecode_caches
from uwsgiapp.importhints import app_like_names, failure_hint, not_wsgi
from uwsgiapp.pathreach import unreachable_hint
from uwsgiapp.server.inflight import worker_number
from uwsgiapp.server.logs import borrowed_gunicorn_logger, reclaim_loggers

# The one definition of a WSGI app's type; re-exported here for the callers of load_app.
from uwsgiapp.wsgi.contract import WSGIApp

__all__ = ["DEFAULT_ATTRS", "AppImportError", "AppSpec", "WSGIApp", "load_app", "parse_spec"]

#: Attributes tried, in order, when the spec names only a module or file.
DEFAULT_ATTRS = ("app", "application")
#: Factory names named in the hint when neither default attribute exists (Flask's convention).
FACTORY_NAMES = ("create_app", "make_app")


class AppImportError(Exception):
    """The app could not be loaded. ``kind`` says which step failed:

    ``bad-spec``, ``missing-module``, ``import-failed``, ``missing-attribute``,
    ``factory-failed`` or ``not-callable``.
    """

    def __init__(self, message: str, *, spec: str = "", kind: str = "import-failed") -> None:
        self.spec = spec
        self.kind = kind
        super().__init__(message)


@dataclass(frozen=True, slots=True, kw_only=True)
class AppSpec:
    """A parsed app spec: where the module comes from and how to reach the app inside it."""

    module: str = ""
    """Dotted module name (empty when ``path`` is set)."""
    path: str = ""
    """A file to load instead of a module (``.py``, or any name given with a ``/``)."""
    attrs: tuple[str, ...] = ()
    """Attribute chain, e.g. ``("app", "wsgi_app")``; empty = try :data:`DEFAULT_ATTRS`."""
    call: bool = False
    """Whether the final attribute is a factory to call."""
    args: tuple[Any, ...] = ()
    kwargs: tuple[tuple[str, Any], ...] = field(default=())


def _bad(spec: str, why: str) -> AppImportError:
    return AppImportError(
        f"invalid app spec {spec!r}: {why} "
        "(expected module:attr, module:factory(), or path/to/file.py:attr)",
        spec=spec,
        kind="bad-spec",
    )


def _attr_chain(node: ast.expr, spec: str) -> tuple[str, ...]:
    """``a.b.c`` → ``("a", "b", "c")``; anything else is refused."""
    if isinstance(node, ast.Name):
        return (node.id,)
    if isinstance(node, ast.Attribute):
        return (*_attr_chain(node.value, spec), node.attr)
    raise _bad(spec, f"{ast.unparse(node)!r} is not an attribute name")


def _literal(node: ast.expr, spec: str) -> Any:
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        raise _bad(spec, f"factory arguments must be literals, got {ast.unparse(node)!r}") from None


def parse_spec(spec: str) -> AppSpec:
    """Parse an app spec without importing anything (see the module docstring)."""
    text = spec.strip()
    if not text:
        raise _bad(spec, "it is empty")
    target, sep, expr = text.partition(":")
    target, expr = target.strip(), expr.strip()
    if not target:
        raise _bad(spec, "no module or file before ':'")
    if sep and not expr:
        raise _bad(spec, "no attribute after ':'")
    is_path = target.endswith(".py") or "/" in target or os.sep in target
    if not is_path and not all(part.isidentifier() for part in target.split(".")):
        raise _bad(spec, f"{target!r} is not a module name")
    module, path = ("", target) if is_path else (target, "")
    if not expr:
        return AppSpec(module=module, path=path)
    try:
        tree = ast.parse(expr, mode="eval").body
    except SyntaxError:
        raise _bad(spec, f"cannot parse {expr!r}") from None
    if isinstance(tree, ast.Call):
        if any(isinstance(a, ast.Starred) for a in tree.args) or any(
            k.arg is None for k in tree.keywords
        ):
            raise _bad(spec, "*args / **kwargs are not allowed in the factory call")
        return AppSpec(
            module=module,
            path=path,
            attrs=_attr_chain(tree.func, spec),
            call=True,
            args=tuple(_literal(a, spec) for a in tree.args),
            kwargs=tuple((str(k.arg), _literal(k.value, spec)) for k in tree.keywords),
        )
    return AppSpec(module=module, path=path, attrs=_attr_chain(tree, spec))


def _inner_traceback(exc: BaseException) -> str:
    """The exception's traceback without importlib's and this module's own frames."""
    tbe = traceback.TracebackException.from_exception(exc)
    kept = [
        frame
        for frame in tbe.stack
        if not frame.filename.startswith("<frozen importlib") and frame.filename != __file__
    ]
    tbe.stack = traceback.StackSummary.from_list(kept)
    return "".join(tbe.format()).rstrip()


def _import_failure(what: str, spec: str, exc: BaseException) -> AppImportError:
    """The error for an import that raised: its traceback, and what may help
    (:func:`~uwsgiapp.importhints.failure_hint`)."""
    message = f"error while importing {what} for app {spec!r}:\n{_inner_traceback(exc)}"
    hint = failure_hint(exc, lambda: _app_file(spec))
    return AppImportError(message + hint, spec=spec, kind="import-failed")


def _app_file(spec: str) -> tuple[str, str]:
    """The file of the app's module (found without importing it; "" if unknown), and the
    attributes the spec names in it."""
    parsed = parse_spec(spec)
    if parsed.path:
        return os.path.abspath(parsed.path), ".".join(parsed.attrs) or "app"
    try:  # a top-level module's (a relative import failed in it): no package is imported
        found = importlib.util.find_spec(parsed.module)
    except Exception:  # a package's own import may raise anything
        found = None
    return (found.origin or "") if found else "", ".".join(parsed.attrs) or "app"


def _prepare_path(chdir: str, pythonpath: Sequence[str]) -> None:
    """chdir, then put the pythonpath entries and the working directory first on sys.path."""
    if chdir:
        try:
            os.chdir(chdir)
        except OSError as exc:
            raise AppImportError(
                f"cannot change directory to {chdir!r}: {exc.strerror}", kind="import-failed"
            ) from None
    # A console script's sys.path[0] is its bin directory, not the working directory; users
    # expect `uwsgiapp serve app:app` to find ./app.py, as uWSGI and gunicorn do.
    entries = [os.path.abspath(p) for p in pythonpath] + [os.getcwd()]
    # A reload's entries replace the last load's: a --chdir symlink swapped to a new release
    # left the old one on sys.path, where a module the new release no longer has was found.
    for gone in _ADDED.difference(entries):
        if gone in sys.path:
            sys.path.remove(gone)
    _ADDED.intersection_update(entries)
    _ADDED.update(entry for entry in entries if entry not in sys.path)
    for entry in reversed(entries):
        if entry in sys.path:
            sys.path.remove(entry)
        sys.path.insert(0, entry)


#: The sys.path entries :func:`_prepare_path` put there (those that were not there before).
_ADDED: set[str] = set()


def _import_module(name: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as exc:
        # Only "the module itself (or a parent package) is missing" is a missing module; a
        # ModuleNotFoundError raised by an import *inside* it is an inner failure.
        missing = exc.name or ""
        if missing and (name == missing or name.startswith(missing + ".")):
            raise AppImportError(
                f"No module named {missing!r} (while loading app {spec!r}; "
                f"sys.path[0] is {sys.path[0]!r}: check --chdir / --pythonpath)"
                + unreachable_hint(sys.path, os.getuid()),
                spec=spec,
                kind="missing-module",
            ) from None
        raise _import_failure(f"module {name!r}", spec, exc) from None
    except BaseException as exc:
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _import_failure(f"module {name!r}", spec, exc) from None


class _AnyFileLoader(importlib.machinery.SourceFileLoader):
    """Loads a file of any name as Python source, compiling it each time: its bytecode cache
    name would be derived from a suffix it may not have (``site.wsgi`` would share
    ``site.py``'s)."""

    def get_code(self, fullname: str) -> CodeType:
        return self.source_to_code(self.get_data(self.path), self.path)


def _load_file(path: str, spec: str) -> ModuleType:
    full = os.path.abspath(path)
    if not os.path.isfile(full):
        raise AppImportError(
            f"No module named {path!r}: file not found ({full})", spec=spec, kind="missing-module"
        )
    stem, suffix = os.path.splitext(os.path.basename(full))
    name = stem
    existing = sys.modules.get(name)
    if existing is not None and os.path.abspath(getattr(existing, "__file__", "") or "") == full:
        return existing
    if suffix != ".py" or not name.isidentifier() or existing is not None:
        # A name of its own, as uWSGI gives one: yourapplication.wsgi usually imports the
        # package yourapplication, and site.wsgi must not stand in for the standard library's.
        name = "uwsgi_file_" + "".join(c if c.isalnum() else "_" for c in full)
        existing = sys.modules.get(name)
        if existing is not None:
            return existing
    # uWSGI's wsgi-file loads any file as Python (indico.wsgi, keystone-wsgi-public); only a
    # .py file gets the usual loader and its bytecode cache.
    loader = CheckedSourceLoader(name, full) if suffix == ".py" else _AnyFileLoader(name, full)
    module_spec = importlib.util.spec_from_file_location(name, full, loader=loader)
    if module_spec is None or module_spec.loader is None:
        raise AppImportError(f"cannot load {full} as Python", spec=spec, kind="import-failed")
    directory = os.path.dirname(full)
    if directory not in sys.path:
        sys.path.insert(0, directory)
    module = importlib.util.module_from_spec(module_spec)
    # Registered before executing (like a normal import), so the reloader, pickle and
    # self-imports see it; removed again if it fails.
    sys.modules[name] = module
    try:
        module_spec.loader.exec_module(module)
    except BaseException as exc:
        sys.modules.pop(name, None)
        if isinstance(exc, KeyboardInterrupt):
            raise
        raise _import_failure(f"file {path!r}", spec, exc) from None
    return module


def _resolve(module: ModuleType, parsed: AppSpec, spec: str) -> Any:
    where = parsed.module or parsed.path
    if not parsed.attrs:
        for attr in DEFAULT_ATTRS:
            if hasattr(module, attr):
                return getattr(module, attr)
        factories = [name for name in FACTORY_NAMES if callable(getattr(module, name, None))]
        named = app_like_names(module)
        hint = f"{where}:{(named or [f'{factories[0]}()' if factories else 'my_app'])[0]}"
        raise AppImportError(
            f"{where!r} has no attribute {' or '.join(map(repr, DEFAULT_ATTRS))}: "
            f"name the app, e.g. {hint}",
            spec=spec,
            kind="missing-attribute",
        )
    obj: Any = module
    for i, attr in enumerate(parsed.attrs):
        try:
            obj = getattr(obj, attr)
        except AttributeError:
            dotted = ".".join(parsed.attrs[: i + 1])
            named = app_like_names(module, besides=dotted) if obj is module else []
            hint = f": did you mean {where}:{named[0]}?" if named else ""
            raise AppImportError(
                f"{where!r} has no attribute {dotted!r}{hint}", spec=spec, kind="missing-attribute"
            ) from None
        except Exception as exc:
            raise AppImportError(
                f"error while getting {'.'.join(parsed.attrs[: i + 1])!r} from {where!r}:\n"
                f"{_inner_traceback(exc)}",
                spec=spec,
                kind="import-failed",
            ) from None
    if parsed.call:
        name = ".".join(parsed.attrs)
        if not callable(obj):
            raise AppImportError(
                f"{where}:{name} is not callable, so it cannot be a factory",
                spec=spec,
                kind="not-callable",
            )
        try:
            obj = obj(*parsed.args, **dict(parsed.kwargs))
        except Exception as exc:
            raise AppImportError(
                f"app factory {where}:{name}() raised:\n{_inner_traceback(exc)}",
                spec=spec,
                kind="factory-failed",
            ) from None
    return obj


def load_app(
    spec: str, *, chdir: str = "", pythonpath: Sequence[str] = (), as_flask_run: bool = False
) -> WSGIApp:
    """Import and return the WSGI callable named by ``spec``.

    ``chdir`` is entered first (for good: the app runs there); then the ``pythonpath`` entries and
    the working directory are put first on ``sys.path``. Raises :class:`AppImportError`.
    """
    parsed = parse_spec(spec)
    _prepare_path(chdir, pythonpath)
    check_bytecode_caches()  # a same-size edit within a second must not run the old code
    with _no_blocking_run() if as_flask_run else contextlib.nullcontext():
        module = (
            _load_file(parsed.path, spec) if parsed.path else _import_module(parsed.module, spec)
        )
    app = _resolve(module, parsed, spec)
    if not callable(app):
        raise AppImportError(
            f"app {spec!r} resolved to {type(app).__name__} {app!r:.80}, which is not callable "
            "(a WSGI app is called as app(environ, start_response))",
            spec=spec,
            kind="not-callable",
        )
    if (refused := not_wsgi(app, spec, parsed.call)) is not None:  # ASGI, a factory
        raise AppImportError(refused, spec=spec, kind="not-callable")
    reclaimed = reclaim_loggers()
    said = worker_number() <= 1  # with --lazy-apps each worker imports: worker 1 says it
    if reclaimed and said:
        logging.getLogger("uwsgiapp.error").warning(
            "the app's logging configuration disabled %s (disable_existing_loggers): enabled "
            "again; set 'disable_existing_loggers': False in it to keep them",
            ", ".join(reclaimed),
        )
    if borrowed_gunicorn_logger() and said:
        logging.getLogger("uwsgiapp.error").warning(
            "the app took gunicorn's logger 'gunicorn.error', which has no handler here: what "
            "it logs through it, or through the handlers copied from it, is lost below WARNING; "
            "take the handlers of logging.getLogger('uwsgiapp') (the error log), or configure "
            "logging (logging.basicConfig)"
        )
    return app  # type: ignore[no-any-return]


@contextlib.contextmanager
def _no_blocking_run() -> Iterator[None]:
    """During ``uwsgiapp dev``'s import of the app, as under ``flask run``: Flask's
    ``app.run()`` left at module level is skipped with Flask's own line ("Ignoring a call to
    'app.run()'..."), where it served on its own port and dev's never answered. Not under
    ``serve``: an app may read the variable to tell ``flask run`` (skipping its scheduler)."""
    if os.environ.get(_FLASK_CLI) is not None:
        yield
        return
    os.environ[_FLASK_CLI] = "true"
    try:
        yield
    finally:
        os.environ.pop(_FLASK_CLI, None)


_FLASK_CLI = "FLASK_RUN_FROM_CLI"
