"""Forks that fail (the process limit, memory, the master's descriptors): the policy holds the
spawns and backs off, and the log says why once, not at every tick."""

from __future__ import annotations

import errno
import os
import re
import resource
import subprocess
import sys
from pathlib import Path

from supervisor.policy_sim import Sim
from support.procs import APPS_DIR

from uwsgiapp.exitcodes import ServeExit
from uwsgiapp.supervisor.actions import Halt, Spawn
from uwsgiapp.supervisor.forkfail import (
    FORK_RETRY,
    FORK_SAY_EVERY,
    NO_ROOM_TRIES,
    ForkFailures,
    fork_cause,
)
from uwsgiapp.supervisor.policy import Policy


def _error(code: int) -> OSError:
    return OSError(code, os.strerror(code))


class FailingSim(Sim):
    """An arbiter whose forks fail while ``failing``: each failure goes to the policy, as the
    arbiter reports it, and the lines it is given to log are kept."""

    def __init__(self, policy: Policy, code: int = errno.EAGAIN) -> None:
        super().__init__(policy)
        self.code = code
        self.failing = True
        self.tries = 0
        self.lines: list[str] = []

    def run(self, actions: list[object]) -> list[object]:
        for action in actions:
            if not (isinstance(action, Spawn) and self.failing):
                super().run([action])
            elif self.policy.wanted(action):
                self.tries += 1
                said = self.policy.spawn_failed(action.wid, _error(self.code), self.now)
                self.lines += [said] if said else []
        return actions


def test_a_failed_fork_holds_the_batch_and_backs_off_with_one_line() -> None:
    # Every missing worker was tried again at each 0.1 s tick, a line each: 50 a second.
    sim = FailingSim(Policy(workers=8))
    sim.run(sim.policy.start())
    assert sim.tries == 1  # the other seven spawns of the batch wait too
    for _ in range(200):  # 20 s
        sim.tick()
    first, most = FORK_RETRY
    waits = [first * 2**n for n in range(10) if first * 2**n < most]
    assert sim.tries == 1 + len(waits) + int((20 - sum(waits)) // most)
    assert len(sim.lines) == 1
    assert sim.lines[0].startswith("cannot fork a worker: [Errno 11]")
    assert "RLIMIT_NPROC (ulimit -u" in sim.lines[0] and "pids.max" in sim.lines[0]
    assert "0 of 8 workers running; trying again in 0.5 s" in sim.lines[0]
    sim.failing = False
    for _ in range(int(most / 0.1) + 1):
        sim.tick()
    assert len(sim.policy.records) == 8
    assert len(sim.lines) == 1


def test_forks_failing_for_long_are_said_again_now_and_then() -> None:
    sim = FailingSim(Policy(workers=2))
    sim.run(sim.policy.start())
    for _ in range(int(FORK_SAY_EVERY * 10) + 60):
        sim.tick()
    assert len(sim.lines) == 2
    assert re.match(
        r"still cannot fork a worker: \d+ tries failed in 3\d s \(the last: ", sim.lines[1]
    )
    assert "trying again every 5 s" in sim.lines[1]


def test_a_fork_that_works_makes_the_next_failure_a_first_one_again() -> None:
    failures = ForkFailures()
    assert failures.failed_now(_error(errno.ENOMEM), 0.0, 1, 2)[0] == FORK_RETRY[0]
    assert failures.failed_now(_error(errno.ENOMEM), 1.0, 1, 2) == (FORK_RETRY[0] * 2, None)
    sim = FailingSim(Policy(workers=2))
    sim.run(sim.policy.start())
    sim.failing = False
    for _ in range(10):
        sim.tick()
    assert len(sim.policy.records) == 2 and sim.policy.forks.failed == 0
    sim.failing = True
    sim.run(sim.exit(min(sim.policy.records), None, 9))
    assert len(sim.lines) == 2 and sim.lines[1].startswith("cannot fork a worker")


class LimitedSim(FailingSim):
    """Forks fail while ``limit`` workers run (a process limit that holds that many)."""

    def __init__(self, policy: Policy, limit: int) -> None:
        super().__init__(policy)
        self.limit = limit

    def run(self, actions: list[object]) -> list[object]:
        for action in actions:
            self.failing = len(self.policy.records) >= self.limit
            super().run([action])
        return actions


def test_forks_that_work_beside_one_that_fails_do_not_make_it_a_first_one() -> None:
    # A limit that holds 3 of 4 workers, workers recycling: each recycle's fork worked, and
    # the missing worker's failure was said again as a first one (30 lines a minute).
    sim = LimitedSim(Policy(workers=4), limit=3)
    sim.run(sim.policy.start())
    for second in range(60):
        for _ in range(10):
            sim.tick()
        if second % 2:  # a worker recycled every other second
            sim.run(sim.exit(min(sim.policy.records), 0, None))
    firsts = [line for line in sim.lines if line.startswith("cannot fork a worker")]
    assert len(firsts) == 1 and len(sim.lines) <= 3, sim.lines
    assert sim.policy.forks.retry == FORK_RETRY[1]  # the wait grew, as while none works


def test_the_causes_named() -> None:
    assert "open-files limit" in fork_cause(errno.EMFILE)
    assert "out of memory" in fork_cause(errno.ENOMEM)
    assert fork_cause(errno.EPERM) == fork_cause(None) == ""


def test_the_first_workers_unforkable_for_the_masters_open_files_limit_stop_the_start() -> None:
    # --log-master's pipes under ulimit -n 16: the master waited with no worker for good (its
    # health check 503, a pod never ready), where a worker with too few descriptors exits 3.
    sim = FailingSim(Policy(workers=2), errno.EMFILE)
    sim.run(sim.policy.start())
    said: list[object] = []
    for _ in range(100):  # 10 s: the tries at 0.5, 1 and 2 s more
        said = sim.tick()
        if any(isinstance(a, Halt) for a in said):
            break
    assert Halt(ServeExit.START_FAILED) in said
    assert "cannot fork the first workers for the master's open-files limit" in str(said)
    assert sim.tries == NO_ROOM_TRIES  # not at the first: a descriptor held for a moment
    # A TERM while they fail: its stop (exit 0), not the limit's 3.
    sim = FailingSim(Policy(workers=2), errno.EMFILE)
    sim.run(sim.policy.start())
    said = sim.run(sim.policy.on_signal("TERM", sim.now))
    halts = [a for _ in range(100) for a in sim.tick() if isinstance(a, Halt)]
    assert ServeExit.START_FAILED not in [h.code for h in [*halts, *said] if isinstance(h, Halt)]
    # Another cause (the process limit), or once a worker served: forks are tried again.
    for code in (errno.EAGAIN, errno.EMFILE):
        sim = FailingSim(Policy(workers=2), code)
        sim.failing = code == errno.EAGAIN
        sim.run(sim.policy.start())
        sim.tick()
        if code == errno.EMFILE:  # both started and served; then a recycle's fork fails
            sim.policy.served = True
            sim.failing = True
            sim.policy.spawn_failed(0, _error(code), sim.now)
        assert not [a for a in sim.tick() if isinstance(a, Halt)]


def test_a_real_master_under_a_low_open_files_limit_stops_with_3(tmp_path: Path) -> None:
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (16, 16))

    command = [
        sys.executable, "-m", "uwsgiapp", "serve", "supervisor_app:app", "--pythonpath",
        str(APPS_DIR), "--socket", str(tmp_path / "s.sock"), "--workers", "2", "--log-master",
    ]  # fmt: skip
    done = subprocess.run(
        command, preexec_fn=low_limit, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 3, done.stderr
    assert "cannot fork the first workers for the master's open-files limit" in done.stderr
