"""Helpers used from views: url_for, jsonify, abort, redirect, make_response, send_file."""

from __future__ import annotations

import dataclasses
import decimal
import json
import os
import typing as t
import uuid
from datetime import date, timedelta

from werkzeug.exceptions import abort as _abort
from werkzeug.http import http_date
from werkzeug.utils import redirect as _redirect
from werkzeug.utils import send_file as _send_file
from werkzeug.utils import send_from_directory as _send_from_directory

from .globals import _cv_app, _cv_request, current_app
from .wrappers import Response

if t.TYPE_CHECKING:
    from _typeshed.wsgi import WSGIEnvironment

    from .app import App

__all__ = [
    "abort",
    "dumps",
    "json_default",
    "jsonify",
    "make_response",
    "max_age_seconds",
    "redirect",
    "send_file",
    "send_from_directory",
    "url_for",
]


def json_default(o: t.Any) -> t.Any:
    """``json.dumps``'s ``default`` for the framework's JSON, as Flask's: a date as an HTTP date,
    a Decimal or UUID as its string, a dataclass as a dict, an ``__html__`` object as its HTML."""
    if isinstance(o, date):
        return http_date(o)
    if isinstance(o, (decimal.Decimal, uuid.UUID)):
        return str(o)
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if hasattr(o, "__html__"):
        return str(o.__html__())
    raise TypeError(f"Object of type {type(o).__name__} is not JSON serializable")


def dumps(obj: t.Any, *, debug: bool = False, sort_keys: bool = True) -> str:
    """Serialise ``obj`` as JSON: compact (indented in debug), also dates, UUIDs, dataclasses."""
    if debug:
        return json.dumps(obj, default=json_default, indent=2, sort_keys=sort_keys)
    return json.dumps(obj, default=json_default, separators=(",", ":"), sort_keys=sort_keys)


def jsonify(*args: t.Any, **kwargs: t.Any) -> Response:
    """A JSON response: one positional argument, several (a list), or keyword arguments;
    ``null`` for none, as in Flask."""
    if args and kwargs:
        raise TypeError("jsonify() takes positional arguments or keyword arguments, not both")
    data: t.Any
    if not args:
        data = kwargs or None
    elif len(args) == 1:
        data = args[0]
    else:
        data = args
    return current_app.json_response(data)


def url_for(
    endpoint: str,
    *,
    _anchor: str | None = None,
    _method: str | None = None,
    _scheme: str | None = None,
    _external: bool | None = None,
    **values: t.Any,
) -> str:
    """The URL of ``endpoint`` with ``values`` for its arguments; extra values become a query.

    Inside a request the URL is relative unless ``_external``; ``".name"`` means ``name`` in
    the current blueprint. Outside a request (application context only) ``SERVER_NAME`` must be
    configured and the URL is absolute.
    """
    return current_app.url_for(
        endpoint,
        _anchor=_anchor,
        _method=_method,
        _scheme=_scheme,
        _external=_external,
        **values,
    )


def abort(code: int | Response, *args: t.Any, **kwargs: t.Any) -> t.NoReturn:
    """Raise the :class:`~werkzeug.exceptions.HTTPException` for ``code`` (or this response)."""
    _abort(code, *args, **kwargs)


def redirect(location: str, code: int = 302) -> Response:
    """A redirect response to ``location`` (302 by default), of the app's response class."""
    ctx = _cv_app.get(None)
    response_class = ctx.app.response_class if ctx is not None else Response
    return t.cast("Response", _redirect(location, code, Response=response_class))


def make_response(*args: t.Any) -> Response:
    """Turn a view's return value(s) into a response object, to change it before returning."""
    app = current_app
    if not args:
        return app.response_class()
    return app.make_response(args[0] if len(args) == 1 else args)


def _environ() -> WSGIEnvironment:
    ctx = _cv_request.get(None)
    if ctx is None:
        raise RuntimeError("send_file() can only be used while handling a request.")
    return ctx.environ


def _app() -> App:
    ctx = _cv_app.get(None)
    if ctx is None:
        raise RuntimeError("send_file() can only be used while handling a request.")
    return ctx.app


def max_age_seconds(value: timedelta | float | None) -> int | None:
    """``SEND_FILE_MAX_AGE_DEFAULT`` in whole seconds (it may be a timedelta), or None."""
    if value is None:
        return None
    if isinstance(value, timedelta):
        return int(value.total_seconds())
    return int(value)


def send_file(
    path_or_file: os.PathLike[str] | str | t.IO[bytes],
    mimetype: str | None = None,
    as_attachment: bool = False,
    download_name: str | None = None,
    conditional: bool = True,
    etag: bool | str = True,
    last_modified: t.Any = None,
    max_age: int | t.Callable[[str | None], int | None] | None = None,
) -> Response:
    """Send a file (path or binary file object) through werkzeug's ``send_file``.

    The body goes through the server's ``wsgi.file_wrapper`` when it offers one, conditional
    requests get 304 and ranges get 206. Relative paths are relative to ``app.root_path``.
    Without ``max_age``, the app's ``get_send_file_max_age`` decides (as in Flask).
    """
    app = _app()
    return t.cast(
        "Response",
        _send_file(
            path_or_file,
            _environ(),
            mimetype=mimetype,
            as_attachment=as_attachment,
            download_name=download_name,
            conditional=conditional,
            etag=etag,
            last_modified=last_modified,
            max_age=app.get_send_file_max_age if max_age is None else max_age,
            response_class=app.response_class,
            _root_path=app.root_path,
        ),
    )


def send_from_directory(
    directory: os.PathLike[str] | str, path: os.PathLike[str] | str, **kwargs: t.Any
) -> Response:
    """Send ``path`` from inside ``directory``; a path escaping it is a 404."""
    app = _app()
    if kwargs.get("max_age") is None:
        kwargs["max_age"] = app.get_send_file_max_age
    return t.cast(
        "Response",
        _send_from_directory(
            directory,
            path,
            _environ(),
            response_class=app.response_class,
            _root_path=app.root_path,
            **kwargs,
        ),
    )
