"""What the master should do next: pure decisions, no processes, no clocks, no signals.

The arbiter feeds events in (a signal arrived, a child exited, time passed with these worker
statuses) and executes the actions that come out. Tests drive this class directly.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass, field

from uwsgiapp.supervisor.status import STATE_READY, WorkerStatus

#: Exit code a worker uses when it cannot load the app (lazy-apps): stop, don't fork in a loop.
EXIT_APP_LOAD = 4
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
    desired: int = 0
    generation: int = 0
    mode: str = "running"  # running | reloading | stopping
    records: dict[int, WorkerRecord] = field(default_factory=dict)
    boot_failures: int = 0
    halted: bool = False
    #: Spawns asked for but not yet reported by :meth:`spawned` (wid → generation).
    pending: dict[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.desired = self.workers

    # -- bookkeeping ------------------------------------------------------------------------

    def _free_wid(self) -> int:
        used = {rec.wid for rec in self.records.values()} | set(self.pending)
        wid = 0
        while wid in used:
            wid += 1
        return wid

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
            self.pending[wid] = self.generation
            actions.append(Spawn(wid, self.generation))
        return actions

    def _stop(self, rec: WorkerRecord, now: float, signum: int = signal.SIGTERM) -> Signal:
        """Tell one worker to stop; it is killed if still alive after the grace period.

        TERM (the whole server stops) makes a worker also serve what waits in the backlog, as
        nobody else will. A worker retired while others keep serving (reload, TTOU, RSS) gets
        :data:`RETIRE` instead: it finishes its current request only, since under sustained
        load the shared backlog never runs empty and draining it would last until the kill.
        """
        rec.state = STOPPING
        graceful = signum in (signal.SIGTERM, RETIRE)
        rec.deadline = now + (self.graceful_timeout if graceful else QUICK_GRACE)
        return Signal(rec.pid, signum)

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
            self.mode = "stopping"
            actions: list[Action] = [
                Log("info", "SIGTERM: graceful stop (finishing in-flight and queued requests)"),
                StopAccepting(),
            ]
            actions += [self._stop(r, now) for r in self.records.values()]
            return actions + self._maybe_done()
        if name in ("INT", "QUIT"):
            self.mode = "stopping"
            actions = [Log("info", f"SIG{name}: quick stop")]
            actions += [self._stop(r, now, signal.SIGINT) for r in self.records.values()]
            return actions + self._maybe_done()
        if name == "HUP":
            self.generation += 1
            self.mode = "reloading"
            actions = [Log("info", f"SIGHUP: graceful reload (generation {self.generation})")]
            if self.reimport_on_reload:
                actions.append(Reimport())
            return actions + self._fill()
        if name == "TTIN":
            self.desired += 1
            return [Log("info", f"SIGTTIN: workers {self.desired}"), *self._fill()]
        if name == "TTOU":
            if self.desired <= 1:
                return [Log("info", "SIGTTOU: already at one worker")]
            self.desired -= 1
            counted = sorted(self._counted(), key=lambda r: r.started)
            actions = [Log("info", f"SIGTTOU: workers {self.desired}")]
            if len(counted) > self.desired:
                actions.append(self._stop(counted[-1], now, RETIRE))
            return actions
        return []

    def on_exit(self, pid: int, code: int | None, signum: int | None, now: float) -> list[Action]:
        """A worker process ended (``code`` if it exited, ``signum`` if killed)."""
        rec = self.records.pop(pid, None)
        if rec is None:
            return []
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
        level = "info" if code == 0 and signum is None else "error"
        actions: list[Action] = [Log(level, f"{label} {how}; starting a new one")]
        if rec.state == BOOTING:
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
        actions: list[Action] = [Log("error", f"reload failed ({why}): keeping the old workers")]
        for rec in list(self.records.values()):
            if rec.generation == self.generation:
                actions.append(self._stop(rec, now, signal.SIGKILL))
        self.pending = {w: g for w, g in self.pending.items() if g != self.generation}
        self.generation -= 1
        self.mode = "running"
        return actions + self._fill()

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
            if rec.state == BOOTING and st.state == STATE_READY and st.pid == rec.pid:
                rec.state = READY
                self.boot_failures = 0
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
