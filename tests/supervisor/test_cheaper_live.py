"""--cheaper for real: ``uwsgiapp serve --workers 4 --cheaper 1`` on a unix socket under a
bounded burst of slow requests (6 clients, each request 0.4 s, at most 20 s): the worker
processes rise, then fall back to one once the burst is over, with each algorithm."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from config.test_cheaper_options import BLOOMBERG
from support.procs import (
    Server,
    short_tmpdir,
    uwsgi_exchange,
    uwsgi_get,
    wait_until,
    worker_pids,
)

#: The longest a burst lasts, whatever the test waits for meanwhile.
BURST_MOST = 20.0


@contextmanager
def _burst(socket_path: str, clients: int = 6) -> Iterator[list[bytes]]:
    """``clients`` threads asking for /sleep?0.4 until the block ends (or BURST_MOST)."""
    stop = threading.Event()
    deadline = time.monotonic() + BURST_MOST
    answers: list[bytes] = []

    def loop() -> None:
        while not stop.is_set() and time.monotonic() < deadline:
            got = uwsgi_exchange(socket_path, uwsgi_get("/sleep", "0.4"), timeout=20)
            answers.append(got.data.split(b"\r\n", 1)[0])

    threads = [threading.Thread(target=loop) for _ in range(clients)]
    for t in threads:
        t.start()
    try:
        yield answers
    finally:
        stop.set()
        for t in threads:
            t.join(30)


def _count(server: Server) -> int:
    return len(worker_pids(server.pid))


@pytest.mark.parametrize(
    ("algo", "more"),
    [
        ("spare", {}),
        ("backlog", {}),
        # stops after 1 s x 1 of low busyness (30 s by default)
        ("busyness", {"cheaper_busyness_multiplier": 1}),
    ],
)
def test_workers_rise_under_a_burst_and_fall_back_after(
    tmp_path: Path, algo: str, more: dict[str, object]
) -> None:
    server = Server(
        tmp_path,
        "supervisor_app:app",
        workers=4,
        cheaper=1,
        cheaper_algo=algo,
        cheaper_overload=1,
        **more,
    ).start()
    try:
        wait_until(lambda: _count(server) == 1, 5, "one worker at start")
        with _burst(server.socket) as answers:
            wait_until(lambda: _count(server) >= 3, 12, f"{algo}: more workers under load")
            if algo == "spare":  # a reload under load starts the busy workers + step
                wait_until(lambda: _count(server) == 4, 8, "4 workers")
                before = worker_pids(server.pid)
                server.signal(signal.SIGHUP)
                wait_until(
                    lambda: len(now := worker_pids(server.pid)) == 4 and not now & before,
                    15,
                    "4 new workers after HUP",
                )
        assert answers and set(answers) == {b"HTTP/1.1 200 OK"}, set(answers)
        wait_until(lambda: _count(server) == 1, 15, f"{algo}: back to --cheaper 1")
        log = server.log()
        assert f"cheaper {algo}: 1..4 workers, 1 at start" in log
        assert f"cheaper ({algo}): " in log and "stopping worker" in log
        assert "Traceback" not in log, log
    finally:
        server.stop()


def _stats(path: str) -> dict[str, Any]:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(5)
        s.connect(path)
        data = b"".join(iter(lambda: s.recv(65536), b""))
    return dict(json.loads(data))


def test_bloombergs_ini_starts_16_of_128_and_adds_a_step_of_16(tmp_path: Path) -> None:
    ini = tmp_path / "uwsgi.ini"
    ini.write_text(BLOOMBERG.replace("module = hello:app", "module = supervisor_app:app"))
    stats = os.path.join(short_tmpdir(), "stats.sock")
    server = Server(tmp_path, "", ini=str(ini), stats=stats).start(timeout=30)
    try:
        wait_until(lambda: _count(server) == 16, 10, "cheaper-initial's 16 workers")
        doc = _stats(stats)
        assert len(doc["workers"]) == 128
        assert sum(w["status"] == "cheap" and w["pid"] == 0 for w in doc["workers"]) == 112
        with _burst(server.socket, clients=24):  # every worker busy: 100% > 70% over 1 s
            wait_until(lambda: _count(server) == 32, 10, "cheaper-step's 16 more")
        log = server.log()
        assert "cheaper busyness: 8..128 workers, 16 at start, step 16, every 1 s" in log
        assert "'cheaper" not in log  # no warning about a cheaper key
        assert "Traceback" not in log, log
    finally:
        server.stop()
