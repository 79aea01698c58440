"""A server run under ``python -W error`` (as a Django project's CI or a cautious deploy does)
writes no warning of its own: start, serve, stop. Real processes."""

from __future__ import annotations

import signal
import sys
from pathlib import Path
from typing import Any

from support.procs import Server, uwsgi_exchange, uwsgi_get, wait_until

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


def _serve_and_stop(tmp_path: Path, hups: int = 0, **options: Any) -> str:
    (tmp_path / "strictapp.py").write_text(APP)
    server = StrictServer(tmp_path / "run", "strictapp:app", pythonpath=[str(tmp_path)], **options)
    try:
        server.start()
        for generation in range(1, hups + 1):
            server.signal(signal.SIGHUP)
            wait_until(
                lambda g=generation: server.log().count("new workers ready") == g,  # type: ignore[misc]
                30,
                f"HUP {generation} to be done",
            )
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
    log = _serve_and_stop(tmp_path, hups=1, workers=2)
    assert "all workers stopped" in log
    assert "Warning" not in log and "Exception ignored" not in log, log


def test_log_master_reloads_and_stops_without_a_resource_warning(tmp_path: Path) -> None:
    # A HUP's trial import (a child of the master) opened a file object on each log target it
    # did not write to, and dropped it: "ResourceWarning: unclosed file" at every HUP.
    log = _serve_and_stop(tmp_path, hups=2, workers=2, log_master=True)
    assert "all workers stopped" in log
    assert "Warning" not in log and "Exception ignored" not in log, log
