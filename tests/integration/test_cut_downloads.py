"""A download cut short by its client: what the access log says was sent."""

from __future__ import annotations

import json
import socket
import time
from pathlib import Path

from support.procs import LogCursor, Server, uwsgi_get


def _read_then_leave(path: str, packet: bytes, at_least: int) -> int:
    """Ask for a response over the unix socket ``path``, read ``at_least`` bytes of it, then
    close without reading the rest (a browser's cancelled download); bytes read returned."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(packet)
        got = 0
        while got < at_least:
            chunk = sock.recv(65536)
            assert chunk, "the server closed before sending what the test reads"
            got += len(chunk)
        return got


def test_a_cut_sendfile_download_logs_the_bytes_that_went(tmp_path: Path) -> None:
    # wsgi.file_wrapper sent with sendfile (raw_app: no validator wrapping the response), the
    # client gone after 512 KiB of its 3 MiB: the access log said "bytes": 0 (the bytes
    # sendfile had written before the client left were not counted).
    access = tmp_path / "access.log"
    server = Server(
        tmp_path / "server", "nginx_app:raw_app", access_log="json", access_log_file=str(access)
    )
    server.start()
    try:
        cursor = LogCursor(access)
        received = _read_then_leave(server.socket, uwsgi_get("/file"), 512 * 1024)
        deadline = time.monotonic() + 10
        lines: list[str] = []
        while not lines and time.monotonic() < deadline:
            lines = cursor.new_lines()
            time.sleep(0.05)
    finally:
        server.stop()
    (line,) = lines
    record = json.loads(line)
    assert record["status"] == 200
    # At least what the client read, less the head (a few hundred bytes), and not all of it.
    assert received - 1024 <= record["bytes"] < 3 * 1024 * 1024, record
