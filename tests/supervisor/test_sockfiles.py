"""A unix socket file removed while the server serves (a /tmp cleaner, a deploy's rm): nginx
got 502 "No such file or directory" and this log said nothing. The master says it, once."""

from __future__ import annotations

import logging
import os
import socket
import time
from pathlib import Path

import pytest
from support.procs import Server, short_tmpdir, wait_until

from uwsgiapp.addresses import AllowList
from uwsgiapp.server.listeners import bind
from uwsgiapp.supervisor.sockfiles import SOCKET_FILE_CHECK, SocketFiles, socket_file_state

ALLOW = AllowList.parse(["127.0.0.1"])


def test_a_socket_file_is_ours_gone_or_replaced(tmp_path: Path) -> None:
    path = str(tmp_path / "app.sock")
    listener = bind(path, backlog=8, chmod=0o660, allow=ALLOW)
    tcp = bind("127.0.0.1:0", backlog=8, chmod=0o660, allow=ALLOW)
    try:
        assert socket_file_state(listener) == "ours" and socket_file_state(tcp) == ""
        os.unlink(path)
        assert socket_file_state(listener) == "gone"
        with socket.socket(socket.AF_UNIX) as other:
            other.bind(path)
            assert socket_file_state(listener) == "replaced"
        os.unlink(path)
    finally:
        listener.close()
        tcp.close()
    assert socket_file_state(listener) == ""  # closed by a stop, which removes its file


def test_the_master_says_it_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = str(tmp_path / "app.sock")
    listener = bind(path, backlog=8, chmod=0o660, allow=ALLOW)
    try:
        files = SocketFiles([listener])
        with caplog.at_level(logging.WARNING, logger="uwsgiapp.error"):
            files.tick(0.0)
            os.unlink(path)
            files.tick(1.0)  # not yet its time
            files.tick(10.0)
            files.tick(20.0)
        (record,) = caplog.records
        assert record.getMessage().startswith(f"the socket file {path} was removed (")
        assert "restart it to bind the file again" in record.getMessage()
    finally:
        listener.close()


def test_a_served_socket_file_removed_is_said_by_a_real_server(tmp_path: Path) -> None:
    sock = os.path.join(short_tmpdir(), "app.sock")
    server = Server(tmp_path / "a", "supervisor_app:app", workers=1, socket=sock).start()
    try:
        os.unlink(sock)
        wait_until(lambda: f"the socket file {sock} was removed" in server.log(), 15, "the line")
    finally:
        server.stop()
    # A stop removes the file itself, after the server has lived past a look (5 s): unsaid.
    other = os.path.join(short_tmpdir(), "app.sock")
    quiet = Server(tmp_path / "b", "supervisor_app:app", workers=1, socket=other).start()
    time.sleep(SOCKET_FILE_CHECK + 0.5)
    quiet.stop()
    assert "the socket file" not in quiet.log()
