"""Past the parking cap, a slow connection is closed at once: a real ``uwsgiapp serve``.

A worker parks at most ``MAX_PARKED`` connections whose request has not fully arrived. Beyond
that it must not wait for a slow client in place (that held the worker for ``--socket-timeout``
per connection, so nobody was served and the parked ones were not expired for minutes): a new
connection that sent part of its request is closed at once (a 503 once its head is in); one that
sent nothing yet takes the place of the parked connection silent the longest, which is closed.
A rate-limited WARNING counts them, complete requests are still served and the parked ones
expire on time.

The real cap (512) is cheap enough: ~600 unix connections, well under the usual 1024 fds.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

from support.procs import (
    LogCursor,
    Server,
    closed_after,
    stalled_closed,
    uwsgi_exchange,
    wait_for_workers,
    wait_until,
    worker_pids,
)

import uwsgiproto
from uwsgiapp.server.worker import MAX_PARKED

SOCKET_TIMEOUT = 2.0
#: Connections opened past the cap.
EXTRA = 64
#: A complete request behind all the slow ones must be answered within this.
PROMPT = 1.0
#: Parked connections are closed between these bounds (seconds after their last byte).
EXPIRE_AFTER = (SOCKET_TIMEOUT * 0.75, SOCKET_TIMEOUT + 2.5)

REQUEST = {
    "REQUEST_METHOD": "GET",
    "PATH_INFO": "/echo",
    "REQUEST_URI": "/echo",
    "QUERY_STRING": "",
    "SERVER_NAME": "t",
    "SERVER_PORT": "80",
    "SERVER_PROTOCOL": "HTTP/1.1",
}
PACKET = uwsgiproto.build_request(REQUEST)
#: A whole head and half of its small body (read before the app is called).
HALF_BODY = uwsgiproto.build_request(
    {**REQUEST, "REQUEST_METHOD": "POST", "CONTENT_LENGTH": "1000"}, bytes(500)
)


def slow_start(i: int) -> bytes:
    """What slow client ``i`` sends before it stops: nothing, half a head, or half a body."""
    return b"" if i % 8 == 0 else HALF_BODY if i % 4 == 2 else PACKET[:7]


def test_past_the_cap_slow_connections_are_closed_and_parked_ones_expire_on_time(
    tmp_path: Path,
) -> None:
    server = Server(tmp_path, "nginx_app:app", workers=1, socket_timeout=SOCKET_TIMEOUT).start()
    held: list[socket.socket] = []
    try:
        workers = wait_for_workers(server, 1)
        (worker,) = workers
        cursor = LogCursor(server.log_path)
        sent_at: list[float] = []

        def open_slow(i: int) -> None:
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(server.socket)
            sock.sendall(slow_start(i))
            sent_at.append(time.monotonic())
            held.append(sock)

        assert uwsgi_exchange(server.socket, PACKET, timeout=10).data  # in its loop now
        fds = f"/proc/{worker}/fd"
        base = len(os.listdir(fds))
        # The worker is stopped while each batch queues: each connection is accepted with its
        # bytes already in, as the test means. Accepted between a client's connect and its
        # send, a partial sender looked silent: past the cap it took a parked one's place
        # instead of being closed; parked, it was the one a later silent one evicted (closed
        # at once, where the test expected a silent one to go).
        os.kill(worker, signal.SIGSTOP)
        try:
            for i in range(MAX_PARKED):
                open_slow(i)
        finally:
            os.kill(worker, signal.SIGCONT)
        wait_until(lambda: len(os.listdir(fds)) >= base + MAX_PARKED, 10, "all parked")
        os.kill(worker, signal.SIGSTOP)
        try:
            for i in range(MAX_PARKED, MAX_PARKED + EXTRA):
                open_slow(i)
        finally:
            os.kill(worker, signal.SIGCONT)

        # A complete request queued behind all of them is served at once.
        started = time.monotonic()
        result = uwsgi_exchange(server.socket, PACKET, timeout=SOCKET_TIMEOUT + 5)
        answered = time.monotonic() - started
        assert result.data.startswith(b"HTTP/1.1 200 OK"), (result.end, result.data[:200])
        assert answered < PROMPT, f"answered after {answered:.2f} s"

        closed, received = closed_after(held, sent_at, sent_at[-1] + EXPIRE_AFTER[1])
        # Each new silent connection past the cap displaced the oldest silent parked one.
        new_silent = [i for i in range(MAX_PARKED, len(held)) if slow_start(i) == b""]
        evicted = [i for i in range(MAX_PARKED) if slow_start(i) == b""][: len(new_silent)]
        kept = set(range(MAX_PARKED)) - set(evicted) | set(new_silent)
        parked = [closed[i] for i in sorted(kept)]
        refused = [closed[i] for i in range(len(held)) if i not in kept]
        assert len(refused) == EXTRA
        # Answered as nginx would once the head is in: 503 past the cap, 408 after the wait.
        for i, data in enumerate(received):
            if slow_start(i) != HALF_BODY:
                assert data == b"", (i, data[:80])
            else:
                status = b"408 Request Timeout" if i in kept else b"503 Service Unavailable"
                assert data.startswith(b"HTTP/1.1 " + status + b"\r\n"), (i, data[:80])
        # Those past the cap: closed at once, long before any socket timeout.
        slow = [round(c, 2) for c in refused if c >= SOCKET_TIMEOUT / 2]
        assert not slow, f"{len(slow)} of {EXTRA} connections past the cap were kept: {slow[:5]}"
        # The parked ones: closed after --socket-timeout, not before and not minutes later.
        early = [round(c, 2) for c in parked if c < EXPIRE_AFTER[0]]
        late = [c for c in parked if c > EXPIRE_AFTER[1]]
        assert not early, f"parked connections closed before the socket timeout: {early[:5]}"
        assert not late, f"{len(late)} parked connections not closed {EXPIRE_AFTER[1]:g} s after"

        # The cap is free again: a client that sends its request in two parts is parked, served.
        with socket.socket(socket.AF_UNIX) as sock:
            sock.settimeout(SOCKET_TIMEOUT + 5)
            sock.connect(server.socket)
            sock.sendall(PACKET[:10])
            time.sleep(0.3)
            sock.sendall(PACKET[10:])
            assert sock.recv(65536).startswith(b"HTTP/1.1 200 OK")

        time.sleep(0.1)
        lines = cursor.new_lines()
        assert worker_pids(server.pid) == workers
    finally:
        for sock in held:
            sock.close()
        server.stop()
    # One WARNING a second at most, counting every connection closed past the cap.
    shed = [line for line in lines if "parking is full" in line]
    assert shed and all("[WARNING]" in line for line in shed), lines[-5:]
    assert len(shed) <= 3, shed
    counts = [int(m.group(1)) for m in (re.search(r"closed (\d+) conn", x) for x in shed) if m]
    assert len(counts) == len(shed) and sum(counts) == EXTRA, shed
    # Every parked connection expired and was said (one line each up to a burst, then
    # counted: at the window's end, or the worker's); no other warnings, no traceback.
    said = server.log().splitlines()
    assert stalled_closed(said) == len(kept) == MAX_PARKED, said[-3:]
    others = [line for line in lines if "[INFO]" not in line and line not in shed]
    assert not others, others[:5]
    assert "Traceback" not in server.log()
