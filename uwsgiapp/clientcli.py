"""The client commands, ``uwsgiapp request`` and ``uwsgiapp ping``: their arguments, and a
run of :mod:`uwsgiapp.client` with its errors turned into exit codes (:class:`ClientExit`).

:mod:`uwsgiapp.cli` declares them beside ``serve`` and ``dev`` (through
:mod:`uwsgiapp.lazycommands`: this module is imported only when one of them runs).
"""

from __future__ import annotations

import argparse
import base64
import os
import sys
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from uwsgiapp.exitcodes import ClientExit, help_text
from uwsgiapp.server.logtext import escape_log_text

if TYPE_CHECKING:
    from uwsgiapp.client import Address, Response

__all__ = ["add_ping_parser", "add_request_parser"]


def _fail(command: str, message: str, code: int) -> int:
    print(f"uwsgiapp {command}: error: {message}", file=sys.stderr)
    return code


def _add_socket_argument(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "socket",
        metavar="SOCKET",
        help="the uwsgi socket (not a URL): unix socket path, unix:PATH, @abstract, host:port"
        " or [v6]:port",
    )


# --- request ------------------------------------------------------------------------------


def add_request_parser(sub: argparse._SubParsersAction[Any], summary: str) -> None:
    """Declare ``uwsgiapp request`` on the command line's sub-command parser."""
    p = sub.add_parser(
        "request",
        help=summary,
        description=(
            "Send one request over the uwsgi protocol straight to a server socket (what nginx's "
            "uwsgi_pass would send) and print the response body (-i: with status and headers)."
        ),
        epilog=help_text(ClientExit, only="request"),
    )
    p.intermixed = True  # `request SOCKET -i PATH`, as curl takes its options anywhere
    _add_socket_argument(p)
    p.add_argument(
        "path",
        metavar="PATH",
        nargs="?",
        default="/",
        help="target, e.g. /a?b=1 (or a URL: its path, with its host as Host)",
    )
    p.add_argument(
        "-X", "--request", dest="method", metavar="METHOD", help="default GET (POST with -d)"
    )
    p.add_argument(
        "-H",
        "--header",
        dest="headers",
        metavar="'NAME: VALUE'",
        action="append",
        default=[],
        help="request header (repeatable); sent as HTTP_NAME, Content-Type as CONTENT_TYPE",
    )
    p.add_argument(
        "-d",
        "--data",
        "--data-binary",
        metavar="DATA",
        help="request body; @FILE reads a file, @- stdin; sent byte for byte, newlines kept "
        "(curl's --data-binary: curl's -d drops a file's newlines)",
    )
    p.add_argument(
        "--var",
        dest="vars",
        metavar="KEY=VALUE",
        action="append",
        default=[],
        help="set or override a raw uwsgi var (repeatable), e.g. --var HTTPS=on",
    )
    p.add_argument("--modifier1", type=int, default=0, metavar="N", help="default 0 (WSGI)")
    p.add_argument("--modifier2", type=int, default=0, metavar="N", help="default 0")
    _add_output_and_limits(p)
    p.set_defaults(handler=_cmd_request)


def _add_output_and_limits(p: argparse.ArgumentParser) -> None:
    """``request``'s options about the response: what is printed, how long and how much."""
    p.add_argument("-i", "--include", action="store_true", help="print the status line and headers")
    p.add_argument(
        "-f",
        "--fail",
        action="store_true",
        help="exit 1 for a status >= 400 too, not only >= 500 (curl -f's rule, for health checks)",
    )
    p.add_argument(
        "-m",
        "--max-time",
        "--timeout",
        dest="timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="overall deadline in seconds for connecting, sending and reading the whole response,"
        " however slowly the server sends it (default 10)",
    )
    p.add_argument(
        "--max-response-size",
        "--max-filesize",
        dest="max_size",
        default="64M",
        metavar="SIZE",
        help="give up on a response (status line, headers and body) larger than SIZE bytes;"
        " K, M, G suffixes (default 64M)",
    )


class _Usage(Exception):
    """A ``request`` argument that cannot be sent (exit :attr:`ClientExit.USAGE`)."""


@dataclass(frozen=True, slots=True)
class _Request:
    """What ``uwsgiapp request``'s arguments ask to send, checked."""

    method: str
    target: str
    headers: list[tuple[str, str]]
    body: bytes | None
    extra: list[tuple[str, str]]
    max_size: int


def _read_data(spec: str) -> bytes:
    if spec == "@-":
        return sys.stdin.buffer.read()
    if spec.startswith("@"):
        with open(spec[1:], "rb") as fh:
            return fh.read()
    return _typed(spec)


def _typed(text: str) -> bytes:
    """The bytes typed on the command line: what curl sends. Python decoded argv with the
    locale's encoding (LANG=C without its UTF-8 mode: non-ASCII bytes as surrogates, which a
    plain encode refused with a traceback; ISO-8859-1: é is one byte, not UTF-8's two)."""
    return os.fsencode(text)


def _parse_request(args: argparse.Namespace) -> _Request:
    """The request to send, from ``args`` (the socket already parsed); raises :class:`_Usage`
    for the first argument that is wrong."""
    from uwsgiapp import client

    if not 0 < args.timeout < float("inf"):
        raise _Usage(f"bad --max-time {args.timeout:g} (expected seconds > 0)")
    if args.modifier1 == 100:  # answered by a 4-byte pong, not an HTTP response
        raise _Usage(f"--modifier1 100 is a ping: use `uwsgiapp ping {args.socket}`")
    try:
        max_size = client.parse_size(args.max_size)
    except ValueError as exc:
        raise _Usage(f"--max-response-size: {exc}") from None
    headers: list[tuple[str, str]] = []
    for text in args.headers:
        name, colon, value = text.partition(":")
        if not colon or not name.strip():
            raise _Usage(f"bad header {text!r} (expected 'Name: value')")
        # Vars are latin-1 native strings of the bytes nginx received (PEP 3333).
        headers.append((name.strip(), _typed(value.strip()).decode("latin-1")))
    extra: list[tuple[str, str]] = []
    for text in args.vars:
        key, eq, value = text.partition("=")
        if not eq or not key:
            raise _Usage(f"bad var {text!r} (expected KEY=VALUE)")
        extra.append((key, _typed(value).decode("latin-1")))
    body: bytes | None = None
    if args.data is not None:
        try:
            body = _read_data(args.data)
        except OSError as exc:
            raise _Usage(f"cannot read {args.data[1:]!r}: {exc.strerror}") from None
        if not any(k.lower() == "content-type" for k, _ in headers):
            headers.append(("Content-Type", "application/x-www-form-urlencoded"))
    if not any(key == "CONTENT_LENGTH" for key, _ in extra):  # --var sets it as given
        _check_length(headers, body)
    target = _from_url(_typed(args.path).decode("utf-8", "surrogateescape"), headers, extra)
    method = args.method or ("POST" if body is not None else "GET")
    return _Request(method, target, headers, body, extra, max_size)


def _check_length(headers: list[tuple[str, str]], body: bytes | None) -> None:
    """A ``Content-Length`` header other than the body's length is refused: the var sent is
    always the body's (it was dropped without a word)."""
    sent = str(len(body)) if body is not None else ""
    for name, value in headers:
        if name.lower() == "content-length" and value.strip() not in (sent, sent or "0"):
            raise _Usage(
                f"-H 'Content-Length: {value}': the body's length is sent ({sent or 'none'}); "
                f"to send another, --var CONTENT_LENGTH={value}"
            )


def _from_url(path: str, headers: list[tuple[str, str]], extra: list[tuple[str, str]]) -> str:
    """The target of a URL given as PATH (curl's habit): ``http://host:port/a?b`` sends
    ``/a?b`` with ``Host: host:port`` (unless -H Host), ``https://`` with ``HTTPS=on`` and the
    scheme, as nginx would, its ``user:password@`` as Basic auth (curl's); a path is sent as
    typed. :class:`_Usage` for a URL that is none (another scheme, a bad port, a control
    character)."""
    scheme, sep, _ = path.partition("://")
    if not sep or "/" in scheme:
        return path
    if scheme.lower() not in ("http", "https"):
        raise _Usage(f"{scheme}:// URLs are not sent: give http://, https://, or a /path")
    if not path.isprintable():
        raise _Usage(f"bad URL {path!r}: a control character in it")
    try:
        url = urllib.parse.urlsplit(path)
        url.port  # noqa: B018 - urllib checks the port when asked: 0..65535
    except ValueError as exc:
        raise _Usage(f"bad URL {path!r}: {exc}") from None
    userinfo, _, host = url.netloc.rpartition("@")
    if userinfo and not any(name.lower() == "authorization" for name, _ in headers):
        token = base64.b64encode(urllib.parse.unquote(userinfo).encode()).decode("ascii")
        headers.append(("Authorization", f"Basic {token}"))
    if host and not any(name.lower() == "host" for name, _ in headers):
        headers.append(("Host", host))
        if ":" not in host.rpartition("]")[2]:  # no port: the scheme's, not the socket's
            extra[:0] = [("SERVER_PORT", "443" if url.scheme == "https" else "80")]
    if url.scheme == "https":
        extra[:0] = [("HTTPS", "on"), ("REQUEST_SCHEME", "https")]
    return (url.path or "/") + (f"?{url.query}" if url.query else "")


def _cmd_request(args: argparse.Namespace) -> int:
    from uwsgiapp import client

    try:
        address = client.parse_address(args.socket)
    except ValueError as exc:
        return _fail("request", str(exc), ClientExit.USAGE)
    try:
        spec = _parse_request(args)
    except _Usage as exc:
        return _fail("request", str(exc), ClientExit.USAGE)
    try:
        response = _send(address, spec, args)
    except client.ConnectError as exc:
        return _fail("request", str(exc), ClientExit.CONNECT)
    except client.ResponseTimeout as exc:
        return _fail("request", f"{exc}; --max-time allows longer", ClientExit.TIMEOUT)
    except client.ResponseTooLarge as exc:
        return _fail("request", f"{exc}; --max-response-size allows more", ClientExit.TOO_LARGE)
    except client.ResponseError as exc:
        return _fail("request", str(exc), ClientExit.BAD_RESPONSE)
    except client.ClientError as exc:
        return _fail("request", str(exc), ClientExit.USAGE)
    except BrokenPipeError:
        return _output_closed()
    except OSError as exc:  # only the output's: the client turns the socket's into ClientError
        message = f"cannot write the response: {exc.strerror or exc}"
        return _fail("request", message, ClientExit.WRITE_ERROR)
    if response.status >= (400 if args.fail else 500):
        print(
            f"uwsgiapp request: server answered {response.status} "
            f"{escape_log_text(response.reason)}",
            file=sys.stderr,
        )
        return ClientExit.SERVER_ERROR
    return ClientExit.OK


def _send(address: Address, spec: _Request, args: argparse.Namespace) -> Response:
    """Send the request and copy the response to stdout as it arrives; the response's head
    (the body went out)."""
    from uwsgiapp import client

    with client.stream_request(
        address,
        # The client encodes a path's text as UTF-8, surrogates as their bytes: the typed ones.
        spec.target,
        method=spec.method,
        headers=spec.headers,
        body=spec.body,
        modifier1=args.modifier1,
        modifier2=args.modifier2,
        extra=spec.extra,
        timeout=args.timeout,
        max_size=spec.max_size,
    ) as stream:
        response = stream.response
        _copy_out(stream, response.head if args.include else b"")
    if stream.excess:
        print(
            f"uwsgiapp request: warning: {stream.excess} bytes came after the body's "
            "Content-Length: not written (nginx drops them too)",
            file=sys.stderr,
        )
    return response


def _copy_out(chunks: Iterable[bytes], head: bytes) -> None:
    """Write ``head``, then each chunk of the body as it arrives (not the whole at the end)."""
    out = sys.stdout.buffer
    if head:
        out.write(head)
        out.flush()
    for chunk in chunks:
        out.write(chunk)
        out.flush()


def _output_closed() -> int:
    """Our reader stopped reading (``uwsgiapp request ... | head``): end quietly, as curl -s."""
    # Python flushes stdout once more at exit and would print a second BrokenPipeError.
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)
    return ClientExit.WRITE_ERROR


# --- ping ---------------------------------------------------------------------------------


def add_ping_parser(sub: argparse._SubParsersAction[Any], summary: str) -> None:
    """Declare ``uwsgiapp ping`` on the command line's sub-command parser."""
    p = sub.add_parser(
        "ping",
        help=summary,
        description=(
            "Send a uwsgi ping (modifier1 100) and wait for the pong (64 00 00 01): a health "
            "check for Docker and load balancers."
        ),
        epilog=help_text(ClientExit, only="ping"),
    )
    _add_socket_argument(p)
    p.add_argument(
        "--timeout",
        type=float,
        default=3.0,
        metavar="S",
        help="overall deadline in seconds, connect included (default 3)",
    )
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing on success")
    p.set_defaults(handler=_cmd_ping)


def _cmd_ping(args: argparse.Namespace) -> int:
    from uwsgiapp import client

    try:
        address = client.parse_address(args.socket)
    except ValueError as exc:
        return _fail("ping", str(exc), ClientExit.USAGE)
    if not 0 < args.timeout < float("inf"):
        message = f"bad --timeout {args.timeout:g} (expected seconds > 0)"
        return _fail("ping", message, ClientExit.USAGE)
    try:
        result = client.ping(address, timeout=args.timeout)
    except client.ConnectError as exc:
        return _fail("ping", str(exc), ClientExit.CONNECT)
    except client.ClientError as exc:
        return _fail("ping", str(exc), ClientExit.BAD_RESPONSE)
    if not args.quiet:
        print(f"pong from {address} in {result.seconds * 1000:.1f} ms")
    return ClientExit.OK
