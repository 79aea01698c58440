"""Building the request: the vars nginx would send for a request target, headers and body, and
the uwsgi packet that carries them."""

from __future__ import annotations

import re
import urllib.parse
from collections.abc import Iterable, Sequence
from typing import Final

import uwsgiproto

from .errors import ClientError
from .transport import Address

__all__ = ["build_packet", "build_vars"]

#: An HTTP field name (RFC 9110's token).
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")


def build_vars(
    path: str = "/",
    *,
    method: str = "GET",
    headers: Iterable[tuple[str, str]] = (),
    body: bytes | None = None,
    address: Address | None = None,
    remote_addr: str = "127.0.0.1",
    extra: Iterable[tuple[str, str]] = (),
) -> list[tuple[str, str]]:
    """The vars nginx would send for this request.

    ``path`` is the request target as typed (``/a%20b?x=1``; non-ASCII is percent-encoded as
    UTF-8). Headers become ``HTTP_<NAME>`` (dashes to underscores, upper-case) except
    Content-Type / Content-Length, which become ``CONTENT_TYPE`` / ``CONTENT_LENGTH`` (the latter
    the real body length, or empty when ``body`` is None, as nginx sends it). Repeated headers
    are joined with ``", "`` (``"; "`` for Cookie). ``extra`` vars come last and override.
    """
    target, path_info, query = _target(path)
    content_type, joined = _header_vars(headers)
    server_name, server_port = _server(address, joined)
    pairs: dict[str, str] = {
        "QUERY_STRING": query,
        "REQUEST_METHOD": method.upper(),
        "CONTENT_TYPE": content_type,
        "CONTENT_LENGTH": "" if body is None else str(len(body)),
        "REQUEST_URI": target,
        "PATH_INFO": path_info,
        "DOCUMENT_ROOT": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_SCHEME": "http",
        "REMOTE_ADDR": remote_addr,
        "REMOTE_PORT": "0",
        "SERVER_PORT": server_port,
        "SERVER_NAME": server_name,
    }
    pairs.update(joined)
    pairs.update(extra)
    return list(pairs.items())


def _target(path: str) -> tuple[str, str, str]:
    """``REQUEST_URI``, ``PATH_INFO`` (decoded) and ``QUERY_STRING`` for the target as typed."""
    if not path.startswith("/") and path != "*":
        path = "/" + path
    # Percent-encode anything that cannot travel as-is (spaces, non-ASCII) but keep the
    # escapes and reserved characters the user typed; surrogates (bytes that are not UTF-8,
    # as the command line passes them) go out as those bytes, as curl sends them.
    raw = path.encode("utf-8", "surrogateescape")
    target = urllib.parse.quote(raw, safe="/%?=&;:@!$'()*+,~#[]")
    target = target.partition("#")[0]
    raw_path, _, query = target.partition("?")
    path_info = urllib.parse.unquote_to_bytes(raw_path).decode("latin-1")
    return target, path_info, query


def _header_vars(headers: Iterable[tuple[str, str]]) -> tuple[str, dict[str, str]]:
    """``CONTENT_TYPE``, and the other headers as ``HTTP_*`` vars, repeated ones joined."""
    content_type = ""
    joined: dict[str, str] = {}
    for name, value in headers:
        if not _TOKEN.fullmatch(name.strip()):
            # 'X-Ü' went out as latin-1 beside its UTF-8 value, and 'X-ß' as HTTP_X_SS.
            raise ClientError(
                f"bad header name {name.strip()!r}: HTTP's are ASCII letters, digits and "
                "!#$%&'*+-.^_`|~"
            )
        key = name.strip().upper().replace("-", "_")
        if key == "CONTENT_TYPE":
            content_type = value
            continue
        if key == "CONTENT_LENGTH":
            continue  # always the real body length
        key = "HTTP_" + key
        if key in joined:
            joined[key] += ("; " if key == "HTTP_COOKIE" else ", ") + value
        else:
            joined[key] = value
    return content_type, joined


def _server(address: Address | None, joined: dict[str, str]) -> tuple[str, str]:
    """``SERVER_NAME`` and ``SERVER_PORT``: from the Host header, else the address connected
    to (``localhost:80`` for a unix socket); sets ``HTTP_HOST`` in ``joined`` if missing."""
    if address is not None and not address.is_unix:
        server_name, server_port = address.host, str(address.port)
    else:
        server_name, server_port = "localhost", "80"
    host = joined.setdefault("HTTP_HOST", server_name)
    if host.startswith("["):  # [v6]:port, as nginx's $server_name and $server_port take it
        inside, _, rest = host[1:].partition("]")
        hostname, port = f"[{inside}]", rest.removeprefix(":")
    else:
        hostname, _, port = host.rpartition(":") if host.count(":") == 1 else (host, "", "")
    if hostname:
        server_name = hostname
        server_port = port if port.isdigit() else server_port
    return server_name, server_port


def build_packet(
    address: Address,
    path: str,
    *,
    method: str,
    headers: Sequence[tuple[str, str]],
    body: bytes | None,
    modifier1: int,
    modifier2: int,
    extra: Sequence[tuple[str, str]],
) -> bytes:
    """The uwsgi packet for this request; :class:`ClientError` if it cannot be encoded."""
    pairs = build_vars(
        path, method=method, headers=headers, body=body, address=address, extra=extra
    )
    try:
        return uwsgiproto.build_request(pairs, body or b"", modifier1, modifier2)
    except uwsgiproto.EncodeError as exc:
        raise ClientError(f"cannot encode the request: {exc}") from None
