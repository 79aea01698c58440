"""The master's state and the bookkeeping the supervisor's decisions share: which workers
exist and in which state, which spawns are pending, which status slots are free, how a worker
is told to stop. Pure: no processes, no clocks. :mod:`~uwsgiapp.supervisor.policy` decides.
"""

from __future__ import annotations

import signal
from dataclasses import dataclass, field

from uwsgiapp.exitcodes import ServeExit
from uwsgiapp.supervisor.actions import (
    CRASH_HOLD,
    CRASH_PROBE_EVERY,
    QUICK_GRACE,
    RETIRE,
    Action,
    Halt,
    Log,
    LogLevel,
    Mode,
    Notify,
    Reimport,
    ReloadKind,
    Signal,
    Spawn,
    WorkerRecord,
    WorkerState,
    count_workers,
)
from uwsgiapp.supervisor.status import WorkerStatus

BOOTING, READY, STOPPING, HARAKIRI, RETIRING = WorkerState
#: A worker recycled by --reload-on-rss after fewer requests than this: the limit is too low.
FEW_REQUESTS = 10
#: A fresh worker's RSS this share of --reload-on-rss or more is "near" it.
NEAR_FRESH = 0.75
#: States of a worker already told to go.
TOLD = (STOPPING, HARAKIRI)
#: Seconds a worker may take to start (import, postfork functions) before a line says so.
SLOW_BOOT = 30.0


@dataclass
class Roster:
    """The master's state: its workers, those asked for, the mode; and the bookkeeping every
    decision shares. Times are seconds (``now`` monotonic)."""

    workers: int
    graceful_timeout: float = 30.0
    harakiri: float = 0.0
    #: What a HUP does about the code (the arbiter carries out a REIMPORT).
    reload_kind: ReloadKind = ReloadKind.RECYCLE
    reload_on_rss_mb: int = 0
    #: --max-worker-lifetime (seconds; 0: off): worker N is recycled after it plus (N - 1) times
    #: --max-worker-lifetime-delta, uWSGI's stagger; and when that last happened (monotonic).
    max_worker_lifetime: float = 0.0
    max_worker_lifetime_delta: float = 0.0
    lifetime_turn: float = -1.0
    #: Status slots there are; 0: unbounded. A reload needs twice ``desired``.
    slots: int = 0
    #: The worker number (1..N, what logs, titles and the stats call a worker) each slot that
    #: was ever used counts for: fixed once given, so that a number's counters (the sum of its
    #: slots') only grow. A replacement takes the number of the worker it replaces.
    slot_numbers: dict[int, int] = field(default_factory=dict)
    desired: int = 0
    generation: int = 0
    mode: Mode = Mode.RUNNING
    #: Once stopping: what every worker gets (TERM graceful, INT quick), late ones included.
    stop_signal: int = signal.SIGTERM
    records: dict[int, WorkerRecord] = field(default_factory=dict)
    boot_failures: int = 0
    halted: bool = False
    #: Spawns asked for but not yet reported by :meth:`spawned` (wid → generation).
    pending: dict[int, int] = field(default_factory=dict)
    #: Every slot is taken (by workers still stopping): spawning waits for one to exit.
    slots_full: bool = False
    #: Harakiri kills by worker id (slot), for the stats.
    harakiris: dict[int, int] = field(default_factory=dict)
    #: A worker could not load the app while others serve: no spawn before ``respawn_at``
    #: (monotonic); ``load_retry`` is the wait that was chosen (0: no failure since a boot).
    spawns_held: bool = False
    #: --reload-on-rss recycled a worker that had served only a few requests (said once).
    rss_warned: bool = False
    respawn_at: float = 0.0
    load_retry: float = 0.0
    #: A worker said it serves (its app loaded), at least once; and READY=1 went to the
    #: service manager (once, after that).
    served: bool = False
    ready_said: bool = False
    #: The master's previous tick (see :func:`~uwsgiapp.supervisor.actions.woke`).
    last_tick: float = 0.0
    #: When serving workers died unasked, in the last second; the crash loop's spawn hold
    #: (seconds, 0: none) and when it was last set.
    crashes: list[float] = field(default_factory=list)
    crash_hold: float = 0.0
    crash_held_at: float = 0.0
    #: No worker started by :meth:`_probe` before this (monotonic).
    probe_at: float = 0.0

    def __post_init__(self) -> None:
        self.desired = self.workers

    # -- bookkeeping ------------------------------------------------------------------------

    def number(self, wid: int) -> int:
        """The worker number slot ``wid`` counts for (1..N)."""
        return self.slot_numbers.get(wid, wid + 1)

    def _free_number(self) -> int:
        """The lowest number no current-generation worker holds (one that is leaving, or of
        an older generation, hands its number on)."""
        held = {self.number(r.wid) for r in self._counted()}
        held.update(self.number(w) for w, g in self.pending.items() if g == self.generation)
        number = 1
        while number in held:
            number += 1
        return number

    def _free_wid(self, number: int) -> int | None:
        """A free slot for ``number``: one that counts for it already, else one never used."""
        used = {rec.wid for rec in self.records.values()} | set(self.pending)
        for wid, n in sorted(self.slot_numbers.items()):
            if n == number and wid not in used:
                return wid
        wid = 0
        while wid in used or wid in self.slot_numbers:
            wid += 1
        return None if self.slots and wid >= self.slots else wid

    def _counted(self) -> list[WorkerRecord]:
        return [
            r
            for r in self.records.values()
            if r.generation == self.generation and r.state.alive_for_work
        ]

    def _pending_now(self) -> int:
        return sum(1 for gen in self.pending.values() if gen == self.generation)

    def _fill(self, most: int | None = None) -> list[Action]:
        """Spawn current-generation workers up to ``desired`` (held spawns: none), or ``most``
        of them (held or not)."""
        if self.mode is Mode.STOPPING or self.halted or (self.spawns_held and most is None):
            return []
        actions: list[Action] = []
        missing = self.desired - len(self._counted()) - self._pending_now()
        for _ in range(missing if most is None else min(most, missing)):
            number = self._free_number()
            wid = self._free_wid(number)
            if wid is None:  # asked again at each tick, as stopping workers free their slots
                if not self.slots_full:
                    self.slots_full = True
                    actions.append(
                        Log(
                            LogLevel.WARNING,
                            f"all {self.slots} worker slots are taken (by workers still "
                            "stopping): new workers start as those exit",
                        )
                    )
                return actions
            self.slot_numbers[wid] = number
            self.pending[wid] = self.generation
            actions.append(Spawn(wid, self.generation))
        self.slots_full = False
        return actions

    def _over_rss(
        self, rec: WorkerRecord, st: WorkerStatus, rss: float, now: float
    ) -> list[Action]:
        """``--reload-on-rss``: recycle a worker over the limit once it has served a request
        (uWSGI checks after each one). A fresh worker over it is left alone: its replacement
        would be no smaller, and the master forked ten workers a second."""
        if st.requests == 0 and not rec.fresh_rss:
            rec.fresh_rss = rss
        if rss <= self.reload_on_rss_mb or st.requests == 0:
            return []
        actions: list[Action] = []
        # Said when a worker started near the limit: one that grows fast (a leak) is what the
        # limit is for (a fresh 26 MB worker over 60 MB in 4 requests drew this line).
        near = rec.fresh_rss >= NEAR_FRESH * self.reload_on_rss_mb
        if st.requests < FEW_REQUESTS and near and not self.rss_warned:
            self.rss_warned = True
            actions.append(
                Log(
                    LogLevel.WARNING,
                    f"--reload-on-rss {self.reload_on_rss_mb} MB is "
                    f"{'below' if rec.fresh_rss > self.reload_on_rss_mb else 'near'} what a fresh "
                    f"worker uses ({rec.fresh_rss:.1f} MB): {rec.label} got over it after "
                    f"{st.requests} requests. Raise it, or workers are recycled after every "
                    "few requests",
                )
            )
        return [
            *actions,
            Log(
                LogLevel.INFO,
                f"{rec.label} RSS {rss:.1f} MB, over --reload-on-rss "
                f"{self.reload_on_rss_mb} MB: recycling",
            ),
            self._stop(rec, now, RETIRE),
        ]

    def _past_lifetime(self, rec: WorkerRecord, now: float) -> list[Action]:
        """``--max-worker-lifetime``: recycle a serving worker that has run its lifetime, one
        at a time (none while another starts: a pool started together would otherwise leave
        at once), and none while a new worker cannot load the app (it would not come back)."""
        limit = self.max_worker_lifetime + ((rec.number or rec.wid + 1) - 1) * (
            self.max_worker_lifetime_delta
        )
        age = now - rec.started
        if age <= limit or self.mode is not Mode.RUNNING or self.recycles_held:
            return []
        if now == self.lifetime_turn or self.pending:
            return []
        if any(r.state is BOOTING for r in self.records.values()):
            return []
        self.lifetime_turn = now
        return [
            Log(
                LogLevel.INFO,
                f"{rec.label} has run {age:.0f}s, over --max-worker-lifetime {limit:g}s: recycling",
            ),
            self._stop(rec, now, RETIRE),
        ]

    def _stop(self, rec: WorkerRecord, now: float, signum: int = signal.SIGTERM) -> Signal:
        """Tell one worker to stop; it is killed if still alive after the grace period.

        TERM (the whole server stops) makes a worker also serve what waits in the backlog, as
        nobody else will. A worker retired while others keep serving (reload, TTOU, RSS) gets
        :data:`RETIRE` instead: it finishes its current request only, since under sustained
        load the shared backlog never runs empty and draining it would last until the kill.
        """
        graceful = signum in (signal.SIGTERM, RETIRE)
        deadline = now + (self.graceful_timeout if graceful else QUICK_GRACE)
        if rec.state in TOLD:  # already told: a new stop never delays the kill
            deadline = min(deadline, rec.deadline)
        else:
            rec.state = STOPPING
        rec.deadline = deadline
        rec.cut = rec.cut or not graceful
        return Signal(rec.pid, signum)

    @property
    def stopping(self) -> bool:
        """The whole server stops: the workers may shut the shared sockets down after their
        drain (:mod:`uwsgiapp.server.masterflags`)."""
        return self.mode is Mode.STOPPING

    @property
    def recycles_held(self) -> bool:
        """A worker could not load the app since the last one did (a reload's new workers
        too): the workers serving hold their max-requests recycles
        (:mod:`uwsgiapp.server.masterflags`), which would start workers that cannot either."""
        return self.load_retry > 0.0

    def _note_slot(self, rec: WorkerRecord, st: WorkerStatus, now: float) -> None:
        """What the worker's own slot says: it loaded the app and accepts (it booted); or it
        stopped accepting on its own (max-requests): counted out now, so that its replacement
        starts at once, not after its other threads' requests and its exit work (the app's
        threads and atexit), which alone has a deadline (a recycle cuts no request)."""
        if rec.state is BOOTING and st.ready_for(rec.pid):
            rec.state = READY
            self.served = True
            self.boot_failures = 0
            self.load_retry = 0.0
        if rec.state is READY and (st.request_start or st.requests != rec.seen_requests):
            rec.seen_requests, rec.seen_at = st.requests, now
        if rec.state is READY and st.leaving_for(rec.pid):
            rec.state = RETIRING  # a thread's max-requests must not cut the others' requests
        if rec.state is RETIRING and not st.in_requests:
            rec.state = STOPPING
            rec.deadline = now + self.graceful_timeout

    def _slow_boot(self, rec: WorkerRecord, now: float) -> list[Action]:
        """A worker still starting after :data:`SLOW_BOOT` seconds: said once (a postfork
        connect without a timeout hung a reload, which waits for it, without a word; at start
        nothing served, and nothing said why)."""
        if rec.state is not BOOTING or rec.boot_said or now - rec.started < SLOW_BOOT:
            return []
        rec.boot_said = True
        waits = "the reload waits for it, the old workers serve meanwhile"
        return [
            Log(
                LogLevel.WARNING,
                f"{rec.label} is still starting after {SLOW_BOOT:g} s (the app's import with "
                f"--lazy-apps, or a postfork function: a connect without a timeout?); "
                f"{waits if self.mode is Mode.RELOADING else 'it serves nothing until then'}",
            )
        ]

    def _probe(self, now: float) -> list[Action]:
        """A crash hold that left no worker serving or starting: one worker, at most each
        :data:`CRASH_PROBE_EVERY` seconds. A route that crashes one request in ten otherwise
        left nothing to serve the other nine for up to the hold's 8 s (p99 8 s, 502s); the
        forks stay bounded, as the hold means them to be."""
        if not (self.spawns_held and self.crash_hold) or now < self.probe_at:
            return []
        if self._counted() or self._pending_now():
            return []
        self.probe_at = now + CRASH_PROBE_EVERY
        return self._fill(most=1)

    def _crashed(self, now: float) -> list[Action]:
        """A serving worker died unasked (a segfault, ``os._exit``, an OOM kill): more of those
        in a second than twice the workers and two is a crash loop, whose respawns are then
        held (one line each time), so that its forks and their dumps do not flood the machine
        and the log. (Each worker dying once at the same moment, as an OOM kill does, is not.)"""
        self.crashes = [t for t in self.crashes if now - t < 1.0] + [now]
        if len(self.crashes) <= 2 * self.desired + 2:
            return []
        first, most, quiet = CRASH_HOLD
        back = self.crash_hold and now - self.crash_held_at < quiet
        self.crash_hold = min(self.crash_hold * 2, most) if back else first
        self.crash_held_at = now
        self.spawns_held = True
        self.respawn_at = max(self.respawn_at, now + self.crash_hold)
        died, self.crashes = len(self.crashes), []
        left = sum(1 for r in self.records.values() if r.state is READY)
        return [
            Log(
                LogLevel.ERROR,
                f"{died} serving workers died in the last second (a crash loop): new workers "
                f"in {self.crash_hold:g} s (or at a HUP), "
                + (
                    f"{count_workers(left)} serving meanwhile"
                    if left
                    else "none serving meanwhile, so one is started each second"
                ),
            )
        ]

    def wanted(self, action: Action) -> bool:
        """The arbiter is about to carry out ``action``: is it still wanted?

        The arbiter carries out a whole batch of events' actions at once. A :class:`Spawn` or
        :class:`Reimport` decided before a TERM of the same batch (a worker died, a HUP) is
        dropped here instead of forking a worker that nobody would stop; so is a spawn
        superseded by a later HUP or TTOU of the batch. A signal to a worker reaped since it
        was decided is dropped too.
        """
        if isinstance(action, Spawn):
            return (
                not self.halted
                and self.mode is not Mode.STOPPING
                and self.pending.get(action.wid) == action.generation
            )
        if isinstance(action, Reimport):
            return not self.halted and self.mode is not Mode.STOPPING
        if isinstance(action, Signal):  # reaped meanwhile: its pid may be another process's
            return action.pid in self.records
        return True

    def spawned(self, wid: int, generation: int, pid: int, now: float) -> str:
        """The arbiter forked ``pid`` for a :class:`Spawn`; what the log calls it now
        ('worker 2 (pid 1235)': the new pid of a number, as uWSGI's "Respawned" line)."""
        self.pending.pop(wid, None)
        number, first = self.number(wid), not self.served  # forked before any served
        record = WorkerRecord(wid, pid, generation, now, number=number, first_start=first)
        self.records[pid] = record
        return record.label

    def start(self) -> list[Action]:
        """The first workers."""
        return self._fill()

    def _begin_stop(self, signum: int, now: float) -> list[Action]:
        """Stop the server: nothing is spawned any more, every worker gets ``signum``."""
        self.mode = Mode.STOPPING
        self.stop_signal = signum
        self.pending.clear()  # decided earlier in this batch: see :meth:`wanted`
        told = [self._stop(r, now, signum) for r in self.records.values()]
        return [Notify("STOPPING=1"), *told, *self._maybe_done()]

    def _trim(self, now: float) -> list[Action]:
        """Down to ``desired`` current workers: drop unforked spawns first, then the
        highest-numbered (the running workers keep the low numbers, as a cheaper stop leaves
        them; the newest was a replacement still starting, forked again at once)."""
        actions: list[Action] = []
        excess = len(self._counted()) + self._pending_now() - self.desired
        for wid in sorted(w for w, g in self.pending.items() if g == self.generation):
            if excess <= 0:
                break
            del self.pending[wid]
            excess -= 1
        counted = sorted(self._counted(), key=lambda r: (r.number or r.wid + 1, r.started))
        while excess > 0 and counted:
            actions.append(self._stop(counted.pop(), now, RETIRE))
            excess -= 1
        return actions

    def _maybe_done(self) -> list[Action]:
        if self.mode is Mode.STOPPING and not self.records and not self.halted:
            self.halted = True
            return [Log(LogLevel.INFO, "all workers stopped"), Halt(ServeExit.OK)]
        return []
