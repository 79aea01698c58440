"""The supervisor's decisions, driven directly: no processes, no clocks, no signals."""

from __future__ import annotations

import signal

from uwsgiapp.supervisor.policy import (
    BOOT_FAILURE_LIMIT,
    EXIT_APP_LOAD,
    EXIT_BOOT_LOOP,
    RETIRE,
    Halt,
    Policy,
    Reimport,
    Signal,
    Spawn,
    StopAccepting,
)
from uwsgiapp.supervisor.status import STATE_BOOTING, STATE_READY, WorkerStatus


class Sim:
    """Plays the arbiter: gives pids to spawns and answers status reads."""

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.next_pid = 100
        self.ready: set[int] = set()
        self.busy_since: dict[int, float] = {}
        self.now = 0.0

    def run(self, actions: list[object]) -> list[object]:
        for action in actions:
            if isinstance(action, Spawn):
                self.policy.spawned(action.wid, action.generation, self.next_pid, self.now)
                self.next_pid += 1
        return actions

    def status(self, wid: int) -> WorkerStatus:
        rec = next((r for r in self.policy.records.values() if r.wid == wid), None)
        if rec is None:
            return WorkerStatus(0, 0, 0.0, 0)
        state = STATE_READY if rec.pid in self.ready else STATE_BOOTING
        return WorkerStatus(rec.pid, state, self.busy_since.get(rec.pid, 0.0), 0)

    def tick(self, dt: float = 0.1) -> list[object]:
        self.now += dt
        return self.run(self.policy.on_tick(self.now, 1000.0 + self.now, self.status))

    def make_all_ready(self) -> None:
        self.ready |= set(self.policy.records)

    def pids(self, generation: int | None = None) -> set[int]:
        return {
            pid
            for pid, rec in self.policy.records.items()
            if generation is None or rec.generation == generation
        }


def started(workers: int = 2, **kw: object) -> Sim:
    sim = Sim(Policy(workers=workers, **kw))  # type: ignore[arg-type]
    sim.run(sim.policy.start())
    sim.make_all_ready()
    sim.tick()
    return sim


def signals_sent(actions: list[object]) -> set[tuple[int, int]]:
    return {(a.pid, a.signum) for a in actions if isinstance(a, Signal)}


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
    assert "killed by signal 9 (SIGKILL)" in str(actions[0])
    assert len(sim.pids()) == 2


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


def test_hup_twice_quickly_spawns_each_generation_once() -> None:
    sim = started()
    first = sim.run(sim.policy.on_signal("HUP", sim.now))
    second = sim.run(sim.policy.on_signal("HUP", sim.now))
    assert len([a for a in first + second if isinstance(a, Spawn)]) == 4
    sim.make_all_ready()
    stopped = {pid for pid, _ in signals_sent(sim.tick())}
    assert stopped == sim.pids(0) | sim.pids(1)


def test_reload_with_reimport_asks_the_master_first() -> None:
    sim = started(reimport_on_reload=True)
    actions = sim.policy.on_signal("HUP", sim.now)
    kinds = [type(a) for a in actions]
    assert kinds.index(Reimport) < kinds.index(Spawn)


def test_reload_whose_new_workers_cannot_load_keeps_old_ones() -> None:
    sim = started()
    old = sim.pids()
    sim.run(sim.policy.on_signal("HUP", sim.now))
    new = sim.pids(1)
    actions = sim.run(sim.policy.on_exit(min(new), EXIT_APP_LOAD, None, sim.now))
    assert not any(isinstance(a, Halt) for a in actions)
    assert (max(new), signal.SIGKILL) in signals_sent(actions)
    assert sim.policy.generation == 0 and sim.policy.mode == "running"
    assert old <= sim.pids()


def test_term_stops_gracefully_then_kills_after_timeout_then_halts_zero() -> None:
    sim = started(graceful_timeout=5)
    actions = sim.policy.on_signal("TERM", sim.now)
    assert any(isinstance(a, StopAccepting) for a in actions)
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
    actions = sim.policy.on_exit(min(sim.pids()), EXIT_APP_LOAD, None, sim.now)
    assert Halt(EXIT_APP_LOAD) in actions
    assert not [a for a in actions if isinstance(a, Spawn)]


def test_workers_dying_during_boot_halt_after_limit() -> None:
    sim = Sim(Policy(workers=1))
    sim.run(sim.policy.start())
    actions: list[object] = []
    for _ in range(BOOT_FAILURE_LIMIT):
        actions = sim.run(sim.policy.on_exit(min(sim.pids()), 1, None, sim.now))
    assert Halt(EXIT_BOOT_LOOP) in actions


def test_harakiri_dumps_then_kills_and_replaces() -> None:
    sim = started(workers=1, harakiri=3)
    pid = next(iter(sim.pids()))
    sim.busy_since[pid] = 1000.0 + sim.now
    assert not signals_sent(sim.tick(2.0))
    actions = sim.tick(1.5)
    assert (pid, signal.SIGUSR2) in signals_sent(actions)
    assert len(sim.pids()) == 2  # replacement spawned at once
    assert (pid, signal.SIGKILL) in signals_sent(sim.tick(1.1))
    assert not signals_sent(sim.tick(1.1))  # killed once


def test_reload_on_rss_recycles_gracefully() -> None:
    sim = Sim(Policy(workers=1, reload_on_rss_mb=100))
    sim.run(sim.policy.start())
    sim.make_all_ready()
    pid = next(iter(sim.pids()))
    actions = sim.run(sim.policy.on_tick(1.0, 1001.0, sim.status, lambda p: 150.0))
    assert (pid, RETIRE) in signals_sent(actions)
    assert len(sim.pids()) == 2


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
