"""The stats listener on real sockets: answers, HTTP routing, and that no client can hold up
the loop that drives it (silent, slow, garbage, huge, a thousand at once)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import resource
import select
import shutil
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from stats_kit import read_all, running, sample, server_stats, worker
from support.procs import short_tmpdir

from uwsgiapp.addresses import AllowList
from uwsgiapp.stats.document import render_json
from uwsgiapp.stats.model import ServerStats
from uwsgiapp.stats.server import StatsServer

# Generous: a poll that does its work and returns takes well under a millisecond here; these
# bounds only catch a loop that waited on a client.
PROMPT = 0.5


@pytest.fixture
def sockdir() -> Iterator[str]:
    path = short_tmpdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _connect(address: str | tuple[str, int]) -> socket.socket:
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(address)
    return sock


def _timed_poll(server: StatsServer, timeout: float = 0.0) -> float:
    start = time.monotonic()
    server.poll(timeout)
    return time.monotonic() - start


def _recv_all(sock: socket.socket) -> bytes:
    chunks = []
    while data := sock.recv(65536):
        chunks.append(data)
    return b"".join(chunks)


def _pump(server: StatsServer, until: float) -> None:
    """Poll like a master loop until ``until`` (monotonic), each poll prompt."""
    while time.monotonic() < until:
        assert _timed_poll(server, 0.02) < PROMPT


def test_plain_unix_writes_the_document_and_closes(sockdir: str) -> None:
    path = os.path.join(sockdir, "stats.sock")
    with running(StatsServer(path, snapshot=sample)) as server:
        raw = read_all(server.address)
        assert raw == render_json(sample())
        assert json.loads(raw)["workers"][1]["requests"] == 567
        assert os.stat(path).st_mode & 0o777 == 0o660
    assert not os.path.exists(path)  # removed on close


def test_plain_tcp_loopback() -> None:
    with running(StatsServer("127.0.0.1:0", snapshot=sample)) as server:
        address = server.address
        assert isinstance(address, tuple) and address[1] > 0
        assert json.loads(read_all(address))["pid"] == 4000


def test_tcp_peer_outside_the_allow_list_is_closed_unanswered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    server = StatsServer("127.0.0.1:0", AllowList.parse(["10.9.8.7"]), snapshot=sample)
    with caplog.at_level(logging.WARNING, logger="uwsgiapp.error"), running(server):
        assert read_all(server.address) == b""
    assert server.rejected == 1 and server.served == 0
    said = "refused connection from 127.0.0.1 on the stats socket 127.0.0.1:0: not in stats-allow"
    assert any(said in r.getMessage() for r in caplog.records), caplog.records


def test_the_stats_server_takes_loopback_beside_the_uwsgi_allow_list(tmp_path: Path) -> None:
    # A container's health check reads it from 127.0.0.1, where --uwsgi-allow-from often names
    # only the network nginx comes from: the container was unhealthy for ever, serving fine.
    from uwsgiapp.config import make_config
    from uwsgiapp.supervisor.boot import bind_stats

    config = make_config(app="a:app", stats="127.0.0.1:0", uwsgi_allow_from=("10.0.0.0/8",))
    server = bind_stats(config)
    assert server is not None
    server.snapshot = sample
    with running(server):
        assert json.loads(read_all(server.address))["pid"] == 4000


def test_stats_allow_from_admits_its_peers_and_not_the_uwsgi_allow_lists() -> None:
    # A Prometheus scraper on another network than nginx's: it may read the stats, not speak
    # uwsgi; nginx's network may speak uwsgi, not read the stats.
    from uwsgiapp.config import make_config
    from uwsgiapp.config.netopts import stats_peers

    config = make_config(
        app="a:app",
        stats="127.0.0.1:0",
        uwsgi_allow_from=("10.0.0.0/8",),
        stats_allow_from=("192.168.7.0/24",),
    )
    peers = stats_peers(config)
    assert peers.allows("192.168.7.9") and peers.allows("127.0.0.1") and peers.allows("::1")
    assert not peers.allows("10.1.2.3")
    unset = stats_peers(
        make_config(app="a:app", stats="127.0.0.1:0", uwsgi_allow_from=("10.0.0.0/8",))
    )
    assert unset.allows("10.1.2.3") and unset.allows("127.0.0.1")
    assert not unset.allows("192.168.7.9")
    blank = make_config(app="a:app", stats="127.0.0.1:0", stats_allow_from=(" ",))
    assert stats_peers(blank).allows("127.0.0.1") and not stats_peers(blank).allows("10.1.2.3")


@pytest.mark.parametrize(
    ("values", "said"),
    [
        ({"stats_allow_from": ("10.0.0.0/8",)}, "needs --stats ADDR"),
        ({"stats": "127.0.0.1:0", "stats_allow_from": ("10.0.0.0/33",)}, "10.0.0.0/33"),
        ({"stats": "/run/st.sock", "stats_allow_from": ("10.0.0.1",)}, "--chmod-socket"),
    ],
)
def test_a_bad_stats_allow_from_names_the_option(values: dict[str, Any], said: str) -> None:
    from uwsgiapp.config import ConfigError, make_config

    with pytest.raises(ConfigError) as caught:
        make_config(app="a:app", **values)
    assert caught.value.option == "stats_allow_from" and said in str(caught.value)


def test_a_snapshot_per_poll_shared_by_the_connections_it_accepts() -> None:
    calls = []

    def snap() -> ServerStats:
        calls.append(1)
        return server_stats(worker(1, len(calls)))

    server = StatsServer("127.0.0.1:0", snapshot=snap)
    try:
        seen = []
        for _ in range(2):
            sock = _connect(server.address)
            server.poll(1)
            seen.append(json.loads(_recv_all(sock))["workers"][0]["requests"])
            sock.close()
        assert seen == [1, 2]
        # a burst accepted by one poll costs one snapshot, not one per connection
        burst = [_connect(server.address) for _ in range(5)]
        server.poll(1)
        assert {json.loads(_recv_all(s))["workers"][0]["requests"] for s in burst} == {3}
        for sock in burst:
            sock.close()
        server.poll(0)
        assert len(calls) == 3
    finally:
        server.close()


def test_a_failing_snapshot_closes_the_client_and_the_server_lives_on() -> None:
    state = {"fail": True}

    def snap() -> ServerStats:
        if state["fail"]:
            raise RuntimeError("boom")
        return sample()

    server = StatsServer("127.0.0.1:0", snapshot=snap)
    try:
        sock = _connect(server.address)
        server.poll(1)
        assert _recv_all(sock) == b""
        sock.close()
        state["fail"] = False
        sock = _connect(server.address)
        server.poll(1)
        assert json.loads(_recv_all(sock))["version"] == "0.1.0"
        sock.close()
    finally:
        server.close()


def test_http_routes_json_and_metrics(sockdir: str) -> None:
    path = os.path.join(sockdir, "h.sock")
    with running(StatsServer(path, http=True, snapshot=sample)):
        raw = read_all(path, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 OK\r\n")
        assert b"Content-Type: application/json" in head
        assert json.loads(body) == json.loads(render_json(sample()))

        raw = read_all(path, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")
        head, _, body = raw.partition(b"\r\n\r\n")
        assert b"Content-Type: text/plain; version=0.0.4" in head
        names = {f.name for f in text_string_to_metric_families(body.decode())}
        assert "uwsgiapp_requests" in names

        raw = read_all(path, b"HEAD /metrics HTTP/1.0\r\n\r\n")
        assert raw.startswith(b"HTTP/1.0 200 OK") and raw.endswith(b"\r\n\r\n")

        # Another path is a 404 (uWSGI answers any with the document): a Kubernetes probe of
        # /healthz, /readyz or /health/ passed on that 200 while no worker accepted.
        for other in (b"/whatever", b"/healthz", b"/health/", b"/Health", b"//"):
            raw = read_all(path, b"GET " + other + b" HTTP/1.1\r\n\r\n")
            assert raw.startswith(b"HTTP/1.0 404 Not Found\r\n"), (other, raw)
        raw = read_all(path, b"HEAD /healthz HTTP/1.1\r\n\r\n")  # its head, no body
        assert raw.startswith(b"HTTP/1.0 404 Not Found\r\n") and raw.endswith(b"\r\n\r\n")
        assert b"Content-Length: " in raw and b"not found" not in raw
        for method in (b"POST", b"DELETE"):
            for target in (b"/", b"/health", b"/metrics"):
                raw = read_all(path, method + b" " + target + b" HTTP/1.1\r\n\r\n")
                assert raw.startswith(b"HTTP/1.0 405 Method Not Allowed\r\n"), (target, raw)
                assert b"\r\nAllow: GET, HEAD\r\n" in raw.partition(b"\r\n\r\n")[0]


def test_http_headers_sent_after_the_answer_are_drained_not_reset() -> None:
    with running(StatsServer("127.0.0.1:0", http=True, snapshot=sample)) as server:
        sock = _connect(server.address)
        sock.sendall(b"GET / HTTP/1.1\r\n")
        time.sleep(0.2)  # the answer is written before the headers arrive
        sock.sendall(b"Host: x\r\nUser-Agent: test\r\n" + b"X-Pad: y\r\n" * 200 + b"\r\n")
        raw = _recv_all(sock)  # a reset would raise ConnectionResetError here
        sock.close()
        assert json.loads(raw.partition(b"\r\n\r\n")[2])["pid"] == 4000


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03garbage\r\n",  # a TLS hello
        b"hello there\n",
        b"GET\r\n",
        b"get / HTTP/1.1\r\n",
        b"GET /" + b"a" * 10_000 + b" HTTP/1.1\r\n",  # over the request-line cap
        b"X" * 100_000,  # huge, no newline at all
    ],
)
def test_http_garbage_and_huge_requests_get_400_or_close(request_bytes: bytes) -> None:
    with running(StatsServer("127.0.0.1:0", http=True, snapshot=sample)) as server:
        sock = _connect(server.address)
        try:
            sock.sendall(request_bytes)
            raw = _recv_all(sock)
        except (ConnectionResetError, BrokenPipeError):
            raw = b""
        finally:
            sock.close()
        assert raw == b"" or raw.startswith(b"HTTP/1.0 400 Bad Request\r\n")
        assert (
            json.loads(
                read_all(server.address, b"GET / HTTP/1.0\r\n\r\n").partition(b"\r\n\r\n")[2]
            )["pid"]
            == 4000
        )


def test_silent_http_client_is_dropped_after_the_timeout_without_blocking() -> None:
    server = StatsServer("127.0.0.1:0", http=True, snapshot=sample, timeout=0.3)
    try:
        silent = _connect(server.address)
        assert _timed_poll(server) < PROMPT  # accepts it, waits for nothing
        assert server.clients == 1
        # meanwhile another client is answered
        other = _connect(server.address)
        other.sendall(b"GET / HTTP/1.0\r\n\r\n")
        _pump(server, time.monotonic() + 0.1)
        assert _recv_all(other).startswith(b"HTTP/1.0 200 OK")
        other.close()
        timeout = server.next_timeout()
        assert timeout is not None and timeout <= 0.3
        _pump(server, time.monotonic() + 0.5)
        assert server.clients == 0 and server.dropped == 1
        assert silent.recv(10) == b""  # we closed it
        silent.close()
    finally:
        server.close()


def test_slow_reader_never_blocks_and_is_dropped_on_time() -> None:
    # ~3 MB of JSON: far more than the socket buffers take without the peer reading.
    big = server_stats(*(worker(i, i) for i in range(1, 3001)))
    # A poll that renders the document takes as long as rendering it (0.2 s on a busy
    # machine here): "prompt" is that plus the usual bound; blocked on the slow reader it
    # would take the client's whole life, which is longer.
    start = time.monotonic()
    render_json(big)
    prompt = PROMPT + 2 * (time.monotonic() - start)
    life = 3 * prompt
    server = StatsServer("127.0.0.1:0", snapshot=lambda: big, timeout=life)
    try:
        slow = socket.socket()
        slow.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        slow.connect(server.address)
        assert _timed_poll(server) < prompt
        assert server.clients == 1  # its answer is only partly written
        slow.recv(1000)  # reads a little, then nothing more
        # a normal client is served in full while the slow one hangs on
        fast = _connect(server.address)
        fast.setblocking(False)
        received = bytearray()
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            assert _timed_poll(server, 0.01) < prompt
            try:
                data = fast.recv(1 << 20)
            except BlockingIOError:
                continue
            if not data:
                break
            received += data
        assert json.loads(received)["workers"][-1]["requests"] == 3000
        fast.close()
        _pump(server, time.monotonic() + life + 0.2)
        assert server.clients == 0 and server.dropped == 1
        slow.close()
    finally:
        server.close()


def test_a_thousand_connections_are_answered_or_closed_and_the_loop_stays_prompt() -> None:
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 1200:
        pytest.skip(f"needs 1200 file descriptors, the limit is {soft}")
    server = StatsServer(
        "127.0.0.1:0", http=True, snapshot=sample, timeout=0.5, max_clients=64, backlog=1024
    )
    clients: list[socket.socket] = []
    try:
        slowest = 0.0
        most = 0
        for i in range(1000):
            sock = socket.socket()
            sock.setblocking(False)
            sock.connect_ex(server.address)
            clients.append(sock)
            if i % 50 == 49:
                slowest = max(slowest, _timed_poll(server))
                most = max(most, server.clients)
        end = time.monotonic() + 1.5
        while time.monotonic() < end:
            slowest = max(slowest, _timed_poll(server, 0.02))
        assert slowest < PROMPT
        assert server.clients == 0  # every silent one dropped on time, the rest at accept
        assert server.rejected + server.dropped == 1000  # (the oldest silent ones make room)
        assert most <= 64  # the cap held
        for sock in clients:  # each was closed by us: EOF or reset, never left open
            sock.setblocking(True)
            sock.settimeout(2)
            with contextlib.suppress(ConnectionResetError):
                assert sock.recv(10) == b""
        assert (
            json.loads(
                read_all_polled(server, b"GET / HTTP/1.0\r\n\r\n").partition(b"\r\n\r\n")[2]
            )["pid"]
            == 4000
        )
    finally:
        for sock in clients:
            sock.close()
        server.close()


def read_all_polled(server: StatsServer, request: bytes) -> bytes:
    """One request against a server polled from this thread."""
    sock = socket.socket()
    sock.connect(server.address)
    sock.sendall(request)
    sock.setblocking(False)
    out = bytearray()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        server.poll(0.01)
        try:
            data = sock.recv(65536)
        except BlockingIOError:
            continue
        if not data:
            break
        out += data
    sock.close()
    return bytes(out)


def test_plain_mode_ignores_what_the_client_sends() -> None:
    with running(StatsServer("127.0.0.1:0", snapshot=sample)) as server:
        raw = read_all(server.address, b"GET /metrics HTTP/1.0\r\n\r\n")
        assert json.loads(raw)["pid"] == 4000


def test_fileno_is_readable_when_there_is_work() -> None:
    server = StatsServer("127.0.0.1:0", snapshot=sample)
    try:
        fd = server.fileno()
        assert select.select([fd], [], [], 0)[0] == []
        sock = _connect(server.address)
        assert select.select([fd], [], [], 2)[0] == [fd]
        server.on_readable()
        assert json.loads(_recv_all(sock))["pid"] == 4000
        sock.close()
        server.on_readable()
        assert server.next_timeout() is None
    finally:
        server.close()


def test_unix_socket_on_a_busy_path_is_refused(sockdir: str) -> None:
    from uwsgiapp.server.listeners import ListenerError

    path = os.path.join(sockdir, "s.sock")
    with StatsServer(path, snapshot=sample), pytest.raises(ListenerError):
        StatsServer(path, snapshot=sample)


def test_close_after_fork_leaves_the_masters_socket(sockdir: str) -> None:
    path = os.path.join(sockdir, "s.sock")
    server = StatsServer(path, snapshot=sample)
    try:
        pid = os.fork()
        if pid == 0:  # the "worker"
            server.close_after_fork()
            os._exit(0)
        os.waitpid(pid, 0)
        assert os.path.exists(path)
        sock = _connect(path)
        server.poll(1)
        assert json.loads(_recv_all(sock))["pid"] == 4000
        sock.close()
    finally:
        server.close()


def test_silent_connections_at_the_cap_make_room_for_a_real_request() -> None:
    # 64 connections that send nothing held every slot: each health check (--stats-http's
    # /health, Docker's and Kubernetes' probes) was refused until they timed out.
    server = StatsServer("127.0.0.1:0", http=True, snapshot=sample, timeout=30, max_clients=64)
    idle: list[socket.socket] = []
    try:
        for _ in range(64):
            idle.append(socket.create_connection(server.address))
            _timed_poll(server)
        assert server.clients == 64
        for _ in range(3):
            answer = read_all_polled(server, b"GET /health HTTP/1.0\r\n\r\n")
            assert answer.startswith(b"HTTP/1.0 200") or answer.startswith(b"HTTP/1.1 200"), answer
        assert server.clients <= 64 and server.rejected == 0
    finally:
        for sock in idle:
            sock.close()
        server.close()


def test_answered_connections_that_never_close_make_room_for_the_next_reader(
    sockdir: str,
) -> None:
    # Plain JSON is written on connect: 64 connections that read nothing and never close
    # lingered a second each, and only clients still reading their request could make room,
    # so 140 such connections a second kept every health check and uwsgitop refused.
    path = os.path.join(sockdir, "stats.sock")
    server = StatsServer(path, snapshot=sample, timeout=30, linger=30, max_clients=64)
    held: list[socket.socket] = []
    try:
        for _ in range(64):
            held.append(socket.socket(socket.AF_UNIX))
            held[-1].connect(path)
            _timed_poll(server)
        assert server.clients == 64
        for _ in range(3):
            reader = socket.socket(socket.AF_UNIX)
            reader.connect(path)
            reader.settimeout(5)
            _pump(server, time.monotonic() + 0.1)
            assert json.loads(_recv_all(reader))["workers"], "no document for a real reader"
            reader.close()
        assert server.clients <= 64 and server.rejected == 0
    finally:
        for sock in held:
            sock.close()
        server.close()
