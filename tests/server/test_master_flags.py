"""The master's flags: while replacements cannot load the app, a worker at --max-requests
serves on; a server stop is told apart from a TERM sent to one worker."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import pytest

from uwsgiapp.server.listeners import Listener, refuse_new_connections
from uwsgiapp.server.masterflags import MasterFlags, last_out, leaves_at_max_requests


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


def test_a_process_knows_it_is_the_last_to_let_go_of_the_sockets() -> None:
    # A worker forked holds the pipe as it holds the sockets: until it lets go (or exits), the
    # master's letting go does not make it the last.
    flags = MasterFlags()
    go = os.pipe()
    pid = os.fork()
    if pid == 0:  # the worker: lets go when told
        try:
            os.read(go[0], 1)
            flags.let_go()
            os.read(go[0], 1)
        finally:
            os._exit(0)
    try:
        flags.let_go()
        flags.let_go()  # once is enough (a second TERM)
        assert not flags.others_let_go()
        os.write(go[1], b"1")
        deadline = time.monotonic() + 10
        while not flags.others_let_go():
            assert time.monotonic() < deadline, "the worker let go, and it was not seen"
            time.sleep(0.01)
    finally:
        os.write(go[1], b"2")
        os.waitpid(pid, 0)
        os.close(go[0])
        os.close(go[1])


def _connects(sock: socket.socket, within: float) -> bool:
    client = socket.socket()
    client.settimeout(within)
    try:
        client.connect(sock.getsockname())
    except TimeoutError:
        return False
    finally:
        client.close()
    return True


def test_the_last_one_out_has_its_tcp_socket_drop_new_connections_only() -> None:
    # Not before the server stops, not on a socket that outlives it (systemd's, a binary
    # upgrade's pair), not on a unix socket; connections already queued are still accepted.
    flags = MasterFlags()
    ours, passed, paired = (_tcp_listener(s) for s in ("127.0.0.1:{port}", "fd://3", "h:{port}"))
    paired.shared = True
    try:
        assert not last_out(flags, ours)  # no server stop: its pipe end is still held
        assert not flags.others_let_go()
        flags.publish(False, True)
        queued = socket.create_connection(ours.sock.getsockname(), timeout=5)
        assert not last_out(flags, passed) and not last_out(flags, paired)
        assert not flags.others_let_go()
        assert last_out(flags, ours)
        assert not _connects(ours.sock, 0.3)  # its SYN dropped: tried again in a second
        assert _connects(passed.sock, 5) and _connects(paired.sock, 5)
        ours.sock.settimeout(5)
        conn, _ = ours.sock.accept()
        conn.close()
        queued.close()
    finally:
        for listener in (ours, passed, paired):
            listener.close()


def test_a_connect_the_last_one_out_dropped_is_refused_once_it_closed() -> None:
    # What nginx then meets: a refused connect, which it passes on to its next server.
    listener = _tcp_listener("127.0.0.1:{port}")
    address = listener.sock.getsockname()
    assert refuse_new_connections(listener.sock)
    late = socket.socket()
    late.settimeout(10)
    try:
        closer = threading.Timer(0.2, listener.close)
        closer.start()
        with pytest.raises(ConnectionRefusedError):
            late.connect(address)
        closer.join()
    finally:
        late.close()
        listener.close()
