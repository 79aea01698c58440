"""Build the PEP 3333 environ from a uwsgi request's vars (a pure function, called per request).

Facts it respects (see DESIGN.md): nginx sends ``HTTP_CONTENT_TYPE``/``HTTP_CONTENT_LENGTH``
besides the real ones (PEP 3333 forbids them: dropped), ``CONTENT_LENGTH`` is ``''`` when there is
no body, ``UWSGI_*`` "magic" vars are never honoured (dropped), ``SCRIPT_NAME`` is ``''`` unless the
app is mounted (``--mount``) or the packet has modifier1 30, and then only a real prefix of
``PATH_INFO`` is stripped.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import IO, Any

from protocol import MODIFIER_WSGI_STRIP

#: Keys PEP 3333 requires; filled with defaults when a (non-nginx) client leaves them out.
REQUIRED_DEFAULTS: dict[str, str] = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "",
    "QUERY_STRING": "",
    "SERVER_NAME": "localhost",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.0",
}
_REQUIRED_KEYS = frozenset(REQUIRED_DEFAULTS)


class BadRequest(Exception):
    """The request is refused before the app is called; ``status`` is the full status line."""

    def __init__(self, status: str, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass(frozen=True, slots=True, kw_only=True)
class EnvironSettings:
    """What the environ needs from the configuration, resolved once at start-up."""

    mount: str = ""
    limit_post: int = 0
    errors: IO[str] | None = None
    file_wrapper: Callable[..., Any] | None = None
    multiprocess: bool = True

    def template(self) -> dict[str, Any]:
        """The keys every request shares; copied into each environ."""
        return {
            "SCRIPT_NAME": "",
            "wsgi.version": (1, 0),
            "wsgi.url_scheme": "http",
            "wsgi.errors": self.errors if self.errors is not None else sys.stderr,
            "wsgi.multithread": False,
            "wsgi.multiprocess": self.multiprocess,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": self.file_wrapper,
        }


def strip_script_name(script_name: str, path_info: str) -> tuple[str, str]:
    """Split ``path_info`` under ``script_name`` only when it is a real path prefix.

    ``("/app", "/app/x")`` → ``("/app", "/x")``; ``("/app", "/apple")`` → ``("", "/apple")``.
    """
    script_name = script_name.rstrip("/")
    if not script_name:
        return "", path_info
    if path_info == script_name:
        return script_name, ""
    if path_info.startswith(script_name) and path_info[len(script_name)] == "/":
        return script_name, path_info[len(script_name) :]
    return "", path_info


def build_environ(
    variables: dict[str, str],
    modifier1: int,
    template: dict[str, Any],
    mount: str = "",
    has_magic: bool = True,
) -> dict[str, Any]:
    """Turn decoded vars into the environ, *in place*: ``variables`` is returned, completed.

    ``has_magic`` may be passed False when the caller already knows no ``UWSGI_`` key is present
    (a substring test on the raw block is cheaper than scanning keys).
    """
    environ: dict[str, Any] = variables
    # modifier1 30: nginx names the prefix in SCRIPT_NAME (uwsgi_param); without one, --mount.
    script_name = mount
    if modifier1 == MODIFIER_WSGI_STRIP:
        script_name = environ.get("SCRIPT_NAME") or mount
    environ.update(template)
    environ.pop("HTTP_CONTENT_TYPE", None)
    environ.pop("HTTP_CONTENT_LENGTH", None)
    if has_magic:
        for key in [k for k in environ if k.startswith("UWSGI_")]:
            del environ[key]
    if not environ.keys() >= _REQUIRED_KEYS:
        for key, value in REQUIRED_DEFAULTS.items():
            environ.setdefault(key, value)
    if script_name:
        environ["SCRIPT_NAME"], environ["PATH_INFO"] = strip_script_name(
            script_name, environ["PATH_INFO"]
        )
    if environ.get("REQUEST_SCHEME") == "https" or environ.get("HTTPS", "").lower() in ("on", "1"):
        environ["wsgi.url_scheme"] = "https"
    return environ


def parse_content_length(value: str | None, limit: int = 0) -> int:
    """The body length from ``CONTENT_LENGTH``: '' or absent → 0; else strict ASCII digits.

    Raises :class:`BadRequest` with 400 for anything but digits, 413 above ``limit`` (0 = none).
    """
    if not value:
        return 0
    if not (value.isascii() and value.isdigit()):
        raise BadRequest("400 Bad Request", f"invalid CONTENT_LENGTH {value[:40]!r}")
    if len(value) > 18:
        # int() refuses over 4300 digits with a ValueError; leading zeros are legal, but more
        # than 18 significant digits (an exabyte) can only be refused.
        value = value.lstrip("0") or "0"
        if len(value) > 18:
            raise BadRequest(
                "413 Request Entity Too Large", f"CONTENT_LENGTH of {len(value)} digits"
            )
    length = int(value)
    if limit and length > limit:
        raise BadRequest(
            "413 Request Entity Too Large", f"CONTENT_LENGTH {length} over limit-post {limit}"
        )
    return length
