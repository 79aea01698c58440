"""The master's flags: while replacements cannot load the app, a worker at --max-requests
serves on; a server stop is told apart from a TERM sent to one worker."""

from __future__ import annotations

import logging
import os
import socket
import threading

import pytest

from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.masterflags import MasterFlags, leaves_at_max_requests


def test_a_worker_forked_before_sees_the_masters_hold() -> None:
    hold = MasterFlags()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: waits for the master's word, then reads the flag
        try:
            os.read(read, 1)
            os.write(write, b"h" if hold.holds(10) else b"-")
        finally:
            os._exit(0)
    hold.publish(True, False)
    os.write(write, b"?")
    os.waitpid(pid, 0)
    assert os.read(read, 1) == b"h"
    os.close(read)
    os.close(write)


def test_held_the_worker_serves_on_and_says_so_once(caplog: pytest.LogCaptureFixture) -> None:
    hold = MasterFlags()
    with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
        hold.publish(True, False)
        assert [leaves_at_max_requests(hold, n) for n in (100, 101, 102)] == [False] * 3
        hold.publish(False, False)  # a replacement loaded: it leaves after its next request
        assert leaves_at_max_requests(hold, 103)
        assert leaves_at_max_requests(None, 7)
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 3, said
    assert "served 100 requests (max-requests), but new workers cannot load the app" in said[0]
    assert said[1:] == [
        f"{said[1].split(':')[0]}: served 103 requests (max-requests), recycling",
        f"{said[2].split(':')[0]}: served 7 requests (max-requests), recycling",
    ]


def _tcp_listener(spec: str) -> Listener:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    return Listener(sock, spec.format(port=sock.getsockname()[1]))


def test_the_drain_end_shuts_down_only_the_servers_own_tcp_sockets() -> None:
    # A socket systemd passed in (fd://N) is systemd's too: shut down, its copy died with it
    # and the next start inherited a dead socket.
    from uwsgiapp.server.stopsignals import StopSignals

    ours, passed = _tcp_listener("127.0.0.1:{port}"), _tcp_listener("fd://3")
    flags = MasterFlags()
    stopping = StopSignals()
    stopping.listeners, stopping.master_flags, stopping.drain_seconds = [ours, passed], flags, 0.0
    try:
        stopping._refuse_late(0.0)  # no server stop: a TERM to this worker alone
        flags.publish(False, True)
        socket.create_connection(ours.sock.getsockname(), timeout=5).close()
        stopping._refuse_late(0.0)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(ours.sock.getsockname(), timeout=5)
        socket.create_connection(passed.sock.getsockname(), timeout=5).close()
    finally:
        ours.close()
        passed.close()


@pytest.mark.parametrize("case", ["being taken", "shut down", "its taker killed"])
def test_the_drain_end_leaves_a_socket_the_first_one_out_shuts_down(
    caplog: pytest.LogCaptureFixture, case: str
) -> None:
    # Another worker's drain ended first: it waits for the handshakes under way before it
    # shuts the socket down (shut down at once, they were reset), or it did (a warning blamed
    # a request for a refusal that was not its own). Killed meanwhile, it never does: the
    # socket dropped new connections for good, and nginx waited out its connect timeout.
    from uwsgiapp.server.lastout import refuse_new_connections
    from uwsgiapp.server.stopsignals import StopSignals

    ours = _tcp_listener("127.0.0.1:{port}")
    refuse_new_connections(ours.sock)
    if case == "shut down":
        ours.sock.shutdown(socket.SHUT_RDWR)
    taker = threading.Timer(0.3, ours.sock.shutdown, (socket.SHUT_RDWR,))
    if case == "being taken":
        taker.start()
    flags = MasterFlags()
    flags.publish(False, True)
    stopping = StopSignals()
    stopping.listeners, stopping.master_flags, stopping.drain_seconds = [ours], flags, 0.0
    try:
        stopping._refuse_late(0.0)
        if case == "being taken":
            taker.join()
        assert not ours.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN)
        assert ("still in a request" in caplog.text) == (case == "its taker killed")
    finally:
        ours.close()
