"""Sockets passed in (``fd://N``, systemd's socket activation), and unix socket paths that cannot
be bound: what start-up takes, and the one line it says otherwise."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import pytest

from uwsgiapp.addresses import AllowList
from uwsgiapp.server.listeners import ListenerError, bind

ALLOW = AllowList.parse(["127.0.0.1"])


def test_an_inherited_listening_socket_is_served_and_not_passed_on() -> None:
    held = socket.socket(socket.AF_INET)
    held.bind(("127.0.0.1", 0))
    fd = os.dup(held.fileno())
    os.set_inheritable(fd, True)  # as systemd passes it
    try:
        listener = bind(f"fd://{fd}", backlog=8, chmod=0o660, allow=ALLOW)
        assert listener.is_tcp and listener.allow is ALLOW  # the allow-list applies
        assert not os.get_inheritable(fd)  # not on to what the app execs
        listener.close()
    finally:
        held.close()


def test_a_connection_or_a_datagram_socket_is_refused_with_one_line() -> None:
    # systemd's Accept=yes passes a connection: listen() fails (EINVAL), which ended the
    # start with a traceback.
    left, right = socket.socketpair()
    datagram = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    try:
        with pytest.raises(ListenerError, match=r"cannot listen on it .*\(systemd: Accept=no\)"):
            bind(f"fd://{left.fileno()}", backlog=8, chmod=0o660, allow=ALLOW)
        with pytest.raises(ListenerError, match="not a stream socket"):
            bind(f"fd://{datagram.fileno()}", backlog=8, chmod=0o660, allow=ALLOW)
        left.sendall(b"x")  # both still open: refused, not closed under their owner
        assert right.recv(1) == b"x"
    finally:
        for sock in (left, right, datagram):
            sock.close()


def test_a_socket_path_through_a_file_is_refused_with_one_line(tmp_path: Path) -> None:
    # A path the walk cannot follow (a file where a directory should be): one start-up line,
    # not a traceback.
    (tmp_path / "file").write_text("")
    with pytest.raises(ListenerError, match="cannot bind: Not a directory"):
        bind(str(tmp_path / "file" / "app.sock"), backlog=8, chmod=0o660, allow=ALLOW)
