"""The supervisor's operational features with real processes: dropped privileges, orphaned
workers, RSS recycling, re-importing a preloaded app on HUP."""

from __future__ import annotations

import os
import signal
import socket
import time
from pathlib import Path

import pytest
from support.procs import Server, wait_until

import protocol

pytestmark = pytest.mark.nginx


def children(pid: int) -> set[int]:
    """Child pids of ``pid`` (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def status_field(pid: int, name: str) -> list[int]:
    """A numeric line of /proc/PID/status (``Uid``, ``Gid``, ``Groups``...) as ints."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key == name:
            return [int(v) for v in value.split()]
    raise KeyError(name)


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting for a reaper."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


def uwsgi_get(path: str, query: str = "") -> bytes:
    """A uwsgi request packet, as nginx would send it."""
    return protocol.build_request(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "SERVER_NAME": "t",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
    )


def read_all(sock: socket.socket) -> bytes:
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
    return data


def test_workers_exit_when_the_master_is_killed(tmp_path: Path) -> None:
    server = Server(tmp_path, "supervisor_app:app", workers=3).start()
    workers: set[int] = set()
    try:
        wait_until(lambda: len(children(server.pid)) == 3, 10, "3 workers")
        workers = children(server.pid)
        with socket.socket(socket.AF_UNIX) as busy:  # one worker is in a request meanwhile
            busy.settimeout(10)
            busy.connect(server.socket)
            busy.sendall(uwsgi_get("/sleep", "1"))
            time.sleep(0.2)
            os.kill(server.pid, signal.SIGKILL)  # the master only: its workers are orphaned
            server.wait(5)
            answer = read_all(busy)
        wait_until(lambda: not any(alive(pid) for pid in workers), 5, "orphaned workers to exit")
    finally:
        server.stop()
        for pid in workers:  # never leave a process behind, even if the test failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
    # The orphaned worker finished the request it was in before leaving.
    assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:200]
    assert not [line for line in server.log().splitlines() if "Traceback" in line]
