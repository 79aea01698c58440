"""Worker.run in this process: a real unix listener, clients on threads, no master, no nginx.

The loop runs in a thread (signal handlers can only be installed in the main thread, so the
tests give it a wake-up pipe of their own and call its signal handlers directly, as the kernel
would). Each test ends the loop through the worker's own stop conditions: max-requests, a
recycle callback, the TERM/HUP flags, a vanished master.
"""

from __future__ import annotations

import errno
import logging
import os
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from uwsgiapp.server import decisions
from uwsgiapp.server import worker as worker_module
from uwsgiapp.server.intake import Handler
from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.masterflags import MasterFlags
from uwsgiapp.server.worker import Worker
from uwsgiapp.wsgi.environ import EnvironSettings
from uwsgiproto import Limits, build_request

#: Upper bound for anything a test waits on: a broken loop fails the test, never hangs it.
GUARD = 10.0
REQUEST = build_request(
    {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_PROTOCOL": "HTTP/1.1"}, b""
)


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Length", "2")])
    return [b"ok"]


class Hooks:
    """Records what the worker reports around each connection."""

    def __init__(self) -> None:
        self.begun = 0
        self.ended: list[int] = []

    def begin(self) -> None:
        self.begun += 1

    def end(self, requests: int) -> None:
        self.ended.append(requests)


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[Listener]:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    path = str(tmp_path / "w.sock")
    sock.bind(path)
    sock.listen(64)
    try:
        yield Listener(sock=sock, spec=path)
    finally:
        sock.close()


def make_handler(application: Any = app, timeout: float = GUARD / 2) -> Handler:
    """The request handler of ``application``, defaults for the rest, no access log."""
    return Handler(
        application,
        limits=Limits(),
        settings=EnvironSettings(),
        socket_timeout=timeout,
        access_log=None,
    )


def make_worker(
    listener: Listener, *, timeout: float = GUARD / 2, application: Any = app, **kwargs: Any
) -> Worker:
    worker = Worker(make_handler(application, timeout), [listener], **kwargs)
    # What install_signals would do, minus the signal dispositions (main thread only).
    worker._wake_r, worker._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    return worker


class Running:
    """``worker.run()`` on a thread; ``stop()`` waits for it and closes the wake-up pipe."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.error: list[BaseException] = []
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        try:
            self.worker.run()
        except BaseException as exc:
            self.error.append(exc)

    def signal(self, handler: Callable[[int, Any], None], signum: int) -> None:
        """Deliver a signal as the kernel would: run the handler, then write the wake-up fd."""
        handler(signum, None)
        os.write(self.worker._wake_w, b"\0")

    def join(self) -> None:
        self.thread.join(GUARD)
        assert not self.thread.is_alive(), "Worker.run() did not return"
        os.close(self.worker._wake_r)
        os.close(self.worker._wake_w)


def connect(listener: Listener, data: bytes = REQUEST) -> socket.socket:
    client = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    client.settimeout(GUARD)
    client.connect(listener.spec)
    if data:
        client.sendall(data)
    return client


def answer(client: socket.socket) -> bytes:
    parts = []
    while data := client.recv(65536):
        parts.append(data)
    client.close()
    return b"".join(parts)


def from_the_queue(listener: Listener) -> bytes:
    """Accept one queued connection as another worker would; what its client sent."""
    listener.sock.settimeout(GUARD)
    conn, _ = listener.sock.accept()
    with conn:
        conn.settimeout(GUARD)
        return conn.recv(len(REQUEST) + 1)


def wait_for(condition: Callable[[], bool]) -> None:
    deadline = time.monotonic() + GUARD
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_serves_requests_until_max_requests_then_returns(listener: Listener) -> None:
    hooks = Hooks()
    worker = make_worker(listener, max_requests=5, hooks=hooks)
    # Each request is read in place, never parked (which would add a begin/end pair), however
    # long this thread is held up between its connect and its send.
    worker.handler.first_bytes_wait = GUARD
    running = Running(worker)
    for _ in range(5):
        assert answer(connect(listener)) == b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
    running.join()
    assert not running.error
    assert worker.requests == 5 and not worker.alive
    assert hooks.begun == 5 and hooks.ended == [1, 2, 3, 4, 5]


def test_recycling_leaves_the_rest_of_the_queue_to_other_workers(listener: Listener) -> None:
    clients = [connect(listener) for _ in range(5)]  # all queued before the loop starts
    worker = make_worker(listener, max_requests=3)
    Running(worker).join()
    assert worker.requests == 3
    answers = [answer(c) for c in clients[:3]]
    assert all(a.endswith(b"ok") for a in answers)
    # The other two are still in the listen queue, untouched: another worker accepts them.
    assert [from_the_queue(listener) for _ in clients[3:]] == [REQUEST, REQUEST]


def test_should_recycle_stops_after_the_request_it_says_so(listener: Listener) -> None:
    asked: list[int] = []
    worker = make_worker(listener)
    worker.should_recycle = lambda: asked.append(worker.requests) or len(asked) >= 2
    running = Running(worker)
    assert answer(connect(listener)).endswith(b"ok")
    assert answer(connect(listener)).endswith(b"ok")
    running.join()
    assert asked == [1, 2] and worker.requests == 2


@pytest.fixture
def signals() -> Iterator[None]:
    """Restore the dispositions and wake-up fd that ``Worker.install_signals`` replaces."""
    names = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1)
    saved = {signum: signal.getsignal(signum) for signum in (*names, signal.SIGCHLD)}
    wakeup = signal.set_wakeup_fd(-1)
    signal.set_wakeup_fd(wakeup)
    try:
        yield
    finally:
        signal.set_wakeup_fd(wakeup)
        for signum, handler in saved.items():
            signal.signal(signum, handler)


def run_in_main_thread(worker: Worker, client: Callable[[], None]) -> list[BaseException]:
    """``worker.run()`` here, with its real signal handlers, while ``client`` runs on a thread.

    Returns what the client raised (an assertion failing there fails the test).
    """
    errors: list[BaseException] = []

    def drive() -> None:
        try:
            client()
        except BaseException as exc:
            errors.append(exc)
            os.kill(os.getpid(), signal.SIGINT)  # don't leave the loop waiting

    thread = threading.Thread(target=drive, daemon=True)
    os.close(worker._wake_r)
    os.close(worker._wake_w)
    worker._wake_r = worker._wake_w = -1  # run() installs the real handlers
    thread.start()
    try:
        worker.run()
    finally:
        thread.join(GUARD)
        signal.set_wakeup_fd(-1)
        os.close(worker._wake_r)
        os.close(worker._wake_w)
    assert not thread.is_alive()
    return errors


def wait_parked(worker: Worker, count: int = 1) -> None:
    wait_for(lambda: len(worker.parked) >= count)


@pytest.mark.usefixtures("signals")
def test_term_serves_what_already_waits_then_returns(listener: Listener) -> None:
    queued: list[socket.socket] = []
    term_sent = threading.Event()

    def slow_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        term_sent.wait(GUARD)  # TERM arrives while this request is in the app
        return app(environ, start_response)

    worker = make_worker(listener, application=slow_app)

    def client() -> None:
        first = connect(listener)
        time.sleep(0.05)  # accepted and in the app
        queued.extend(connect(listener) for _ in range(2))
        os.kill(os.getpid(), signal.SIGTERM)
        term_sent.set()
        assert answer(first).endswith(b"ok")

    assert run_in_main_thread(worker, client) == []
    assert [answer(c)[-2:] for c in queued] == [b"ok", b"ok"]
    assert worker.requests == 3


@pytest.mark.usefixtures("signals")
def test_hup_returns_without_serving_the_queue(listener: Listener) -> None:
    worker = make_worker(listener)

    def client() -> None:
        assert answer(connect(listener)).endswith(b"ok")
        os.kill(os.getpid(), signal.SIGHUP)

    assert run_in_main_thread(worker, client) == []
    connect(listener)  # a reloading worker accepts nothing more
    assert from_the_queue(listener) == REQUEST
    assert worker.requests == 1


@pytest.mark.usefixtures("signals")
def test_quick_stop_abandons_parked_connections(listener: Listener) -> None:
    worker = make_worker(listener)
    slow: list[socket.socket] = []

    def client() -> None:
        slow.append(connect(listener, REQUEST[:6]))  # half a head: parked
        wait_parked(worker)
        os.kill(os.getpid(), signal.SIGINT)

    with pytest.raises(SystemExit):
        run_in_main_thread(worker, client)
    assert answer(slow[0]) == b"" and not worker.parked


def test_a_slow_client_is_parked_while_others_are_served(listener: Listener) -> None:
    worker = make_worker(listener, max_requests=3)
    running = Running(worker)
    slow = connect(listener, REQUEST[:6])
    assert answer(connect(listener)).endswith(b"ok")
    assert answer(connect(listener)).endswith(b"ok")
    wait_for(lambda: worker.requests == 2)
    assert len(worker.parked) == 1
    slow.sendall(REQUEST[6:])
    assert answer(slow).endswith(b"ok")
    running.join()
    assert worker.requests == 3 and not worker.parked


def test_a_stopping_worker_finishes_parked_requests_first(listener: Listener) -> None:
    worker = make_worker(listener)
    running = Running(worker)
    slow = connect(listener, REQUEST[:6])
    wait_parked(worker)
    running.signal(worker._on_reload, signal.SIGHUP)
    time.sleep(0.05)
    assert running.thread.is_alive()  # still waiting for the parked client
    slow.sendall(REQUEST[6:])
    assert answer(slow).endswith(b"ok")
    running.join()
    assert worker.requests == 1


def test_a_silent_parked_client_is_closed_after_the_timeout(listener: Listener) -> None:
    worker = make_worker(listener, timeout=0.2, max_requests=1)
    running = Running(worker)
    started = time.monotonic()
    slow = connect(listener, REQUEST[:6])
    assert answer(slow) == b""
    assert 0.15 < time.monotonic() - started < GUARD
    assert not worker.parked
    running.signal(worker._on_reload, signal.SIGHUP)
    running.join()
    assert worker.requests == 0


def test_past_the_parking_cap_a_new_slow_client_is_closed(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(worker_module, "MAX_PARKED", 2)
    worker = make_worker(listener)
    running = Running(worker)
    parked = [connect(listener, REQUEST[:6]) for _ in range(2)]
    wait_parked(worker, 2)
    assert answer(connect(listener, REQUEST[:6])) == b""  # shed at once, no 503 without a head
    for client in parked:
        client.sendall(REQUEST[6:])
        assert answer(client).endswith(b"ok")
    running.signal(worker._on_reload, signal.SIGHUP)
    running.join()
    assert worker.requests == 2


def test_past_the_parking_cap_a_new_connection_displaces_the_client_heard_from_least_recently(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Clients trickling their requests held every place, and nginx's next request (connect,
    # then write) was closed at once: a 502, though the README says it takes a silent one's.
    monkeypatch.setattr(worker_module, "MAX_PARKED", 2)
    worker = make_worker(listener)
    running = Running(worker)
    first = connect(listener, REQUEST[:5])
    wait_parked(worker, 1)
    quiet = connect(listener, REQUEST[:5])
    wait_parked(worker, 2)
    first.sendall(REQUEST[5:6])  # still incomplete, but heard from after the other one
    wait_for(lambda: [p.decoder and p.decoder.buffered for p in worker.parked.values()] == [5, 6])
    nginx = connect(listener, b"")
    quiet.settimeout(GUARD / 4)  # the worker's own timeout (GUARD / 2) would close it too
    assert answer(quiet) == b""  # closed for the new one (no 503 without a head)
    nginx.sendall(REQUEST)
    assert answer(nginx).endswith(b"ok")
    first.sendall(REQUEST[6:])
    assert answer(first).endswith(b"ok")
    running.signal(worker._on_reload, signal.SIGHUP)
    running.join()
    assert worker.requests == 2


def test_a_vanished_master_stops_the_worker(listener: Listener) -> None:
    worker = make_worker(listener, master_pid=os.getppid() + 1_000_000)
    running = Running(worker)
    running.join()  # the first idle wait notices the parent is not the master
    assert worker.requests == 0 and not worker.alive


class CountingSocket(socket.socket):
    """A listening socket that counts the worker's accepts and those that found nothing."""

    accepts = 0
    empty = 0

    def _accept(self) -> tuple[int, Any]:
        self.accepts += 1
        try:
            return super()._accept()  # type: ignore[misc, no-any-return]
        except BlockingIOError:
            self.empty += 1
            raise


class SleepsAfter:
    """Records how many requests a worker had served each time it went to sleep in epoll.

    Wraps the instance's ``_wait``: a wait with a timeout is the idle sleep; the look without
    one (after a request) has been made by then, so a client that connects only after this
    sleep began meets the worker as a light load does, whatever the machine's timing.
    """

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.counts: set[int] = set()
        self.changed = threading.Condition()
        self._wait = worker._wait
        worker._wait = self.wait  # type: ignore[method-assign]

    def wait(self, timeout: float) -> list[Listener]:
        if timeout > 0:
            with self.changed:
                self.counts.add(self.worker.requests)
                self.changed.notify_all()
        return self._wait(timeout)

    def until(self, served: int) -> None:
        """Return once the worker has gone to sleep after serving ``served`` requests."""
        with self.changed:
            assert self.changed.wait_for(lambda: served in self.counts, GUARD), "timed out"


def counting_listener(path: Path) -> Listener:
    sock = CountingSocket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(path))
    sock.listen(64)
    return Listener(sock=sock, spec=str(path))


@pytest.mark.parametrize(
    ("stopped_early", "listener_ready", "burst"),
    [(False, False, False), (False, True, False), (True, False, False), (True, True, True)],
)
def test_accept_burst_only_when_another_connection_waited_at_once(
    stopped_early: bool, listener_ready: bool, burst: bool
) -> None:
    assert decisions.accept_burst(stopped_early, listener_ready) is burst


@pytest.mark.parametrize(
    ("code", "stopping", "the_stop"),
    [
        (errno.EINVAL, True, True),  # the drain's end shut the sockets down
        (errno.EINVAL, False, False),  # serving: the app made the socket unusable
        (errno.EBADF, True, False),
        (errno.EMFILE, True, False),
    ],
)
def test_an_accept_failed_on_sockets_the_stop_shut_down_is_the_stop(
    code: int, stopping: bool, the_stop: bool
) -> None:
    assert decisions.accept_error_is_the_stop(code, stopping) is the_stop


@pytest.mark.parametrize(
    ("code", "served", "recycles"),
    [
        (errno.EMFILE, 3, True),  # the app leaked them: a fresh worker starts with fewer
        (errno.EMFILE, 0, False),  # born short of them: a fresh worker would be too
        (errno.EBADF, 0, True),  # the app closed the listener's descriptor
        (errno.ENFILE, 3, False),  # the whole system: no worker of ours can help
        (errno.ENOMEM, 3, False),
    ],
)
def test_an_accept_failure_recycles_only_where_a_fresh_worker_can_get_past_it(
    code: int, served: int, recycles: bool
) -> None:
    assert (decisions.accept_error_recycles(code, served) is not None) is recycles


def test_one_client_at_a_time_costs_no_empty_accepts(tmp_path: Path) -> None:
    # Light load: an accept that finds the queue empty costs the kernel ~20 times an epoll
    # check, so the worker takes one connection and asks epoll, instead of accepting again.
    listener = counting_listener(tmp_path / "w.sock")
    assert isinstance(listener.sock, CountingSocket)
    with listener.sock:
        requests = 20
        worker = make_worker(listener, max_requests=requests)
        sleeps = SleepsAfter(worker)
        running = Running(worker)
        for served in range(requests):
            sleeps.until(served)
            assert answer(connect(listener)).endswith(b"ok")
        running.join()
        assert not running.error and worker.requests == requests
        # Accepting until EAGAIN made one accept that found nothing per request.
        assert listener.sock.empty == 0
        assert listener.sock.accepts == requests


def test_a_queue_is_served_in_one_run_of_accepts(tmp_path: Path) -> None:
    listener = counting_listener(tmp_path / "w.sock")
    assert isinstance(listener.sock, CountingSocket)
    with listener.sock:
        clients = [connect(listener) for _ in range(6)]  # queued before the loop starts
        worker = make_worker(listener, max_requests=8)
        sleeps = SleepsAfter(worker)
        running = Running(worker)
        assert all(answer(c).endswith(b"ok") for c in clients)
        sleeps.until(6)
        # The queue is empty now: the run of accepts ended with one that found nothing, the
        # loop sleeps in epoll (no further accepts) until the next client.
        assert listener.sock.accepts == 7 and listener.sock.empty == 1
        for _ in range(2):
            assert answer(connect(listener)).endswith(b"ok")
        running.join()
        assert worker.requests == 8 and listener.sock.accepts - listener.sock.empty == 8


def test_an_idle_listener_is_not_accepted_from(tmp_path: Path) -> None:
    busy = counting_listener(tmp_path / "busy.sock")
    idle = counting_listener(tmp_path / "idle.sock")
    assert isinstance(busy.sock, CountingSocket) and isinstance(idle.sock, CountingSocket)
    with busy.sock, idle.sock:
        worker = make_worker(busy, max_requests=10)
        worker.listeners.append(idle)
        running = Running(worker)
        for _ in range(10):
            assert answer(connect(busy)).endswith(b"ok")
        running.join()
        assert worker.requests == 10 and idle.sock.accepts == 0


@pytest.mark.parametrize(("graceful", "drain"), [(30.0, 5.0), (10.0, 5.0), (4.0, 2.0), (0.5, 0.25)])
def test_the_term_drain_is_bounded_by_half_the_graceful_timeout(
    graceful: float, drain: float
) -> None:
    assert decisions.drain_limit(graceful) == drain


@pytest.mark.usefixtures("signals")
def test_term_drains_the_queue_then_closes_the_listener_at_once(listener: Listener) -> None:
    # Not only what was queued at TERM: what queues while the worker finishes its request
    # too. Then its copy of the socket is closed (in a real server no other process holds
    # one any more, and the next connect is refused).
    queued: list[socket.socket] = []
    all_queued = threading.Event()

    def slow_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        all_queued.wait(GUARD)  # connections queue behind the request in hand
        return app(environ, start_response)

    worker = make_worker(listener, application=slow_app)

    def client() -> None:
        first = connect(listener)
        time.sleep(0.05)  # accepted and in the app (or queued: then drained first)
        os.kill(os.getpid(), signal.SIGTERM)
        queued.extend(connect(listener) for _ in range(3))  # after TERM
        all_queued.set()
        assert answer(first).endswith(b"ok")

    assert run_in_main_thread(worker, client) == []
    assert [answer(c)[-2:] for c in queued] == [b"ok"] * 3
    assert worker.requests == 4
    assert listener.sock.fileno() == -1


def test_the_first_worker_out_serves_what_queued_after_its_last_accept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A connection made between the accept that finds the queue empty and the close was reset
    # with the request nginx had sent (a 502 it does not retry for a POST): the first process
    # done draining a TCP socket of a stopping server has it drop new connections, takes what
    # queued, shuts it down for every process, and serves those. Another worker's copy (one
    # still in a long request) kept it listening: connections queued behind that request.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    address = sock.getsockname()
    listener = Listener(sock, f"127.0.0.1:{address[1]}")
    other = sock.dup()  # another worker's copy, in a long request
    flags = MasterFlags()
    flags.publish(False, True)  # the master's TERM (whose copy is closed: this is the worker)
    open_when_served: list[bool] = []

    def noting(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        open_when_served.append(sock.fileno() >= 0)
        return app(environ, start_response)

    worker = make_worker(listener, master_flags=flags, application=noting)
    worker.alive = False
    sock.setblocking(False)  # as run() makes it
    late: list[socket.socket] = []
    batch = worker._accept_batch

    def looked(*args: Any, **kwargs: Any) -> bool:
        more = batch(*args, **kwargs)
        if not late:  # the queue was found empty: nginx connects now
            late.append(socket.create_connection(address, timeout=GUARD))
            late[0].sendall(REQUEST)
        return more

    monkeypatch.setattr(worker, "_accept_batch", looked)
    try:
        worker._drain()
        assert listener.sock.fileno() == -1
        assert answer(late[0]).endswith(b"ok")
        # Closed first: served before, a long request held up the refusal of new connects.
        assert open_when_served == [False]
        with pytest.raises(ConnectionRefusedError):  # though the other copy is still open
            socket.create_connection(address, timeout=GUARD)
    finally:
        for client in late:
            client.close()
        other.close()
        os.close(worker._wake_r)
        os.close(worker._wake_w)


def test_a_socket_another_workers_drain_shut_down_before_this_ones_term_is_the_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # The master publishes the stop, then TERMs its workers one by one: the first one out may
    # shut a TCP socket down before this worker's TERM, whose accept then failed with EINVAL:
    # an ERROR ("did the app close it?") and a recycle.
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)  # as run() makes it
    listener = Listener(sock, f"127.0.0.1:{sock.getsockname()[1]}")
    flags = MasterFlags()
    worker = make_worker(listener, master_flags=flags)
    flags.publish(False, True)
    sock.shutdown(socket.SHUT_RDWR)
    try:
        assert worker._accept_batch(listener) is False
        assert worker.alive  # its TERM is on the way
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    finally:
        os.close(worker._wake_r)
        os.close(worker._wake_w)
        sock.close()


def test_a_second_term_drains_nothing_more_and_logs_nothing(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    # systemd's default stop signals every process of the unit, and the master tells its
    # workers too: a worker may get TERM again after it closed its listeners.
    worker = make_worker(listener)
    worker.alive = False
    listener.sock.setblocking(False)  # as run() makes it
    worker._drain()
    assert listener.sock.fileno() == -1
    worker._drain()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    os.close(worker._wake_r)
    os.close(worker._wake_w)


def test_a_stop_that_comes_with_a_connections_wake_up_serves_that_connection(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # epoll's EPOLLEXCLUSIVE wakes one worker per connection: one that stops (a HUP, a
    # request thread's max-requests) in the same wait and leaves it queued strands it until
    # another connection wakes another worker (at light load, the next request).
    worker = make_worker(listener)
    client = connect(listener)
    real_wait = worker._wait

    def stop_during_the_wait(timeout: float) -> list[Listener]:
        ready = real_wait(timeout)
        if ready:  # the connection's wake-up, and the stop, in one wait
            worker.alive = False
        return ready

    monkeypatch.setattr(worker, "_wait", stop_during_the_wait)
    Running(worker).join()
    assert answer(client).endswith(b"ok")
    assert worker.requests == 1
    connect(listener)  # a later one is left to the other workers
    assert from_the_queue(listener) == REQUEST


def test_a_worker_says_it_leaves_as_it_stops_accepting_not_after_its_parked_requests(
    listener: Listener,
) -> None:
    # The master starts the replacement on that word: out of fds with 150 parked idle
    # connections, nothing accepted for --socket-timeout while the old worker waited them out.
    said: list[int] = []
    worker = make_worker(listener, max_requests=1)
    worker.on_leaving = lambda: said.append(len(worker.parked))
    running = Running(worker)
    slow = connect(listener, REQUEST[:6])
    wait_parked(worker)
    assert answer(connect(listener)).endswith(b"ok")  # the one request max-requests allows
    wait_for(lambda: bool(said))
    assert said == [1] and running.thread.is_alive()  # the parked one is still to be served
    slow.sendall(REQUEST[6:])
    assert answer(slow).endswith(b"ok")
    running.join()
    assert said == [1]  # once


class _ClosedByTheApp(socket.socket):
    """A listening socket whose descriptor the app closed in this worker (the master and the
    other workers still hold it, so epoll still says it is ready)."""

    def _accept(self) -> tuple[int, Any]:
        raise OSError(errno.EBADF, os.strerror(errno.EBADF))


def test_a_listening_socket_the_app_closed_recycles_the_worker(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # It logged the failed accept ten times a second for ever, and served nothing again.
    sock = _ClosedByTheApp(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "w.sock"))
    sock.listen(8)
    listener = Listener(sock=sock, spec=str(tmp_path / "w.sock"))
    worker = make_worker(listener)
    said: list[str] = []
    worker.on_leaving = lambda: said.append("leaving")
    client = connect(listener)
    with caplog.at_level(logging.ERROR, "uwsgiapp.error"):
        Running(worker).join()
    assert said == ["leaving"]
    (line,) = [r.getMessage() for r in caplog.records]
    assert line.endswith(
        "[Errno 9] Bad file descriptor; recycling this worker (did the app close it?)"
    )
    client.close()
    sock.close()


def test_lines_held_back_by_a_flood_are_said_before_the_worker_returns(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    # Past the burst, invalid packets and clients gone mid-request are counted for a line at
    # the window's end: a worker that stopped first took the count with it.
    from uwsgiapp.server import throttle

    worker = make_worker(listener, max_requests=1)
    worker.handler.first_bytes_wait = GUARD
    for _ in range(throttle.INVALID_LOG_BURST + 3):
        worker.handler.invalid.allow("from client: junk")
        worker.handler.gone.allow("client x: gone")
    with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
        running = Running(worker)
        assert answer(connect(listener)).startswith(b"HTTP/1.1 200 OK")
        running.join()
    said = [r.getMessage() for r in caplog.records]
    assert any(m.startswith("3 more invalid uwsgi packets in 10 s") for m in said), said
    assert any(m.startswith("3 more connections gone before their whole request") for m in said)
