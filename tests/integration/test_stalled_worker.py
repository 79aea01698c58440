"""A worker whose loop stopped while it is in no request (a thread of the app's holding the GIL
in C code, a SIGSTOP): harakiri times requests only, so nothing replaced it; connections queued
in its listen backlog and the health check said healthy. Its loop's beat in its status slot now
tells the master, which kills it past --harakiri (gunicorn's --timeout does the same)."""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest
from support.procs import Server, short_tmpdir, uwsgi_exchange, uwsgi_get, wait_until

from uwsgiapp.stats.reader import fetch, parse_source


def _pid(server: Server) -> int:
    answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=15).data
    return int(answer.rsplit(b"pid ", 1)[1].split()[0])


@pytest.mark.parametrize("threads", [1, 2])
def test_a_stopped_idle_worker_is_replaced_past_harakiri(tmp_path: Path, threads: int) -> None:
    stats = os.path.join(short_tmpdir(), "stats.sock")
    server = Server(
        tmp_path / "s", "supervisor_app:app", workers=1, harakiri=1, threads=threads, stats=stats
    )
    server.start()
    try:
        stopped = _pid(server)
        # Idle first (its slot no longer in that request): stopped in it, it would be the
        # request harakiri's, "stuck in one request".
        wait_until(lambda: fetch(parse_source(stats))["workers"][0]["status"] == "idle", 10, "idle")
        os.kill(stopped, signal.SIGSTOP)  # its loop runs no more; it holds no request
        wait_until(
            lambda: f"(pid {stopped}) in no request, its loop not run for" in server.log(),
            15,
            "the stalled worker's harakiri",
        )
        assert _pid(server) != stopped  # the request queued meanwhile is the new worker's
        wait_until(lambda: f"(pid {stopped}) killed by signal 9" in server.log(), 10, "its kill")
    finally:
        server.stop()
