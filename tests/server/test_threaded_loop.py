"""ThreadedWorker.run in this process: a real unix listener, request threads, no master.

As in test_worker_loop, the worker runs on a thread of the test with a wake-up pipe of its own
(signal handlers are the main thread's).
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from server import test_worker_loop as loop_tests
from server.test_worker_loop import GUARD, answer, app, connect, make_handler, wait_for

from uwsgiapp.server import threaded
from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.threaded import ThreadedWorker
from uwsgiproto import build_request

listener = loop_tests.listener  # the same fixture: a real unix listener
SLOW = build_request({"REQUEST_METHOD": "GET", "PATH_INFO": "/slow"})


def slow_app(release: threading.Event) -> Callable[..., list[bytes]]:
    """An app whose ``/slow`` waits for ``release``; every other path answers at once."""

    def app(environ: dict[str, object], start_response: Callable[..., object]) -> list[bytes]:
        if environ["PATH_INFO"] == "/slow":
            release.wait(GUARD)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"ok"]

    return app


def threaded_worker(listener: Listener, application: Any = app, **kwargs: Any) -> ThreadedWorker:
    """A :class:`ThreadedWorker` of ``application`` on ``listener`` (``kwargs``: its own)."""
    return ThreadedWorker(make_handler(application, GUARD), [listener], **kwargs)


@contextlib.contextmanager
def running(
    worker: ThreadedWorker, release: threading.Event | None = None
) -> Iterator[threading.Thread]:
    """``worker.run()`` on a thread with a wake-up pipe of its own; at the end ``release``
    set (a request of :func:`slow_app` left waiting) and the pipe closed."""
    worker._wake_r, worker._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        yield runner
    finally:
        if release is not None:
            release.set()
        os.close(worker._wake_r)
        os.close(worker._wake_w)


def test_a_recycle_ends_the_worker_though_its_threads_linger_after_saying_so(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The main thread woke on a thread's "ended", saw it still alive (it was returning) and
    # slept a whole tick: each max-requests recycle with --threads took up to a second, its
    # replacement forked only then (p99 0.9 s under load).
    monkeypatch.setattr(threaded, "IDLE_TICK", 3600.0)  # a missed wake-up: the guard fails it
    said = ThreadedWorker.thread_ended

    def ended_then_linger(self: ThreadedWorker, *index: int) -> None:
        said(self, *index)
        time.sleep(0.3)

    monkeypatch.setattr(ThreadedWorker, "thread_ended", ended_then_linger)
    worker = threaded_worker(listener, threads=2, max_requests=1)
    with running(worker) as runner:
        assert answer(connect(listener)).endswith(b"ok")
        runner.join(GUARD)
        assert not runner.is_alive(), "ThreadedWorker.run() did not return"


def test_a_recycle_says_it_leaves_while_a_thread_still_serves(listener: Listener) -> None:
    # Said only once no thread served, the master started the replacement after the slowest
    # request (a worker of 2 gone for as long; the stats said it accepted). The master gives
    # that request no deadline (test_policy: a recycle cuts no request).
    release = threading.Event()
    said: list[bool] = []
    worker = threaded_worker(
        listener, slow_app(release), threads=2, max_requests=1, on_leaving=lambda: said.append(True)
    )
    with running(worker, release) as runner:
        slow = connect(listener, SLOW)
        wait_for(lambda: bool(worker._busy()))
        assert answer(connect(listener)).endswith(b"ok")  # the first done: max-requests
        wait_for(lambda: said == [True])  # /slow is still being served
        assert worker._busy()
        release.set()
        assert answer(slow).endswith(b"ok")
        runner.join(GUARD)
        assert not runner.is_alive()


@pytest.mark.parametrize(("age", "cut"), [(5.0, True), (1.0, False)])
def test_a_harakiri_cuts_the_oldest_request_only_if_it_is_past_the_limit(
    listener: Listener, monkeypatch: pytest.MonkeyPatch, age: float, cut: bool
) -> None:
    # The stuck request may end between the master's look and its USR2: the next oldest (a
    # second old) got the cut and a 502.
    worker = threaded_worker(listener, threads=2, harakiri=3.0)
    raised: list[int] = []
    monkeypatch.setattr(threaded, "_raise_in", raised.append)
    ident = threading.get_ident()
    monkeypatch.setattr(worker, "_busy", lambda: [(time.time() - age, 0, ident)])
    worker.dump_stuck(12, None)
    assert raised == ([ident] if cut else [])
    assert not worker.alive  # it accepts no more either way: a new worker serves


def test_a_request_thread_counts_the_workers_requests_for_an_accept_failure(
    listener: Listener,
) -> None:
    # EMFILE before a worker's first request waits (a fresh worker would be as short); after,
    # the app leaked them and the worker recycles. With --threads a thread that had served
    # nothing said "before this worker's first request" in a worker that had served thousands.
    worker = threaded_worker(listener, threads=3)
    first, second, third = worker.loops
    assert [loop.served() for loop in worker.loops] == [0, 0, 0]
    first.requests, second.requests = 5, 2
    assert third.requests == 0 and third.served() == 7
    for loop in worker.loops:
        os.close(loop._wake_r)
        os.close(loop._wake_w)


def test_a_term_drain_closes_the_listener_in_the_last_thread_done_with_its_queue(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The main thread closed the listeners once every thread had ended: a wake-up after the
    # last accept found the queue empty. On a loaded machine that took milliseconds, and the
    # connections nginx made meanwhile were reset with their POSTs (5 to 7 in a stop). The
    # last thread to find the queue empty closes it; one still serving keeps it open for
    # what queues meanwhile, which it then serves.
    release = threading.Event()

    open_when_ended: list[bool] = []
    said = ThreadedWorker.thread_ended

    def ended(self: ThreadedWorker, index: int) -> None:
        open_when_ended.append(listener.sock.fileno() >= 0)
        said(self, index)

    monkeypatch.setattr(ThreadedWorker, "thread_ended", ended)
    worker = threaded_worker(listener, slow_app(release), threads=2)
    with running(worker, release) as runner:
        slow = connect(listener, SLOW)
        wait_for(lambda: bool(worker._busy()))
        worker._on_graceful(15, None)  # TERM, as its handler (no master: no late refusal)
        worker._wake()
        wait_for(lambda: len(worker._ended) == 1)  # the idle thread drained and left
        assert listener.sock.fileno() >= 0  # the busy one has not drained yet
        queued = connect(listener)  # waits in the queue for the busy thread
        release.set()
        assert answer(slow).endswith(b"ok")
        assert answer(queued).endswith(b"ok")
        runner.join(GUARD)
        assert not runner.is_alive()
        assert open_when_ended == [True, False]


def test_the_worker_says_how_many_threads_serve(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # At a thread limit it serves with those that started (--request-titles counts on it).
    start = threaded.start_threads
    monkeypatch.setattr(threaded, "start_threads", lambda threads, label: start(threads[:1], label))
    worker = threaded_worker(listener, threads=3, max_requests=1)
    assert worker.serving == 3  # until it knows
    with running(worker) as runner:
        assert answer(connect(listener)).endswith(b"ok")
        runner.join(GUARD)
        assert not runner.is_alive()
        assert worker.serving == 1


def test_a_thread_that_drains_twice_is_counted_once(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # TERM, the master gone, and TERM again (systemd's) make a thread with parked connections
    # drain again: counted twice, it closed the listener while a sibling in a request had not
    # drained it and still had it in its epoll (whose stale entry then woke its waits, under a
    # file descriptor number a new connection may take).
    release = threading.Event()

    calls: list[object] = []
    said = ThreadedWorker.drained

    def drained(self: ThreadedWorker, *args: Any) -> bool:
        calls.append(args)
        return said(self, *args)

    monkeypatch.setattr(ThreadedWorker, "drained", drained)
    worker = threaded_worker(listener, slow_app(release), threads=2)
    with running(worker, release) as runner, contextlib.ExitStack() as clients:
        slow = clients.enter_context(connect(listener, SLOW))
        wait_for(lambda: bool(worker._busy()))
        idle = next(loop for loop in worker.loops if not loop.core.started)
        silent = clients.enter_context(connect(listener, b""))  # parked: outlives its drain
        wait_for(lambda: bool(idle.parked))
        worker._on_graceful(15, None)
        worker._wake()
        wait_for(lambda: len(calls) == 1)
        worker.drain_backlog = False  # as a master gone once did (it dropped the drain)
        worker._wake()
        wait_for(lambda: worker._told == (False, False))
        worker._on_graceful(15, None)
        worker._wake()
        wait_for(lambda: len(calls) == 2)
        assert listener.sock.fileno() >= 0  # the busy thread has not drained it yet
        release.set()
        assert answer(slow).endswith(b"ok")
        silent.close()
        runner.join(GUARD)
        assert not runner.is_alive()
        assert listener.sock.fileno() < 0
