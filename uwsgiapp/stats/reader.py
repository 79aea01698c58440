"""Reading one stats document from a stats server, ours or uWSGI's: the client that
``uwsgiapp top`` and the container health check share.

An address is a unix socket path (or ``unix:PATH``, ``@abstract``), ``host:port`` /
``[v6]:port``, or an ``http://`` URL for a stats server in HTTP mode (``--stats-http``); a unix
socket in HTTP mode has no URL: :func:`stats_source`'s ``http`` says so.
"""

from __future__ import annotations

import dataclasses
import json
import socket
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_CONNECT = 3
EXIT_BAD_RESPONSE = 4

#: A stats document larger than this is refused (uWSGI's are a few KB per worker).
MAX_DOCUMENT = 64 * 1024 * 1024


class FetchError(Exception):
    """The stats could not be read; ``code`` is the exit status it calls for."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True, kw_only=True)
class Source:
    """Where the stats are: a unix socket ``path``, or ``host``/``port`` (``http``: an URL)."""

    text: str
    path: str = ""
    host: str = ""
    port: int = 0
    http_path: str = ""

    @property
    def http(self) -> bool:
        """The server wraps the document in an HTTP response (``--stats-http``)."""
        return bool(self.http_path)


def _host_port(text: str, whole: str) -> tuple[str, int]:
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
        if not sep:
            raise ValueError(f"bad address {whole!r} (expected [v6]:port)")
    else:
        host, _, port = text.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"bad port in {whole!r}")
    return host or "127.0.0.1", int(port)


def parse_source(text: str) -> Source:
    """Parse a stats address; ValueError names what is wrong."""
    text = text.strip()
    if not text:
        raise ValueError("empty stats address")
    if text.startswith("http://"):
        rest = text[7:]
        hostport, slash, path = rest.partition("/")
        if ":" not in hostport.rpartition("]")[2]:
            hostport += ":80"
        host, port = _host_port(hostport, text)
        return Source(text=text, host=host, port=port, http_path=slash + path or "/")
    if "://" in text:
        raise ValueError(f"unsupported scheme in {text!r} (use http://, a path or host:port)")
    if text.startswith("unix:"):
        return Source(text=text, path=text[5:])
    if text.startswith("@"):
        return Source(text=text, path="\0" + text[1:])
    if "/" in text or ":" not in text:
        return Source(text=text, path=text)
    host, port = _host_port(text, text)
    return Source(text=text, host=host, port=port)


def _read_until_close(sock: socket.socket, deadline: float, hint: str = "") -> bytes:
    chunks: list[bytes] = []
    size = 0
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FetchError("timed out reading the stats" + hint, EXIT_BAD_RESPONSE)
        sock.settimeout(left)
        try:
            data = sock.recv(65536)
        except TimeoutError:
            raise FetchError("timed out reading the stats" + hint, EXIT_BAD_RESPONSE) from None
        except OSError as exc:
            raise FetchError(f"reading the stats failed: {exc}", EXIT_BAD_RESPONSE) from None
        if not data:
            return b"".join(chunks)
        size += len(data)
        if size > MAX_DOCUMENT:
            raise FetchError("stats document too large", EXIT_BAD_RESPONSE)
        chunks.append(data)


def _connect(source: Source, timeout: float) -> socket.socket:
    try:
        if source.path:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            sock.settimeout(timeout)
            try:
                sock.connect(source.path)
            except BaseException:
                sock.close()
                raise
            return sock
        try:
            return socket.create_connection((source.host, source.port), timeout=timeout)
        except OSError:
            if source.host != "::":
                raise
            # `--stats [::]:9191` where the loopback has no IPv6 (Docker's default): the
            # wildcard's connect found no ::1, but the dual-stack listener takes IPv4 too.
            return socket.create_connection(("127.0.0.1", source.port), timeout=timeout)
    except OSError as exc:
        raise FetchError(f"cannot connect to {source.text}: {exc}", EXIT_CONNECT) from None


def _silence_hint(source: Source, hint: str) -> str:
    """What a stats read that got nothing may have reached instead: a stats server in HTTP
    mode (``hint``), or the server's uwsgi socket, which waits for a request too."""
    if source.http:
        return hint
    also = "; or this is a uwsgi socket" if hint else " (is this a uwsgi socket? then"
    return (
        f"{hint[:-1] if hint else ''}{also}: give --stats's address "
        f"(`uwsgiapp ping {source.text}` answers on a uwsgi socket))"
    )


def fetch(source: Source, timeout: float = 3.0) -> dict[str, Any]:
    """Read one stats document (one connection, as uWSGI serves it)."""
    deadline = time.monotonic() + timeout
    # A stats server in HTTP mode waits for a request that a plain read never sends.
    if source.http:
        hint = ""
    elif source.host:
        hint = f" (with --stats-http, give http://{source.text}/)"
    else:
        hint = " (with --stats-http, add --http)"
    with _connect(source, timeout) as sock:
        if source.http:
            request = f"GET {source.http_path} HTTP/1.0\r\nHost: {source.host}\r\n\r\n"
            try:
                sock.sendall(request.encode("latin-1"))
            except OSError as exc:
                raise FetchError(f"sending the request failed: {exc}", EXIT_BAD_RESPONSE) from None
        raw = _read_until_close(sock, deadline, _silence_hint(source, hint))
    if source.http:
        head, sep, raw = raw.partition(b"\r\n\r\n")
        status = head.split(b"\r\n", 1)[0].split(b" ", 2)
        if not sep or len(status) < 2 or status[1] != b"200":
            line = head.split(b"\r\n", 1)[0][:80].decode("latin-1")
            hint = (
                ""
                if not head.lstrip().startswith(b"{")
                else (
                    ": this stats server answers JSON without HTTP (no --stats-http): drop --http"
                )
            )
            raise FetchError(f"not an HTTP 200 answer: {line!r}{hint}", EXIT_BAD_RESPONSE)
    try:
        doc = json.loads(raw)
    except (ValueError, UnicodeDecodeError):
        raise FetchError(
            "the answer is not a JSON stats document" + hint, EXIT_BAD_RESPONSE
        ) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("workers", []), list):
        raise FetchError("the answer is not a stats document", EXIT_BAD_RESPONSE)
    return doc


#: uwsgiapp.config.configload.TRUE_WORDS and FALSE_WORDS (a test keeps them equal): importing
#: the config would double the check's cost.
_TRUE = frozenset({"1", "true", "yes", "on", "y", "t"})
_FALSE = frozenset({"0", "false", "no", "off", "n", "f"})
#: The stats server's other pages: the document is at /, where a probe's URL is pointed.
_PAGES = ("/health", "/metrics")


def _setting(environ: Mapping[str, str], name: str) -> tuple[str, str]:
    """(variable, value) of ``$UWSGIAPP_<name>``, else of the image's default
    ``$UWSGIAPP_DEFAULT_<name>``, as ``serve`` reads them (set but empty, the first turns the
    default off, as it does the server's); ("", "") when neither is set."""
    for variable in (f"UWSGIAPP_{name}", f"UWSGIAPP_DEFAULT_{name}"):
        if variable in environ:
            return variable, environ[variable].strip()
    return "", ""


def stats_source(address: str, environ: Mapping[str, str], http: bool = False) -> Source:
    """Where to ask: ``address`` or else ``$UWSGIAPP_STATS`` (or its image default), over HTTP
    when ``http`` or ``$UWSGIAPP_STATS_HTTP`` says so; a URL of the stats server's /health or
    /metrics asks its document (ValueError: none given, not an address, not a boolean)."""
    address = address or _setting(environ, "STATS")[1]
    if not address:
        raise ValueError("no ADDR given and UWSGIAPP_STATS is not set")
    source = parse_source(address)
    variable, word = _setting(environ, "STATS_HTTP")
    if word and word.lower() not in _TRUE | _FALSE:
        raise ValueError(f"{variable}: expected a boolean, got {word!r}")
    http = http or word.lower() in _TRUE
    if source.http_path in _PAGES or (http and not source.http):
        source = dataclasses.replace(source, http_path="/")
    return source
