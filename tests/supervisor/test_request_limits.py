"""A request's own harakiri in the status slot, and how the master judges it: pure functions
and the shared memory itself (no process)."""

from __future__ import annotations

import math
import os
import threading
import time

import pytest

from uwsgiapp import harakiri, set_harakiri
from uwsgiapp.supervisor.status import StatusTable, WorkerStatus


def _status(start: float, *limits: tuple[float, float]) -> WorkerStatus:
    return WorkerStatus(pid=1, state=2, request_start=start, requests=0, limits=limits)


def test_without_its_own_a_request_is_judged_by_harakiri() -> None:
    assert _status(100.0).past_harakiri(102.0, 1.0) == (100.0, 1.0)
    assert _status(100.0).past_harakiri(100.5, 1.0) is None
    assert _status(100.0).past_harakiri(1e12, 0.0) is None  # no --harakiri
    assert _status(0.0).past_harakiri(1e12, 1.0) is None  # idle


def test_its_own_bound_replaces_harakiri_either_way() -> None:
    assert _status(100.0, (100.0, math.inf)).past_harakiri(1e12, 1.0) is None
    assert _status(100.0, (100.0, 5.0)).past_harakiri(104.0, 1.0) is None
    assert _status(100.0, (100.0, 5.0)).past_harakiri(106.0, 1.0) == (100.0, 5.0)
    assert _status(100.0, (100.0, 0.5)).past_harakiri(100.6, 0.0) == (100.0, 0.5)


def test_with_threads_the_request_furthest_past_its_bound_is_the_stuck_one() -> None:
    # The oldest is a stream with none; of the two past theirs, the one due first.
    cores = ((100.0, math.inf), (103.0, 0.0), (104.0, 0.5))
    assert _status(100.0, *cores).past_harakiri(104.6, 2.0) == (104.0, 0.5)
    assert _status(100.0, *cores).past_harakiri(106.0, 2.0) == (104.0, 0.5)  # due at 104.5
    assert _status(100.0, *cores).past_harakiri(106.0, 1.0) == (103.0, 1.0)  # due at 104
    assert _status(100.0, *cores[:1]).past_harakiri(1e12, 2.0) is None


def test_the_slot_holds_a_requests_own_bound_until_the_next_request_begins() -> None:
    table = StatusTable(2)
    table.reset(1, 42)
    slot = table.hooks(1, 42)
    assert not slot.set_harakiri(5.0)  # idle: nothing to bound
    slot.begin()
    start = table.read(1).request_start
    assert slot.set_harakiri(0.0)
    assert table.read(1).limits == ((start, math.inf),)
    assert slot.set_harakiri(5.0)
    ((_, own),) = table.read(1).limits
    assert 5.0 <= own < 6.0  # seconds from its start: what ran already, and 5 more
    slot.end(1)
    assert table.read(1).limits == ()  # idle
    slot.begin()
    assert table.read(1).limits == ()  # the next request: --harakiri again
    assert table.read(0).limits == ()  # another worker's slot untouched


def test_each_core_holds_its_own_bound() -> None:
    table = StatusTable(1, cores=3)
    table.reset(0, 42)
    cores = [table.core(0, i) for i in range(3)]
    for core in cores[:2]:
        core.begin()
    assert cores[1].set_harakiri(0.0) and not cores[2].set_harakiri(1.0)
    st = table.read(0)
    assert st.busy_cores == 2 and [own for _, own in st.limits] == [0.0, math.inf]
    assert table.read_cores(0)[1][0] == cores[1].started  # the (start, count) view unchanged
    cores[1].end(1)
    cores[1].begin()
    assert cores[1].limit == 0.0 and [own for _, own in table.read(0).limits] == [0.0, 0.0]


@pytest.mark.parametrize("bad", [-1, math.nan, math.inf, "5"])
def test_set_harakiri_refuses_what_is_not_seconds(bad: object) -> None:
    with pytest.raises(ValueError, match="set_harakiri: seconds must be 0"):
        set_harakiri(bad)  # type: ignore[arg-type]


def test_set_harakiri_outside_a_worker_does_nothing() -> None:
    assert set_harakiri(5) is False  # this test's thread serves no request
    seen: list[float] = []

    def serve() -> None:
        harakiri.serve_in_this_thread(lambda s: seen.append(s) or True)
        seen.append(float(set_harakiri(3)))

    thread = threading.Thread(target=serve)
    thread.start()
    thread.join()
    assert seen == [3.0, 1.0]
    assert set_harakiri(5) is False  # only the registered thread's requests


def test_own_limit_counts_from_the_requests_start() -> None:
    began = time.time() - 2.0
    assert 6.9 < harakiri.own_limit(began, 5.0) < 7.5
    assert harakiri.own_limit(began, 0.0) == math.inf
    assert harakiri.harakiri_limit(0.0, 0.0) == math.inf
    assert harakiri.harakiri_limit(0.0, 3.0) == 3.0


def test_a_process_the_app_forks_sets_no_harakiri_of_the_workers() -> None:
    # The child inherited the worker's setters: its set_harakiri(0) wrote into the worker's
    # slot, and the worker's later requests had no harakiri.
    set_in: list[float] = []
    harakiri.serve_in_this_thread(lambda s: set_in.append(s) or True)
    try:
        pid = os.fork()
        if pid == 0:
            os._exit(0 if set_harakiri(0) is False and not set_in else 1)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        assert set_harakiri(2) is True and set_in == [2.0]  # the worker's own still works
    finally:
        harakiri._setters.pop(threading.get_ident(), None)
