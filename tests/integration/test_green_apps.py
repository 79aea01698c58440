"""Apps that monkey-patch the standard library at import (gevent's ``monkey.patch_all()``,
eventlet's ``monkey_patch()``: Flask-SocketIO apps and many older ones), served as gunicorn's
sync worker and uWSGI serve them: one request at a time per worker, a graceful TERM. A real
server behind a real nginx; the app is imported in the master (the default) and, patched, the
master's own loop runs in the patched process."""

from __future__ import annotations

import concurrent.futures
import subprocess
from pathlib import Path

import pytest
from support.procs import Server, stack

pytestmark = pytest.mark.nginx

PATCHES = {
    "gevent": "from gevent import monkey\nmonkey.patch_all()\n",
    "eventlet": "import eventlet\neventlet.monkey_patch()\n",
}

APP = """
import os
import time


def app(environ, start_response):
    if environ["PATH_INFO"] == "/sleep":
        time.sleep(1)  # the library's sleep, which waits in its hub
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def _write_app(tmp_path: Path, library: str) -> None:
    pytest.importorskip(library)
    (tmp_path / "green.py").write_text(PATCHES[library] + APP)


@pytest.mark.parametrize("library", sorted(PATCHES))
def test_a_monkey_patched_app_serves_and_stops_gracefully(
    tmp_path: Path, nginx_available: None, library: str
) -> None:
    # gevent and eventlet delete select.epoll: every worker crashed at start, for ever; and
    # eventlet's os.read waited on the master's empty wake-up pipe: a TERM was never acted on.
    _write_app(tmp_path, library)
    with stack(tmp_path, "green:app", pythonpath=[str(tmp_path)], workers=1) as (server, nginx):
        status, _, pid = nginx.request("GET", "/", timeout=20)
        assert status == 200, server.log()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            slow = pool.submit(nginx.request, "GET", "/sleep", timeout=30)
            nginx.request("GET", "/", timeout=20)  # the slow one is in the worker (one at a time)
            server.signal(15)
            status, _, slow_pid = slow.result(30)
        assert (status, slow_pid) == (200, pid)  # the request in flight finished
        try:
            assert server.wait(30) == 0
        except subprocess.TimeoutExpired:
            raise AssertionError(f"TERM did not stop the server:\n{server.log()}") from None
    log = server.log()
    assert "Traceback" not in log
    # eventlet's threading stands for the main thread with an object of its own: it was named
    # as a thread the import started.
    assert "thread in the master" not in log


@pytest.mark.parametrize("library", sorted(PATCHES))
def test_threads_of_a_monkey_patched_app_are_refused_with_the_reason(
    tmp_path: Path, nginx_available: None, library: str
) -> None:
    # Its request threads became green threads blocked in the server's real epoll: the first
    # request that waited hung the worker, and its stop with it.
    _write_app(tmp_path, library)
    server = Server(tmp_path / "server", "green:app", pythonpath=[str(tmp_path)], threads=2)
    server.start(wait=False)
    try:
        code = server.wait(30)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        server.stop()
    log = server.log()
    assert code == 4, log
    assert "monkey-patched the standard library's threads" in log
    assert "serve it with --threads 1" in log
