"""Drives the supervisor's :class:`Policy` directly, as the arbiter would: no processes, no
clocks, no signals."""

from __future__ import annotations

from collections.abc import Callable

from uwsgiapp.supervisor.actions import Signal, Spawn
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.status import STATE_BOOTING, STATE_LEAVING, STATE_READY, WorkerStatus


class Sim:
    """Plays the arbiter: gives pids to spawns and answers status reads.

    Like the arbiter, it carries out a batch of actions (several events' worth) at once, and
    skips what :meth:`Policy.wanted` says a later event of the batch overtook.
    """

    def __init__(self, policy: Policy) -> None:
        self.policy = policy
        self.next_pid = 100
        self.ready: set[int] = set()
        self.busy_since: dict[int, float] = {}
        #: With --threads: each worker's request threads in a request (its slot's busy cores).
        self.cores: dict[int, int] = {}
        #: Each worker's requests' own harakiri (WorkerStatus.limits), where the app set one.
        self.limits: dict[int, tuple[tuple[float, float], ...]] = {}
        #: With --threads: each worker's request threads that started (all unless set).
        self.threads: dict[int, int] = {}
        #: Workers whose slot says they are leaving on their own (max-requests).
        self.leaving: set[int] = set()
        #: Requests each worker has served (what its slot counts); 100 unless set.
        self.served: dict[int, int] = {}
        #: When each worker's loop last beat (on the policy's clock; 0, none, unless set).
        self.beats: dict[int, float] = {}
        self.now = 0.0
        #: What the arbiter's listen-queue read answers (None: no queue is read).
        self.queue: Callable[[], int | None] | None = None
        self.forked: list[int] = []
        self.skipped: list[object] = []
        #: The shared status table: each slot holds the last worker forked into it, even after
        #: that worker is gone (until the next one of that slot is forked).
        self.slots: dict[int, int] = {}

    def run(self, actions: list[object]) -> list[object]:
        for action in actions:
            if not self.policy.wanted(action):  # type: ignore[arg-type]
                self.skipped.append(action)
                continue
            if isinstance(action, Spawn):
                self.policy.spawned(action.wid, action.generation, self.next_pid, self.now)
                self.slots[action.wid] = self.next_pid
                self.forked.append(self.next_pid)
                self.next_pid += 1
        return actions

    def exit(
        self, pid: int, code: int | None = 0, signum: int | None = None, killer: str | None = None
    ) -> list[object]:
        """``pid`` ended; the policy may read its slot, as the arbiter lets it."""
        return list(self.policy.on_exit(pid, code, signum, self.now, self.status, killer))

    def status(self, wid: int) -> WorkerStatus:
        pid = self.slots.get(wid)
        if pid is None:
            return WorkerStatus(0, 0, 0.0, 0)
        state = STATE_READY if pid in self.ready else STATE_BOOTING
        state = STATE_LEAVING if pid in self.leaving else state
        return WorkerStatus(
            pid,
            state,
            self.busy_since.get(pid, 0.0),
            self.served.get(pid, 100),
            self.cores.get(pid, 0),
            self.threads.get(pid, self.policy.cheaper.threads if self.policy.cheaper else 1),
            self.beats.get(pid, 0.0),
            self.limits.get(pid, ()),
        )

    def tick(self, dt: float = 0.1) -> list[object]:
        self.now += dt
        return self.run(
            self.policy.on_tick(self.now, 1000.0 + self.now, self.status, None, self.queue)
        )

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
