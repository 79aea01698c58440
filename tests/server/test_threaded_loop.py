"""ThreadedWorker.run in this process: a real unix listener, request threads, no master.

As in test_worker_loop, the worker runs on a thread of the test with a wake-up pipe of its own
(signal handlers are the main thread's).
"""

from __future__ import annotations

import os
import threading
import time

import pytest
from server import test_worker_loop as loop_tests
from server.test_worker_loop import GUARD, answer, app, connect

from uwsgiapp.server import threaded
from uwsgiapp.server.intake import Handler
from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.threaded import ThreadedWorker
from uwsgiapp.wsgi.environ import EnvironSettings
from uwsgiproto import Limits

listener = loop_tests.listener  # the same fixture: a real unix listener


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
    handler = Handler(
        app, limits=Limits(), settings=EnvironSettings(), socket_timeout=GUARD, access_log=None
    )
    worker = ThreadedWorker(handler, [listener], threads=2, max_requests=1)
    worker._wake_r, worker._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    runner = threading.Thread(target=worker.run, daemon=True)
    runner.start()
    try:
        assert answer(connect(listener)).endswith(b"ok")
        runner.join(GUARD)
        assert not runner.is_alive(), "ThreadedWorker.run() did not return"
    finally:
        os.close(worker._wake_r)
        os.close(worker._wake_w)
