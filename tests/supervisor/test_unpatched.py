"""The server's own threads and events on the real ``_thread`` (uwsgiapp.unpatched), and what
they leave for the checks that name the app's threads."""

from __future__ import annotations

import errno
import logging
import os
import socket
import threading
import time

import pytest

from uwsgiapp.server import sockdiag, stopsignals
from uwsgiapp.server.sockdiag import SockDiag
from uwsgiapp.supervisor import workerexit
from uwsgiapp.supervisor.importthreads import say_import_threads
from uwsgiapp.supervisor.workerexit import QUICK_EXIT_WORK_LEAST
from uwsgiapp.unpatched import OsEvent, OsThread


def test_a_thread_of_ours_that_logs_during_an_import_is_not_the_apps(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A raw thread that logs becomes a threading._DummyThread (the record asks for its name):
    # the stats thread of a HUP's re-import, logging a refused peer, was warned of as a
    # thread the re-import started ("Dummy-1").
    before = threading.enumerate()
    logged, leave = OsEvent(), OsEvent()

    def serve() -> None:
        logging.getLogger("uwsgiapp.test").warning("a line from our thread")
        logged.set()
        leave.wait(10)

    thread = OsThread("stats during the re-import", serve)
    try:
        assert logged.wait(10)
        assert len(threading.enumerate()) == len(before) + 1  # the dummy is there
        with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
            say_import_threads(before, "the re-import")
    finally:
        leave.set()
        assert thread.join(10)
    assert not [r for r in caplog.records if r.name == "uwsgiapp.error"], caplog.text


def test_an_event_set_twice_or_while_two_wait_wakes_both_and_raises_nothing() -> None:
    event, woke = OsEvent(), []
    waiters = [OsThread(f"waiter {n}", lambda: woke.append(event.wait(10))) for n in range(2)]
    time.sleep(0.05)
    assert not event.is_set() and not event.wait(0.01)
    event.set()
    event.set()  # a second set (a stop after a stop): it released a lock not held
    assert all(waiter.join(10) for waiter in waiters)
    assert woke == [True, True] and event.is_set() and event.wait(0)


def test_a_thread_of_ours_that_fails_is_named_on_stderr(
    capfd: pytest.CaptureFixture[str],
) -> None:
    def fail() -> None:
        raise ValueError("broken")

    assert OsThread("log-master", fail).join(10)
    err = capfd.readouterr().err
    assert "uwsgiapp: its log-master thread failed:" in err and "ValueError: broken" in err


@pytest.mark.parametrize(
    ("began_ago", "share"), [(None, 1.5), (0.0, 1.5), (1.0, 0.5), (2.0, QUICK_EXIT_WORK_LEAST)]
)
def test_a_quick_stops_exit_work_has_what_the_unwinding_left(
    monkeypatch: pytest.MonkeyPatch, began_ago: float | None, share: float
) -> None:
    # With --threads the cut requests' unwinding (up to 1 s) came first and the atexit
    # handlers then had 1.5 s more: past the master's SIGKILL, 2 s after its SIGINT.
    began = None if began_ago is None else time.monotonic() - began_ago
    monkeypatch.setattr(stopsignals, "_quick_began", began)
    assert workerexit._quick_share() == pytest.approx(share, abs=0.02)


@pytest.mark.parametrize(
    ("code", "for_good"),
    [(errno.EMFILE, False), (errno.ENOBUFS, False), (errno.EAFNOSUPPORT, True)],
)
def test_a_failed_queue_question_turns_the_answers_off_only_where_there_are_none(
    monkeypatch: pytest.MonkeyPatch, code: int, for_good: bool
) -> None:
    # A descriptor limit for a moment turned the unix listen queue into 0 for the master's life
    # (and the queue warning and cheaper's backlog checks off with it).
    def refused(*args: object, **kwargs: object) -> socket.socket:
        raise OSError(code, os.strerror(code))

    diag = SockDiag()
    with socket.socket(socket.AF_UNIX) as listener:
        monkeypatch.setattr(sockdiag.socket, "socket", refused)
        assert diag.unix_queue(listener) is None
    assert diag.unavailable is for_good
