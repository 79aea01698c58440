"""A live master's stats listener under load and abuse (real processes; nginx where it matters).

- 50 stats reads a second while a bounded load goes through nginx: no request fails or stalls,
  every read is answered, and every request is counted (plain and HTTP mode).
- Stats clients that send nothing, or read nothing, while the master is told TTIN and HUP: it
  acts on both at once (the listener never waits on a client).
- Garbage, a huge request and 1,000 connections at once: each is answered or closed within the
  client deadline, and the master replaces a worker killed with -9 meanwhile.
"""

from __future__ import annotations

import contextlib
import json
import os
import selectors
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from live_kit import Address, accepting, document, wait_doc, wsum
from stats_kit import read_all
from support.load import Load
from support.procs import (
    Server,
    free_port,
    nginx_binary,
    short_tmpdir,
    stack,
    wait_until,
    worker_pids,
)

#: StatsServer's client deadline (3 s) and linger (1 s), with room for a loaded machine.
CLIENT_BOUND = 10.0


def _address(http: bool) -> tuple[Address, str]:
    """Where the stats listener goes: TCP loopback for HTTP mode, a unix path for plain."""
    if http:
        port = free_port()
        return ("127.0.0.1", port), f"127.0.0.1:{port}"
    path = os.path.join(short_tmpdir(), "stats.sock")
    return path, path


def _reader(address: Address, http: bool) -> Callable[[], dict[str, Any]]:
    """Read the document; an AssertionError (which wait_doc retries) for a connection closed
    unanswered, as when the listener is at its client cap."""
    if http:
        return lambda: document(address)

    def read() -> dict[str, Any]:
        raw = read_all(address, timeout=5)
        assert raw, "closed unanswered"
        doc: dict[str, Any] = json.loads(raw)
        return doc

    return read


def _connect(address: Address) -> socket.socket:
    """A connected socket; a unix connect to a full backlog (EAGAIN) is retried for 5 s."""
    family = socket.AF_INET if isinstance(address, tuple) else socket.AF_UNIX
    deadline = time.monotonic() + 5
    while True:
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.settimeout(5)
        try:
            sock.connect(address)
            return sock
        except BlockingIOError:
            sock.close()
            if time.monotonic() > deadline:
                raise
            time.sleep(0.01)


@pytest.mark.nginx
@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
@pytest.mark.parametrize("http", [False, True], ids=["plain", "http"])
def test_fifty_stats_reads_a_second_during_load_never_stall_a_worker(
    tmp_path: Path, http: bool
) -> None:
    address, spec = _address(http)
    with stack(tmp_path, "stats_app:app", workers=2, stats=spec, stats_http=http) as (_, nginx):
        read = _reader(address, http)
        wait_doc(read, lambda d: accepting(d) == 2, 15)
        reads: list[float] = []
        errors: list[str] = []
        load = Load(nginx.port, lambda i: "/ok", clients=4, limit=50_000, timeout=10, timeline=True)
        with load:
            start = time.monotonic()
            for n in range(200):  # 4 s at 50 a second
                time.sleep(max(0.0, start + n * 0.02 - time.monotonic()))
                sent = time.monotonic()
                try:
                    doc = read()
                    assert len(doc["workers"]) == 2
                except (OSError, AssertionError, ValueError) as exc:
                    errors.append(f"{type(exc).__name__}: {exc}")
                reads.append(time.monotonic() - sent)
            result = load.stop()
        assert not result.failures, result.failures[:5]
        assert result.ok >= 200, result.ok
        latencies = sorted(done - sent for sent, done, _, _ in result.timeline)
        assert latencies[-1] < 2.0, latencies[-5:]
        assert not errors, errors[:5]
        assert max(reads) < 2.0 and sum(reads) / len(reads) < 0.2, (max(reads), sum(reads))
        # Every request that went through is counted.
        wait_doc(read, lambda d: wsum(d, "requests") == result.ok, 10)


@contextlib.contextmanager
def _pestering(address: Address, http: bool, keep: int = 16) -> Iterator[list[int]]:
    """Keep ``keep`` stats connections open that never send (HTTP) and never read, opening new
    ones as the server drops them, and one slow reader; yields the count opened so far."""
    opened = [0]
    stop = threading.Event()

    def run() -> None:
        held: list[socket.socket] = []
        slow = _connect(address)
        if http:
            slow.sendall(b"GET /metrics HTTP/1.0\r\nX-Pad: " + b"p" * 2000 + b"\r\n\r\n")
        try:
            while not stop.is_set():
                held = [s for s in held if _still_open(s)]
                while len(held) < keep:
                    with contextlib.suppress(OSError):
                        held.append(_connect(address))
                        opened[0] += 1
                with contextlib.suppress(OSError):
                    slow.recv(1)  # one byte now and then
                stop.wait(0.2)
        finally:
            for s in [*held, slow]:
                s.close()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        yield opened
    finally:
        stop.set()
        thread.join(10)


def _still_open(sock: socket.socket) -> bool:
    """No EOF or error waiting on ``sock`` (what the server sent is left unread)."""
    try:
        sock.setblocking(False)
        data = sock.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return True
    except OSError:
        return False
    finally:
        sock.setblocking(True)
    if data:
        return True  # answered, not yet closed: still holds a client slot until it is
    sock.close()
    return False


@pytest.mark.parametrize("http", [False, True], ids=["plain", "http"])
def test_silent_and_slow_stats_clients_never_block_ttin_or_hup(tmp_path: Path, http: bool) -> None:
    address, spec = _address(http)
    server = Server(tmp_path / "server", "stats_app:app", workers=1, stats=spec, stats_http=http)
    server.start()
    try:
        read = _reader(address, http)
        wait_doc(read, lambda d: accepting(d) == 1, 15)
        with _pestering(address, http) as opened:
            wait_until(lambda: opened[0] >= 16, 5, "silent stats clients")
            before = worker_pids(server.pid)
            server.signal(signal.SIGTTIN)
            wait_until(lambda: len(worker_pids(server.pid)) == 2, 3, "TTIN's second worker")
            first = worker_pids(server.pid)
            server.signal(signal.SIGHUP)  # whose reload goes back to --workers 1
            wait_until(
                lambda: len(now := worker_pids(server.pid)) == 1 and not now & first,
                10,
                "HUP's new worker",
            )
            assert before <= first
            doc = wait_doc(read, lambda d: accepting(d) == 1, 10)  # answered meanwhile
            assert {w["pid"] for w in doc["workers"] if w["accepting"]} == worker_pids(server.pid)
        assert "Traceback" not in server.log(), server.log()
    finally:
        server.stop()


def _wait_all_closed(socks: list[socket.socket], timeout: float) -> list[socket.socket]:
    """Read every socket to its end (an answer then EOF, or a reset); those still open after
    ``timeout``."""
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    deadline = time.monotonic() + timeout
    open_ = set(socks)
    while open_ and time.monotonic() < deadline:
        for key, _ in sel.select(0.2):
            sock: socket.socket = key.fileobj  # type: ignore[assignment]
            try:
                data = sock.recv(65536)
            except BlockingIOError:
                continue
            except OSError:
                data = b""
            if not data:
                sel.unregister(sock)
                open_.discard(sock)
    sel.close()
    return list(open_)


@pytest.mark.parametrize("http", [False, True], ids=["plain", "http"])
def test_garbage_huge_requests_and_a_thousand_connections(tmp_path: Path, http: bool) -> None:
    address, spec = _address(http)
    server = Server(tmp_path / "server", "stats_app:app", workers=2, stats=spec, stats_http=http)
    server.start()
    socks: list[socket.socket] = []
    try:
        read = _reader(address, http)
        wait_doc(read, lambda d: accepting(d) == 2, 15)
        garbage = _connect(address)
        with contextlib.suppress(OSError):
            garbage.sendall(os.urandom(8192))
        huge = _connect(address)
        with contextlib.suppress(OSError):  # refused early: a reset or a broken pipe is fine
            huge.sendall(b"GET /" + b"a" * 2_000_000 + b" HTTP/1.0\r\n\r\n")
        socks += [garbage, huge]
        victim = min(worker_pids(server.pid))
        for n in range(1000):
            socks.append(_connect(address))
            if n == 500:
                os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: len(w := worker_pids(server.pid)) == 2 and victim not in w,
            10,
            "the killed worker replaced while 1,000 stats connections were open",
        )
        still = _wait_all_closed(socks, CLIENT_BOUND)
        assert not still, f"{len(still)} stats connections neither answered nor closed"
        doc = wait_doc(read, lambda d: accepting(d) == 2, 10)
        assert wsum(doc, "respawn_count") == 3
        log = server.log()
        assert "Traceback" not in log, log[-3000:]
    finally:
        for s in socks:
            s.close()
        server.stop()
