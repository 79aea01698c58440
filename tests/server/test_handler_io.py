"""uwsgiapp.server.io on socketpairs: reads, writes and sendfile with poll timeouts."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from uwsgiapp.server.io import ClientTimeout, reader, recv, send_all, send_file
from uwsgiapp.wsgi.input import ClientDisconnected


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, int]]:
    """(client socket, non-blocking raw server fd), both closed afterwards."""
    client, server = socket.socketpair()
    client.settimeout(10)
    fd = server.detach()
    os.set_blocking(fd, False)
    try:
        yield client, fd
    finally:
        client.close()
        os.close(fd)


def drain_in_thread(sock: socket.socket, into: bytearray) -> threading.Thread:
    def run() -> None:
        while data := sock.recv(1 << 20):
            into.extend(data)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread


def test_recv_returns_what_is_there(pair: tuple[socket.socket, int]) -> None:
    client, fd = pair
    client.sendall(b"hello")
    assert recv(fd, 100, 1.0) == b"hello"


def test_recv_waits_for_data(pair: tuple[socket.socket, int]) -> None:
    client, fd = pair
    threading.Timer(0.05, client.sendall, [b"late"]).start()
    assert recv(fd, 100, 5.0) == b"late"


def test_recv_eof_is_client_disconnected(pair: tuple[socket.socket, int]) -> None:
    client, fd = pair
    client.shutdown(socket.SHUT_WR)
    with pytest.raises(ClientDisconnected) as info:
        recv(fd, 100, 1.0)
    assert not isinstance(info.value, ClientTimeout)


def test_recv_timeout(pair: tuple[socket.socket, int]) -> None:
    _, fd = pair
    started = time.perf_counter()
    with pytest.raises(ClientTimeout, match="timed out"):
        recv(fd, 100, 0.2)
    assert 0.15 < time.perf_counter() - started < 2.0


def test_recv_reset_is_client_disconnected(pair: tuple[socket.socket, int]) -> None:
    client, fd = pair
    os.write(fd, b"unread by the client")
    client.close()  # closing with unread data: the server side sees ECONNRESET
    with pytest.raises(ClientDisconnected):
        recv(fd, 100, 1.0)


def test_reader(pair: tuple[socket.socket, int]) -> None:
    client, fd = pair
    client.sendall(b"abcdef")
    read = reader(fd, 1.0)
    assert read(3) == b"abc"
    assert read(100) == b"def"


def test_send_all_small(pair: tuple[socket.socket, int]) -> None:
    client, fd = pair
    send_all(fd, b"small", 1.0)
    assert client.recv(100) == b"small"


def test_send_all_bigger_than_the_socket_buffer(pair: tuple[socket.socket, int]) -> None:
    client, fd = pair
    data = os.urandom(4 << 20)
    got = bytearray()
    thread = drain_in_thread(client, got)
    send_all(fd, data, 5.0)
    send_all(fd, memoryview(b"tail"), 5.0)
    socket.socket(fileno=os.dup(fd)).shutdown(socket.SHUT_WR)
    thread.join(10)
    assert bytes(got) == data + b"tail"


def test_send_all_to_a_client_that_does_not_read_times_out(pair: tuple[socket.socket, int]) -> None:
    _, fd = pair
    started = time.perf_counter()
    with pytest.raises(ClientTimeout):
        send_all(fd, bytes(8 << 20), 0.2)
    assert time.perf_counter() - started < 2.0


def test_send_all_to_a_closed_client(pair: tuple[socket.socket, int]) -> None:
    client, fd = pair
    client.close()
    with pytest.raises(ClientDisconnected) as info:
        send_all(fd, b"x" * 100, 1.0)
    assert info.value.errno is not None


def test_send_file(pair: tuple[socket.socket, int], tmp_path: Path) -> None:
    client, fd = pair
    data = os.urandom((3 << 20) + 7)
    path = tmp_path / "f"
    path.write_bytes(data)
    got = bytearray()
    thread = drain_in_thread(client, got)
    with open(path, "rb") as f:
        assert send_file(fd, f.fileno(), 5, len(data) - 5, 5.0) == len(data) - 5
    socket.socket(fileno=os.dup(fd)).shutdown(socket.SHUT_WR)
    thread.join(10)
    assert bytes(got) == data[5:]


def test_send_file_stops_at_eof(pair: tuple[socket.socket, int], tmp_path: Path) -> None:
    client, fd = pair
    path = tmp_path / "f"
    path.write_bytes(b"short")
    with open(path, "rb") as f:
        assert send_file(fd, f.fileno(), 0, 1000, 1.0) == 5
    assert client.recv(100) == b"short"


def test_send_file_to_a_closed_client(pair: tuple[socket.socket, int], tmp_path: Path) -> None:
    client, fd = pair
    path = tmp_path / "f"
    path.write_bytes(bytes(1 << 20))
    client.close()
    with open(path, "rb") as f, pytest.raises(ClientDisconnected):
        send_file(fd, f.fileno(), 0, 1 << 20, 1.0)
