"""uWSGI's ``log-format``: an access line made from a template of ``%(name)`` fields.

``--access-log '%(addr) - %(user) [%(ltime)] "%(method) %(uri) %(proto)" %(status) %(size)'``
(an ini's ``log-format = ...``) writes one line a request with each ``%(name)`` replaced by
what uWSGI puts there, and ``-`` for an empty value, as uWSGI does. The numbers uWSGI keeps
and this server does not (the packet's modifiers, write errors) are 0, what uWSGI's usually
are; names that have no meaning here (uWSGI's logvars, ``metric.*``) are ``-`` (start-up says
which: :func:`uwsgiapp.logfields.unsupported`). A template that
starts with ``{`` (a JSON line) has its values escaped for JSON, which uWSGI's are not (a
``"`` in a User-Agent broke the record there).

Interpreted even in the compiled build: only a template's access log runs it.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any, Final

from uwsgiapp.logfields import FIELD, ZEROED, is_json_template, is_request_var
from uwsgiapp.server.accesslog import (
    PID,
    SERVED,
    Clock,
    LineWriter,
    Pid,
    current_core,
    encode_line,
)
from uwsgiapp.server.exchange import Exchange
from uwsgiapp.server.inflight import worker_number
from uwsgiapp.server.logtext import as_sent
from uwsgiapp.wsgi.contract import AccessLogger
from uwsgiproto import count_vars

__all__ = ["template_access_log", "template_logger"]

#: What a field is given: the environ, the response, the request's seconds, its var block, and
#: when it started (epoch seconds).
Field = Callable[[dict[str, Any], Exchange, float, bytes, float], str]

#: The environ's text fields, by uWSGI's names.
_VARS: Final = {
    "method": "REQUEST_METHOD",
    "user": "REMOTE_USER",
    "addr": "REMOTE_ADDR",
    "host": "HTTP_HOST",
    "proto": "SERVER_PROTOCOL",
    "uagent": "HTTP_USER_AGENT",
    "referer": "HTTP_REFERER",
}

_LTIME: Final = Clock("%d/%b/%Y:%H:%M:%S %z")
_PAGE: Final = os.sysconf("SC_PAGE_SIZE")


def _var(name: str) -> Field:
    return lambda environ, response, seconds, block, start: str(environ.get(name) or "")


def _uri(environ: dict[str, Any], response: Exchange, seconds: float, *_: Any) -> str:
    return str(environ.get("REQUEST_URI") or environ.get("PATH_INFO") or "")


def _status(environ: dict[str, Any], response: Exchange, *_: Any) -> str:
    return (response.sent_status or "0")[:3]  # none sent: uWSGI's 0


def _memory(index: int, scale: int) -> Field:
    def read(*_: Any) -> str:
        with open("/proc/self/statm", "rb") as statm:  # vsz and rss, in pages
            pages = int(statm.read().split()[index])
        return str(pages * _PAGE // scale)

    return read


def _body_failed(environ: dict[str, Any], response: Exchange, *_: Any) -> str:
    # The server's stream, not wsgi.input: a middleware may have put its own in its place.
    body = response.body
    return "1" if body is not None and body.failure is not None else "0"


_FIELDS: Final[dict[str, Field]] = {
    "uri": _uri,
    "status": _status,
    "size": lambda environ, response, *_: str(response.sent),
    "hsize": lambda environ, response, *_: str(response.head_size),
    "rsize": lambda environ, response, *_: str(response.sent - response.head_size),
    "headers": lambda environ, r, *_: str(len(r.headers) if r.head_size else 0),
    "cl": lambda environ, *_: str(environ.get("CONTENT_LENGTH") or 0),
    "micros": lambda environ, response, seconds, *_: str(int(seconds * 1_000_000)),
    "msecs": lambda environ, response, seconds, *_: str(int(seconds * 1000)),
    "secs": lambda environ, response, seconds, *_: f"{seconds:f}",
    "time": lambda *args: str(int(args[4])),
    "tmsecs": lambda *args: str(int(args[4] * 1000)),
    "tmicros": lambda *args: str(int(args[4] * 1_000_000)),
    "epoch": lambda *_: str(int(time.time())),
    "ltime": lambda *args: _LTIME.at(int(args[4])),
    "ftime": lambda *args: _LTIME.at(int(args[4])),  # uWSGI's, without log-strftime
    "ctime": lambda *args: time.ctime(int(args[4])),
    "pid": lambda *_: PID.text,
    "wid": lambda *_: str(worker_number()),
    "core": lambda *_: str(current_core()),
    "switches": lambda *_: "1",
    "vars": lambda environ, response, seconds, block, start: str(count_vars(block) * 2),
    "pktsize": lambda environ, response, seconds, block, start: str(len(block)),
    "vsz": _memory(0, 1),
    "rss": _memory(1, 1),
    "vszM": _memory(0, 1 << 20),
    "rssM": _memory(1, 1 << 20),
    "rerr": _body_failed,
    "ioerr": _body_failed,  # (write errors are not counted: logfields.PARTLY)
    **{name: _var(key) for name, key in _VARS.items()},
}


def _nothing(*_: Any) -> str:
    return ""


def _zero(*_: Any) -> str:
    return "0"


def _field(name: str) -> Field:
    if is_request_var(name):
        return _var(name[4:])
    return _zero if name in ZEROED else _FIELDS.get(name, _nothing)


def _json_value(text: str) -> str:
    return json.dumps(as_sent(text))[1:-1]  # /café as the client wrote it, as 'json' does


def template_logger(template: str) -> Callable[[LineWriter, Pid], AccessLogger]:
    """A maker of :func:`template_access_log` for ``template``, as
    :data:`~uwsgiapp.server.accesslog.LOGGERS` has for the named formats."""
    return lambda writer, pid: template_access_log(template, writer)


def template_access_log(template: str, writer: LineWriter) -> AccessLogger:
    """The access logger of a uWSGI ``log-format`` ``template`` (see the module)."""
    pieces: list[str | Field] = []
    at = 0
    for match in FIELD.finditer(template):
        pieces += [template[at : match.start()], _field(match.group(1))]
        at = match.end()
    pieces.append(template[at:])
    escape = _json_value if is_json_template(template) else None

    def access_template(
        environ: dict[str, Any], response: Exchange, seconds: float, block: bytes
    ) -> None:
        SERVED.count += 1
        start = time.time() - seconds
        out = []
        for piece in pieces:
            if type(piece) is str:
                out.append(piece)
                continue
            value = piece(environ, response, seconds, block, start) or "-"  # type: ignore[operator]
            out.append(escape(value) if escape is not None else value)
        writer.write(encode_line("".join(out)))

    return access_template
