"""The WSGI app the real-nginx tests talk to, wrapped in wsgiref's validator on every request."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from wsgiref.validate import validator

StartResponse = Callable[..., Any]
PLAIN = [("Content-Type", "text/plain")]
BIG_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "static_blob.bin")


def _echo(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    body = environ["wsgi.input"].read(int(environ.get("CONTENT_LENGTH") or 0))
    info = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "script_name": environ["SCRIPT_NAME"],
        "query": environ["QUERY_STRING"],
        "content_length": environ.get("CONTENT_LENGTH", ""),
        "content_type": environ.get("CONTENT_TYPE", ""),
        "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "scheme": environ["wsgi.url_scheme"],
        "remote_addr": environ.get("REMOTE_ADDR", ""),
        "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        "has_uwsgi_magic": any(k.startswith("UWSGI_") for k in environ),
    }
    out = json.dumps(info).encode()
    start_response("200 OK", [("Content-Type", "application/json")])
    return [out]


def _lines(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    stream = environ["wsgi.input"]
    first = stream.readline()
    limited = stream.readline(3)
    rest = list(stream)
    start_response("200 OK", PLAIN)
    return [json.dumps([first.decode(), limited.decode(), [r.decode() for r in rest]]).encode()]


def _stream(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    chunks = int(environ["QUERY_STRING"] or "10")
    start_response("200 OK", PLAIN)
    block = b"x" * 1023 + b"\n"
    for _ in range(chunks):
        yield block * 1024


def _progress(environ: dict[str, Any], start_response: StartResponse) -> Iterator[bytes]:
    # Reads its body while it streams its answer (a progress line per 64 KiB read): nginx sends
    # no more of the body once the answer has begun.
    stream = environ["wsgi.input"]
    start_response("200 OK", PLAIN)
    total = 0
    while chunk := stream.read(65536):
        total += len(chunk)
        yield b"%d\n" % total


def _write(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    write = start_response("200 OK", PLAIN)
    write(b"written-")
    return [b"returned"]


def _file(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    if not os.path.exists(BIG_FILE):
        with open(BIG_FILE + ".tmp", "wb") as f:
            f.write(bytes(range(256)) * 4096 * 3)
        os.replace(BIG_FILE + ".tmp", BIG_FILE)
    size = os.path.getsize(BIG_FILE)
    start_response(
        "200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]
    )
    return environ["wsgi.file_wrapper"](open(BIG_FILE, "rb"), 65536)


def _status(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    code = environ["PATH_INFO"].rsplit("/", 1)[1]
    reasons = {"204": "No Content", "304": "Not Modified", "401": "Unauthorized"}
    start_response(f"{code} {reasons.get(code, 'Whatever')}", [])
    return []


def _reject(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # Answers 401 without reading the (large) body: the server must drain, not reset.
    start_response("401 Unauthorized", PLAIN)
    return [b"no"]


def _boom(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    # Quotes the request, as app errors often do: the error log must keep it on its line.
    raise RuntimeError(f"boom from the app: {environ['PATH_INFO']}")


def _sleep(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    seconds = float(environ["QUERY_STRING"] or "0.2")
    time.sleep(seconds)
    start_response("200 OK", PLAIN)
    return [b"slept %s pid %d" % (str(seconds).encode(), os.getpid())]


def _hello(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", PLAIN)
    return [b"Hello World!"]


def _pid(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    start_response("200 OK", PLAIN)
    return [str(os.getpid()).encode()]


ROUTES: dict[str, Callable[[dict[str, Any], StartResponse], Iterable[bytes]]] = {
    "echo": _echo,
    "lines": _lines,
    "stream": _stream,
    "progress": _progress,
    "write": _write,
    "file": _file,
    "status": _status,
    "reject": _reject,
    "boom": _boom,
    "sleep": _sleep,
    "pid": _pid,
}


def _dispatch(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
    first = environ["PATH_INFO"].strip("/").split("/", 1)[0]
    return ROUTES.get(first, _hello)(environ, start_response)


app = validator(_dispatch)
raw_app = _dispatch
