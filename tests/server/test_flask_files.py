"""Flask's send_file through the server: a Range request seeks the file (wsgi.file_wrapper is
seekable) instead of reading and dropping every byte before the range (the last kilobyte of a
200 MB file took 8 times uWSGI's time)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

from flask import Flask, Response, request, send_file
from handler_kit import make_handler, packet, run
from werkzeug.wsgi import wrap_file

SIZE = 3_000_000


class Counting(io.FileIO):
    """A file that counts the bytes read from it."""

    bytes_read = 0

    def read(self, size: int = -1) -> bytes:
        data = super().read(size)
        Counting.bytes_read += len(data or b"")
        return data or b""


def file_app(path: Path) -> Flask:
    app = Flask(__name__)

    @app.get("/file")
    def file() -> Any:
        # What send_file does for a path, with a file that counts its reads.
        size = path.stat().st_size
        body = wrap_file(request.environ, Counting(path))
        response = Response(body, mimetype="application/octet-stream", direct_passthrough=True)
        response.content_length = size
        return response.make_conditional(request.environ, accept_ranges=True, complete_length=size)

    @app.get("/send_file")
    def whole() -> Any:
        return send_file(path, conditional=True)

    return app


def test_a_range_reads_only_the_range(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * (SIZE // 256)
    path.write_bytes(data)
    Counting.bytes_read = 0
    out = run(make_handler(file_app(path)), packet("GET", "/file", HTTP_RANGE="bytes=-1000"))
    assert out.status == 206
    assert out.header("Content-Range") == f"bytes {len(data) - 1000}-{len(data) - 1}/{len(data)}"
    assert out.body == data[-1000:]
    assert Counting.bytes_read < 100_000  # one block at most: the file was seeked, not read


def test_a_range_in_the_middle_and_the_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "big.bin"
    data = bytes(range(256)) * (SIZE // 256)
    path.write_bytes(data)
    out = run(
        make_handler(file_app(path)), packet("GET", "/file", HTTP_RANGE="bytes=100000-300001")
    )
    assert (out.status, out.body) == (206, data[100_000:300_002])
    whole = run(make_handler(file_app(path)), packet("GET", "/file"))
    assert (whole.status, whole.body) == (200, data)
    out = run(make_handler(file_app(path)), packet("GET", "/send_file", HTTP_RANGE="bytes=5-9"))
    assert (out.status, out.body) == (206, data[5:10])
