"""What the master should do next: pure decisions, no processes, no clocks, no signals.

The arbiter feeds events in (a signal arrived, a child exited, time passed with these worker
statuses) and executes the actions that come out. Tests drive this class directly. The
vocabulary (states, actions, the worker record) is in :mod:`~uwsgiapp.supervisor.actions`, the
state and its bookkeeping in :mod:`~uwsgiapp.supervisor.roster`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

from uwsgiapp.exitcodes import ServeExit, WorkerExit
from uwsgiapp.supervisor.actions import (
    BOOT_FAILURE_LIMIT,
    LOAD_RETRY,
    RETIRE,
    Action,
    Halt,
    Log,
    LogLevel,
    Mode,
    Notify,
    Reimport,
    ReloadKind,
    ReopenLogs,
    Signal,
    Spawn,
    StopAccepting,
    WorkerRecord,
    count_workers,
    describe_exit,
    unexpected_death,
    woke,
)
from uwsgiapp.supervisor.kills import Kills
from uwsgiapp.supervisor.roster import BOOTING, READY, RETIRING, TOLD
from uwsgiapp.supervisor.status import WorkerStatus

_RELOAD_SAYS = {
    ReloadKind.REIMPORT: "re-importing the app in the master for the new workers",
    ReloadKind.LAZY: "the new workers import the app (--lazy-apps)",
    ReloadKind.RECYCLE: "new workers with the code already loaded (--no-reload-preloaded)",
}

_SignalHandler = Callable[["Policy", float], list[Action]]


def _are(n: int, one: str, more: str) -> str:
    return f"{'worker' if n == 1 else 'workers'} {one if n == 1 else more}"


@dataclass
class Policy(Kills):
    """The supervisor's decisions on events (seconds: ``now`` monotonic, ``wall`` epoch)."""

    #: Signal name → its handler while not stopping (filled below the class).
    SIGNAL_HANDLERS: ClassVar[dict[str, _SignalHandler]] = {}

    # -- signals ----------------------------------------------------------------------------

    def on_signal(self, name: str, now: float) -> list[Action]:
        """A signal reached the master (by name: 'HUP', 'TERM', ...)."""
        if self.halted or name == "CHLD":
            return []
        if name == "USR1":  # also while stopping: the logs move whatever the master does
            return self.handle_usr1(now)
        if self.mode is Mode.STOPPING:
            if name in ("INT", "QUIT"):  # a second, impatient stop
                said = Log(LogLevel.INFO, f"SIG{name} while stopping: quick stop")
                return [said, *(self._stop(r, now, signal.SIGINT) for r in self.records.values())]
            return [Log(LogLevel.INFO, f"already stopping; SIG{name} ignored")]
        handler = self.SIGNAL_HANDLERS.get(name)
        return handler(self, now) if handler is not None else []

    def handle_usr1(self, now: float) -> list[Action]:
        """Reopen the logs, the master's and every worker's."""
        reopen: list[Action] = [ReopenLogs()]
        return reopen + [Signal(r.pid, signal.SIGUSR1) for r in self.records.values()]

    def handle_usr2(self, now: float) -> list[Action]:
        """The binary upgrade's (:mod:`~uwsgiapp.supervisor.upgrade`, which the arbiter asks
        first, as for WINCH): nothing here."""
        return []

    handle_winch = handle_usr2

    def handle_term(self, now: float) -> list[Action]:
        """Graceful stop: no new connections; workers finish what is in flight and queued."""
        actions: list[Action] = [
            Log(
                LogLevel.INFO,
                "SIGTERM: graceful stop (finishing in-flight and queued requests, for up to "
                f"--graceful-timeout {self.graceful_timeout:g}s; a worker still in one then "
                "is killed)",
            ),
            StopAccepting(),
        ]
        return actions + self._begin_stop(signal.SIGTERM, now)

    def handle_int(self, now: float) -> list[Action]:
        """Quick stop (INT and QUIT)."""
        return [Log(LogLevel.INFO, "SIGINT: quick stop"), *self._begin_stop(signal.SIGINT, now)]

    def handle_quit(self, now: float) -> list[Action]:
        """Quick stop (INT and QUIT)."""
        return [Log(LogLevel.INFO, "SIGQUIT: quick stop"), *self._begin_stop(signal.SIGINT, now)]

    def handle_hup(self, now: float) -> list[Action]:
        """Graceful reload: a new generation of workers, the old one stops once it is ready."""
        self.generation += 1
        self.mode = Mode.RELOADING
        # Spawns of the older generation not forked yet would only be retired at hand-over.
        self.pending.clear()
        says = _RELOAD_SAYS[self.reload_kind]
        actions: list[Action] = [
            Log(LogLevel.INFO, f"SIGHUP: graceful reload (generation {self.generation}): {says}"),
            Notify("RELOADING=1\nSTATUS=reloading"),  # Type=notify-reload waits for it
            ReopenLogs("HUP: log files moved away reopened (the new workers write to them)", True),
        ]
        actions += self._retire_superseded(now) + self._reload_count()
        if self.reload_kind is ReloadKind.REIMPORT:
            actions.append(Reimport())
        # The operator's new code: tried now, not after a crash loop's or a failed load's hold.
        self.spawns_held, self.crash_hold = False, 0.0
        return actions + self._fill()

    def _retire_superseded(self, now: float) -> list[Action]:
        """HUP: of the older workers, keep at most ``desired`` serving until the hand-over.

        Those still booting (an earlier reload's, a replacement's) would only be retired at
        the hand-over: left running, a burst of HUPs piles up a generation of them per signal.
        """
        older = [r for r in self.records.values() if r.state.alive_for_work]
        serving = sorted(
            (r for r in older if r.state is READY),
            key=lambda r: (r.generation, r.started),
            reverse=True,
        )
        keep = {r.pid for r in serving[: self.desired]}
        return [self._stop(r, now, RETIRE) for r in older if r.pid not in keep]

    # -- exits ------------------------------------------------------------------------------

    def on_exit(
        self,
        pid: int,
        code: int | None,
        signum: int | None,
        now: float,
        status: Callable[[int], WorkerStatus] | None = None,
        killer: str | None = None,
    ) -> list[Action]:
        """A worker process ended (``code`` if it exited, ``signum`` if killed; ``killer``:
        who sent the signal, where the master found out, as the OOM killer's count).
        ``status`` reads the worker's slot: a worker that said it was ready booted, even if it
        is gone before a tick saw it (a quick max-requests recycle under load)."""
        rec = self.records.pop(pid, None)
        if rec is None:
            return []
        cut = 0  # the requests it was in
        if status is not None:  # the others too: whether any serves decides a load failure
            for r in (rec, *self.records.values()):
                self._note_slot(r, status(r.wid), now)
            own = status(rec.wid)
            cut = own.in_requests if own.pid == pid else 0
        killer = None if rec.killed else killer  # the master's own SIGKILL
        how = describe_exit(code, signum) + (f", sent by {killer}" if killer else "")
        if self.mode is Mode.STOPPING:
            return [Log(LogLevel.INFO, f"{rec.label} {how}"), *self._maybe_done()]
        if rec.state in TOLD or rec.state is RETIRING:  # replaced already
            return self._replaced_exit(rec, how, code, signum, cut, killer)
        if code == WorkerExit.APP_LOAD:
            return self._app_load_failed(rec, now)
        if code == WorkerExit.NO_ROOM:  # its line said why: not the app's import, not a crash
            return self._app_load_failed(
                rec, now, "could not start serving", ServeExit.START_FAILED
            )
        # None: its status taken by another waiter (the app's gevent): not counted a crash.
        clean = signum is None and code in (WorkerExit.CLEAN, None)
        level = LogLevel.INFO if clean else LogLevel.ERROR
        how += "" if clean else unexpected_death(None if killer else signum, cut)
        crash = self._crashed(now) if rec.state is READY and not clean else []
        then = "; starting a new one" if not self.spawns_held else "; new workers are held"
        actions: list[Action] = [Log(level, f"{rec.label} {how}{then}"), *crash]
        if rec.state is BOOTING and not clean:  # leaving on purpose is not failing to start
            self.boot_failures += 1
            if self.boot_failures >= BOOT_FAILURE_LIMIT and any(
                r.state is READY for r in self.records.values()
            ):  # new code that crashes as it loads (--lazy-apps): as one that cannot import
                self.boot_failures = 0
                what = f"was the {BOOT_FAILURE_LIMIT}th in a row to die while starting"
                return [actions[0], *self._app_load_failed(rec, now, what)]
            if self.boot_failures >= BOOT_FAILURE_LIMIT:
                self.halted = True
                return [
                    Log(
                        LogLevel.ERROR,
                        f"{self.boot_failures} workers in a row died while starting "
                        f"(last: {rec.label} {how}); stopping",
                    ),
                    Halt(ServeExit.BOOT_LOOP),
                ]
        return actions + self._fill()

    def _replaced_exit(
        self,
        rec: WorkerRecord,
        how: str,
        code: int | None,
        signum: int | None,
        cut: int,
        killer: str | None = None,
    ) -> list[Action]:
        """The exit of a worker told to go, or replaced as it left on its own (RETIRING)."""
        if signum == RETIRE:  # still starting (no handler yet), or the app reset it: as asked
            how = "retired (still starting, ended by the master's signal to leave)"
        # Left on its own, in requests: a crash or an OOM kill there is one (its requests got
        # no answer), as for a worker that still accepted.
        died = rec.state is RETIRING and not (code == WorkerExit.CLEAN and signum is None)
        how += unexpected_death(None if killer else signum, cut) if died else ""
        filled = self._fill()
        then = "; starting a new one" if any(isinstance(a, Spawn) for a in filled) else ""
        level = LogLevel.ERROR if died else LogLevel.INFO
        return [Log(level, f"{rec.label} {how}{then}"), *filled]

    def _app_load_failed(
        self,
        rec: WorkerRecord,
        now: float,
        what: str = "could not load the app",
        halt: ServeExit = ServeExit.APP_LOAD,
    ) -> list[Action]:
        """A (lazy-apps) worker could not import the app: a reload fails; a replacement is
        tried again later while other workers serve or are still starting (new code on disk
        must not take down the ones that loaded the old); with none either, or at the first
        start, the server stops (which of the first workers reports first must not decide
        whether the start stops: gunicorn stops at any that fails to boot)."""
        if self.mode is Mode.RELOADING and rec.generation == self.generation:
            why = "cannot load the app" if what.startswith("could not") else what
            self.load_retry = self.load_retry or LOAD_RETRY[0]  # the old must not recycle into it
            return self._abort_reload(now, f"{rec.label} {why}")
        serving = sum(1 for r in self.records.values() if r.state is READY)
        starting = sum(1 for r in self.records.values() if r.state is BOOTING)
        # A worker leaving at its max-requests still finishes requests: the stop's kill would
        # cut them (its replacement is what could not load). Tried again meanwhile.
        finishing = any(r.state is RETIRING for r in self.records.values())
        at_start = rec.first_start and rec.state is BOOTING
        if at_start or not (serving or starting or finishing):
            self.halted = True
            why = "at the first start" if at_start else "and no worker serves"
            return [
                Log(LogLevel.ERROR, f"{rec.label} {what} {why}: stopping (no fork loop)"),
                Halt(halt),
            ]
        self.spawns_held = True
        others = [f"{serving} {_are(serving, 'serves', 'serve')} on"] if serving else []
        others += [f"{starting} {_are(starting, 'is', 'are')} still starting"] if starting else []
        others += ["a leaving worker finishes its requests"] if finishing and not others else []
        first, most = LOAD_RETRY
        self.load_retry = min(self.load_retry * 2, most) if self.load_retry else first
        self.respawn_at = max(self.respawn_at, now + self.load_retry)  # a crash hold's too
        return [
            Log(
                LogLevel.ERROR,
                f"{rec.label} {what}; {', '.join(others)}; trying again in {self.load_retry:g} s",
            )
        ]

    def reimport_failed(self, now: float) -> list[Action]:
        """The master could not re-import the app for a HUP (it logged why): the reload is
        off, the workers serving the old code go on (new ones would only run it again)."""
        if self.mode is not Mode.RELOADING:
            return []
        return self._abort_reload(now, "the app cannot be re-imported")

    def _abort_reload(self, now: float, why: str) -> list[Action]:
        """The new generation cannot load the app: back to the workers that serve.

        Those may come from several generations (a HUP retires an earlier reload's workers
        still booting); they all become the current one, so that none is forked anew (with
        lazy-apps it would import the same broken code) and none lingers uncounted.
        """
        actions: list[Action] = [
            Log(LogLevel.ERROR, f"reload failed ({why}): keeping the old workers")
        ]
        for rec in list(self.records.values()):
            if rec.generation == self.generation:
                rec.failed_reload = True
                actions.append(self._stop(rec, now, signal.SIGKILL))
        self.pending = {w: g for w, g in self.pending.items() if g != self.generation}
        # The number stays the failed reload's: the next HUP's is new in the log.
        for rec in self.records.values():
            if rec.state.alive_for_work:
                rec.generation = self.generation
        self.mode = Mode.RUNNING
        return (
            actions
            + self._ready("reload failed: the old workers serve")
            + self._trim(now)
            + self._fill()
        )

    # -- time -------------------------------------------------------------------------------

    def on_tick(
        self,
        now: float,
        wall: float,
        status: Callable[[int], WorkerStatus],
        rss_mb: Callable[[int], float] | None = None,
        queue: Callable[[], int | None] | None = None,
    ) -> list[Action]:
        """Time passed: readiness, reload hand-over, harakiri, recycling, stop deadlines, the
        cheaper subsystem (``queue``: the longest listen queue now, None if unknown)."""
        if self.halted:
            return []
        if halt := self.out_of_room():  # the first workers cannot be forked (ulimit -n)
            return halt
        if self.spawns_held and now >= self.respawn_at:
            self.spawns_held = False
        self.last_tick = woke(self.records.values(), self.last_tick, now)
        actions: list[Action] = []
        read: dict[int, WorkerStatus] = {}  # each slot once a tick (12 µs a read with threads)
        for rec in list(self.records.values()):
            st = read[rec.wid] = status(rec.wid)
            actions += self._tick_worker(rec, st, now, wall, rss_mb)
        if self.mode is Mode.RELOADING:
            actions += self._hand_over(now)
        actions += self._adapt(now, lambda wid: read.get(wid) or status(wid), queue)
        return actions + self._fill() + self._probe(now) + self._say_ready()

    def _say_ready(self) -> list[Action]:
        """READY=1 for the service manager, once: when the first worker serves (as gunicorn's
        and uWSGI's masters say it early; waiting for all of them could wait forever for one
        that keeps failing, and systemd would then kill the service)."""
        if self.ready_said or not self.served or self.mode is Mode.STOPPING:
            return []
        serving = sum(1 for r in self._counted() if r.state is READY)
        return self._ready(f"{serving} of {count_workers(self.desired)} serving")

    def _ready(self, status: str) -> list[Action]:
        """READY=1: started, or (after RELOADING=1) a reload is over, done or failed."""
        self.ready_said = True
        return [Notify(f"READY=1\nSTATUS={status}")]

    def _tick_worker(
        self,
        rec: WorkerRecord,
        st: WorkerStatus,
        now: float,
        wall: float,
        rss_mb: Callable[[int], float] | None,
    ) -> list[Action]:
        """One worker at a tick: readiness, kill deadline, harakiri, RSS recycling."""
        self._note_slot(rec, st, now)
        if self.mode is Mode.STOPPING and rec.state not in TOLD:
            # Cannot happen through wanted(); should a worker appear anyway, it is told too.
            return [self._stop(rec, now, self.stop_signal)]
        if rec.state in TOLD:
            return self._told_tick(rec, st, now, wall)
        if rec.state is not READY and rec.state is not RETIRING:  # its requests are timed too
            return self._slow_boot(rec, now)
        if stuck := st.past_harakiri(wall, self.harakiri):
            return self._harakiri(rec, "stuck in one request", wall, now, st, stuck)
        if silent := (0.0 if st.request_start else rec.stalled(st.beat, now, self.harakiri)):
            return self._harakiri(rec, "in no request, its loop not run", silent, now, st)
        if rec.state is RETIRING:  # replaced already: no recycle sets its requests a deadline
            return []
        if self.max_worker_lifetime and (recycled := self._past_lifetime(rec, now)):
            return recycled
        if self.reload_on_rss_mb and rss_mb is not None:
            return self._over_rss(rec, st, rss_mb(rec.pid), now)
        return []

    def _hand_over(self, now: float) -> list[Action]:
        """Reloading: once every new worker is ready, the older ones are retired."""
        new = self._counted()
        if len(new) < self.desired or self._pending_now() or any(r.state is not READY for r in new):
            return []
        gen = self.generation
        old = [r for r in self.records.values() if r.generation != gen and r.state.alive_for_work]
        self.mode = Mode.RUNNING
        return [
            Log(
                LogLevel.INFO,
                f"reload: {count_workers(len(new), 'new')} ready, "
                f"stopping {count_workers(len(old), 'old')}",
            ),
            *self._ready(f"reloaded: {count_workers(len(new))} serving"),
            *(self._stop(r, now, RETIRE) for r in old),
        ]


_NAMES = ("HUP", "TERM", "INT", "QUIT", "TTIN", "TTOU", "USR1", "USR2", "WINCH")
Policy.SIGNAL_HANDLERS.update({name: getattr(Policy, f"handle_{name.lower()}") for name in _NAMES})
