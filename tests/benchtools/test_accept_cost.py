"""bench/accept_cost.py: its two ways of looking at an empty listen queue, really made."""

from __future__ import annotations

import socket
from pathlib import Path

from support.scripts import load_script


def test_the_failed_accept_is_caught_and_the_epoll_check_finds_nothing(tmp_path: Path) -> None:
    tool = load_script("bench/accept_cost.py")
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.bind(str(tmp_path / "s.sock"))
        sock.listen(4)
        sock.setblocking(False)
        assert tool.failed_accept(sock)() is None
        epoll, check = tool.epoll_check(sock)
        with epoll:
            assert check() == []
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
                client.connect(str(tmp_path / "s.sock"))
                assert [fd for fd, _ in check()] == [sock.fileno()]


def test_measure_gives_a_row_for_each_listener_and_way() -> None:
    rows = load_script("bench/accept_cost.py").measure(50)
    assert [(name, way) for name, way, _, _ in rows] == [
        ("unix", "accept, queue empty"),
        ("unix", "epoll.poll(0)"),
        ("tcp", "accept, queue empty"),
        ("tcp", "epoll.poll(0)"),
    ]
    assert all(user >= 0 and system >= 0 for _, _, user, system in rows)
