"""queued_connections: the accept-queue length a graceful stop drains on a TCP listener."""

from __future__ import annotations

import socket
import time

from uwsgiapp.server.listeners import queued_connections


def test_tcp_listener_reports_its_accept_queue() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        assert queued_connections(listener) == 0
        clients = [socket.create_connection(listener.getsockname()) for _ in range(3)]
        deadline = time.monotonic() + 5
        while queued_connections(listener) != 3 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert queued_connections(listener) == 3
        conn, _ = listener.accept()
        assert queued_connections(listener) == 2
        for sock in [conn, *clients]:
            sock.close()


def test_unknown_for_unix_sockets() -> None:
    a, b = socket.socketpair()
    with a, b:
        assert queued_connections(a) is None
