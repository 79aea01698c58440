"""A SIGUSR2 sent to a worker by hand asks what it is doing (uWSGI's workers log their request
on it): it was taken for the master's harakiri, logged as one, and the worker retired after its
request. The master marks its own in the worker's status slot before sending it."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import threading
from pathlib import Path

import pytest
from support.procs import Server, short_tmpdir, uwsgi_exchange, uwsgi_get, wait_until

from uwsgiapp.server.inflight import ASKED
from uwsgiapp.stats.reader import fetch, parse_source


def _get(server: Server, path: str, query: str = "") -> bytes:
    return uwsgi_exchange(server.socket, uwsgi_get(path, query), timeout=20).data


def _pid(server: Server) -> int:
    return int(json.loads(_get(server, "/sleep", "0").split(b"\r\n\r\n", 1)[1])["pid"])


@pytest.mark.parametrize("threads", [1, 2])
def test_a_usr2_by_hand_logs_what_the_worker_does_and_it_serves_on(
    tmp_path: Path, threads: int
) -> None:
    stats = os.path.join(short_tmpdir(), "stats.sock")
    server = Server(
        tmp_path / "s", "threads_app:app", workers=1, harakiri=30, threads=threads, stats=stats
    )
    server.start()
    try:
        pid = _pid(server)
        idle = "is in no request; serving on" if threads == 1 else "no request thread is busy"
        # Its request's end written (its thread may still be in it as the answer comes).
        wait_until(lambda: fetch(parse_source(stats))["workers"][0]["status"] == "idle", 10, "")
        os.kill(pid, signal.SIGUSR2)
        wait_until(lambda: f"{ASKED}: worker 1 (pid {pid})" in server.log(), 10, "the idle line")
        assert idle in server.log()
        answers: list[bytes] = []
        slow = threading.Thread(target=lambda: answers.append(_get(server, "/stuck", "6")))
        slow.start()
        busy = lambda: fetch(parse_source(stats))["workers"][0]["status"] != "idle"  # noqa: E731
        wait_until(busy, 10, "the worker in its request")
        # Its slot says busy a moment before the app is called (the request's vars are read
        # then): a USR2 in that moment finds no request yet, so it is sent again.
        for _ in range(5):
            os.kill(pid, signal.SIGUSR2)
            with contextlib.suppress(TimeoutError):
                wait_until(lambda: "GET /stuck" in server.log(), 1, "the busy line")
                break
        slow.join(20)
        log = server.log()
        busy_line = next(line for line in log.splitlines() if "GET /stuck" in line)
        assert ASKED in busy_line, log
        assert "stuck_here" in log  # its stack, the app's frame in it
        assert answers and answers[0].endswith(b"unstuck")  # not cut
        assert _pid(server) == pid  # the same worker serves on
        assert "HARAKIRI" not in log and "harakiri: " not in log
    finally:
        server.stop()
    # faulthandler's stacks of those USR2s, written to the worker's dump file before it could
    # tell them from a harakiri's, were logged at its exit as an ERROR: dropped now.
    assert "when it got its signal" not in server.log()


def test_a_usr2_by_hand_to_a_worker_still_starting_leaves_it_starting(tmp_path: Path) -> None:
    # Its handler comes once it serves: before, the signal's default action killed it (a
    # --lazy-apps import, a postfork function).
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "slowimport.py").write_text(
        "import os, pathlib, time\n"
        "pathlib.Path(os.environ['MARK']).write_text(str(os.getpid()))\n"
        "time.sleep(1.5)\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [str(os.getpid()).encode()]\n"
    )
    mark = tmp_path / "importing"
    options = {"lazy_apps": True, "pythonpath": [str(apps)], "env": [f"MARK={mark}"]}
    server = Server(tmp_path / "s", "slowimport:app", workers=1, **options)
    server.start(wait=False)
    try:
        wait_until(mark.exists, 15, "the worker's import")
        booting = int(mark.read_text())
        os.kill(booting, signal.SIGUSR2)
        assert _get(server, "/").endswith(str(booting).encode())  # it serves, once imported
        assert "exited" not in server.log() and "killed" not in server.log()
    finally:
        server.stop()
