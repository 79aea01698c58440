"""What the master should do next: pure decisions, no processes, no clocks, no signals.

The arbiter feeds events in (a signal arrived, a child exited, time passed with these worker
statuses) and executes the actions that come out. Tests drive this class directly.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from uwsgiapp.supervisor.status import WorkerStatus

#: Exit code a worker uses when it cannot load the app (lazy-apps): stop, don't fork in a loop.
EXIT_APP_LOAD = 4
#: Exit code of a worker that left on purpose: recycled (max-requests, EMFILE), stopped, retired.
EXIT_CLEAN = 0
#: The master's exit code when workers keep dying before they become ready.
EXIT_BOOT_LOOP = 5
#: Consecutive workers that may die during boot before the master gives up.
BOOT_FAILURE_LIMIT = 5
#: Seconds between the harakiri stack dump and the kill; and the quick-stop grace.
DUMP_GRACE = 1.0
QUICK_GRACE = 2.0
#: What a worker retired while the others keep serving gets: finish the current request, leave.
RETIRE = signal.SIGHUP

BOOTING, READY, STOPPING, HARAKIRI = "booting", "ready", "stopping", "harakiri"


@dataclass(frozen=True, slots=True)
class Spawn:
    """Fork a worker into status slot ``wid`` for ``generation``."""

    wid: int
    generation: int


@dataclass(frozen=True, slots=True)
class Signal:
    """Send ``signum`` to worker ``pid``."""

    pid: int
    signum: int


@dataclass(frozen=True, slots=True)
class Log:
    """A line for the error log."""

    level: str  # "info" | "warning" | "error"
    message: str


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop the master with ``code`` (killing any worker still alive)."""

    code: int


@dataclass(frozen=True, slots=True)
class Reimport:
    """Re-import the preloaded app in the master before forking new workers."""


@dataclass(frozen=True, slots=True)
class StopAccepting:
    """Remove unix socket files so no new connection can arrive (the backlog still drains)."""


@dataclass(frozen=True, slots=True)
class ReopenLogs:
    """Reopen the master's log files."""


Action = Spawn | Signal | Log | Halt | Reimport | StopAccepting | ReopenLogs


@dataclass(slots=True)
class WorkerRecord:
    """The master's view of one worker process."""

    wid: int
    pid: int
    generation: int
    started: float
    state: str = BOOTING
    deadline: float = 0.0  # when to SIGKILL (stopping / harakiri)


def describe_exit(code: int | None, signum: int | None) -> str:
    """'exited with code 3' / 'killed by signal 9 (SIGKILL)'."""
    if signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = "?"
        return f"killed by signal {signum} ({name})"
    return f"exited with code {code}"


@dataclass
class Policy:
    """The supervisor's decisions. Times are seconds (``now`` monotonic, ``wall`` epoch)."""

    workers: int
    graceful_timeout: float = 30.0
    harakiri: float = 0.0
    reimport_on_reload: bool = False
    reload_on_rss_mb: int = 0
    #: Status slots (worker ids) there are; 0: unbounded. A reload needs twice ``desired``.
    slots: int = 0
    desired: int = 0
    generation: int = 0
    mode: str = "running"  # running | reloading | stopping
    #: Once stopping: what every worker gets (TERM graceful, INT quick), late ones included.
    stop_signal: int = signal.SIGTERM
    records: dict[int, WorkerRecord] = field(default_factory=dict)
    boot_failures: int = 0
    halted: bool = False
    #: Spawns asked for but not yet reported by :meth:`spawned` (wid → generation).
    pending: dict[int, int] = field(default_factory=dict)
    #: Every slot is taken (by workers still stopping): spawning waits for one to exit.
    slots_full: bool = False

    def __post_init__(self) -> None:
        self.desired = self.workers

    # -- bookkeeping ------------------------------------------------------------------------

    def _free_wid(self) -> int | None:
        used = {rec.wid for rec in self.records.values()} | set(self.pending)
        wid = 0
        while wid in used:
            wid += 1
        return None if self.slots and wid >= self.slots else wid

    def _counted(self) -> list[WorkerRecord]:
        return [
            r
            for r in self.records.values()
            if r.generation == self.generation and r.state in (BOOTING, READY)
        ]

    def _pending_now(self) -> int:
        return sum(1 for gen in self.pending.values() if gen == self.generation)

    def _fill(self) -> list[Action]:
        """Spawn current-generation workers up to ``desired``."""
        if self.mode == "stopping" or self.halted:
            return []
        actions: list[Action] = []
        for _ in range(self.desired - len(self._counted()) - self._pending_now()):
            wid = self._free_wid()
            if wid is None:  # asked again at each tick, as stopping workers free their slots
                if not self.slots_full:
                    self.slots_full = True
                    actions.append(
                        Log(
                            "warning",
                            f"all {self.slots} worker slots are taken (by workers still "
                            "stopping): new workers start as those exit",
                        )
                    )
                return actions
            self.pending[wid] = self.generation
            actions.append(Spawn(wid, self.generation))
        self.slots_full = False
        return actions

    def _stop(self, rec: WorkerRecord, now: float, signum: int = signal.SIGTERM) -> Signal:
        """Tell one worker to stop; it is killed if still alive after the grace period.

        TERM (the whole server stops) makes a worker also serve what waits in the backlog, as
        nobody else will. A worker retired while others keep serving (reload, TTOU, RSS) gets
        :data:`RETIRE` instead: it finishes its current request only, since under sustained
        load the shared backlog never runs empty and draining it would last until the kill.
        """
        graceful = signum in (signal.SIGTERM, RETIRE)
        deadline = now + (self.graceful_timeout if graceful else QUICK_GRACE)
        if rec.state in (STOPPING, HARAKIRI):  # already told: a new stop never delays the kill
            deadline = min(deadline, rec.deadline)
        else:
            rec.state = STOPPING
        rec.deadline = deadline
        return Signal(rec.pid, signum)

    def _note_ready(self, rec: WorkerRecord, st: WorkerStatus) -> None:
        """The worker's own slot says it has loaded the app and accepts: it booted."""
        if rec.state == BOOTING and st.ready_for(rec.pid):
            rec.state = READY
            self.boot_failures = 0

    def wanted(self, action: Action) -> bool:
        """The arbiter is about to carry out ``action``: is it still wanted?

        The arbiter carries out a whole batch of events' actions at once. A :class:`Spawn` or
        :class:`Reimport` decided before a TERM of the same batch (a worker died, a HUP) is
        dropped here instead of forking a worker that nobody would stop; so is a spawn
        superseded by a later HUP or TTOU of the batch.
        """
        if isinstance(action, Spawn):
            return (
                not self.halted
                and self.mode != "stopping"
                and self.pending.get(action.wid) == action.generation
            )
        if isinstance(action, Reimport):
            return not self.halted and self.mode != "stopping"
        return True

    def spawned(self, wid: int, generation: int, pid: int, now: float) -> None:
        """The arbiter forked ``pid`` for a :class:`Spawn`."""
        self.pending.pop(wid, None)
        self.records[pid] = WorkerRecord(wid, pid, generation, now)

    def spawn_failed(self, wid: int) -> None:
        """The arbiter could not fork for a :class:`Spawn` (it will be asked again)."""
        self.pending.pop(wid, None)

    def start(self) -> list[Action]:
        """The first workers."""
        return self._fill()

    # -- events -----------------------------------------------------------------------------

    def on_signal(self, name: str, now: float) -> list[Action]:
        """A signal reached the master (by name: 'HUP', 'TERM', ...)."""
        if self.halted:
            return []
        if name == "CHLD":
            return []
        if name == "USR1":
            reopen: list[Action] = [ReopenLogs()]
            return reopen + [Signal(r.pid, signal.SIGUSR1) for r in self.records.values()]
        if self.mode == "stopping":
            if name in ("INT", "QUIT"):  # a second, impatient stop
                return [self._stop(r, now, signal.SIGINT) for r in self.records.values()]
            return [Log("info", f"already stopping; SIG{name} ignored")]
        if name == "TERM":
            actions: list[Action] = [
                Log("info", "SIGTERM: graceful stop (finishing in-flight and queued requests)"),
                StopAccepting(),
            ]
            return actions + self._begin_stop(signal.SIGTERM, now)
        if name in ("INT", "QUIT"):
            actions = [Log("info", f"SIG{name}: quick stop")]
            return actions + self._begin_stop(signal.SIGINT, now)
        if name == "HUP":
            self.generation += 1
            self.mode = "reloading"
            # Spawns of the older generation not forked yet would only be retired at hand-over.
            self.pending.clear()
            actions = [Log("info", f"SIGHUP: graceful reload (generation {self.generation})")]
            actions += self._retire_superseded(now)
            if self.reimport_on_reload:
                actions.append(Reimport())
            return actions + self._fill()
        if name == "TTIN":
            if self.slots and self.desired >= self.slots // 2:
                return [Log("warning", f"SIGTTIN: already at the most workers ({self.desired})")]
            self.desired += 1
            return [Log("info", f"SIGTTIN: workers {self.desired}"), *self._fill()]
        if name == "TTOU":
            if self.desired <= 1:
                return [Log("info", "SIGTTOU: already at one worker")]
            self.desired -= 1
            return [Log("info", f"SIGTTOU: workers {self.desired}"), *self._trim(now)]
        return []

    def _retire_superseded(self, now: float) -> list[Action]:
        """HUP: of the older workers, keep at most ``desired`` serving until the hand-over.

        Those still booting (an earlier reload's, a replacement's) would only be retired at
        the hand-over: left running, a burst of HUPs piles up a generation of them per signal.
        """
        older = [r for r in self.records.values() if r.state in (BOOTING, READY)]
        serving = sorted(
            (r for r in older if r.state == READY),
            key=lambda r: (r.generation, r.started),
            reverse=True,
        )
        keep = {r.pid for r in serving[: self.desired]}
        return [self._stop(r, now, RETIRE) for r in older if r.pid not in keep]

    def _begin_stop(self, signum: int, now: float) -> list[Action]:
        """Stop the server: nothing is spawned any more, every worker gets ``signum``."""
        self.mode = "stopping"
        self.stop_signal = signum
        self.pending.clear()  # decided earlier in this batch: see :meth:`wanted`
        return [self._stop(r, now, signum) for r in self.records.values()] + self._maybe_done()

    def _trim(self, now: float) -> list[Action]:
        """Down to ``desired`` current workers: drop unforked spawns first, then the newest."""
        actions: list[Action] = []
        excess = len(self._counted()) + self._pending_now() - self.desired
        for wid in sorted(w for w, g in self.pending.items() if g == self.generation):
            if excess <= 0:
                break
            del self.pending[wid]
            excess -= 1
        counted = sorted(self._counted(), key=lambda r: r.started)
        while excess > 0 and counted:
            actions.append(self._stop(counted.pop(), now, RETIRE))
            excess -= 1
        return actions

    def on_exit(
        self,
        pid: int,
        code: int | None,
        signum: int | None,
        now: float,
        status: Callable[[int], WorkerStatus] | None = None,
    ) -> list[Action]:
        """A worker process ended (``code`` if it exited, ``signum`` if killed).

        ``status`` reads the worker's slot: a worker that said it was ready booted, even if it
        is gone before a tick saw it (a quick max-requests recycle under load).
        """
        rec = self.records.pop(pid, None)
        if rec is None:
            return []
        if status is not None:
            self._note_ready(rec, status(rec.wid))
        how = describe_exit(code, signum)
        label = f"worker {rec.wid + 1} (pid {pid})"
        if self.mode == "stopping":
            return [Log("info", f"{label} {how}"), *self._maybe_done()]
        if rec.state in (STOPPING, HARAKIRI):
            return [Log("info", f"{label} {how}"), *self._fill()]
        if code == EXIT_APP_LOAD:
            if self.mode == "reloading" and rec.generation == self.generation:
                return self._abort_reload(now, f"{label} cannot load the app")
            self.halted = True
            return [
                Log("error", f"{label} could not load the app: stopping (no fork loop)"),
                Halt(EXIT_APP_LOAD),
            ]
        clean = code == EXIT_CLEAN and signum is None
        level = "info" if clean else "error"
        actions: list[Action] = [Log(level, f"{label} {how}; starting a new one")]
        if rec.state == BOOTING and not clean:  # leaving on purpose is not failing to start
            self.boot_failures += 1
            if self.boot_failures >= BOOT_FAILURE_LIMIT:
                self.halted = True
                return [
                    Log(
                        "error",
                        f"{self.boot_failures} workers in a row died while starting "
                        f"(last: {label} {how}); stopping",
                    ),
                    Halt(EXIT_BOOT_LOOP),
                ]
        return actions + self._fill()

    def _abort_reload(self, now: float, why: str) -> list[Action]:
        """The new generation cannot load the app: back to the workers that serve.

        Those may come from several generations (a HUP retires an earlier reload's workers
        still booting); they all become the current one, so that none is forked anew (with
        lazy-apps it would import the same broken code) and none lingers uncounted.
        """
        actions: list[Action] = [Log("error", f"reload failed ({why}): keeping the old workers")]
        for rec in list(self.records.values()):
            if rec.generation == self.generation:
                actions.append(self._stop(rec, now, signal.SIGKILL))
        self.pending = {w: g for w, g in self.pending.items() if g != self.generation}
        self.generation -= 1
        for rec in self.records.values():
            if rec.state in (BOOTING, READY):
                rec.generation = self.generation
        self.mode = "running"
        return actions + self._trim(now) + self._fill()

    def _maybe_done(self) -> list[Action]:
        if self.mode == "stopping" and not self.records and not self.halted:
            self.halted = True
            return [Log("info", "all workers stopped"), Halt(0)]
        return []

    def on_tick(
        self,
        now: float,
        wall: float,
        status: Callable[[int], WorkerStatus],
        rss_mb: Callable[[int], float] | None = None,
    ) -> list[Action]:
        """Time passed: readiness, reload hand-over, harakiri, recycling, stop deadlines."""
        if self.halted:
            return []
        actions: list[Action] = []
        for rec in list(self.records.values()):
            st = status(rec.wid)
            self._note_ready(rec, st)
            if self.mode == "stopping" and rec.state not in (STOPPING, HARAKIRI):
                # Cannot happen through wanted(); should a worker appear anyway, it is told too.
                actions.append(self._stop(rec, now, self.stop_signal))
                continue
            if rec.state in (STOPPING, HARAKIRI):
                if now >= rec.deadline:
                    what = "harakiri" if rec.state == HARAKIRI else "stop"
                    actions.append(
                        Log(
                            "warning",
                            f"worker {rec.wid + 1} (pid {rec.pid}): "
                            f"{what} deadline passed, killing it",
                        )
                    )
                    actions.append(Signal(rec.pid, signal.SIGKILL))
                    rec.deadline = now + 3600  # once
                continue
            if rec.state != READY:
                continue
            if self.harakiri and st.request_start and wall - st.request_start > self.harakiri:
                rec.state = HARAKIRI
                rec.deadline = now + DUMP_GRACE
                actions.append(
                    Log(
                        "error",
                        f"HARAKIRI: worker {rec.wid + 1} (pid {rec.pid}) stuck in one request "
                        f"for {wall - st.request_start:.1f}s (limit {self.harakiri:g}s): "
                        "dumping its stack, then killing it",
                    )
                )
                actions.append(Signal(rec.pid, signal.SIGUSR2))
                continue
            if self.reload_on_rss_mb and rss_mb is not None:
                rss = rss_mb(rec.pid)
                if rss > self.reload_on_rss_mb:
                    actions.append(
                        Log(
                            "info",
                            f"worker {rec.wid + 1} (pid {rec.pid}) RSS "
                            f"{rss:.0f} MB > {self.reload_on_rss_mb} MB: recycling",
                        )
                    )
                    actions.append(self._stop(rec, now, RETIRE))
        if self.mode == "reloading":
            new = self._counted()
            if (
                len(new) >= self.desired
                and not self._pending_now()
                and all(r.state == READY for r in new)
            ):
                old = [
                    r
                    for r in self.records.values()
                    if r.generation != self.generation and r.state in (BOOTING, READY)
                ]
                actions.append(
                    Log(
                        "info",
                        f"reload: {len(new)} new workers ready, stopping {len(old)} old ones",
                    )
                )
                actions += [self._stop(r, now, RETIRE) for r in old]
                self.mode = "running"
        return actions + self._fill()
