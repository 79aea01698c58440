"""Request and Response: werkzeug's wrappers, plus routing state and a cheap common case."""

from __future__ import annotations

import typing as t
from http import HTTPStatus

from werkzeug.datastructures import Headers
from werkzeug.exceptions import BadRequest
from werkzeug.routing import Rule
from werkzeug.utils import get_content_type
from werkzeug.wrappers import Request as _WRequest
from werkzeug.wrappers import Response as _WResponse

from .globals import _cv_app

if t.TYPE_CHECKING:
    from _typeshed.wsgi import StartResponse, WSGIEnvironment
    from werkzeug.exceptions import HTTPException

__all__ = ["Request", "Response"]

#: Status codes whose responses carry no body (RFC 9110); the slow path handles them.
_NO_BODY_STATUS: t.Final = frozenset({204, 304})
_CONTENT_TYPES: dict[str, str] = {}
_MAX_CACHED_CONTENT_TYPES: t.Final = 64


def _safe_content_type(mimetype: str) -> str | None:
    """``Content-Type`` for ``mimetype`` (utf-8 for text), or None if it needs validation."""
    ctype = _CONTENT_TYPES.get(mimetype)
    if ctype is None:
        ctype = get_content_type(mimetype, "utf-8")
        if "\r" in ctype or "\n" in ctype:
            return None  # let werkzeug's header check reject it
        if len(_CONTENT_TYPES) < _MAX_CACHED_CONTENT_TYPES:
            _CONTENT_TYPES[mimetype] = ctype
    return ctype


class Request(_WRequest):
    """A werkzeug request that also knows how the router matched it."""

    #: The :class:`werkzeug.routing.Rule` that matched, or ``None``.
    url_rule: Rule | None = None
    #: Arguments the rule's converters extracted from the path.
    view_args: dict[str, t.Any] | None = None
    #: The routing error (404, 405, redirect) to raise at dispatch, if matching failed.
    routing_exception: HTTPException | None = None

    def on_json_loading_failed(self, e: ValueError | None) -> t.Any:
        """Invalid JSON body: a 400 that names the parse error only in debug mode."""
        try:
            return super().on_json_loading_failed(e)
        except BadRequest as error:
            ctx = _cv_app.get(None)
            if ctx is not None and ctx.app.debug:
                raise
            raise BadRequest() from error

    @property
    def endpoint(self) -> str | None:
        """The endpoint of the matched rule, or ``None``."""
        return self.url_rule.endpoint if self.url_rule is not None else None

    @property
    def blueprint(self) -> str | None:
        """The (dotted, if nested) name of the blueprint that owns the matched endpoint, or
        ``None``."""
        endpoint = self.endpoint
        if endpoint is not None and "." in endpoint:
            return endpoint.rpartition(".")[0]
        return None

    @property
    def blueprints(self) -> list[str]:
        """The blueprint of the matched endpoint and those it is nested in, innermost first
        (``["shop.admin", "shop"]``); empty if none."""
        name = self.blueprint
        if name is None:
            return []
        parts = name.split(".")
        return [".".join(parts[:i]) for i in range(len(parts), 0, -1)]


class Response(_WResponse):
    """A werkzeug response (``text/html`` by default) built and served cheaply for simple bodies.

    A plain ``str``/``bytes`` body with default status and no extra headers skips werkzeug's generic
    header validation, and serving a buffered body whose headers need no rewriting skips the
    copy-and-scan werkzeug does on every response. Everything else takes werkzeug's own path.
    """

    default_mimetype = "text/html"

    def __init__(
        self,
        response: t.Iterable[bytes] | bytes | t.Iterable[str] | str | None = None,
        status: int | str | HTTPStatus | None = None,
        headers: t.Mapping[str, str | t.Iterable[str]] | t.Iterable[tuple[str, str]] | None = None,
        mimetype: str | None = None,
        content_type: str | None = None,
        direct_passthrough: bool = False,
    ) -> None:
        kind = type(response)
        chosen = mimetype or self.default_mimetype
        if (
            (kind is str or kind is bytes)
            and chosen
            and status is None
            and headers is None
            and content_type is None
            and self.default_status == 200
            and self.automatically_set_content_length
            and (ctype := _safe_content_type(chosen)) is not None
        ):
            body = t.cast(str, response).encode() if kind is str else t.cast(bytes, response)
            headers_obj = Headers()
            # Headers(list) validates every value (~2 µs); these two are built here and valid.
            headers_obj._list = [("Content-Type", ctype), ("Content-Length", str(len(body)))]
            self.headers = headers_obj
            self._status = "200 OK"
            self._status_code = 200
            self.direct_passthrough = direct_passthrough
            self._on_close = []
            self.response = [body]
            return
        super().__init__(response, status, headers, mimetype, content_type, direct_passthrough)

    def __call__(
        self, environ: WSGIEnvironment, start_response: StartResponse
    ) -> t.Iterable[bytes]:
        """Serve this response as a WSGI application."""
        body = self.response
        code = self._status_code
        if (
            type(body) is list
            and not self._on_close
            and code >= 200
            and code not in _NO_BODY_STATUS
            and environ["REQUEST_METHOD"] != "HEAD"
            and all(type(chunk) is bytes for chunk in body)
        ):
            wsgi_headers = self.headers.to_wsgi_list()
            has_length = False
            for key, _ in wsgi_headers:
                lower = key.lower()
                if lower == "content-length":
                    has_length = True
                elif lower == "location" or lower == "content-location":
                    has_length = False  # werkzeug rewrites these as URIs
                    break
            if has_length:
                start_response(self._status, wsgi_headers)
                return body
        return super().__call__(environ, start_response)
