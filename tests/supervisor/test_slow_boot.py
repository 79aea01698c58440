"""A worker that takes long to start is said once: a hung reload, a hung start, no longer
silent (the policy driven directly, as in test_policy)."""

from __future__ import annotations

from supervisor.policy_sim import Sim, started

from uwsgiapp.supervisor.actions import Log, LogLevel, Mode
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.roster import SLOW_BOOT


def _slow_lines(actions: list[object]) -> list[str]:
    return [
        a.message
        for a in actions
        if isinstance(a, Log) and a.level is LogLevel.WARNING and "still starting" in a.message
    ]


def test_a_reload_whose_new_workers_hang_says_so_once_each() -> None:
    sim = started()
    sim.run(sim.policy.on_signal("HUP", sim.now))
    new = sorted(sim.pids(1))
    assert sim.policy.mode is Mode.RELOADING
    assert _slow_lines(sim.tick(SLOW_BOOT - 1)) == []
    said = _slow_lines(sim.tick(1.5))
    assert said == [
        f"worker {n} (pid {pid}) is still starting after 30 s (the app's import with "
        "--lazy-apps, or a postfork function: a connect without a timeout?); the reload "
        "waits for it, the old workers serve meanwhile"
        for n, pid in zip((1, 2), new, strict=True)
    ]
    assert _slow_lines(sim.tick(60)) == []  # once


def test_a_start_that_hangs_says_nothing_serves_and_a_ready_worker_is_never_said() -> None:
    sim = Sim(Policy(workers=2))
    sim.run(sim.policy.start())
    first, second = sorted(sim.pids())
    sim.ready.add(first)
    sim.tick()
    said = _slow_lines(sim.tick(SLOW_BOOT))
    assert said == [
        f"worker 2 (pid {second}) is still starting after 30 s (the app's import with "
        "--lazy-apps, or a postfork function: a connect without a timeout?); it serves "
        "nothing until then"
    ]
