"""The prefork supervisor with real forks, real signals and a real nginx in front."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from support.load import Load
from support.procs import Server, stack, wait_until

import protocol

pytestmark = pytest.mark.nginx


def children(pid: int) -> set[int]:
    """Worker pids of the master (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def test_kill_9_worker_loses_only_in_flight_and_is_replaced(
    tmp_path: Path, nginx_available: None
) -> None:
    with stack(tmp_path, "nginx_app:app", workers=2) as (server, nginx):
        wait_until(lambda: len(children(server.pid)) == 2, 10, "2 workers")
        with Load(nginx.port, lambda n: "/sleep?0.05" if n % 5 == 0 else "/", clients=4) as load:
            load.wait_for(300, 20)
            victim = min(children(server.pid))
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            wait_until(lambda: len(children(server.pid) - {victim}) == 2, 5, "a replacement worker")
            assert time.monotonic() - killed_at < 1.0
            load.wait_for(load.result.total + 300, 20)
        result = load.result
    assert result.ok > 500
    # Only the killed worker's in-flight request may fail.
    assert len(result.failures) <= 1, result.failures
    assert "killed by signal 9 (SIGKILL)" in server.log()


SLOW_APP = """
import os, time
time.sleep(2)  # a slow import: new workers must not take traffic before it is done
VERSION = {version!r}

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.2)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
"""


def test_ten_hup_reloads_under_load_drop_nothing_and_load_new_code(
    tmp_path: Path, nginx_available: None
) -> None:
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "slowapp.py").write_text(SLOW_APP.format(version="v1"))
    with stack(tmp_path, "slowapp:app", workers=2, lazy_apps=True, pythonpath=[str(appdir)]) as (
        server,
        nginx,
    ):
        wait_until(lambda: nginx.request("GET", "/")[2] == b"v1", 20, "v1 answering")
        with Load(nginx.port, lambda n: "/slow" if n % 40 == 0 else "/", clients=8) as load:
            for i in range(10):
                if i == 9:
                    (appdir / "slowapp.py").write_text(SLOW_APP.format(version="v2"))
                server.signal(signal.SIGHUP)
                time.sleep(2.6)
            wait_until(lambda: nginx.request("GET", "/")[2] == b"v2", 20, "v2 answering")
            load.wait_for(20_000, 60)
        result = load.result
        errors = nginx.upstream_errors()
    assert result.failures == [], result.failures[:10]
    assert result.ok >= 20_000
    assert errors == []
    assert server.log().count("SIGHUP: graceful reload") == 10


def test_term_completes_every_queued_request_and_exits_zero(
    tmp_path: Path, nginx_available: None
) -> None:
    server = Server(tmp_path, "nginx_app:app", workers=2).start()
    try:
        wait_until(lambda: len(children(server.pid)) == 2, 10, "2 workers")
        packet = protocol.build_request(
            {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": "/sleep",
                "QUERY_STRING": "0.2",
                "SERVER_NAME": "t",
                "SERVER_PORT": "80",
                "SERVER_PROTOCOL": "HTTP/1.1",
            }
        )
        clients = []
        for _ in range(12):  # 6x more than workers: most wait in the listen backlog
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(30)
            s.connect(server.socket)
            s.sendall(packet)
            clients.append(s)
        time.sleep(0.05)
        server.signal(signal.SIGTERM)
        answers = []
        for s in clients:
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except OSError as exc:
                data = f"error {exc}".encode()
            s.close()
            answers.append(data.split(b"\r\n", 1)[0])
        code = server.wait(30)
    finally:
        server.stop()
    assert answers == [b"HTTP/1.1 200 OK"] * 12
    assert code == 0
    assert not os.path.exists(server.socket)


def test_harakiri_dumps_the_stuck_stack_and_replaces_the_worker(
    tmp_path: Path, nginx_available: None
) -> None:
    with stack(tmp_path, "nginx_app:app", workers=1, harakiri=1) as (server, nginx):
        started = time.monotonic()
        status, _, _ = nginx.request("GET", "/sleep?30")
        assert status == 502
        assert time.monotonic() - started < 10
        wait_until(lambda: nginx.request("GET", "/")[0] == 200, 10, "the next request")
        log = server.log()
    assert "HARAKIRI" in log
    assert "GET /sleep?30" in log
    assert "time.sleep(seconds)" in log  # the sleeping line, from the Python stack
    assert "in _sleep" in log


@pytest.mark.parametrize("lazy", [False, True])
def test_app_import_error_exits_quickly_without_fork_loop(tmp_path: Path, lazy: bool) -> None:
    (tmp_path / "brokenapp.py").write_text("import no_such_module_here\napp = None\n")
    server = Server(
        tmp_path, "brokenapp:app", workers=2, lazy_apps=lazy, pythonpath=[str(tmp_path)]
    ).start(wait=False)
    try:
        code = server.wait(5)
    finally:
        server.stop()
    assert code != 0
    log = server.log()
    assert "no_such_module_here" in log
    assert log.count("cannot load the app") <= 2  # at most one per worker, no loop


def test_max_requests_recycles_workers_without_failures(
    tmp_path: Path, nginx_available: None
) -> None:
    with stack(tmp_path, "nginx_app:app", workers=2, max_requests=50, max_requests_jitter=10) as (
        server,
        nginx,
    ):
        pids = set()
        for _ in range(400):
            status, _, body = nginx.request("GET", "/pid")
            assert status == 200
            pids.add(int(body))
        assert len(pids) >= 6
        assert "max-requests" in server.log()
