"""The stop deadline: what a worker still busy when it passes gets (the policy, driven directly)."""

from __future__ import annotations

import signal

from supervisor.policy_sim import signals_sent, started

from uwsgiapp.supervisor.actions import DUMP_GRACE, QUICK_GRACE, Log, Signal


def test_a_worker_in_a_request_at_its_graceful_deadline_is_cut_then_killed() -> None:
    # SIGINT first: the worker logs the request it cuts and the app's finally blocks run;
    # SIGKILL only if it is still there QUICK_GRACE later.
    sim = started(workers=1, graceful_timeout=5)
    (pid,) = sim.pids()
    sim.busy_since[pid] = 1000.0 + sim.now
    sim.run(sim.policy.on_signal("TERM", sim.now))
    cut = sim.tick(5.0)
    assert signals_sent(cut) == {(pid, signal.SIGINT)}
    (said,) = [a.message for a in cut if isinstance(a, Log)]
    assert said.startswith(
        f"worker 1 (pid {pid}): stop deadline passed in a request (the oldest 5."
    )
    assert not signals_sent(sim.tick(QUICK_GRACE - 0.5))
    assert signals_sent(sim.tick(0.6)) == {(pid, signal.SIGKILL)}
    assert not signals_sent(sim.tick(10.0))  # once


def test_an_idle_worker_at_its_deadline_is_killed_at_once() -> None:
    # Not in a request (stuck in an exit hook, say): a SIGINT would tell nothing.
    sim = started(workers=1, graceful_timeout=5)
    (pid,) = sim.pids()
    sim.run(sim.policy.on_signal("TERM", sim.now))
    assert signals_sent(sim.tick(5.1)) == {(pid, signal.SIGKILL)}


def test_a_quick_stop_is_not_cut_twice() -> None:
    # INT already cut the request: its deadline leaves only SIGKILL; so does a TERM after it.
    sim = started(workers=1, graceful_timeout=30)
    (pid,) = sim.pids()
    sim.busy_since[pid] = 1000.0 + sim.now
    sim.run(sim.policy.on_signal("INT", sim.now))
    sim.run(sim.policy.on_signal("TERM", sim.now))
    assert signals_sent(sim.tick(QUICK_GRACE + 0.1)) == {(pid, signal.SIGKILL)}


def test_a_retired_worker_busy_at_its_deadline_is_cut_too() -> None:
    # HUP: the old generation finishes its requests within --graceful-timeout, as at a stop.
    sim = started(workers=1, graceful_timeout=5)
    (old,) = sim.pids()
    sim.busy_since[old] = 1000.0 + sim.now
    sim.run(sim.policy.on_signal("HUP", sim.now))
    sim.make_all_ready()
    assert (old, signal.SIGHUP) in signals_sent(sim.tick())
    assert (old, signal.SIGINT) in signals_sent(sim.tick(5.0))
    assert (old, signal.SIGKILL) in signals_sent(sim.tick(QUICK_GRACE))


def test_a_harakiri_is_killed_at_its_deadline_not_cut() -> None:
    # The harakiri already dumped the stack (USR2): the next step is the kill.
    sim = started(workers=1, harakiri=3, graceful_timeout=30)
    (pid,) = sim.pids()
    sim.busy_since[pid] = 1000.0 + sim.now
    assert (pid, signal.SIGUSR2) in signals_sent(sim.tick(3.5))
    assert signals_sent(sim.tick(1.1)) == {(pid, signal.SIGKILL)}


def test_a_signal_to_a_worker_reaped_in_the_same_batch_is_not_sent() -> None:
    # Ctrl-C: the master takes its INT before the exits it reaped with it; the SIGINT decided
    # for a worker already reaped must not go out (its pid may be reused by then).
    sim = started(workers=2)
    first, second = sorted(sim.pids())
    actions = sim.policy.on_signal("INT", sim.now)
    sim.policy.on_exit(first, 0, None, sim.now)
    told = [a for a in actions if isinstance(a, Signal) and sim.policy.wanted(a)]
    assert [(a.pid, a.signum) for a in told] == [(second, signal.SIGINT)]


def test_harakiri_still_bounds_the_request_of_a_worker_told_to_go() -> None:
    # HUP (or TERM) with a request stuck: it ran to --graceful-timeout (30 s, a 502 at 32 s)
    # where --harakiri 4 was set; uWSGI cuts it at its harakiri, and so did a worker leaving at
    # its max-requests here.
    for stop in ("HUP", "TERM"):
        sim = started(workers=1, harakiri=4, graceful_timeout=30)
        (old,) = sim.pids()
        sim.busy_since[old] = 1000.0 + sim.now
        sim.run(sim.policy.on_signal(stop, sim.now))
        sim.make_all_ready()
        sim.tick()
        actions = sim.tick(4.0)
        assert (old, signal.SIGUSR2) in signals_sent(actions), stop  # its stack, as a harakiri
        (said,) = [a.message for a in actions if isinstance(a, Log) and "HARAKIRI" in a.message]
        assert said.startswith(f"HARAKIRI: worker 1 (pid {old}) stuck in one request for 4.")
        assert said.endswith("then killing it (in 1s) if it stays")  # no "a new worker takes"
        assert (old, signal.SIGKILL) in signals_sent(sim.tick(1.1)), stop


def test_a_harakiri_of_a_worker_told_to_go_keeps_its_stop_deadline() -> None:
    # With --threads and two requests in flight the harakiri's grace is --harakiri more
    # seconds: a TERM's stop at --graceful-timeout 5 ran to 7.8 s, past docker's patience.
    sim = started(workers=1, harakiri=4, graceful_timeout=5)
    (pid,) = sim.pids()
    sim.busy_since[pid] = 1000.0 + sim.now
    sim.cores[pid] = 2  # two requests in flight
    sim.run(sim.policy.on_signal("TERM", sim.now))
    assert (pid, signal.SIGUSR2) in signals_sent(sim.tick(4.1))
    # At 5 s, not at 8: its other thread's request is cut (a quick stop, as any stop's at its
    # deadline, so that its finally blocks run), then the kill.
    assert signals_sent(sim.tick(0.95)) == {(pid, signal.SIGINT)}
    assert signals_sent(sim.tick(QUICK_GRACE + 0.05)) == {(pid, signal.SIGKILL)}


def test_a_harakiris_other_threads_are_cut_first_its_lone_stuck_one_is_killed() -> None:
    # The quick stop before the kill is for the other threads' requests: the stuck one, still
    # in a C call, only the kill ends (a quick stop first delayed its 502 by 2 s).
    sim = started(workers=1, harakiri=4)
    (pid,) = sim.pids()
    sim.busy_since[pid] = 1000.0 + sim.now
    sim.cores[pid] = 1  # the stuck thread alone
    assert (pid, signal.SIGUSR2) in signals_sent(sim.tick(4.1))
    assert signals_sent(sim.tick(DUMP_GRACE + 0.05)) == {(pid, signal.SIGKILL)}

    sim = started(workers=1, harakiri=4)
    (pid,) = sim.pids()
    sim.busy_since[pid] = 1000.0 + sim.now
    sim.cores[pid] = 2  # another thread's request too: --harakiri more seconds, then cut
    assert (pid, signal.SIGUSR2) in signals_sent(sim.tick(4.1))
    sim.busy_since[pid] = 1000.0 + sim.now  # the stuck one ended; the other one is still in
    sim.cores[pid] = 1
    assert signals_sent(sim.tick(4.05)) == {(pid, signal.SIGINT)}
    assert signals_sent(sim.tick(QUICK_GRACE + 0.05)) == {(pid, signal.SIGKILL)}


def test_a_request_with_its_own_harakiri_is_judged_by_it_and_leaves_the_others_theirs() -> None:
    # Without --harakiri, one request of two (threads) set its own 0.5 s: past it, its worker's
    # harakiri gave the other request 0.5 s (the stuck one's bound) before cutting it, where
    # it had none; a set_harakiri(3600) gave an hour.
    sim = started(workers=1, graceful_timeout=30)
    (pid,) = sim.pids()
    began = 1000.0 + sim.now
    sim.busy_since[pid] = began
    sim.cores[pid] = 2
    sim.limits[pid] = ((began, 0.0), (began + 0.1, 0.5))
    actions = sim.tick(0.7)
    assert (pid, signal.SIGUSR2) in signals_sent(actions)
    (said,) = [a.message for a in actions if isinstance(a, Log) and "HARAKIRI" in a.message]
    assert "(its own limit, 0.5s from its start, set by the app's set_harakiri)" in said, said
    assert said.endswith("then killing it (in 30s) if it stays; a new worker takes its place")
    # With --harakiri, a stream that lifted it is not judged by it.
    sim = started(workers=1, harakiri=4)
    (pid,) = sim.pids()
    sim.busy_since[pid] = began = 1000.0 + sim.now
    sim.limits[pid] = ((began, float("inf")),)
    assert not signals_sent(sim.tick(10.0))
