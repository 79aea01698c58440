"""open_fds / peer_of / connection_warning: the connected sockets an import of the app left
open in the master, which every forked worker would share."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from uwsgiapp.supervisor.importconns import (
    connection_warning,
    open_fds,
    peer_of,
    sqlite_of,
    sqlite_warning,
)


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A loopback TCP listener: the "database" an import connects to."""
    sock = socket.create_server(("127.0.0.1", 0))
    yield sock
    sock.close()


def test_a_tcp_connection_opened_after_the_listing_is_new_and_named(
    listener: socket.socket,
) -> None:
    before = open_fds()
    conn = socket.create_connection(listener.getsockname())
    try:
        new = open_fds() - before
        assert new == {conn.fileno()}
        assert peer_of(conn.fileno()) == f"127.0.0.1:{listener.getsockname()[1]}"
        assert conn.fileno() in open_fds()  # peer_of left the descriptor open
    finally:
        conn.close()


def test_the_listing_s_own_descriptor_is_not_taken_for_an_open_one() -> None:
    # The fd that listed /proc/self/fd is closed by the end: a connection reusing its number
    # after the first listing is new in the second.
    first = open_fds()
    second = open_fds()
    assert first == second


def test_only_connected_stream_sockets_have_a_peer(listener: socket.socket, tmp_path: Path) -> None:
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.connect(("127.0.0.1", 9))  # a syslog-style datagram socket: shared harmlessly
    unconnected = socket.socket()
    left, right = socket.socketpair()
    path = tmp_path / "f"
    path.write_text("x")
    fd = os.open(path, os.O_RDONLY)
    try:
        assert peer_of(listener.fileno()) is None
        assert peer_of(udp.fileno()) is None
        assert peer_of(unconnected.fileno()) is None
        assert peer_of(fd) is None
        assert peer_of(left.fileno()) == "an unnamed unix socket"
        assert peer_of(10_000) is None  # not open at all
    finally:
        for sock in (udp, unconnected, left, right):
            sock.close()
        os.close(fd)


def test_the_warning_names_the_peers_and_the_ways_out() -> None:
    assert connection_warning("the app's import", []) == ""
    text = connection_warning("the re-import", ["127.0.0.1:5432", "/run/redis.sock"])
    assert text.startswith("the re-import left 2 connections open in the master (to ")
    assert "127.0.0.1:5432, /run/redis.sock" in text
    assert "django.db.connections.close_all()" in text and "--lazy-apps" in text
    many = connection_warning("x", [f"10.0.0.{i}:5432" for i in range(7)])
    assert "10.0.0.4:5432, ...)" in many and "10.0.0.5" not in many


def test_a_sqlite_database_left_open_is_found_by_its_first_bytes(tmp_path: Path) -> None:
    # SQLite forbids a connection carried across a fork; a plain file (a log) is not one.
    import sqlite3

    db = sqlite3.connect(tmp_path / "app.db")
    db.execute("create table t (x)")
    db.commit()
    plain = tmp_path / "app.log"
    plain.write_text("SQLite format 2 and more text")
    fd = os.open(plain, os.O_RDONLY)
    before = open_fds() - {fd}
    try:
        found = [path for n in open_fds() - before if (path := sqlite_of(n))]
        assert found == []  # the connection's file was open before the listing
        assert sqlite_of(fd) is None
        second = sqlite3.connect(tmp_path / "app.db")
        second.execute("select * from t").fetchall()
        found = [path for n in sorted(open_fds() - before) if (path := sqlite_of(n))]
        assert found == [str(tmp_path / "app.db")]
        second.close()
    finally:
        db.close()
        os.close(fd)
    assert sqlite_warning("x", []) == ""
    text = sqlite_warning("the app's import", ["/srv/app/db.sqlite3"])
    assert text.startswith("the app's import left the SQLite database /srv/app/db.sqlite3 open")
    assert "--lazy-apps" in text and "postfork" in text
