"""``--max-worker-lifetime`` (uWSGI's ``max-worker-lifetime``, with its ``-delta`` stagger),
through the policy as the arbiter drives it: no processes, no clocks."""

from __future__ import annotations

from supervisor.policy_sim import Sim, signals_sent

from uwsgiapp.supervisor.actions import RETIRE, Log
from uwsgiapp.supervisor.policy import Policy


def _retired(actions: list[object]) -> set[int]:
    return {pid for pid, signum in signals_sent(actions) if signum == RETIRE}


def _pool(workers: int, **kw: object) -> Sim:
    sim = Sim(Policy(workers=workers, **kw))  # type: ignore[arg-type]
    sim.run(sim.policy.start())
    sim.make_all_ready()
    return sim


def test_a_pool_started_together_is_recycled_one_worker_at_a_time() -> None:
    sim = _pool(3, max_worker_lifetime=60.0)
    first = set(sim.pids())
    assert _retired(sim.tick(59.0)) == set()
    gone: list[int] = []
    for _ in range(12):
        actions = sim.tick(1.0)
        retired = _retired(actions)
        assert len(retired) <= 1, actions  # never two at once
        gone += retired
        said = [a.message for a in actions if isinstance(a, Log)]
        assert all("over --max-worker-lifetime 60s: recycling" in m for m in said), said
        sim.make_all_ready()  # each replacement serves by the next tick
        for pid in retired:
            sim.run(sim.exit(pid, 0))
    assert sorted(gone) == sorted(first)  # each of the first pool, once
    assert len(sim.pids()) == 3


def test_no_worker_leaves_while_its_replacement_starts() -> None:
    sim = _pool(2, max_worker_lifetime=10.0)
    (one,) = _retired(sim.tick(10.5))
    # The replacement is still booting: the other worker, past its lifetime too, stays.
    assert _retired(sim.tick(1.0)) == set()
    assert _retired(sim.tick(5.0)) == set()
    sim.make_all_ready()  # once its slot says so (at a tick), the next may go
    (two,) = _retired(sim.tick(1.0)) | _retired(sim.tick(1.0))
    assert two != one


def test_the_delta_staggers_the_workers_by_their_number() -> None:
    sim = _pool(3, max_worker_lifetime=100.0, max_worker_lifetime_delta=30.0)
    by_number = {rec.number: pid for pid, rec in sim.policy.records.items()}
    seen: dict[float, set[int]] = {}
    for _ in range(200):
        actions = sim.tick(1.0)
        retired = _retired(actions)
        if retired:
            seen[round(sim.now)] = retired
        sim.make_all_ready()
        for pid in retired:
            sim.run(sim.exit(pid, 0))
        if len(seen) == 3:
            break
    # Worker 1 at 100 s, worker 2 at 130 s, worker 3 at 160 s (uWSGI's (N - 1) * delta).
    assert list(seen.values()) == [{by_number[1]}, {by_number[2]}, {by_number[3]}], seen
    times = list(seen)
    assert 100 < times[0] <= 101 and 130 < times[1] <= 131 and 160 < times[2] <= 161, seen


def test_off_by_default_and_held_while_a_worker_cannot_load_the_app() -> None:
    sim = _pool(1)
    assert _retired(sim.tick(10_000.0)) == set()
    held = _pool(1, max_worker_lifetime=5.0)
    held.tick()  # it serves
    held.policy.load_retry = 1.0  # a worker failed to load the app since the last one did
    assert _retired(held.tick(6.0)) == set()
    held.policy.load_retry = 0.0
    assert len(_retired(held.tick(1.0))) == 1
