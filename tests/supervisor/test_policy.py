"""The supervisor's decisions, driven directly: no processes, no clocks, no signals."""

from __future__ import annotations

import signal

import pytest
from supervisor.policy_sim import Sim, signals_sent, started

from uwsgiapp.exitcodes import ServeExit, WorkerExit
from uwsgiapp.supervisor import roster
from uwsgiapp.supervisor.actions import (
    BOOT_FAILURE_LIMIT,
    DUMP_GRACE,
    QUICK_GRACE,
    RETIRE,
    Halt,
    Log,
    LogLevel,
    Mode,
    Reimport,
    ReloadKind,
    Signal,
    Spawn,
    StopAccepting,
    WorkerState,
)
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.status import STATE_READY, WorkerStatus


def test_start_spawns_workers_with_distinct_slots() -> None:
    sim = Sim(Policy(workers=3))
    actions = sim.run(sim.policy.start())
    assert [a.wid for a in actions if isinstance(a, Spawn)] == [0, 1, 2]
    assert sim.tick() == []  # nothing more to do


def test_dead_worker_is_respawned_in_its_slot() -> None:
    sim = started()
    victim = min(sim.pids())
    actions = sim.run(sim.policy.on_exit(victim, None, signal.SIGKILL, sim.now))
    spawns = [a for a in actions if isinstance(a, Spawn)]
    assert len(spawns) == 1 and spawns[0].wid == 0
    assert (
        "killed by signal 9 (SIGKILL), not sent by uwsgiapp: the OOM killer (dmesg says; in a "
        "container, the oom_kill count of its cgroup's memory.events, or memory.oom_control "
        "with cgroup v1), or a kill -9; "
        "starting a new one"
    ) in str(actions[0])
    assert len(sim.pids()) == 2
    # The arbiter logs the new process under the same number: "worker 1 (pid N) started".
    assert sim.policy.spawned(0, 0, 4242, sim.now) == "worker 1 (pid 4242)"


def test_a_kill_whose_sender_is_known_is_said_without_the_guess() -> None:
    # The OOM killer's count rose: the exit line says so, once (a second line said it after
    # the first had hedged "the OOM killer (dmesg says...), or a kill -9").
    sim = started(workers=1)
    sim.make_all_ready()
    (victim,) = sim.pids()
    sim.busy_since[victim] = 1000.0 + sim.now
    oom = "the kernel's OOM killer: its memory cgroup counts 1 OOM kill more"
    actions = sim.run(sim.exit(victim, None, signal.SIGKILL, killer=oom))
    (line,) = [a for a in actions if isinstance(a, Log)]
    assert line.level is LogLevel.ERROR
    assert line.message == (
        f"worker 1 (pid {victim}) killed by signal 9 (SIGKILL), sent by {oom} "
        "(it was in a request, which got no answer); starting a new one"
    )
    # a worker replaced already (leaving on its own, retiring) that dies so: the same words
    sim.make_all_ready()
    (pid,) = sim.pids()
    sim.leaving.add(pid)
    sim.busy_since[pid] = 1000.0 + sim.now
    sim.tick()
    assert sim.policy.records[pid].state is WorkerState.RETIRING
    (line,) = [a for a in sim.exit(pid, None, signal.SIGKILL, killer=oom) if isinstance(a, Log)]
    assert f"sent by {oom}" in line.message and "not sent by uwsgiapp" not in line.message


def test_a_kill_the_master_sent_is_not_the_oom_killers() -> None:
    # The cgroup counted an OOM kill meanwhile (an app's child): the worker the harakiri's
    # SIGKILL ended was said to be the OOM killer's (review).
    sim = started(workers=1, harakiri=3)
    (pid,) = sim.pids()
    sim.busy_since[pid] = 1000.0 + sim.now
    sim.tick(3.5)
    assert (pid, signal.SIGKILL) in {
        (a.pid, a.signum) for a in sim.tick(1.1) if isinstance(a, Signal)
    }
    oom = "the kernel's OOM killer: its memory cgroup counts 1 OOM kill more"
    (line,) = [a for a in sim.exit(pid, None, signal.SIGKILL, killer=oom) if isinstance(a, Log)]
    assert "OOM" not in line.message, line.message


def test_ttou_stops_the_highest_numbered_worker_not_a_starting_replacement() -> None:
    # It stopped the newest: worker 1's replacement, forked 35 ms before, was killed and
    # forked again at once (its line blamed "the SIGHUP that told it to leave") (soak).
    sim = started(workers=3)
    sim.make_all_ready()
    number = {r.pid: r.number for r in sim.policy.records.values()}
    one = next(pid for pid, n in number.items() if n == 1)
    sim.run(sim.policy.on_exit(one, None, signal.SIGKILL, sim.now))  # replaced, starting
    stopped = signals_sent(sim.run(sim.policy.on_signal("TTOU", sim.now)))
    assert [number.get(pid) for pid, _ in stopped] == [3]


def test_a_death_in_a_request_says_so() -> None:
    # The request the kernel's OOM killer (or a crash) cut got no answer: nginx said 502.
    sim = started()
    victim, other = sorted(sim.pids())
    sim.busy_since[victim] = 1000.0
    said = sim.run(sim.policy.on_exit(victim, None, signal.SIGSEGV, sim.now, sim.status))[0]
    assert str(said).count("killed by signal 11 (SIGSEGV) (it was in a request, which got no ")
    sim.busy_since[other] = 1000.0
    said = sim.run(sim.policy.on_exit(other, 0, None, sim.now, sim.status))[0]
    assert isinstance(said, Log) and said.message.endswith("exited with code 0; starting a new one")


def test_a_threaded_death_says_how_many_requests_it_cut() -> None:
    # With --threads each request thread marks its own core: the count is the busy cores.
    from uwsgiapp.supervisor.status import StatusTable

    table = StatusTable(4, cores=3)
    table.reset(1, 777)
    table.core(1, 0).begin()
    table.core(1, 2).begin()
    assert table.read(1).in_requests == 2 and table.read(0).in_requests == 0
    sim = started()
    victim = min(sim.pids())
    busy = WorkerStatus(victim, STATE_READY, 1000.0, 9, busy_cores=3)
    said = sim.run(sim.policy.on_exit(victim, None, signal.SIGSEGV, sim.now, lambda wid: busy))
    assert "(SIGSEGV) (it was in 3 requests, which got no answer); starting" in str(said[0])


def test_a_worker_told_to_stop_says_whether_one_replaces_it() -> None:
    sim = started(workers=2)
    actions = sim.run(sim.policy.on_signal("TTOU", sim.now))  # one fewer: no replacement
    (gone,) = [pid for pid, _ in signals_sent(actions)]
    said = sim.run(sim.policy.on_exit(gone, 0, None, sim.now))[0]
    assert isinstance(said, Log) and said.message.endswith("exited with code 0"), said
    sim.run(sim.policy.on_signal("HUP", sim.now))
    sim.make_all_ready()
    handover = [a.message for a in sim.tick() if isinstance(a, Log)]
    assert "reload: 1 new worker ready, stopping 1 old worker" in handover, handover


def test_hup_spawns_new_generation_then_stops_old_once_ready() -> None:
    sim = started()
    old = sim.pids()
    actions = sim.run(sim.policy.on_signal("HUP", sim.now))
    assert len([a for a in actions if isinstance(a, Spawn)]) == 2
    # Before the new workers are ready, nothing is stopped and nothing more is spawned.
    assert not signals_sent(sim.tick()) and len(sim.pids()) == 4
    assert not [a for a in sim.tick() if isinstance(a, Spawn)]
    sim.make_all_ready()
    stopped = signals_sent(sim.tick())
    assert stopped == {(pid, RETIRE) for pid in old}


def numbers(sim: Sim, generation: int | None = None) -> list[int]:
    return sorted(sim.policy.records[pid].number for pid in sim.pids(generation))


def test_workers_keep_their_numbers_1_to_n_whatever_replaces_them() -> None:
    # uWSGI's ids 1..N: a reload's new workers, a death's, a harakiri's and a leaving worker's
    # replacement take the numbers they replace, though they run in other status slots (the
    # old processes may still be there). A slot counts for one number for good.
    sim = started(workers=2, harakiri=1.0)
    assert numbers(sim) == [1, 2]
    sim.run(sim.policy.on_signal("HUP", sim.now))
    assert numbers(sim, 1) == [1, 2] and numbers(sim, 0) == [1, 2]
    sim.make_all_ready()
    for pid in list(sim.pids(0)):
        sim.tick()
        sim.run(sim.exit(pid, 0))
    assert numbers(sim) == [1, 2]
    one = next(p for p in sim.pids() if sim.policy.records[p].number == 1)
    sim.run(sim.exit(one, None, signal.SIGKILL))  # a death: number 1 comes back
    assert numbers(sim) == [1, 2]
    two = next(p for p in sim.pids() if sim.policy.records[p].number == 2)
    sim.make_all_ready()
    sim.leaving.add(two)  # max-requests: the replacement starts while it still exits
    sim.tick()
    assert numbers(sim) == [1, 2, 2]
    sim.run(sim.policy.on_signal("TTIN", sim.now))
    assert numbers(sim) == [1, 2, 2, 3]
    slots = sim.policy.slot_numbers
    assert all(slots[sim.policy.records[p].wid] == sim.policy.records[p].number for p in sim.pids())
    assert len(set(slots.values())) == 3  # each number's slots count for it alone


def test_hup_twice_quickly_spawns_each_generation_once() -> None:
    sim = started()
    first = sim.run(sim.policy.on_signal("HUP", sim.now))
    second = sim.run(sim.policy.on_signal("HUP", sim.now))
    assert len([a for a in first + second if isinstance(a, Spawn)]) == 4
    # The 2nd HUP retires the 1st one's workers, still booting; the serving ones stay.
    assert signals_sent(second) == {(pid, RETIRE) for pid in sim.pids(1)}
    # Retired before their handler was set, they die of it: said as what it is (the soak
    # trial's 57 "killed by signal 1 (SIGHUP)" lines in a burst of HUPs looked like crashes).
    retired = sorted(sim.pids(1))
    said = sim.run(sim.exit(retired[0], None, RETIRE))
    assert "retired (still starting, ended by the master's signal to leave)" in str(said), said
    assert "killed by signal" not in str(said)
    sim.run(sim.exit(retired[1], None, RETIRE))
    sim.make_all_ready()
    handover = signals_sent(sim.tick())
    assert handover == {(pid, RETIRE) for pid in sim.pids(0)}


def test_reload_with_reimport_asks_the_master_first() -> None:
    sim = started(reload_kind=ReloadKind.REIMPORT)
    actions = sim.policy.on_signal("HUP", sim.now)
    kinds = [type(a) for a in actions]
    assert kinds.index(Reimport) < kinds.index(Spawn)


def kept(sim: Sim, generation: int) -> set[int]:
    """The workers of ``generation`` not ended as a failed reload's."""
    return {p for p in sim.pids(generation) if not sim.policy.records[p].failed_reload}


def test_reload_whose_new_workers_cannot_load_keeps_old_ones() -> None:
    sim = started()
    old = sim.pids()
    sim.run(sim.policy.on_signal("HUP", sim.now))
    new = sim.pids(1)
    actions = sim.run(sim.policy.on_exit(min(new), WorkerExit.APP_LOAD, None, sim.now))
    assert not any(isinstance(a, Halt) for a in actions)
    assert (max(new), signal.SIGKILL) in signals_sent(actions)
    assert sim.policy.mode is Mode.RUNNING
    # The serving workers are now the current generation, which keeps the failed one's
    # number: the next reload's is new in the log, not the failed one's again.
    assert old == kept(sim, 1)
    # The code on disk does not load: the old workers must not recycle into it at their
    # max-requests (a Django site's two workers did, and the server stopped with exit 4).
    assert sim.policy.recycles_held
    killed = sim.run(sim.policy.on_exit(max(new), None, signal.SIGKILL, sim.now))
    assert f"(pid {max(new)}, of the failed reload) killed by signal 9" in str(killed)
    again = sim.run(sim.policy.on_signal("HUP", sim.now))
    assert "graceful reload (generation 2)" in str(again)


def test_term_stops_gracefully_then_kills_after_timeout_then_halts_zero() -> None:
    sim = started(graceful_timeout=5)
    actions = sim.policy.on_signal("TERM", sim.now)
    assert any(isinstance(a, StopAccepting) for a in actions)
    # The line says how long the stop may take (an operator sizing k8s's grace period).
    said = [a.message for a in actions if isinstance(a, Log)]
    assert any("for up to --graceful-timeout 5s; a worker still in one then" in m for m in said)
    assert signals_sent(actions) == {(pid, signal.SIGTERM) for pid in sim.pids()}
    assert not signals_sent(sim.tick(1.0))
    late = signals_sent(sim.tick(5.0))
    assert late == {(pid, signal.SIGKILL) for pid in sim.pids()}
    for pid in list(sim.pids()):
        actions = sim.policy.on_exit(pid, None, signal.SIGKILL, sim.now)
    assert Halt(0) in actions
    # A stopping master never respawns.
    assert not [a for a in actions if isinstance(a, Spawn)]


def test_int_is_a_quick_stop() -> None:
    sim = started()
    actions = sim.policy.on_signal("INT", sim.now)
    assert signals_sent(actions) == {(pid, signal.SIGINT) for pid in sim.pids()}


def test_ttin_ttou() -> None:
    sim = started(workers=2)
    assert (
        len([a for a in sim.run(sim.policy.on_signal("TTIN", sim.now)) if isinstance(a, Spawn)])
        == 1
    )
    sim.make_all_ready()
    actions = sim.run(sim.policy.on_signal("TTOU", sim.now))
    assert len(signals_sent(actions)) == 1
    stopped = next(iter(signals_sent(actions)))[0]
    assert not [
        a for a in sim.run(sim.policy.on_exit(stopped, 0, None, sim.now)) if isinstance(a, Spawn)
    ]
    sim.run(sim.policy.on_signal("TTOU", sim.now))
    actions = sim.policy.on_signal("TTOU", sim.now)
    assert not signals_sent(actions)  # never below one worker


def test_app_load_failure_halts_instead_of_fork_loop() -> None:
    sim = Sim(Policy(workers=2))
    sim.run(sim.policy.start())
    actions = sim.policy.on_exit(min(sim.pids()), WorkerExit.APP_LOAD, None, sim.now)
    assert Halt(ServeExit.APP_LOAD) in actions
    assert not [a for a in actions if isinstance(a, Spawn)]


@pytest.mark.parametrize("first_to_report", ["the failure", "the ready one"])
def test_a_first_start_with_one_worker_that_cannot_load_the_app_does_not_depend_on_timing(
    first_to_report: str,
) -> None:
    # A flaky import in one --lazy-apps worker (a database that timed out): the start stopped
    # with exit 4 if it reported before the others were seen ready, and served otherwise. It
    # stops either way now, as gunicorn stops at a worker that fails to boot.
    sim = Sim(Policy(workers=3))
    sim.run(sim.policy.start())
    good, _, bad = sorted(sim.pids())
    if first_to_report == "the ready one":
        sim.ready |= {good}
        sim.tick()
    actions = sim.run(sim.exit(bad, WorkerExit.APP_LOAD))
    assert Halt(ServeExit.APP_LOAD) in actions
    said = " ".join(a.message for a in actions if isinstance(a, Log))
    assert "could not load the app at the first start: stopping" in said
    # A replacement forked once one served is not the first start's: tried again later.
    sim = started(workers=2)
    sim.run(sim.exit(min(sim.pids()), WorkerExit.CLEAN))
    actions = sim.run(sim.exit(max(sim.pids()), WorkerExit.APP_LOAD))
    assert not [a for a in actions if isinstance(a, Halt)]


def spawns(actions: list[object]) -> list[Spawn]:
    return [a for a in actions if isinstance(a, Spawn)]


def test_after_start_a_replacement_that_cannot_load_the_app_is_tried_again_later() -> None:
    # lazy-apps: new code on disk that does not import must not take down the workers that
    # loaded the old (a recycle, a crash or a harakiri forks a replacement that imports).
    sim = started(workers=2)
    actions = sim.run(sim.exit(min(sim.pids()), WorkerExit.APP_LOAD))
    assert not [a for a in actions if isinstance(a, (Spawn, Halt, Signal))]
    logs = [a.message for a in actions if isinstance(a, Log)]
    assert any("1 worker serves on" in m and "trying again in 1 s" in m for m in logs), logs
    assert not spawns(sim.tick(0.9))
    assert len(spawns(sim.tick(0.2))) == 1
    # It fails again: the wait doubles, up to the most; the one serving is never touched.
    waits = []
    for _ in range(6):
        actions = sim.run(sim.exit(max(sim.pids()), WorkerExit.APP_LOAD))
        assert not [a for a in actions if isinstance(a, (Halt, Signal))]
        waits.append(sim.policy.load_retry)
        for _ in range(40):
            if spawns(sim.tick(0.5)):
                break
    assert waits == [2.0, 4.0, 8.0, 10.0, 10.0, 10.0]
    # All the while, the worker serving holds its max-requests recycle (it would be the last).
    assert sim.policy.recycles_held
    # Fixed on disk: the replacement loads it, and the next failure waits 1 s again.
    sim.make_all_ready()
    sim.tick()
    assert sim.policy.load_retry == 0.0 and len(sim.pids()) == 2
    assert not sim.policy.recycles_held
    sim.run(sim.exit(max(sim.pids()), WorkerExit.APP_LOAD))
    assert sim.policy.load_retry == 1.0


def test_a_load_failure_with_no_worker_serving_stops_the_server() -> None:
    sim = started(workers=1)
    sim.run(sim.exit(min(sim.pids()), WorkerExit.CLEAN))  # recycled; its replacement boots
    actions = sim.exit(max(sim.pids()), WorkerExit.APP_LOAD)
    assert Halt(ServeExit.APP_LOAD) in actions and not spawns(actions)


def test_workers_dying_during_boot_halt_after_limit() -> None:
    sim = Sim(Policy(workers=1))
    sim.run(sim.policy.start())
    actions: list[object] = []
    for _ in range(BOOT_FAILURE_LIMIT):
        actions = sim.run(sim.policy.on_exit(min(sim.pids()), 1, None, sim.now))
    assert Halt(ServeExit.BOOT_LOOP) in actions


def test_harakiri_dumps_then_kills_and_replaces() -> None:
    sim = started(workers=1, harakiri=3)
    pid = next(iter(sim.pids()))
    sim.busy_since[pid] = 1000.0 + sim.now
    assert not signals_sent(sim.tick(2.0))
    actions = sim.tick(1.5)
    assert (pid, signal.SIGUSR2) in signals_sent(actions)
    # Its slot marked first: the worker tells the master's USR2 from one sent by hand.
    assert [a.harakiri for a in actions if isinstance(a, Signal)] == [0]
    assert len(sim.pids()) == 2  # replacement spawned at once
    assert "a new worker takes its place" in str(actions[0])
    assert (pid, signal.SIGKILL) in signals_sent(sim.tick(1.1))
    assert not signals_sent(sim.tick(1.1))  # killed once


def test_an_idle_worker_whose_loop_stopped_is_killed_past_harakiri() -> None:
    # A thread of the app's holding the GIL in C code, or a SIGSTOP: the worker is in no
    # request, so harakiri timed none; connections queued for it and /health said healthy.
    sim = started(workers=2, harakiri=3)
    stuck, beating = sorted(sim.pids())
    sim.beats[stuck] = sim.beats[beating] = sim.now
    for _ in range(49):  # 4.9 s: within --harakiri and the beat's slack (2 s)
        sim.beats[beating] = sim.now
        assert not signals_sent(sim.tick(0.1))
    actions = sim.tick(0.2)
    assert signals_sent(actions) == {(stuck, signal.SIGUSR2)}
    said = [str(a) for a in actions if isinstance(a, Log)]
    assert any("in no request, its loop not run for 5.1s (limit 3s)" in s for s in said), said
    assert len(sim.pids()) == 3  # its replacement, at once
    assert (stuck, signal.SIGKILL) in signals_sent(sim.tick(1.1))


def test_a_master_stopped_with_its_workers_takes_none_for_stalled_when_it_resumes() -> None:
    # Ctrl-Z, docker pause, a frozen cgroup: the whole group stops; at its first tick after,
    # the master read each slot before the workers ran again, and killed them all.
    sim = started(workers=2, harakiri=2)
    pids = sorted(sim.pids())
    for pid in pids:
        sim.beats[pid] = sim.now
    assert not signals_sent(sim.tick(6.0))  # the stop; their beats are as old as it
    for _ in range(50):
        sim.beats[pids[0]] = sim.now  # one runs again; the other stays stopped
        actions = sim.tick(0.1)
        if signals_sent(actions):
            break
    assert signals_sent(actions) == {(pids[1], signal.SIGUSR2)}  # 4 s on: harakiri + slack


def test_a_worker_serving_requests_or_without_harakiri_is_not_taken_for_stalled() -> None:
    # A loop busy with a stream of requests may not come round to its beat: the requests it
    # counts show it alive. Without --harakiri nothing is timed.
    sim = started(workers=1, harakiri=3)
    (pid,) = sim.pids()
    sim.beats[pid] = sim.now
    for _ in range(100):
        sim.served[pid] = sim.served.get(pid, 100) + 1
        assert not signals_sent(sim.tick(0.1))
    off = started(workers=1)
    (idle,) = off.pids()
    off.beats[idle] = off.now
    assert not signals_sent(off.tick(3600.0))


def test_a_worker_leaving_on_its_own_is_replaced_at_once() -> None:
    # max-requests: its slot says it is leaving before its exit work (up to 5 s); the next
    # worker starts at the next tick, not at its exit, which then starts nobody.
    sim = started(workers=2)
    pid = min(sim.pids())
    sim.leaving.add(pid)
    spawns = [a for a in sim.tick() if isinstance(a, Spawn)]
    assert len(spawns) == 1
    assert sim.policy.records[pid].state is WorkerState.STOPPING
    actions = sim.exit(pid, 0)
    assert not [a for a in actions if isinstance(a, Spawn)]
    assert [str(a) for a in actions if isinstance(a, Log)] == [
        str(Log(LogLevel.INFO, f"worker 1 (pid {pid}) exited with code 0"))
    ]
    # Leaving before any tick saw it ready: it booted (not a failure to start).
    fresh = Sim(Policy(workers=1))
    fresh.run(fresh.policy.start())
    (new,) = fresh.pids()
    fresh.leaving.add(new)
    assert any(isinstance(a, Spawn) for a in fresh.exit(new, 0))
    assert fresh.policy.boot_failures == 0


def test_a_worker_leaving_in_requests_is_replaced_at_once_and_cuts_none() -> None:
    # With --threads, one thread's max-requests: the worker stops accepting while another
    # thread serves a long request. Replaced at once (it was only at its exit: half of 2
    # workers gone for as long); that request gets no deadline (a recycle must not cut it),
    # --harakiri still times it; its exit work, once in no request, has one.
    sim = started(workers=2, graceful_timeout=10.0, harakiri=60.0)
    pid = min(sim.pids())
    sim.leaving.add(pid)
    sim.busy_since[pid] = 1000.0 + sim.now  # the policy's wall clock
    spawns = [a for a in sim.tick() if isinstance(a, Spawn)]
    assert len(spawns) == 1
    assert sim.policy.records[pid].state is WorkerState.RETIRING
    assert not signals_sent(sim.tick(30.0))  # past --graceful-timeout: not cut
    assert sim.policy.records[pid].state is WorkerState.RETIRING
    said = sim.tick(31.0)  # past --harakiri
    assert (pid, signal.SIGUSR2) in signals_sent(said)
    assert sim.policy.records[pid].state is WorkerState.HARAKIRI
    # Its requests over before: STOPPING, with --graceful-timeout for its exit work; its exit
    # starts no one more.
    other = started(workers=2, graceful_timeout=10.0)
    pid = min(other.pids())
    other.leaving.add(pid)
    other.busy_since[pid] = 1000.0 + other.now
    other.tick()
    del other.busy_since[pid]
    other.tick()
    assert other.policy.records[pid].state is WorkerState.STOPPING
    assert (pid, signal.SIGKILL) in signals_sent(other.tick(10.5))
    retiring = started(workers=2)
    pid = min(retiring.pids())
    retiring.leaving.add(pid)
    retiring.busy_since[pid] = 1000.0 + retiring.now
    retiring.tick()
    actions = retiring.exit(pid, 0)
    assert not [a for a in actions if isinstance(a, Spawn)]
    assert [str(a) for a in actions if isinstance(a, Log)] == [
        str(Log(LogLevel.INFO, f"worker 1 (pid {pid}) exited with code 0"))
    ]


def test_a_retiring_worker_is_left_its_requests_and_its_deaths_said() -> None:
    # After review. (1) --lazy-apps, 1 worker at its max-requests in a long request, new code
    # that does not import: the replacement's failure halted the server, and the halt's kill
    # cut that request. (2) A leaving worker killed in its requests (the OOM killer) was an
    # INFO line, without what its requests got. (3) --reload-on-rss (or a lifetime) then
    # gave its requests --graceful-timeout, which a recycle must not.
    sim = started(workers=1)
    (pid,) = sim.pids()
    sim.leaving.add(pid)
    sim.busy_since[pid] = 1000.0 + sim.now
    sim.tick()
    (new,) = sim.pids() - {pid}
    actions = sim.run(sim.exit(new, WorkerExit.APP_LOAD))
    assert not [a for a in actions if isinstance(a, Halt)]
    said = " ".join(a.message for a in actions if isinstance(a, Log))
    assert "a leaving worker finishes its requests; trying again in" in said, said
    assert sim.policy.records[pid].state is WorkerState.RETIRING
    actions = sim.exit(pid, None, signal.SIGKILL)
    (line,) = [a for a in actions if isinstance(a, Log)]
    assert line.level is LogLevel.ERROR and "killed by signal 9 (SIGKILL)" in line.message
    assert "not sent by uwsgiapp" in line.message, line.message
    rss = Sim(Policy(workers=1, reload_on_rss_mb=100))
    rss.run(rss.policy.start())
    rss.make_all_ready()
    rss.tick()
    (pid,) = rss.pids()
    rss.leaving.add(pid)
    rss.busy_since[pid] = 1000.0 + rss.now
    actions = rss.run(rss.policy.on_tick(rss.now + 0.1, 1000.1 + rss.now, rss.status, None))
    actions += rss.run(
        rss.policy.on_tick(rss.now + 0.2, 1000.2 + rss.now, rss.status, lambda pid: 500.0)
    )
    assert not signals_sent(actions)
    assert rss.policy.records[pid].state is WorkerState.RETIRING


@pytest.mark.parametrize(("busy", "grace"), [(1, DUMP_GRACE), (2, 5.0)])
def test_a_threaded_harakiri_waits_for_other_requests_only(busy: int, grace: float) -> None:
    # With --threads the stuck worker's kill waits --harakiri more seconds for its other
    # threads' requests; with none, that wait protected nothing: a request stuck in a C call
    # got its 502 at twice --harakiri (uWSGI's at once).
    sim = started(workers=1, harakiri=5.0)
    (pid,) = sim.pids()
    sim.busy_since[pid] = 1000.0 + sim.now - 6.0
    sim.cores[pid] = busy
    assert (pid, signal.SIGUSR2) in signals_sent(sim.tick())
    assert sim.policy.records[pid].deadline == pytest.approx(sim.now + grace)


def test_reload_on_rss_recycles_gracefully() -> None:
    sim = Sim(Policy(workers=1, reload_on_rss_mb=100))
    sim.run(sim.policy.start())
    sim.make_all_ready()
    pid = next(iter(sim.pids()))
    actions = sim.run(sim.policy.on_tick(1.0, 1001.0, sim.status, lambda p: 150.0))
    assert (pid, RETIRE) in signals_sent(actions)
    assert len(sim.pids()) == 2


def test_reload_on_rss_leaves_a_fresh_worker_and_says_when_the_limit_is_too_low() -> None:
    # A worker over the limit before any request would only be replaced by one like it: the
    # master forked ten a second. Recycled after a few requests, the limit is said to be low.
    sim = Sim(Policy(workers=1, reload_on_rss_mb=10))
    sim.run(sim.policy.start())
    sim.make_all_ready()
    pid = next(iter(sim.pids()))
    sim.served[pid] = 0
    assert not signals_sent(sim.run(sim.policy.on_tick(1.0, 1001.0, sim.status, lambda p: 20.0)))
    sim.served[pid] = 3
    actions = sim.run(sim.policy.on_tick(2.0, 1002.0, sim.status, lambda p: 20.0))
    assert (pid, RETIRE) in signals_sent(actions)
    warning, info = (a for a in actions if isinstance(a, Log))
    assert warning.level is LogLevel.WARNING
    # "near" said of a limit below what a fresh worker uses (100 MB against 172.1 MB)
    assert "--reload-on-rss 10 MB is below what a fresh worker uses (20.0 MB)" in warning.message
    assert "after 3 requests" in warning.message
    assert info.message.endswith("RSS 20.0 MB, over --reload-on-rss 10 MB: recycling")
    sim.make_all_ready()
    (new,) = sim.pids() - {pid}
    sim.served[new] = 2
    again = sim.run(sim.policy.on_tick(3.0, 1003.0, sim.status, lambda p: 20.0 * (p == new)))
    assert (new, RETIRE) in signals_sent(again)
    assert [a.level for a in again if isinstance(a, Log)] == [LogLevel.INFO]  # said once


def test_reload_on_rss_says_nothing_of_a_low_limit_when_a_worker_grew_from_far_below() -> None:
    # A fresh worker of 26 MB, a 60 MB limit, an app leaking 10 MB a request: the limit does
    # its job; "near what a fresh worker uses" was said all the same.
    sim = Sim(Policy(workers=1, reload_on_rss_mb=60))
    sim.run(sim.policy.start())
    sim.make_all_ready()
    pid = next(iter(sim.pids()))
    sim.served[pid] = 0
    sim.run(sim.policy.on_tick(1.0, 1001.0, sim.status, lambda p: 26.0))
    sim.served[pid] = 4
    actions = sim.run(sim.policy.on_tick(2.0, 1002.0, sim.status, lambda p: 66.0))
    assert (pid, RETIRE) in signals_sent(actions)
    assert [a.level for a in actions if isinstance(a, Log)] == [LogLevel.INFO]


def test_only_a_full_stop_drains_the_backlog_retired_workers_just_leave() -> None:
    # TERM tells a worker to serve the queued connections too (nobody else will); a worker
    # retired while others serve (reload, TTOU, RSS) must not: under load it would never end.
    assert RETIRE != signal.SIGTERM
    sim = started(workers=2, graceful_timeout=5, reload_on_rss_mb=100)
    ttou = signals_sent(sim.run(sim.policy.on_signal("TTOU", sim.now)))
    assert {signum for _, signum in ttou} == {RETIRE}
    big = min(sim.pids())
    rss = sim.run(
        sim.policy.on_tick(sim.now + 0.1, 1000.0, sim.status, lambda p: 150.0 * (p == big))
    )
    assert (big, RETIRE) in signals_sent(rss)
    # Retired workers still get the graceful timeout before a kill.
    assert not signals_sent(sim.tick(4.0))
    assert {signum for _, signum in signals_sent(sim.tick(1.5))} == {signal.SIGKILL}
    sim.make_all_ready()
    term = signals_sent(sim.policy.on_signal("TERM", sim.now))
    assert term and {signum for _, signum in term} <= {signal.SIGTERM}


# -- max-requests recycling is not a boot loop (issue 14, item 3) -----------------------------


def test_worker_recycled_before_any_tick_saw_it_ready_is_not_a_boot_failure() -> None:
    # Under load a worker can serve its whole --max-requests quota between two ticks: it said
    # it was ready (its slot), so its exit is a recycle, not a failure to start.
    sim = Sim(Policy(workers=1))
    sim.run(sim.policy.start())
    for _ in range(BOOT_FAILURE_LIMIT * 3):
        (pid,) = sim.pids()
        sim.ready.add(pid)  # the worker wrote READY in its slot; no tick in between
        actions = sim.run(sim.exit(pid, 0))
        assert not [a for a in actions if isinstance(a, Halt)], actions
        assert [a for a in actions if isinstance(a, Spawn)]
    assert sim.policy.boot_failures == 0 and not sim.policy.halted


def test_clean_exit_is_never_a_boot_failure_even_unseen_by_slot_or_tick() -> None:
    sim = Sim(Policy(workers=1))
    sim.run(sim.policy.start())
    for _ in range(BOOT_FAILURE_LIMIT * 2):
        actions = sim.run(sim.policy.on_exit(min(sim.pids()), 0, None, sim.now))
        assert not [a for a in actions if isinstance(a, Halt)]
    assert sim.policy.boot_failures == 0


def test_crash_after_the_worker_said_ready_is_not_a_boot_failure() -> None:
    sim = Sim(Policy(workers=1))
    sim.run(sim.policy.start())
    for _ in range(BOOT_FAILURE_LIMIT * 2):
        (pid,) = sim.pids()
        sim.ready.add(pid)
        actions = sim.run(sim.exit(pid, None, signal.SIGKILL))
        assert not [a for a in actions if isinstance(a, Halt)]
        sim.tick(0.6)  # two a second: not yet a crash loop


def test_a_crash_loop_of_serving_workers_holds_their_respawns_and_says_so() -> None:
    # A postfork timer's os._exit, or a request that segfaults under load: 15 forks a second
    # for ever (uWSGI sleeps: "worker respawning too fast"), 10 MB of dumps a minute.
    sim = started(workers=2)
    said: list[object] = []
    for _ in range(7):  # more than twice the workers, and two, in a second
        pid = min(sim.pids())
        sim.ready.add(pid)
        said += sim.run(sim.exit(pid, None, signal.SIGSEGV))
    assert "7 serving workers died in the last second (a crash loop): new workers in 1 s" in str(
        said
    )
    assert "; new workers are held" in str(said[-2:])
    held = len(sim.pids())
    assert not [a for a in sim.tick(0.5) if isinstance(a, Spawn)] and len(sim.pids()) == held
    sim.tick(0.6)
    assert len(sim.pids()) == 2  # then as many as asked for
    for _ in range(7):  # again: the hold doubles
        pid = min(sim.pids())
        sim.ready.add(pid)
        said = sim.run(sim.exit(pid, None, signal.SIGSEGV))
        sim.tick(0.01)
    assert "new workers in 2 s" in str(said)


def test_an_exit_whose_status_another_waiter_took_is_no_crash() -> None:
    """A worker the app's gevent reaped in the master (status unknown) was counted a crash:
    seven of them held the respawns, five booting ones halted the server."""
    sim = started(workers=2)
    said: list[object] = []
    for _ in range(7):
        pid = min(sim.pids())
        sim.ready.add(pid)
        said += sim.run(sim.exit(pid, None, None))
    assert "crash loop" not in str(said) and "held" not in str(said)
    assert "ended (its status was read by the app's code in the master" in str(said)
    assert all(a.level is LogLevel.INFO for a in said if isinstance(a, Log))
    sim = Sim(Policy(workers=2))
    sim.run(sim.policy.start())
    for _ in range(BOOT_FAILURE_LIMIT):  # booting ones: no boot loop
        assert Halt(ServeExit.BOOT_LOOP) not in sim.run(sim.exit(min(sim.pids()), None, None))


def test_a_hup_during_a_crash_hold_starts_the_new_workers_at_once() -> None:
    # A fixed deploy's HUP waited out the hold (an 8 s outage after the fix).
    sim = started(workers=1)
    for _ in range(5):
        pid = min(sim.pids())
        sim.ready.add(pid)
        said = sim.run(sim.exit(pid, None, signal.SIGSEGV))
    assert "(or at a HUP), none serving meanwhile" in str(said) and not sim.pids()
    hup = sim.run(sim.policy.on_signal("HUP", sim.now))
    assert [a for a in hup if isinstance(a, Spawn)] and len(sim.pids()) == 1


def test_a_crash_hold_with_none_serving_starts_one_worker_each_second(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A route that crashes one request in ten: the hold left no worker for up to 8 s, and the
    # other nine requests waited (p99 8 s) or got 502s. One worker a second serves them.
    monkeypatch.setattr(roster, "CRASH_HOLD", (4.0, 8.0, 30.0))  # a hold at its longer lengths
    sim = started(workers=2)
    for _ in range(7):
        pid = min(sim.pids())
        sim.ready.add(pid)
        said = sim.run(sim.exit(pid, None, signal.SIGSEGV))
    while sim.pids():  # the rest die too: nothing serves
        pid = min(sim.pids())
        sim.ready.add(pid)
        said += sim.run(sim.exit(pid, None, signal.SIGSEGV))
    assert "none serving meanwhile, so one is started each second" in str(said)
    probe = [a for a in sim.tick(0.01) if isinstance(a, Spawn)]
    assert len(probe) == 1 and len(sim.pids()) == 1  # one, not the two asked for
    assert not [a for a in sim.tick(0.3) if isinstance(a, Spawn)]  # it is starting
    (pid,) = sim.pids()
    sim.ready.add(pid)
    sim.run(sim.exit(pid, None, signal.SIGSEGV))  # it crashes too
    assert not [a for a in sim.tick(0.3) if isinstance(a, Spawn)]  # within the second: none
    assert len([a for a in sim.tick(0.5) if isinstance(a, Spawn)]) == 1
    (pid,) = sim.pids()
    sim.ready.add(pid)  # this one serves: no other until the hold ends
    assert not [a for a in sim.tick(1.5) if isinstance(a, Spawn)]
    assert len([a for a in sim.tick(2.0) if isinstance(a, Spawn)]) == 1  # the hold's end: both


def test_readiness_seen_at_exit_resets_the_boot_failure_count() -> None:
    sim = Sim(Policy(workers=1))
    sim.run(sim.policy.start())
    for _ in range(BOOT_FAILURE_LIMIT - 1):
        sim.run(sim.exit(min(sim.pids()), 1))
    assert sim.policy.boot_failures == BOOT_FAILURE_LIMIT - 1
    (pid,) = sim.pids()
    sim.ready.add(pid)
    sim.run(sim.exit(pid, 0))
    assert sim.policy.boot_failures == 0
    for _ in range(BOOT_FAILURE_LIMIT - 1):
        actions = sim.run(sim.exit(min(sim.pids()), 1))
    assert not [a for a in actions if isinstance(a, Halt)]


def test_a_previous_workers_ready_slot_does_not_make_a_booting_one_ready() -> None:
    # The slot is reused by the next worker of that id: READY must carry the pid that wrote it.
    sim = Sim(Policy(workers=1))
    sim.run(sim.policy.start())
    actions: list[object] = []
    for _ in range(BOOT_FAILURE_LIMIT):
        pid = min(sim.pids())
        stale = WorkerStatus(pid - 1, STATE_READY, 0.0, 7)
        actions = sim.run(sim.policy.on_exit(pid, 1, None, sim.now, lambda wid, s=stale: s))
    assert Halt(ServeExit.BOOT_LOOP) in actions


def test_workers_crashing_during_boot_with_their_slot_read_still_halt() -> None:
    sim = Sim(Policy(workers=2))
    sim.run(sim.policy.start())
    actions: list[object] = []
    for _ in range(BOOT_FAILURE_LIMIT):
        actions = sim.run(sim.exit(min(sim.pids()), 1))
    assert Halt(ServeExit.BOOT_LOOP) in actions


# -- a stop reaches every worker (issue 14, item 4) ---------------------------------------------


def assert_stopped_cleanly(sim: Sim, deadline: float) -> None:
    """Every worker is stopping, to be killed at ``deadline``; once they exit, Halt(0)."""
    policy = sim.policy
    assert policy.mode is Mode.STOPPING and not policy.pending
    for rec in policy.records.values():
        assert rec.state is WorkerState.STOPPING
        assert rec.deadline == deadline
    assert sim.pids(), "nothing to stop: the test is wrong"
    actions: list[object] = []
    for pid in list(sim.pids()):
        actions = sim.run(sim.exit(pid, 0))
        assert not [a for a in actions if isinstance(a, Spawn)]
    assert Halt(0) in actions and not sim.pids()


def test_term_in_the_same_batch_as_a_hup_forks_nothing_and_stops_everyone() -> None:
    # kill -HUP $M; kill -TERM $M: both handled in one loop turn, actions carried out after.
    sim = started(graceful_timeout=5)
    old = sim.pids()
    batch = sim.policy.on_signal("HUP", sim.now) + sim.policy.on_signal("TERM", sim.now)
    sim.run(batch)
    assert [a for a in batch if isinstance(a, Spawn)], "the HUP did ask for new workers"
    assert sim.forked[2:] == [], "no worker may be forked once stopping"
    assert signals_sent(batch) == {(pid, signal.SIGTERM) for pid in old}
    assert_stopped_cleanly(sim, sim.now + 5)


def test_term_in_the_same_batch_as_a_worker_death_forks_nothing() -> None:
    sim = started(graceful_timeout=5)
    dead, alive = sorted(sim.pids())
    batch = sim.exit(dead, None, signal.SIGKILL) + sim.policy.on_signal("TERM", sim.now)
    sim.run(batch)
    assert sim.pids() == {alive}
    assert signals_sent(batch) == {(alive, signal.SIGTERM)}
    assert_stopped_cleanly(sim, sim.now + 5)


def test_term_after_the_last_worker_died_in_the_same_batch_halts_without_forking() -> None:
    sim = started(workers=1)
    (pid,) = sim.pids()
    batch = sim.exit(pid, None, signal.SIGKILL) + sim.policy.on_signal("TERM", sim.now)
    sim.run(batch)
    assert Halt(0) in batch and sim.pids() == set()
    assert len(sim.forked) == 1  # the first worker only


def test_quick_stop_in_the_same_batch_as_a_hup_forks_nothing() -> None:
    sim = started()
    batch = sim.policy.on_signal("HUP", sim.now) + sim.policy.on_signal("QUIT", sim.now)
    sim.run(batch)
    assert len(sim.forked) == 2
    assert {s for _, s in signals_sent(batch)} == {signal.SIGINT}
    assert_stopped_cleanly(sim, sim.now + QUICK_GRACE)


def test_reimport_decided_before_a_term_of_the_same_batch_is_dropped() -> None:
    sim = started(reload_kind=ReloadKind.REIMPORT)
    batch = sim.policy.on_signal("HUP", sim.now) + sim.policy.on_signal("TERM", sim.now)
    sim.run(batch)
    assert Reimport() in batch and Reimport() in sim.skipped


def test_stop_after_hup_reaches_the_new_workers_forked_before_it() -> None:
    # HUP and TERM in two turns: the new (still booting) workers exist and get the stop.
    sim = started(graceful_timeout=5)
    sim.run(sim.policy.on_signal("HUP", sim.now))
    assert len(sim.pids()) == 4
    sim.tick()
    actions = sim.run(sim.policy.on_signal("TERM", sim.now))
    assert signals_sent(actions) == {(pid, signal.SIGTERM) for pid in sim.pids()}
    assert_stopped_cleanly(sim, sim.now + 5)


def test_a_worker_appearing_while_stopping_is_told_at_the_next_tick() -> None:
    # The safety net behind wanted(): whatever forks while stopping gets the stop too.
    sim = started(graceful_timeout=5)
    sim.run(sim.policy.on_signal("TERM", sim.now))
    sim.policy.spawned(7, 0, 999, sim.now)  # an arbiter that ignored wanted()
    actions = sim.tick()
    assert (999, signal.SIGTERM) in signals_sent(actions)
    assert sim.policy.records[999].deadline == sim.now + 5
    assert not [a for a in actions if isinstance(a, Spawn)]


def test_signals_while_stopping_never_spawn() -> None:
    sim = started(graceful_timeout=5)
    sim.run(sim.policy.on_signal("TERM", sim.now))
    stopped_at = sim.now
    for name in ("TTIN", "HUP", "TTOU", "USR1", "TERM"):
        sim.run(sim.policy.on_signal(name, sim.now))
        sim.tick()
    assert len(sim.forked) == 2 and sim.policy.generation == 0
    assert_stopped_cleanly(sim, stopped_at + 5)


def test_a_second_stop_never_delays_the_kill() -> None:
    sim = started(graceful_timeout=30)
    sim.run(sim.policy.on_signal("INT", sim.now))  # quick: killed after QUICK_GRACE
    sim.tick(1.0)
    sim.run(sim.policy.on_signal("TERM", sim.now))
    late = signals_sent(sim.tick(QUICK_GRACE))
    assert late == {(pid, signal.SIGKILL) for pid in sim.pids()}


def test_int_during_a_graceful_stop_cuts_and_says_so() -> None:
    # TERM, then an impatient Ctrl-C: the log read as if the graceful stop had simply ended.
    sim = started(graceful_timeout=30)
    sim.run(sim.policy.on_signal("TERM", sim.now))
    actions = sim.run(sim.policy.on_signal("INT", sim.now))
    assert "SIGINT while stopping: quick stop" in str(actions)
    assert {(pid, signal.SIGINT) for pid in sim.pids()} <= signals_sent(actions)


def test_term_during_harakiri_keeps_the_harakiri_kill_deadline() -> None:
    sim = started(workers=1, harakiri=3, graceful_timeout=30)
    (pid,) = sim.pids()
    sim.busy_since[pid] = 1000.0 + sim.now
    assert (pid, signal.SIGUSR2) in signals_sent(sim.tick(3.5))
    term = sim.run(sim.policy.on_signal("TERM", sim.now))
    assert (pid, signal.SIGTERM) in signals_sent(term)
    assert (pid, signal.SIGKILL) in signals_sent(sim.tick(1.1))  # not 30 s later


def test_ttou_in_the_same_batch_as_a_respawn_cancels_it() -> None:
    # A worker died (a replacement is asked for) and TTOU arrives before it is forked: the
    # replacement is no longer wanted; before, it was forked and the pool stayed one too big.
    sim = started(workers=2)
    dead, alive = sorted(sim.pids())
    batch = sim.exit(dead, None, signal.SIGKILL) + sim.policy.on_signal("TTOU", sim.now)
    sim.run(batch)
    assert not signals_sent(batch)
    assert sim.pids() == {alive} and sim.policy.desired == 1
    sim.make_all_ready()
    assert not [a for a in sim.tick() if isinstance(a, Spawn)]


def test_hup_drops_unforked_spawns_of_the_older_generation() -> None:
    sim = started(workers=2)
    dead = min(sim.pids())
    batch = sim.exit(dead, None, signal.SIGKILL) + sim.policy.on_signal("HUP", sim.now)
    sim.run(batch)
    assert {sim.policy.records[pid].generation for pid in sim.forked[2:]} == {1}
    assert len(sim.pids(1)) == 2 and len(sim.pids(0)) == 1


# -- bursts of HUPs, TTINs: bounded workers, never past the status table ----------------------


def test_each_hup_retires_the_older_workers_still_booting_and_keeps_the_serving_ones() -> None:
    sim = started(workers=2, graceful_timeout=5)
    serving = sim.pids(0)
    for _ in range(50):  # lazy apps: no new generation is ready before the next HUP
        sim.run(sim.policy.on_signal("HUP", sim.now))
        sim.tick()
        live = [r for r in sim.policy.records.values() if r.state is not WorkerState.STOPPING]
        assert len(live) == 4 and serving <= {r.pid for r in live}
        # 2 serving, 2 booting, 2 just retired: never more slots than that.
        assert max(r.wid for r in sim.policy.records.values()) < 6
        # Retired workers leave (a booting one dies of the HUP at once).
        for rec in [r for r in sim.policy.records.values() if r.state is WorkerState.STOPPING]:
            sim.run(sim.exit(rec.pid, None, signal.SIGHUP))
    sim.make_all_ready()
    assert signals_sent(sim.tick()) == {(pid, RETIRE) for pid in serving}


def test_a_hup_keeps_at_most_the_desired_number_of_older_workers_serving() -> None:
    sim = started(workers=2)
    sim.run(sim.policy.on_signal("HUP", sim.now))
    gen1 = sorted(sim.pids(1))
    sim.ready.add(gen1[0])  # one of the new ones is up, the other still imports
    sim.tick()
    actions = sim.run(sim.policy.on_signal("HUP", sim.now))
    # Kept serving: gen 1's ready worker and one gen 0 one; the booting one and the 2nd
    # gen 0 one are retired.
    retired = signals_sent(actions)
    assert {s for _, s in retired} == {RETIRE} and len(retired) == 2
    assert (gen1[1], RETIRE) in retired and (gen1[0], RETIRE) not in retired


def test_spawning_waits_for_a_free_status_slot_instead_of_overflowing() -> None:
    sim = started(workers=2, slots=4)
    sim.run(sim.policy.on_signal("HUP", sim.now))  # slots 0-3 in use: 2 old, 2 new
    sim.make_all_ready()
    sim.tick()  # hand-over: the old ones are stopping (slow requests), still in their slots
    actions = sim.run(sim.policy.on_signal("HUP", sim.now))
    assert not [a for a in actions if isinstance(a, Spawn)]
    assert any("slots are taken" in str(a) for a in actions)
    assert not [a for a in sim.tick() if isinstance(a, Spawn)]
    assert not any("slots are taken" in str(a) for a in sim.tick())  # said once
    left = sim.run(sim.exit(min(sim.pids(0)), 0))  # an old one finished and left
    spawns = [a for a in left + sim.tick() if isinstance(a, Spawn)]
    assert len(spawns) == 1 and spawns[0].wid < 4 and spawns[0].generation == 2


def test_ttin_stops_at_half_the_slots_a_reload_needs_the_other_half() -> None:
    sim = started(workers=2, slots=8)
    for _ in range(10):
        sim.run(sim.policy.on_signal("TTIN", sim.now))
    assert sim.policy.desired == 4 and len(sim.pids()) == 4
    sim.make_all_ready()
    sim.run(sim.policy.on_signal("HUP", sim.now))
    assert len(sim.pids()) == 8


def test_a_failed_reload_after_a_quick_second_hup_keeps_the_serving_workers() -> None:
    # HUP, HUP: the 1st reload's workers (still booting) were retired; when the 2nd reload
    # cannot load the app, the workers serving (generation 0) are the ones kept: nothing is
    # forked (with lazy-apps it would import the same broken code, fail, and halt).
    sim = started(workers=2)
    serving = sim.pids(0)
    sim.run(sim.policy.on_signal("HUP", sim.now))
    sim.tick()
    sim.run(sim.policy.on_signal("HUP", sim.now))
    for rec in [r for r in sim.policy.records.values() if r.state is WorkerState.STOPPING]:
        sim.run(sim.exit(rec.pid, None, signal.SIGHUP))
    actions = sim.run(sim.exit(min(sim.pids(2)), WorkerExit.APP_LOAD))
    assert not [a for a in actions if isinstance(a, (Spawn, Halt))]
    assert (max(sim.pids(2)), signal.SIGKILL) in signals_sent(actions)
    assert sim.policy.mode is Mode.RUNNING and sim.policy.generation == 2
    assert serving == kept(sim, 2)  # counted as current: no more spawns, none left behind
    sim.make_all_ready()
    assert not [a for a in sim.tick() if isinstance(a, (Spawn, Signal))]


def test_a_failed_reload_keeps_at_most_the_desired_number_of_serving_workers() -> None:
    sim = started(workers=2)
    sim.run(sim.policy.on_signal("HUP", sim.now))
    sim.ready.add(min(sim.pids(1)))  # one gen 1 worker is up
    sim.tick()
    sim.run(sim.policy.on_signal("HUP", sim.now))  # keeps 2 serving: gen 1's and a gen 0 one
    for rec in [r for r in sim.policy.records.values() if r.state is WorkerState.STOPPING]:
        sim.run(sim.exit(rec.pid, None, signal.SIGHUP))
    actions = sim.run(sim.exit(min(sim.pids(2)), WorkerExit.APP_LOAD))
    assert not [a for a in actions if isinstance(a, (Spawn, Halt))]
    live = [r for r in sim.policy.records.values() if r.state is not WorkerState.STOPPING]
    assert len(live) == 2 and {r.generation for r in live} == {2}


def test_a_failed_reimport_calls_the_reload_off_and_keeps_the_serving_workers() -> None:
    # HUP re-imports the app in the master; when that fails, new workers would only run the
    # old code again: nothing is forked, nothing is retired.
    sim = started(workers=2, reload_kind=ReloadKind.REIMPORT)
    serving = sim.pids()
    hup = sim.policy.on_signal("HUP", sim.now)
    assert Reimport() in hup
    batch = hup[: hup.index(Reimport()) + 1]
    batch += sim.policy.reimport_failed(sim.now) + hup[len(batch) :]
    actions = sim.run(batch)
    assert not [a for a in actions if isinstance(a, Spawn) and sim.policy.wanted(a)]
    assert sim.forked[-1] in serving and not signals_sent(actions)
    assert sim.policy.mode is Mode.RUNNING and sim.policy.generation == 1
    assert not [a for a in sim.tick() if isinstance(a, (Spawn, Signal))]
    assert sim.pids() == serving
    assert sim.policy.reimport_failed(sim.now) == []  # not reloading: nothing to call off


def test_new_workers_that_keep_crashing_as_they_load_leave_the_serving_ones_serving() -> None:
    # --lazy-apps and new code that segfaults at import: after a HUP (or one worker's death)
    # the master stopped after five crashes, killing the old workers that served.
    sim = started()
    old = sim.pids()
    sim.run(sim.policy.on_signal("HUP", sim.now))
    actions: list[object] = []
    for _ in range(BOOT_FAILURE_LIMIT):
        crashed = min(sim.pids(1))
        actions = sim.run(sim.policy.on_exit(crashed, None, signal.SIGSEGV, sim.now))
    assert not any(isinstance(a, Halt) for a in actions)
    assert f"was the {BOOT_FAILURE_LIMIT}th in a row to die while starting" in str(actions)
    assert sim.policy.mode is Mode.RUNNING and sim.policy.generation == 1  # called off
    assert old <= sim.pids()
    # Without a reload: one serving, its peer's replacement keeps crashing: tried again later.
    sim = started()
    serving, victim = sorted(sim.pids())
    sim.run(sim.policy.on_exit(victim, None, signal.SIGKILL, sim.now))
    for _ in range(BOOT_FAILURE_LIMIT):
        crashed = max(sim.pids() - {serving})
        actions = sim.run(sim.policy.on_exit(crashed, None, signal.SIGSEGV, sim.now))
    assert not any(isinstance(a, Halt) for a in actions)
    assert "trying again in 1 s" in str(actions) and serving in sim.pids()
