"""A stats client (HTTP, silent for a while) connected while a ``HUP`` re-imports the app is
the master's own connection, not one the app's code left open: it was warned of as such ("the
re-import left 1 connection open in the master (to 127.0.0.1:47686)... Django: close_all()"),
the scraper's own port."""

from __future__ import annotations

import signal
import socket
from pathlib import Path

from support.procs import Server, free_port, wait_until

SLOW_APP = """
import time

time.sleep(1.5)  # the re-import takes a while: the stats are served meanwhile


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
"""


def test_a_stats_client_during_a_reimport_is_not_the_apps_connection(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "slowimport.py").write_text(SLOW_APP)
    port = free_port()
    server = Server(
        tmp_path, "slowimport:app", workers=1, pythonpath=[str(apps)],
        stats=f"127.0.0.1:{port}", stats_http=True, reload_check_timeout=0,
    )  # fmt: skip
    server.start(timeout=20)
    try:
        wait_until(lambda: "worker 1 (pid" in server.log(), 15, "the worker")
        server.signal(signal.SIGHUP)
        wait_until(lambda: "re-importing the app in the master" in server.log(), 10, "the import")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            wait_until(lambda: "reload: app re-imported" in server.log(), 15, "the re-import")
            client.sendall(b"GET / HTTP/1.0\r\n\r\n")  # silent until then: held open
            assert client.recv(65536).startswith(b"HTTP/1.")
    finally:
        server.stop()
    assert "left 1 connection open" not in server.log(), server.log()
