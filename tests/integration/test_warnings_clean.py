"""A server run under ``python -W error`` (as a Django project's CI or a cautious deploy does)
writes no warning of its own: start, serve, stop. Real processes."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from support.procs import Server, uwsgi_exchange, uwsgi_get

APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


class StrictServer(Server):
    """``python -W error -X dev -m uwsgiapp serve ...``."""

    def command(self) -> list[str]:
        argv = super().command()
        assert argv[0] == sys.executable
        return [argv[0], "-W", "error", "-X", "dev", *argv[1:]]


def _serve_and_stop(tmp_path: Path, **options: Any) -> str:
    (tmp_path / "strictapp.py").write_text(APP)
    server = StrictServer(tmp_path / "run", "strictapp:app", pythonpath=[str(tmp_path)], **options)
    try:
        server.start()
        for _ in range(3):
            reply = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
            assert reply.endswith(b"\r\n\r\nok")
        assert server.stop() == 0
    finally:
        server.stop()
    return server.log()


def test_a_unix_socket_server_stops_without_a_resource_warning(tmp_path: Path) -> None:
    # The master's netlink socket (the unix listener's queue length) was never closed: every
    # stop ended with "Exception ignored ... ResourceWarning: unclosed <socket ...>".
    log = _serve_and_stop(tmp_path, workers=2)
    assert "all workers stopped" in log
    assert "Warning" not in log and "Exception ignored" not in log, log
