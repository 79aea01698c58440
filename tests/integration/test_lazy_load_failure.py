"""--lazy-apps: a replacement worker that cannot import the code now on disk (a deploy half
written, a broken file) leaves the workers that loaded the old code serving; the master tries
again later and, once the code imports, is back to every worker. Real processes, real signals.
"""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

from support.procs import Server, uwsgi_exchange, wait_for_serving, wait_until

import uwsgiproto

APP = """
import os, time

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.3)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"{version} %d" % os.getpid()]
"""


def get(path: str = "/") -> bytes:
    return uwsgiproto.build_request(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": "",
            "SERVER_NAME": "t",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
    )


def answering(server: Server) -> set[bytes]:
    """Who answers two slow requests sent together (each worker, once both serve)."""
    answers: list[bytes] = []
    threads = [
        threading.Thread(
            target=lambda: answers.append(
                uwsgi_exchange(server.socket, get("/slow"), timeout=10).data
            )
        )
        for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    return {a.rpartition(b"\r\n\r\n")[2] for a in answers}


def test_a_replacement_that_cannot_load_the_app_leaves_the_others_serving(
    tmp_path: Path,
) -> None:
    appdir = tmp_path / "app"
    appdir.mkdir()
    module = appdir / "lazyapp.py"
    module.write_text(APP.format(version="v1"))
    server = Server(
        tmp_path, "lazyapp:app", workers=2, lazy_apps=True, pythonpath=[str(appdir)]
    ).start()
    try:
        first = wait_for_serving(server, 2)
        both = {b"v1 %d" % pid for pid in first}
        wait_until(lambda: answering(server) == both, 15, "both workers answering")
        module.write_text("raise RuntimeError('half a deploy')\n")
        victim, survivor = sorted(first)
        os.kill(victim, signal.SIGKILL)  # a crash, a harakiri, a recycle: a replacement imports
        wait_until(lambda: "trying again in 1 s" in server.log(), 10, "the failed replacement")
        answer = uwsgi_exchange(server.socket, get(), timeout=10).data
        assert answer.startswith(b"HTTP/1.1 200 OK") and answer.endswith(b"v1 %d" % survivor)
        assert server.proc is not None and server.proc.poll() is None
        module.write_text(APP.format(version="v2"))  # the deploy completes
        # The next try imports it (a worker past its start-up has loaded the app).
        pids = wait_for_serving(server, 2, timeout=15)
    finally:
        server.stop()
    log = server.log()
    assert survivor in pids and victim not in pids, log[-2000:]
    assert "could not load the app; 1 worker serves on" in log
    assert "stopping (no fork loop)" not in log
