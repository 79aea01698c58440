"""The cheaper algorithms' decisions (uWSGI's spare, backlog, busyness), from hand-made cycles;
then the policy applying them, driven as the arbiter would (no processes, no clocks)."""

from __future__ import annotations

import dataclasses
import signal

import pytest
from supervisor.policy_sim import Sim

from uwsgiapp.stats.model import ServerStats
from uwsgiapp.supervisor.actions import RETIRE, Log, Mode, Signal, Spawn, WorkerRecord
from uwsgiapp.supervisor.cheaper import (
    KEEP,
    Backlog,
    Busyness,
    BusyShare,
    CheaperOptions,
    Cycle,
    Spare,
    Verdict,
)
from uwsgiapp.supervisor.observe import Inputs, Observer, longest_queue, snapshot
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.status import BUCKETS, CLASSES, SlotCounters, WorkerStatus

OPTS = CheaperOptions(minimum=1, maximum=8, initial=2, step=2, overload=3)


def _cycles(algo: Spare | Backlog | Busyness, *cycles: Cycle) -> list[Verdict]:
    return [algo.decide(c) for c in cycles]


# -- spare ------------------------------------------------------------------------------------


def test_spare_starts_step_workers_after_overload_cycles_all_busy() -> None:
    spare = Spare(OPTS)
    busy = [Cycle(float(t), running=2, idle=0) for t in range(3)]
    verdicts = _cycles(spare, *busy)
    assert [v.change for v in verdicts] == [0, 0, 2]
    assert verdicts[2].why == "every worker busy for 3 s"
    # The count starts again after a spawn: three more busy cycles for the next step.
    spare = Spare(OPTS)
    verdicts = _cycles(spare, *(Cycle(float(t), running=4, idle=0) for t in range(6)))
    assert [v.change for v in verdicts] == [0, 0, 2, 0, 0, 2]


def test_spare_never_goes_past_workers_nor_spawns_while_held() -> None:
    spare = Spare(OPTS)
    assert _cycles(spare, *(Cycle(float(t), running=7, idle=0) for t in range(3)))[-1].change == 1
    spare = Spare(OPTS)
    assert _cycles(spare, *(Cycle(float(t), running=8, idle=0) for t in range(3)))[-1] == KEEP
    spare = Spare(OPTS)
    held = [Cycle(float(t), running=2, idle=0, can_spawn=False) for t in range(5)]
    assert all(v == KEEP for v in _cycles(spare, *held))


def test_spare_stops_one_every_overload_idle_cycles_down_to_cheaper() -> None:
    spare = Spare(OPTS)
    verdicts = _cycles(spare, *(Cycle(float(t), running=4, idle=4) for t in range(9)))
    assert [v.change for v in verdicts] == [0, 0, -1, 0, 0, -1, 0, 0, -1]
    assert verdicts[2].why == "4 workers idle"
    at_least = _cycles(Spare(OPTS), *(Cycle(float(t), running=1, idle=1) for t in range(9)))
    assert all(v == KEEP for v in at_least)


def test_spare_one_idle_worker_is_the_stable_state() -> None:
    spare = Spare(OPTS)
    assert all(v == KEEP for v in _cycles(spare, *(Cycle(float(t), 6, 1) for t in range(20))))


def test_spare_with_threads_stops_only_for_workers_in_no_request() -> None:
    # Every worker has a free thread (idle 4) but each is in requests (empty 0): steady.
    steady = [Cycle(float(t), running=4, idle=4, empty=0) for t in range(20)]
    assert all(v == KEEP for v in _cycles(Spare(OPTS), *steady))
    one = [Cycle(float(t), running=4, idle=4, empty=1) for t in range(20)]
    assert all(v == KEEP for v in _cycles(Spare(OPTS), *one))
    two = [Cycle(float(t), running=4, idle=4, empty=2) for t in range(3)]
    assert _cycles(Spare(OPTS), *two)[-1] == Verdict(-1, "2 workers idle")


def test_spare_a_busy_cycle_delays_the_stops() -> None:
    spare = Spare(OPTS)
    cycles = [Cycle(0, 4, 3), Cycle(1, 4, 3), Cycle(2, 4, 0), Cycle(3, 4, 3), Cycle(4, 4, 3)]
    # The busy cycle raised the overload count (taken back at the next idle one) and reset
    # the idle count: the stop comes at the third idle cycle after it, not at the third cycle.
    assert [v.change for v in _cycles(spare, *cycles)] == [0, 0, 0, 0, 0]
    assert [v.change for v in _cycles(spare, Cycle(5, 4, 3), Cycle(6, 4, 3))] == [-1, 0]


# -- backlog ----------------------------------------------------------------------------------


def test_backlog_follows_the_listen_queue_around_overload() -> None:
    backlog = Backlog(OPTS)
    assert backlog.decide(Cycle(0, 2, 0, queue=4)) == Verdict(2, "4 connections waiting (over 3)")
    assert backlog.decide(Cycle(1, 4, 0, queue=3)) == KEEP  # at overload: neither
    assert backlog.decide(Cycle(2, 4, 0, queue=0)).change == -1  # every cycle, as uWSGI's
    assert backlog.decide(Cycle(3, 3, 0, queue=2)).change == -1
    assert backlog.decide(Cycle(4, 1, 0, queue=0)) == KEEP  # at --cheaper
    assert backlog.decide(Cycle(5, 8, 0, queue=50)) == KEEP  # at --workers
    assert backlog.decide(Cycle(6, 2, 0, queue=50, can_spawn=False)) == KEEP


def test_backlog_an_unknown_queue_neither_starts_nor_stops() -> None:
    backlog = Backlog(OPTS)
    assert all(backlog.decide(Cycle(float(t), 4, 4, queue=None)) == KEEP for t in range(10))


# -- busyness ---------------------------------------------------------------------------------

BUSY = dataclasses.replace(OPTS, algo="busyness", step=1)


def _period(b: Busyness, start: float, share: float, running: int, queue: int = 0) -> Verdict:
    """One ``overload`` period (3 cycles) at ``share``: the verdict of its last cycle."""
    verdicts = [b.decide(Cycle(start + t, running, 0, share, queue)) for t in (1, 2, 3)]
    assert verdicts[:2] == [KEEP, KEEP]
    return verdicts[2]


def test_busyness_starts_a_worker_over_max_and_stops_under_min_after_the_multiplier() -> None:
    b = Busyness(BUSY, 0.0)
    more = _period(b, 0.0, 0.8, 2)
    assert more == Verdict(1, "80% busy over 3 s")
    # Idle from now: a stop only once 3 s x multiplier 10 have passed since the spawn.
    stops = [(t, _period(b, t, 0.1, 3)) for t in range(3, 60, 3)]
    assert [t + 3 for t, v in stops if v.change == -1] == [33]  # the next at 63
    assert stops[9][1] == Verdict(-1, "10% busy over 3 s")


def test_busyness_penalty_for_workers_back_soon_after_a_stop() -> None:
    b = Busyness(BUSY, 0.0)
    t = 0.0
    while (v := _period(b, t, 0.0, 4)).change != -1:  # idle: the first stop at 30 s
        t += 3
    assert t + 3 == 30
    v = _period(b, t + 3, 0.9, 3)  # back within 3 s x 10: the multiplier grows by 2
    assert v.change == 1 and "multiplier up to 12" in v.why
    assert b.next_stop == t + 6 + 3 * 12


def test_busyness_between_min_and_max_keeps_putting_the_stop_off() -> None:
    b = Busyness(BUSY, 0.0)
    assert b.next_stop == 30.0
    _period(b, 0.0, 0.4, 4)  # 40%: a short spike, the stop moves 3 s later
    assert b.next_stop == 33.0
    _period(b, 3.0, 0.4, 4)
    _period(b, 6.0, 0.4, 4)  # the third in a row: the idle time starts again from now
    assert b.next_stop == 9.0 + 30.0


def test_busyness_backlog_alert_starts_emergency_workers_at_once() -> None:
    b = Busyness(dataclasses.replace(BUSY, backlog_step=3), 0.0)
    v = b.decide(Cycle(1.0, 2, 0, 0.2, queue=40))
    assert v == Verdict(3, "40 connections waiting (over 33)")
    assert b.emergency == 3
    assert b.next_stop == 1.0 + 3 * 3  # emergency workers go sooner (backlog multiplier 3)
    assert b.decide(Cycle(2.0, 8, 0, 1.0, queue=40)) == KEEP  # at --workers


def test_busyness_a_queue_that_never_empties_starts_one_after_nonzero_seconds() -> None:
    b = Busyness(dataclasses.replace(BUSY, overload=1000, backlog_nonzero=5), 0.0)
    verdicts = [b.decide(Cycle(float(t), 2, 0, 0.3, queue=2)) for t in range(1, 8)]
    assert [v.change for v in verdicts] == [0, 0, 0, 0, 0, 1, 0]
    b.decide(Cycle(8.0, 3, 0, 0.3, queue=0))  # emptied: the wait starts again
    assert b.queued_since is None


def test_busyness_an_unknown_queue_raises_no_alert() -> None:
    b = Busyness(dataclasses.replace(BUSY, overload=1000, backlog_nonzero=2), 0.0)
    assert all(b.decide(Cycle(float(t), 2, 0, 0.3, queue=None)) == KEEP for t in range(1, 9))


def test_longest_queue_is_unknown_when_one_listener_cannot_be_read() -> None:
    queues = {"a": 3, "b": 5, "c": None}
    assert longest_queue(["a", "b"], queues.get) == 5  # type: ignore[arg-type]
    assert longest_queue(["a", "c"], queues.get) is None  # type: ignore[arg-type]
    assert longest_queue([], queues.get) == 0  # type: ignore[arg-type]


def test_busy_share_is_a_time_average_of_the_ticks() -> None:
    share = BusyShare()
    share.sample(0.0, 1.0)
    share.sample(0.5, 1.0)
    share.sample(1.0, 0.0)
    assert share.take() == pytest.approx(0.5)
    assert share.take() == 0.0


# -- the policy applying them -------------------------------------------------------------------


def _cheap(**kw: object) -> Sim:
    opts = dataclasses.replace(OPTS, **{"maximum": 4, "step": 1, **kw})  # type: ignore[arg-type]
    sim = Sim(Policy(workers=opts.maximum, cheaper=opts, slots=4 * opts.maximum))
    sim.run(sim.policy.start())
    sim.make_all_ready()
    sim.tick()
    return sim


def _seconds(sim: Sim, seconds: float) -> list[object]:
    actions: list[object] = []
    for _ in range(round(seconds / 0.1)):
        actions += sim.tick()
        sim.make_all_ready()
    return actions


def test_policy_starts_cheaper_initial_and_says_the_range() -> None:
    sim = Sim(Policy(workers=8, cheaper=dataclasses.replace(OPTS, initial=3)))
    actions = sim.run(sim.policy.start())
    assert sum(isinstance(a, Spawn) for a in actions) == 3
    assert "cheaper spare: 1..8 workers, 3 at start, step 2, every 3 s" in str(actions[0])


def test_policy_spare_grows_under_load_and_retires_idle_workers_by_number() -> None:
    sim = _cheap()
    for pid in sim.pids():
        sim.busy_since[pid] = 1.0
    grown = _seconds(sim, 3.5)
    assert sum(isinstance(a, Spawn) for a in grown) == 1 and sim.policy.desired == 3
    assert any("every worker busy for 3 s: 1 more, 3 workers" in str(a) for a in grown)
    sim.busy_since.clear()
    stops = [a for a in _seconds(sim, 3.5) if isinstance(a, Signal)]
    newest = max(sim.policy.records.values(), key=lambda r: r.number)
    assert [(s.pid, s.signum) for s in stops] == [(newest.pid, RETIRE)]
    assert sim.policy.desired == 2
    assert not [a for a in sim.exit(newest.pid, 0) if isinstance(a, Spawn)]  # no replacement


def test_policy_busyness_all_busy_starts_a_step_after_overload_seconds() -> None:
    sim = _cheap(algo="busyness", overload=2)  # its first cycle ran: it started the clocks
    sim.busy_since.update(dict.fromkeys(sim.pids(), 1.0))
    first = [a for _ in range(19) for a in sim.tick()]
    assert not [a for a in first if "cheaper" in str(a)]  # nothing before 2 s
    then = _seconds(sim, 1.5)
    assert any("cheaper (busyness): 100% busy over 2 s: 1 more, 3 workers" in str(a) for a in then)
    assert len([a for a in then if isinstance(a, Spawn)]) == 1


def test_policy_first_cycle_never_decides() -> None:
    # Busy from the start, overload 1: the first cycle only starts the clocks.
    opts = dataclasses.replace(OPTS, maximum=4, step=1, overload=1, algo="busyness")
    sim = Sim(Policy(workers=4, cheaper=opts, slots=16))
    sim.run(sim.policy.start())
    sim.make_all_ready()
    sim.busy_since.update(dict.fromkeys(sim.pids(), 1.0))
    assert not [a for a in sim.tick() if "cheaper (" in str(a)]  # the first cycle
    later = [a for a in _seconds(sim, 1.5) if "cheaper (" in str(a)]
    assert len(later) == 1 and "100% busy over 1 s" in str(later[0])


@pytest.mark.parametrize("algo", ["spare", "busyness"])
def test_policy_reads_each_slot_once_a_tick(algo: str) -> None:
    sim = _cheap(algo=algo, overload=1)
    sim.run(sim.policy.on_signal("TTIN", sim.now))
    sim.make_all_ready()
    read = sim.status
    reads: list[int] = []

    def counted(wid: int) -> WorkerStatus:
        reads.append(wid)
        return read(wid)

    sim.status = counted  # type: ignore[method-assign]
    for _ in range(30):  # 3 s: cycles, a stop of an idle worker among them
        before = len(reads)
        records = len(sim.policy.records)
        sim.tick()
        sim.make_all_ready()
        assert len(reads) - before == records


def test_policy_cheaper_stop_leaves_busy_workers_alone() -> None:
    sim = _cheap(algo="backlog", overload=1)
    sim.run(sim.policy.on_signal("TTIN", sim.now))
    sim.make_all_ready()
    for pid in sim.pids():
        sim.busy_since[pid] = 1.0
    # The queue is empty (the workers keep up) but none is idle: nobody is stopped.
    before = sim.policy.desired
    assert not [a for a in _seconds(sim, 3) if isinstance(a, Signal)]
    assert sim.policy.desired == before == 3
    sim.busy_since.clear()  # idle: one stopped a second, down to --cheaper
    assert len([a for a in _seconds(sim, 3) if isinstance(a, Signal)]) == 2


def test_policy_backlog_on_an_unreadable_queue_keeps_the_count_and_says_so_once() -> None:
    sim = _cheap(algo="backlog", overload=1)
    sim.run(sim.policy.on_signal("TTIN", sim.now))
    sim.make_all_ready()
    sim.queue = lambda: None  # no TCP_INFO, no unix_diag
    actions = _seconds(sim, 10)  # idle workers: an empty queue would stop one a second
    assert not [a for a in actions if isinstance(a, Signal | Spawn)]
    warnings = [a for a in actions if isinstance(a, Log) and a.level == 30]
    assert [a.message for a in warnings] == [
        "cheaper (backlog): the listen queue cannot be read (no TCP_INFO, or no unix_diag for "
        "a unix socket): backlog cannot work: it starts and stops no worker"
    ]
    assert sim.policy.desired == 3
    sim.queue = lambda: 0  # readable again: the stops resume
    assert len([a for a in _seconds(sim, 3) if isinstance(a, Signal)]) == 2


def test_policy_replaces_crashed_and_recycled_workers_at_the_current_count() -> None:
    sim = _cheap()
    sim.run(sim.policy.on_signal("TTIN", sim.now))
    sim.make_all_ready()
    victim = min(sim.pids())
    spawns = [a for a in sim.run(sim.exit(victim, None, signal.SIGSEGV)) if isinstance(a, Spawn)]
    assert len(spawns) == 1 and sim.policy.desired == 3


def test_policy_ttin_ttou_stay_between_cheaper_and_workers() -> None:
    sim = _cheap()
    for _ in range(5):
        said = sim.run(sim.policy.on_signal("TTIN", sim.now))
    assert sim.policy.desired == 4 and "already at the most workers (4)" in str(said)
    for _ in range(5):
        said = sim.run(sim.policy.on_signal("TTOU", sim.now))
    assert sim.policy.desired == 1 and "already at --cheaper 1" in str(said)


def test_policy_hup_starts_at_initial_or_the_busy_workers_plus_step() -> None:
    sim = _cheap(maximum=8, step=2)
    for _ in range(5):
        sim.run(sim.policy.on_signal("TTIN", sim.now))
    sim.make_all_ready()
    assert sim.policy.hup_running() == 0  # options.on_hup: no "back to --workers"
    busy = sorted(sim.pids())[:3]
    sim.busy_since.update(dict.fromkeys(busy, 1.0))
    _seconds(sim, 1.2)  # a cycle: spare counts the workers in a request once a second
    old = sim.pids()
    said = sim.run(sim.policy.on_signal("HUP", sim.now))  # at 7 running, 3 in a request
    assert sim.policy.mode is Mode.RELOADING and sim.policy.desired == 5  # 3 + step 2
    assert "cheaper: the reload starts 5 workers (3 in a request, --cheaper-initial 2)" in str(said)
    assert len([a for a in said if isinstance(a, Spawn)]) == 5
    assert not [a for a in said if isinstance(a, Signal) and a.pid in old]  # the old serve on
    sim.make_all_ready()
    sim.busy_since.clear()
    _seconds(sim, 1)
    assert sim.policy.mode is Mode.RUNNING
    sim.run(sim.policy.on_signal("HUP", sim.now))  # idle: --cheaper-initial
    assert sim.policy.desired == 2


def test_policy_reloading_decides_nothing_while_the_new_workers_start() -> None:
    sim = _cheap()
    sim.run(sim.policy.on_signal("TTIN", sim.now))
    sim.make_all_ready()
    sim.run(sim.policy.on_signal("HUP", sim.now))
    new = sorted(sim.pids(sim.policy.generation))
    sim.ready |= set(new[:-1])  # one new worker still boots: no hand-over
    sim.busy_since.update(dict.fromkeys(sim.pids(), 1.0))  # every worker busy
    actions = [a for _ in range(50) for a in sim.tick()]  # 5 s (spare decides in 3)
    assert sim.policy.mode is Mode.RELOADING
    assert not [a for a in actions if "cheaper" in str(a) or isinstance(a, Spawn)]
    sim.policy.hup_workers(2)
    assert sim.policy.desired == 2 and sim.policy.cheaper is not None
    assert sim.policy.cheaper.maximum == 2 and sim.policy.listed_workers == 2


def test_policy_after_a_reload_the_algorithm_starts_its_clocks_again() -> None:
    # busyness: a stop after 3 s of low busyness. A reload whose new workers take 10 s to
    # start must not count those 10 s: no stop on the first second of samples after it.
    sim = _cheap(algo="busyness", overload=1, multiplier=3)
    old = sim.pids()
    sim.run(sim.policy.on_signal("HUP", sim.now))
    for _ in range(100):  # the new workers boot for 10 s
        sim.tick()
    sim.make_all_ready()
    assert {a.pid for a in sim.tick() if isinstance(a, Signal)} == old  # the hand-over
    handed_over = sim.now
    stops = []
    for _ in range(60):
        stops += [(sim.now, a) for a in sim.tick() if isinstance(a, Signal) and a.pid not in old]
    # The first cycle (within 1.5 s) restarts the clocks; the stop comes 3 s after that (the
    # clocks that ran through the reload stopped one 1 s after the hand-over).
    after = [t - handed_over for t, _ in stops]
    assert len(after) == 1 and 4.0 <= after[0] <= 4.5, after


def test_policy_hup_with_workers_under_cheaper_lowers_the_fewest_and_says_so() -> None:
    opts = CheaperOptions(minimum=8, maximum=16, initial=12)
    sim = Sim(Policy(workers=16, cheaper=opts, slots=64))
    sim.run(sim.policy.start())
    said = sim.policy.hup_workers(6)  # processes 16 -> 6, with cheaper 8
    assert [(a.level, a.message) for a in said if isinstance(a, Log)] == [
        (
            30,
            "HUP: --workers 6 is not above --cheaper 8: the fewest is 5 until --workers is "
            "above it again",
        )
    ]
    cheaper = sim.policy.cheaper
    assert cheaper is not None and (cheaper.minimum, cheaper.maximum) == (5, 6)
    assert sim.policy.desired == 6
    ttou = sim.run(sim.policy.on_signal("TTOU", sim.now))
    assert sim.policy.desired == 5 and "SIGTTOU: workers 5" in str(ttou)
    assert sim.policy.hup_workers(16) == []  # over it again: --cheaper 8 is back
    assert sim.policy.cheaper is not None and sim.policy.cheaper.minimum == 8
    assert sim.policy.desired == 8


def test_policy_a_busyness_stop_with_no_worker_free_is_decided_again_next_cycle() -> None:
    # 2 workers of 8 threads, one request each: 12% busy, under min, but no worker is free.
    sim = _threaded(8, 2, [1, 1], algo="busyness", overload=1, multiplier=10)
    assert not [a for a in _seconds(sim, 15) if isinstance(a, Signal)]
    last = max(sim.policy.records.values(), key=lambda r: r.number)
    del sim.busy_since[last.pid], sim.cores[last.pid]  # its request ended: it is free
    # The stop comes at the next cycle (not after another 10 s: a lost stop was recorded).
    stops = [a for a in _seconds(sim, 1.5) if isinstance(a, Signal)]
    assert [a.pid for a in stops] == [last.pid]


def test_policy_adds_no_workers_while_spawns_are_held() -> None:
    sim = _cheap()
    sim.policy.spawns_held, sim.policy.respawn_at = True, 1e9
    for pid in sim.pids():
        sim.busy_since[pid] = 1.0
    assert not [a for a in _seconds(sim, 5) if isinstance(a, Spawn)]
    assert sim.policy.desired == 2


def _threaded(threads: int, workers: int, in_flight: list[int], **kw: object) -> Sim:
    """``workers`` running (of 8 at most) with ``in_flight[i]`` requests in flight in the
    i-th lowest-numbered worker; ``kw``: more cheaper options."""
    opts = dataclasses.replace(OPTS, maximum=8, initial=workers, step=1, threads=threads)
    opts = dataclasses.replace(opts, **kw)  # type: ignore[arg-type]
    sim = Sim(Policy(workers=8, cheaper=opts, slots=32))
    sim.run(sim.policy.start())
    sim.make_all_ready()
    by_number = sorted(sim.policy.records.values(), key=lambda r: r.number)
    for rec, n in zip(by_number, in_flight, strict=True):
        if n:
            sim.busy_since[rec.pid], sim.cores[rec.pid] = 1.0, n
    return sim


def test_policy_threads_a_worker_is_busy_when_all_its_threads_are() -> None:
    sim = _threaded(4, 4, [1, 1, 1, 1])  # one request each: 1 of 4 threads
    assert not [a for a in _seconds(sim, 5) if isinstance(a, Spawn)]


@pytest.mark.parametrize("started", [4, 2])
def test_policy_threads_a_worker_at_a_thread_limit_is_busy_when_the_threads_it_has_are(
    started: int,
) -> None:
    # 2 requests in each of 4 workers of --threads 4: room for 8 more, unless each worker
    # could start only 2 threads (a pids limit): then every worker is busy, and more are due.
    sim = _threaded(4, 4, [2, 2, 2, 2])
    sim.threads.update(dict.fromkeys(sim.pids(), started))
    spawns = [a for a in _seconds(sim, 5) if isinstance(a, Spawn)]
    assert len(spawns) == (1 if started == 2 else 0)


def test_policy_threads_busyness_counts_the_threads_that_started() -> None:
    # 4 workers of --threads 8, 3 requests each: 37% busy; with 4 threads started each, 75%.
    sim = _threaded(8, 4, [3, 3, 3, 3], algo="busyness", overload=1, multiplier=10)
    sim.threads.update(dict.fromkeys(sim.pids(), 4))
    grown = [a for a in _seconds(sim, 3) if "cheaper (busyness)" in str(a)]
    assert grown and "more" in str(grown[0]), grown


def test_policy_threads_a_steady_load_neither_stops_nor_starts_workers() -> None:
    # 4 workers of 8 threads with 7 requests each: no worker is busy (each has a free
    # thread), none idle: the steady state, where a stop would take a worker's 7 requests.
    sim = _threaded(8, 4, [7, 7, 7, 7])
    actions = _seconds(sim, 20)
    assert not [a for a in actions if isinstance(a, Signal | Spawn)]
    assert not [a for a in actions if "cheaper" in str(a)]
    assert sim.policy.desired == 4


def test_policy_threads_a_stop_never_takes_a_worker_with_requests_in_flight() -> None:
    sim = _threaded(4, 4, [0, 1, 0, 2])
    in_flight = set(sim.busy_since)
    stops = [a for a in _seconds(sim, 10) if isinstance(a, Signal)]
    # Two in no request: one of them is the spare; the other (the highest-numbered) goes.
    assert len(stops) == 1 and stops[0].pid not in in_flight
    number = {r.pid: r.number for r in sim.policy.records.values()}
    assert number[stops[0].pid] == 3 and sim.policy.desired == 3


def test_policy_without_cheaper_keeps_the_old_ttou_and_hup() -> None:
    sim = Sim(Policy(workers=2))
    sim.run(sim.policy.start())
    assert sim.policy.hup_running() == 2 and sim.policy.listed_workers == 2
    sim.policy.hup_workers(3)
    assert sim.policy.desired == 3


@pytest.mark.parametrize("threads", [1, 4])
def test_stats_list_every_worker_number_up_to_workers_cheap_ones_with_pid_0(
    threads: int,
) -> None:
    sim = _cheap()
    stats = _stats(sim, list(sim.policy.records.values()), threads)
    assert [(w.id, w.status, w.pid > 0) for w in stats.workers] == [
        (1, "idle", True),
        (2, "idle", True),
        (3, "cheap", False),
        (4, "cheap", False),
    ]
    # A number that never ran has --threads cores too, as the others.
    assert [len(w.cores) for w in stats.workers] == [threads] * 4


def test_log_lines_are_info() -> None:
    sim = _cheap()
    for pid in sim.pids():
        sim.busy_since[pid] = 1.0
    logs = [a for a in _seconds(sim, 3.5) if isinstance(a, Log) and "cheaper" in a.message]
    assert logs and all(a.level == 20 for a in logs)


def test_policy_replaces_max_requests_and_harakiri_workers_keeping_the_count() -> None:
    opts = dataclasses.replace(OPTS, maximum=4, step=1, initial=3)
    sim = Sim(Policy(workers=4, cheaper=opts, harakiri=5.0))
    sim.run(sim.policy.start())
    sim.make_all_ready()
    sim.tick()
    first, second, _ = sorted(sim.pids())
    sim.leaving.add(first)  # --max-requests reached: it stopped accepting
    sim.busy_since[second] = 1000.0 + sim.now - 6.0  # stuck past --harakiri
    spawns = [a for a in sim.tick() if isinstance(a, Spawn)]
    assert len(spawns) == 2 and sim.policy.desired == 3


def test_without_cheaper_the_numbers_whose_fork_failed_are_listed_not_running() -> None:
    # 16 of 32 forks failed (ulimit -n): the stats had 17 rows and uwsgitop, Prometheus and
    # the health check saw nothing missing. Each number wanted has its row, pid 0 if none.
    sim = Sim(Policy(workers=4))
    sim.run(sim.policy.start())
    sim.make_all_ready()
    forked = sorted(sim.policy.records.values(), key=lambda r: r.wid)[:2]
    stats = _stats(sim, forked)
    assert [(w.id, w.status, w.pid > 0) for w in stats.workers] == [
        (1, "idle", True),
        (2, "idle", True),
        (3, "cheap", False),
        (4, "cheap", False),
    ]


def _stats(sim: Sim, records: list[WorkerRecord], threads: int = 1) -> ServerStats:
    """The stats of ``records`` (idle, nothing counted), as the master would list them."""
    counts = SlotCounters(0, 0, 0.0, ((0,) * BUCKETS,) * CLASSES)
    return snapshot(
        Inputs(
            pid=1,
            records=records,
            status=lambda wid: WorkerStatus(0, 0, 0.0, 0),
            counters=lambda wid: counts,
            observer=Observer(),
            harakiris={},
            sockets=(),
            memory=lambda pid: (0, 0),
            cores=(lambda wid: [(0.0, 0)] * threads) if threads > 1 else None,
            threads=threads,
            listed=sim.policy.listed_workers,
        )
    )
