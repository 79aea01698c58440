"""Clients still sending their request are parked, not waited for: a real ``uwsgiapp serve``."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from support.procs import Server, stalled_closed

import uwsgiproto

REQUEST = {
    "REQUEST_METHOD": "POST",
    "PATH_INFO": "/echo",
    "QUERY_STRING": "",
    "CONTENT_LENGTH": "1000",
    "SERVER_NAME": "t",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
}


def _connect(path: str, data: bytes) -> socket.socket:
    s = socket.socket(socket.AF_UNIX)
    s.settimeout(20)
    s.connect(path)
    s.sendall(data)
    return s


def _read_all(s: socket.socket) -> bytes:
    data = b""
    while chunk := s.recv(65536):
        data += chunk
    return data


def test_held_connections_do_not_hold_the_only_worker(tmp_path: Path) -> None:
    packet = uwsgiproto.build_request(REQUEST) + bytes(1000)
    server = Server(tmp_path, "nginx_app:app", workers=1, socket_timeout=2).start()
    held: list[socket.socket] = []
    try:
        with _connect(server.socket, packet) as s:  # the worker serves: its start-up is over
            assert _read_all(s).startswith(b"HTTP/1.1 200 OK")
        for i in range(40):  # half a head, or a whole head and half a body
            cut = 7 if i % 2 else len(packet) - 500
            held.append(_connect(server.socket, packet[:cut]))
        started = time.monotonic()
        with _connect(server.socket, packet) as s:
            answer = _read_all(s)
        served_after = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 200 OK"), answer[:200]
        # Blocking on each held client in turn would take 40 x 2 s before this answer.
        assert served_after < 1.5
        closed = []
        for s in held:
            closed.append(_read_all(s))
            s.close()
        waited = time.monotonic() - started
        assert waited < 2 + 3  # all closed after about --socket-timeout
        assert sum(1 for c in closed if c.startswith(b"HTTP/1.1 408")) == 20
        assert sum(1 for c in closed if c == b"") == 20
        # and a held client that finishes late is served whole
        with _connect(server.socket, packet[:100]) as s:
            time.sleep(0.5)
            s.sendall(packet[100:])
            assert _read_all(s).startswith(b"HTTP/1.1 200 OK")
    finally:
        for s in held:
            s.close()
        server.stop()
    log = server.log()
    assert stalled_closed(log.splitlines()) == 40, log[-2000:]  # a line each, past 20 a count
    assert "Traceback" not in log
