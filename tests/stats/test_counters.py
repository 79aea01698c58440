"""The worker's counters in its status slot, the master's snapshot built from them, and the
accept-queue lengths the master reads from the kernel."""

from __future__ import annotations

import itertools
import os
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from uwsgiapp.server.exchange import Exchange, Responder
from uwsgiapp.server.sockdiag import SockDiag, parse_reply
from uwsgiapp.stats.model import DURATION_BOUNDS, AppStats, ServerStats, SocketStats, WorkerStats
from uwsgiapp.supervisor import status as status_module
from uwsgiapp.supervisor.actions import WorkerRecord, WorkerState
from uwsgiapp.supervisor.observe import Inputs, Observer, accepts, snapshot, socket_stats
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.status import (
    SLOT_SIZE,
    STATE_BOOTING,
    STATE_LEAVING,
    STATE_READY,
    CountingSlotWriter,
    StatusTable,
    WorkerStatus,
    count_requests,
    count_thread_requests,
)


def _never_called(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    raise AssertionError("the counters only read the Responder's last exchange")


def served(
    writer: CountingSlotWriter,
    responder: Responder,
    status: Any,
    sent: int,
    seconds: float,
    monkeypatch: pytest.MonkeyPatch,
    requests: int = 1,
    head_sent: bool = True,
    written: bool = True,
) -> None:
    """One request through the hooks as the worker loop runs them, lasting ``seconds``
    (``written`` false: the head's write failed, the client gone)."""
    clock = itertools.chain((1000.0, 1000.0 + seconds), itertools.repeat(2000.0))
    monkeypatch.setattr(status_module, "_clock", lambda: next(clock))
    writer.begin()
    exchange = Exchange(-1, "HTTP/1.1", 1.0)
    exchange.status, exchange.sent = status, sent
    exchange.head_sent = head_sent and status is not None
    exchange.head_size = 40 if exchange.head_sent and written else 0
    responder.last = exchange
    writer.end(requests)


def counting(table: StatusTable, slot: int, pid: int) -> tuple[CountingSlotWriter, Responder]:
    responder = Responder(_never_called, limit_post=0, socket_timeout=1.0)
    base = table.hooks(slot, pid)
    return CountingSlotWriter(base._mem, base._offset, pid, responder), responder


def test_hooks_count_classes_bytes_time_and_buckets(monkeypatch: pytest.MonkeyPatch) -> None:
    table = StatusTable(2)
    writer, responder = counting(table, 1, 42)
    cases = [
        ("200 OK", 100, 0.001),
        ("201 Created", 50, 0.003),
        ("404 Not Found", 10, 0.02),
        ("500 Internal Server Error", 5, 3.0),
        (None, 0, 0.5),  # the client left before a status line
        ("999 Odd", 0, 0.004),
        ("", 0, 0.004),
    ]
    for n, (status, sent, seconds) in enumerate(cases, 1):
        served(writer, responder, status, sent, seconds, monkeypatch, n)
        assert responder.last is None and table.read(1).request_start == 0.0
        assert table.read(1).requests == n
    c = table.counters(1)
    assert c.requests == 7
    assert c.classes == (3, 0, 2, 0, 1, 1)
    assert c.tx == 165
    assert c.running_time == pytest.approx(3_532_000, abs=2)
    expected = [0] * (len(DURATION_BOUNDS) + 1)
    for _, _, seconds in cases:
        expected[sum(1 for b in DURATION_BOUNDS if b < seconds)] += 1
    assert list(c.histogram) == expected
    assert table.counters(0).requests == 0  # the neighbour's slot is untouched


def test_a_step_without_a_response_counts_nothing_and_a_clock_step_back_counts_zero(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = StatusTable(1)
    writer, responder = counting(table, 0, 7)
    writer.begin()
    writer.end(0)  # a parked connection, a ping, a packet refused before the app
    assert table.counters(0).requests == 0 and table.read(0).request_start == 0.0
    served(writer, responder, "200 OK", 1, -30.0, monkeypatch)
    c = table.counters(0)
    assert c.requests == 1 and c.running == 0.0 and c.histogram[0] == 1


def test_a_status_the_app_gave_but_never_sent_is_counted_in_no_class(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # start_response(200) (an int: HTTPStatus too), then its client left before the head:
    # the counter read status[:1] of the int (TypeError; compiled, at the str | None call).
    table = StatusTable(1)
    writer, responder = counting(table, 0, 10)
    served(writer, responder, 200, 0, 0.2, monkeypatch, head_sent=False)
    served(writer, responder, "503 Unavailable", 5, 0.2, monkeypatch, 2)
    c = table.counters(0)
    assert (c.requests, c.classes[2], c.classes[5]) == (2, 0, 1)


def test_a_head_whose_write_failed_is_counted_in_no_class(monkeypatch: pytest.MonkeyPatch) -> None:
    # nginx gave up before the app answered (its client left; nginx logs 499): the head's
    # write failed, yet the request was counted a 2xx, fast or slow.
    table = StatusTable(1)
    writer, responder = counting(table, 0, 10)
    served(writer, responder, "200 OK", 0, 0.001, monkeypatch, 1, written=False)
    served(writer, responder, "200 OK", 0, 0.2, monkeypatch, 2, written=False)
    served(writer, responder, "200 OK", 45, 0.001, monkeypatch, 3)
    c = table.counters(0)
    assert (c.requests, c.classes[0], c.classes[2]) == (3, 2, 1)


def test_the_threads_counter_counts_a_head_whose_write_failed_in_no_class() -> None:
    from uwsgiapp.config import make_config
    from uwsgiapp.supervisor.boot import build_handler
    from uwsgiproto import build_request

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    handler = build_handler(app, make_config(app="x:y"))
    table = StatusTable(1)
    count_thread_requests(handler, table.hooks(0, os.getpid()))
    for gone in (True, False):
        client, server = socket.socketpair()
        client.sendall(build_request({"REQUEST_METHOD": "GET", "SERVER_PROTOCOL": "HTTP/1.1"}))
        if gone:
            client.close()
        handler.handle(server.detach(), "test")
        if not gone:
            assert client.recv(65536)
            client.close()
    c = table.counters(0)
    assert (c.classes[0], c.classes[2]) == (1, 1)


def test_a_parked_request_answered_408_is_logged_but_not_counted(tmp_path: Path) -> None:
    # Its access line, yes; the stats with --threads counted it as a 4xx of --socket-timeout
    # seconds (no request counted), and without --threads not at all.
    from uwsgiapp.config import make_config
    from uwsgiapp.server.logs import make_access_log
    from uwsgiapp.supervisor.boot import build_handler
    from uwsgiproto import build_request

    def app(environ, start_response):  # type: ignore[no-untyped-def]
        raise AssertionError("never called: its body never came whole")

    handler = build_handler(app, make_config(app="x:y", socket_timeout=1))
    handler.access_line = handler.responder.access_log = make_access_log(
        "combined", str(tmp_path / "a.log")
    )
    table = StatusTable(1)
    count_thread_requests(handler, table.hooks(0, os.getpid()))
    head = {"REQUEST_METHOD": "POST", "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": "1000"}
    client, server = socket.socketpair()
    client.sendall(build_request(head, b"x" * 1000)[:-500])  # half the small body: parked
    pending = handler.begin(server.detach(), "test")
    assert pending is not None and pending.decoder is None
    handler.expire(pending)  # --socket-timeout passed: a 408
    assert client.recv(100).startswith(b"HTTP/1.1 408")
    client.close()
    assert " 408 " in (tmp_path / "a.log").read_text()
    c = table.counters(0)
    assert (c.classes, c.running_time) == ((0, 0, 0, 0, 0, 0), 0)


def test_counters_survive_a_new_process_in_the_slot_and_readiness_still_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    table = StatusTable(1)
    writer, responder = counting(table, 0, 10)
    served(writer, responder, "200 OK", 7, 0.2, monkeypatch)
    writer.count_exception()
    table.reset(0, 11)
    assert not table.read(0).ready_for(11)
    writer, responder = counting(table, 0, 11)  # the next process carries the totals on
    writer.ready()
    writer.begin()
    assert table.read(0).request_start > 0
    writer.end(0)
    served(writer, responder, "302 Found", 3, 0.3, monkeypatch, 1)
    assert table.read(0).ready_for(11) and table.read(0).requests == 1
    c = table.counters(0)
    assert (c.requests, c.tx, c.exceptions, c.classes[2], c.classes[3]) == (2, 10, 1, 1, 1)
    assert c.running == pytest.approx(0.5)
    assert SLOT_SIZE % 64 == 0


def test_a_new_process_in_a_slot_starts_without_the_previous_ones_beat() -> None:
    # A READY read beside the old process's beat (minutes old) had the master kill the new
    # worker as stalled at its first tick.
    table = StatusTable(1)
    table.reset(0, 10)
    table.hooks(0, 10).ready()
    assert table.read(0).beat > 0
    table.reset(0, 11)
    assert table.read(0).beat == 0.0


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
    hooks = count_requests(handler, table.hooks(0, os.getpid()))
    packets = [
        build_request({"REQUEST_METHOD": "GET", "PATH_INFO": p, "SERVER_PROTOCOL": "HTTP/1.1"})
        for p in ("/", "/boom")
    ]
    # Refused before the app (a 400 for a bad CONTENT_LENGTH), then a ping: counted, not counted.
    packets.append(
        build_request(
            {"REQUEST_METHOD": "POST", "SERVER_PROTOCOL": "HTTP/1.1", "CONTENT_LENGTH": "x1"}
        )
    )
    packets.append(build_request({}, modifier1=100))
    for n, packet in enumerate(packets, 1):
        client, server = socket.socketpair()
        client.sendall(packet)
        hooks.begin()
        handler.handle(server.detach(), "test")
        hooks.end(n)
        assert client.recv(65536)
        client.close()
    c = table.counters(0)
    assert (c.requests, c.exceptions, c.classes[4], c.classes[5]) == (3, 1, 2, 1)
    assert c.tx > 0 and table.read(0).requests == 4


def table_inputs(
    table: StatusTable,
    observer: Observer,
    records: list[WorkerRecord],
    sockets: tuple[SocketStats, ...] = (),
    **more: Any,
) -> Inputs:
    """A snapshot's inputs read from ``table``, as the arbiter gives them (worker 1 had a
    harakiri)."""
    return Inputs(
        pid=7,
        records=records,
        status=table.read,
        counters=table.counters,
        observer=observer,
        harakiris={0: 1},
        sockets=sockets,
        **more,
    )


def test_snapshot_is_built_from_slots_history_and_sockets(monkeypatch: pytest.MonkeyPatch) -> None:
    table = StatusTable(4)
    observer = Observer()
    observer.spawned(0, 1000.0, 0)
    table.reset(0, 100)
    writer, responder = counting(table, 0, 100)
    for _ in range(3):
        served(writer, responder, "200 OK", 10, 0.002, monkeypatch)
    # worker id 0 respawned: 3 requests carried over, 2 since
    observer.spawned(0, 2000.0, table.counters(0).requests)
    table.reset(0, 101)
    writer, responder = counting(table, 0, 101)
    writer.ready()
    served(writer, responder, "200 OK", 10, 0.002, monkeypatch)
    served(writer, responder, "500 Internal Server Error", 10, 0.002, monkeypatch)
    writer.begin()
    observer.spawned(1, 2500.0, 0)
    observer.spawned(2, 2600.0, 0)  # its process is gone: a "cheap" row keeps its counts
    served(*counting(table, 2, 103), "404 Not Found", 1, 0.0, monkeypatch)
    records = [
        WorkerRecord(0, 101, 0, 0.0, WorkerState.READY),
        WorkerRecord(1, 102, 0, 0.0, WorkerState.BOOTING),
    ]
    sockets = (SocketStats(name="a", queue=2, max_queue=8), SocketStats(name="b", queue=5))
    stats = snapshot(
        table_inputs(table, observer, records, sockets, memory=lambda pid: (pid * 4096, pid * 8192))
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
    assert (w2.rss, w2.delta_requests, w2.statuses.c4xx, w2.apps) == (0, 0, 1, ())
    assert stats.listen_queue == 5 and stats.load == 5 and stats.requests == 6
    observer.check_queues((SocketStats(name="a", queue=8, max_queue=8), *sockets))
    assert observer.listen_queue_errors == 1


def test_a_number_of_several_slots_is_one_row_with_their_sums(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Worker 1 ran in slot 0, then (a reload) in slot 2 while the old process still exits:
    # one row, the serving process's, with both slots' counters; worker 2 in slot 1.
    table = StatusTable(4)
    observer = Observer()
    for wid, pid, wall, count in ((0, 100, 1000.0, 3), (1, 101, 1000.0, 1), (2, 102, 2000.0, 2)):
        observer.spawned(wid, wall, 0)
        table.reset(wid, pid)
        writer, responder = counting(table, wid, pid)
        writer.ready()
        for _ in range(count):
            served(writer, responder, "200 OK", 10, 0.002, monkeypatch)
    records = [
        WorkerRecord(0, 100, 0, 0.0, WorkerState.STOPPING, number=1),
        WorkerRecord(1, 101, 1, 1.0, WorkerState.READY, number=2),
        WorkerRecord(2, 102, 1, 2.0, WorkerState.READY, number=1),
    ]
    stats = snapshot(
        table_inputs(
            table, observer, records, memory=lambda pid: (pid, pid), numbers={0: 1, 1: 2, 2: 1}
        )
    )
    w1, w2 = stats.workers
    assert (w1.id, w1.pid, w1.requests, w1.delta_requests, w1.tx) == (1, 102, 5, 2, 50)
    assert (w1.respawn_count, w1.last_spawn, w1.harakiri_count, w1.accepting) == (2, 2000, 1, True)
    assert (w2.id, w2.pid, w2.requests, w2.respawn_count) == (2, 101, 1, 1)
    assert stats.requests == 6
    # The one app, as uWSGI lists it (a uwsgi exporter's app series come from here).
    assert w1.apps == (AppStats(requests=5, exceptions=0),)
    assert w1.status == "idle"
    # The leaving process of number 1 (a reload's old worker) is still in a request: the row
    # says busy (its requests in flight were nowhere in the stats).
    table.hooks(0, 100).begin()
    again = snapshot(
        table_inputs(
            table, observer, records, memory=lambda pid: (pid, pid), numbers={0: 1, 1: 2, 2: 1}
        )
    )
    assert [(w.id, w.pid, w.status) for w in again.workers] == [(1, 102, "busy"), (2, 101, "idle")]
    (core,) = again.workers[0].cores  # and its one core in that request (it said idle)
    assert core.in_request and 0 < core.request_start <= time.time()


def test_the_busy_threads_of_a_numbers_leaving_process_are_its_rows_cores() -> None:
    # --threads 2, a HUP (or a thread's max-requests): worker 1's old process (slot 0) is
    # still in a request on core 1, its new one (slot 2) idle. The row said "busy" with every
    # core idle: dashboards showed no request in flight during every reload.
    table = StatusTable(4, cores=2)
    observer = Observer()
    for wid, pid in ((0, 100), (2, 102)):
        observer.spawned(wid, 1000.0, 0, table.reset(wid, pid))
    table.hooks(2, 102).ready()
    table.core(0, 1).begin()
    records = [
        WorkerRecord(0, 100, 0, 0.0, WorkerState.RETIRING, number=1),
        WorkerRecord(2, 102, 1, 2.0, WorkerState.READY, number=1),
    ]
    inputs = table_inputs(table, observer, records, cores=table.read_cores, numbers={0: 1, 2: 1})
    (w1,) = snapshot(inputs).workers
    assert (w1.pid, w1.status, w1.accepting) == (102, "busy", True)
    assert [(c.id, c.in_request) for c in w1.cores] == [(0, False), (1, True)]
    table.core(2, 1).begin()  # the new process's own request on that core comes first
    (w1,) = snapshot(inputs).workers
    assert [c.in_request for c in w1.cores] == [False, True]


def test_thread_cores_carry_their_counts_on_across_the_numbers_processes() -> None:
    # --threads 2: worker 1 ran in slot 0 (3 + 1 requests), was recycled there (1 more on core
    # 0), then reloaded into slot 2 (1 on core 1, one in a request on core 0). As uWSGI's
    # cores, and as the worker's own count does, each core's count carries on.
    table = StatusTable(4, cores=2)
    observer = Observer()

    def start(wid: int, pid: int, served: tuple[int, int]) -> None:
        observer.spawned(wid, 1000.0, 0, table.reset(wid, pid))
        for core, count in enumerate(served):
            for n in range(1, count + 1):
                table.core(wid, core).end(n)

    start(0, 100, (3, 1))
    start(0, 101, (1, 0))
    start(2, 102, (0, 1))
    table.core(2, 0).begin()
    records = [WorkerRecord(2, 102, 1, 2.0, WorkerState.READY, number=1)]
    stats = snapshot(
        table_inputs(table, observer, records, cores=table.read_cores, numbers={0: 1, 2: 1})
    )
    (w1,) = stats.workers
    assert [(c.requests, c.in_request) for c in w1.cores] == [(4, True), (2, False)]
    assert observer.history[0].core_requests == (3, 1)
    assert table.read(0).requests == 1  # a process's own count (--reload-on-rss reads it)


def test_a_thread_that_could_not_start_is_neither_a_core_nor_capacity_nor_a_request() -> None:
    # --threads 4 at a thread limit: the worker serves with 3. Its fourth core looked like an
    # idle thread: the stats said 4 threads, cheaper counted room that was not there.
    table = StatusTable(2, cores=4)
    observer = Observer()
    observer.spawned(0, 1000.0, 0, table.reset(0, 100))
    table.core(0, 3).absent()
    table.core(0, 1).begin()
    st = table.read(0)
    assert (st.threads, st.busy_cores, st.in_requests) == (3, 1, 1)
    assert 0 < st.request_start <= time.time()  # the one request's start, not the mark
    records = [WorkerRecord(0, 100, 1, 2.0, WorkerState.READY, number=1)]
    (w1,) = snapshot(table_inputs(table, observer, records, cores=table.read_cores)).workers
    assert [(c.id, c.in_request) for c in w1.cores] == [(0, False), (1, True), (2, False)]
    table.core(0, 1).end(1)
    assert table.read(0).request_start == 0.0  # idle: no harakiri for the mark's "start"
    table.reset(0, 101)  # its replacement starts with every core
    assert table.read(0).threads == 4


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
            # The listener takes the handshake's last ACK in a softirq, maybe just after
            # connect() returned; a unix connect queues before it returns.
            deadline = time.monotonic() + 5
            while diag.queue(tcp) != 1 and time.monotonic() < deadline:
                time.sleep(0.01)
            assert diag.queue(lis) == 3 and diag.queue(tcp) == 1
            stats = socket_stats([("u", lis), ("t", tcp)], 8, diag.queue)
            assert [s.queue for s in stats] == [3, 1]
        finally:
            for c in clients:
                c.close()
            lis.close()
            tcp.close()


def test_sockdiag_says_unknown_for_a_listener_the_master_closed_at_term() -> None:
    # A graceful stop closes the master's copies of the sockets; stats may still be asked for.
    diag = SockDiag()
    with tempfile.TemporaryDirectory() as tmp:
        lis = socket.socket(socket.AF_UNIX)
        lis.bind(str(Path(tmp) / "s.sock"))
        lis.listen(8)
        tcp = socket.socket()
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(8)
        lis.close()
        tcp.close()
        assert diag.queue(lis) is None and diag.queue(tcp) is None
        assert not diag.unavailable  # a closed socket is not a kernel without sock_diag
        stats = socket_stats([("u", lis), ("t", tcp)], 8, diag.queue)
        assert [s.queue for s in stats] == [0, 0]


def test_sockdiag_parse_reply_rejects_errors_and_other_inodes() -> None:
    assert parse_reply(b"", 1) is None
    error = (20).to_bytes(4, "little") + (2).to_bytes(2, "little") + bytes(14)
    assert parse_reply(error, 1) is None


def test_avg_rt_is_the_mean_of_the_requests_since_the_previous_read() -> None:
    def read(observer: Observer, *workers: tuple[int, int, int]) -> list[int]:
        stats = ServerStats(
            version="x",
            pid=1,
            uid=0,
            gid=0,
            cwd="/",
            workers=tuple(
                WorkerStats(id=i, pid=i, requests=n, running_time=t, avg_rt=t // n if n else 0)
                for i, n, t in workers
            ),
        )
        return [w.avg_rt for w in observer.recent(stats).workers]

    observer = Observer()
    # The first read: the lifetime mean (a week of 1 ms requests).
    assert read(observer, (1, 1000, 1_000_000), (2, 0, 0)) == [1000, 0]
    # Ten slow ones since: 1 s each, which the lifetime mean (10 ms) would hide.
    assert read(observer, (1, 1010, 11_000_000), (2, 2, 300)) == [1_000_000, 150]
    # Nothing served since: the last value stays, as uWSGI's does.
    assert read(observer, (1, 1010, 11_000_000), (2, 2, 300)) == [1_000_000, 150]
    assert read(observer, (1, 1012, 11_000_100), (2, 2, 300)) == [50, 150]


@pytest.mark.parametrize("cores", [1, 3])
def test_the_masters_harakiri_mark_is_its_slots_alone_and_a_new_process_starts_without_it(
    cores: int,
) -> None:
    # A worker tells the master's harakiri USR2 from one sent by hand by this mark.
    table = StatusTable(2, cores=cores)
    for slot, pid in ((0, 10), (1, 11)):
        table.reset(slot, pid)
    first, second = table.hooks(0, 10), table.hooks(1, 11)
    assert not first.harakiri_marked() and not second.harakiri_marked()
    table.mark_harakiri(1)
    assert second.harakiri_marked() and not first.harakiri_marked()
    table.reset(1, 12)
    assert not table.hooks(1, 12).harakiri_marked()


def test_a_worker_accepts_as_its_slot_says_not_as_the_masters_last_look() -> None:
    # The master's view lags by up to a tick: with two workers recycling often (max-requests),
    # a health check read between a fork and the master's next look said "0 workers accept"
    # (503) though the new workers were serving.
    def rec(state: WorkerState) -> WorkerRecord:
        return WorkerRecord(0, 100, 0, 0.0, state, number=1)

    ready, leaving, booting = (
        WorkerStatus(100, s, 0.0, 0) for s in (STATE_READY, STATE_LEAVING, STATE_BOOTING)
    )
    assert accepts(rec(WorkerState.BOOTING), ready)  # forked a moment ago, serving already
    assert accepts(rec(WorkerState.READY), ready)
    assert not accepts(rec(WorkerState.READY), leaving)  # at --max-requests: no longer accepts
    assert not accepts(rec(WorkerState.BOOTING), booting)  # still importing (--lazy-apps)
    assert not accepts(rec(WorkerState.STOPPING), ready)  # told to go
    assert not accepts(rec(WorkerState.READY), WorkerStatus(101, STATE_READY, 0.0, 0))  # not its
