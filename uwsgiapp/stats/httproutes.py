"""What the stats server answers over HTTP (``--stats-http``): the request line's route, and the
renderings one poll shares."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from typing import Final

from uwsgiapp.stats.document import health_response, http_response, render_json
from uwsgiapp.stats.model import ServerStats
from uwsgiapp.stats.prometheus import CONTENT_TYPE, render_metrics

__all__ = ["Renders", "route"]

log = logging.getLogger("uwsgiapp.error")

#: The HTTP stats server's canned answers (with the body; a HEAD's is cut off): no snapshot, a
#: path it does not serve (uWSGI answers any with the document), a method other than GET or HEAD.
_UNAVAILABLE: Final = http_response(
    b"stats unavailable\n", content_type="text/plain", status="500 Internal Server Error"
)
_NOT_FOUND: Final = http_response(
    b"not found: the stats server answers / (the JSON document), /metrics and /health\n",
    content_type="text/plain",
    status="404 Not Found",
)
_NOT_ALLOWED: Final = http_response(
    b"only GET and HEAD\n",
    content_type="text/plain",
    status="405 Method Not Allowed",
    more="Allow: GET, HEAD\r\n",
)


def _head_of(canned: bytes, head_only: bool) -> bytes:
    """A canned answer, or only its head for a HEAD request."""
    return canned.partition(b"\r\n\r\n")[0] + b"\r\n\r\n" if head_only else canned


_REQUEST_LINE = re.compile(rb"([A-Z]{1,16}) (\S{1,4096})(?: HTTP/\d\.\d)?\r?")


class Renders:
    """What one :meth:`StatsServer.poll` call serves: one snapshot, each rendering at most once."""

    __slots__ = ("_cache", "_failed", "_snapshot", "_stats", "minified")

    def __init__(self, snapshot: Callable[[], ServerStats], minified: bool) -> None:
        self._snapshot = snapshot
        self._stats: ServerStats | None = None
        self._failed = False
        self._cache: dict[str, bytes] = {}
        self.minified = minified

    def stats(self) -> ServerStats | None:
        """The snapshot (taken at the first call); None when it cannot be taken."""
        if self._stats is None and not self._failed:
            try:
                self._stats = self._snapshot()
            except Exception:
                log.exception("stats: taking the snapshot failed")
                self._failed = True
        return self._stats

    def get(self, kind: str) -> bytes | None:
        """``json`` or ``metrics``; None when the snapshot cannot be taken."""
        if kind not in self._cache:
            stats = self.stats()
            if stats is None:
                return None
            if kind == "json":
                self._cache[kind] = render_json(stats, minified=self.minified)
            else:
                self._cache[kind] = render_metrics(stats)
        return self._cache[kind]


def route(line: bytes | None, renders: Renders) -> bytes | None:
    """The answer to a request line (None: over the length cap or cut short by EOF)."""
    match = None if line is None else _REQUEST_LINE.fullmatch(line)
    if match is None:
        return http_response(b"bad request\n", content_type="text/plain", status="400 Bad Request")
    method, target = match.group(1), match.group(2)
    path = target.split(b"?", 1)[0]
    head_only = method == b"HEAD"
    if not head_only and method != b"GET":
        return _NOT_ALLOWED
    if path == b"/health":
        stats = renders.stats()
        if stats is None:
            return _head_of(_UNAVAILABLE, head_only)
        return health_response(stats, head_only=head_only)
    if path == b"/metrics":
        kind, ctype = "metrics", CONTENT_TYPE
    elif path == b"/":
        kind, ctype = "json", "application/json"
    else:  # a probe of /healthz must not pass on the document's 200, as uWSGI's would
        return _head_of(_NOT_FOUND, head_only)
    body = renders.get(kind)
    if body is None:
        return _head_of(_UNAVAILABLE, head_only)
    return http_response(body, content_type=ctype, head_only=head_only)
