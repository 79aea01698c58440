"""The worker's counters in its status slot, the master's snapshot built from them, and the
accept-queue lengths the master reads from the kernel."""

from __future__ import annotations

import os
import socket
import tempfile
from pathlib import Path

import pytest

from uwsgiapp.server.sockdiag import SockDiag, parse_reply
from uwsgiapp.stats.model import DURATION_BOUNDS, SocketStats
from uwsgiapp.supervisor.actions import WorkerRecord, WorkerState
from uwsgiapp.supervisor.observe import Inputs, Observer, snapshot, socket_stats
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.status import SLOT_SIZE, StatusTable, count_requests


def test_recorder_counts_classes_bytes_time_and_buckets() -> None:
    table = StatusTable(2)
    record = table.hooks(1, 42).recorder()
    record({}, "200 OK", 100, 0.001)
    record({}, "201 Created", 50, 0.003)
    record({}, "404 Not Found", 10, 0.02)
    record({}, "500 Internal Server Error", 5, 3.0)
    record({}, "-", 0, 0.5)  # the client left before a status line
    c = table.counters(1)
    assert c.requests == 5
    assert c.classes == (1, 0, 2, 0, 1, 1)
    assert c.tx == 165
    assert c.running_time == pytest.approx(3_524_000, abs=2)
    expected = [0] * (len(DURATION_BOUNDS) + 1)
    for seconds in (0.001, 0.003, 0.02, 3.0, 0.5):
        expected[sum(1 for b in DURATION_BOUNDS if b < seconds)] += 1
    assert list(c.histogram) == expected
    assert table.counters(0).requests == 0  # the neighbour's slot is untouched


def test_counters_survive_a_new_process_in_the_slot_and_readiness_still_works() -> None:
    table = StatusTable(1)
    table.hooks(0, 10).recorder()({}, "200 OK", 1, 0.0)
    table.reset(0, 11)
    writer = table.hooks(0, 11)
    assert not table.read(0).ready_for(11)
    writer.ready()
    writer.begin()
    assert table.read(0).request_start > 0
    writer.end(1)
    assert table.read(0).ready_for(11) and table.read(0).requests == 1
    assert table.counters(0).requests == 1
    assert SLOT_SIZE % 64 == 0


def test_exception_counter_and_chained_access_log() -> None:
    table = StatusTable(1)
    seen: list[str] = []
    record = table.hooks(0, 1).recorder(lambda env, status, sent, sec: seen.append(status))
    record({}, "302 Found", 3, 0.0)
    table.hooks(0, 1).exception_counter()()
    assert seen == ["302 Found"]
    c = table.counters(0)
    assert c.exceptions == 1 and c.classes[3] == 1


def test_count_requests_wires_the_responder_through_a_real_request() -> None:
    from uwsgiapp.config import make_config
    from uwsgiapp.supervisor.boot import build_handler
    from uwsgiproto import build_request

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        if environ["PATH_INFO"] == "/boom":
            raise RuntimeError("boom")
        start_response("404 Not Found", [("Content-Length", "2")])
        return [b"no"]

    handler = build_handler(app, make_config(app="x:y"))
    table = StatusTable(1)
    count_requests(handler, table.hooks(0, os.getpid()))
    for path in ("/", "/boom"):
        client, server = socket.socketpair()
        client.sendall(
            build_request(
                {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1"}
            )
        )
        handler.handle(server.detach(), "test")
        reply = client.recv(65536)
        client.close()
        assert reply.startswith(b"HTTP/1.1 404" if path == "/" else b"HTTP/1.1 500")
    c = table.counters(0)
    assert (c.requests, c.exceptions, c.classes[4], c.classes[5]) == (2, 1, 1, 1)
    assert c.tx > 0


def test_snapshot_is_built_from_slots_history_and_sockets() -> None:
    table = StatusTable(4)
    observer = Observer()
    observer.spawned(0, 1000.0, 0)
    table.reset(0, 100)
    rec = table.hooks(0, 100).recorder()
    for _ in range(3):
        rec({}, "200 OK", 10, 0.002)
    # worker id 0 respawned: 3 requests carried over, 2 since
    observer.spawned(0, 2000.0, table.counters(0).requests)
    table.reset(0, 101)
    writer = table.hooks(0, 101)
    writer.ready()
    rec = writer.recorder()
    rec({}, "200 OK", 10, 0.002)
    rec({}, "500 Internal Server Error", 10, 0.002)
    writer.begin()
    observer.spawned(1, 2500.0, 0)
    observer.spawned(2, 2600.0, 0)  # its process is gone: a "cheap" row keeps its counts
    table.hooks(2, 103).recorder()({}, "404 Not Found", 1, 0.0)
    records = [
        WorkerRecord(0, 101, 0, 0.0, WorkerState.READY),
        WorkerRecord(1, 102, 0, 0.0, WorkerState.BOOTING),
    ]
    sockets = (SocketStats(name="a", queue=2, max_queue=8), SocketStats(name="b", queue=5))
    stats = snapshot(
        Inputs(
            pid=7,
            records=records,
            status=table.read,
            counters=table.counters,
            observer=observer,
            harakiris={0: 1},
            sockets=sockets,
            memory=lambda pid: (pid * 4096, pid * 8192),
        )
    )
    w0, w1 = stats.workers[:2]
    assert (w0.id, w0.pid, w0.requests, w0.delta_requests) == (1, 101, 5, 2)
    assert (w0.respawn_count, w0.last_spawn, w0.harakiri_count) == (2, 2000, 1)
    assert w0.status == "busy" and w0.accepting and w0.cores[0].in_request
    assert w0.statuses.c2xx == 4 and w0.statuses.c5xx == 1 and w0.tx == 50
    assert w0.avg_rt == w0.running_time // 5 and w0.durations.count == 5
    assert (w0.rss, w0.vsz) == (101 * 4096, 101 * 8192)
    assert (w1.id, w1.status, w1.accepting, w1.respawn_count) == (2, "idle", False, 1)
    w2 = stats.workers[2]
    assert (w2.id, w2.pid, w2.status, w2.accepting, w2.requests) == (3, 0, "cheap", False, 1)
    assert (w2.rss, w2.delta_requests, w2.statuses.c4xx) == (0, 0, 1)
    assert stats.listen_queue == 5 and stats.load == 5 and stats.requests == 6
    observer.check_queues((SocketStats(name="a", queue=8, max_queue=8), *sockets))
    assert observer.listen_queue_errors == 1


def test_policy_counts_harakiri_kills_by_worker_id() -> None:
    from uwsgiapp.supervisor.status import WorkerStatus

    policy = Policy(workers=1, harakiri=1.0, slots=4)
    policy.start()
    policy.spawned(0, 0, 500, 0.0)
    policy.on_tick(1.0, 100.0, lambda wid: WorkerStatus(500, 2, 0.0, 0))
    policy.on_tick(2.0, 103.0, lambda wid: WorkerStatus(500, 2, 100.0, 0))
    assert policy.harakiris == {0: 1}


def test_sockdiag_reads_unix_and_tcp_accept_queues() -> None:
    diag = SockDiag()
    with tempfile.TemporaryDirectory() as tmp:
        path = str(Path(tmp) / "s.sock")
        lis = socket.socket(socket.AF_UNIX)
        lis.bind(path)
        lis.listen(8)
        tcp = socket.socket()
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(8)
        clients: list[socket.socket] = []
        try:
            if diag.queue(lis) is None:
                pytest.skip("no sock_diag for unix sockets on this kernel")
            assert diag.queue(lis) == 0 and diag.queue(tcp) == 0
            for _ in range(3):
                c = socket.socket(socket.AF_UNIX)
                c.connect(path)
                clients.append(c)
            clients.append(socket.create_connection(tcp.getsockname()))
            assert diag.queue(lis) == 3 and diag.queue(tcp) == 1
            stats = socket_stats([("u", lis), ("t", tcp)], 8, diag.queue)
            assert [s.queue for s in stats] == [3, 1]
        finally:
            for c in clients:
                c.close()
            lis.close()
            tcp.close()
            diag.close()


def test_sockdiag_parse_reply_rejects_errors_and_other_inodes() -> None:
    assert parse_reply(b"", 1) is None
    error = (20).to_bytes(4, "little") + (2).to_bytes(2, "little") + bytes(14)
    assert parse_reply(error, 1) is None
