"""The worker count: TTIN/TTOU by hand, and the cheaper subsystem (``--cheaper``) between
``--cheaper`` and ``--workers``. Pure: the algorithms are :mod:`~uwsgiapp.supervisor.cheaper`'s;
this applies their verdicts to the roster as TTIN/TTOU do (``desired`` and a stop that lets
the worker finish its requests)."""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

from uwsgiapp.supervisor.actions import (
    RETIRE,
    Action,
    Log,
    LogLevel,
    Mode,
    WorkerRecord,
    count_workers,
)
from uwsgiapp.supervisor.cheaper import (
    CYCLE,
    Algorithm,
    BusyShare,
    CheaperOptions,
    Cycle,
    Verdict,
    algorithm,
)
from uwsgiapp.supervisor.forkfail import Forking
from uwsgiapp.supervisor.roster import READY
from uwsgiapp.supervisor.status import WorkerStatus


@dataclass
class Scaling(Forking):
    """The roster with its worker count's controls."""

    #: ``--cheaper``'s options (None: ``--workers`` run all the time).
    cheaper: CheaperOptions | None = None
    _algorithm: Algorithm | None = field(default=None, repr=False)
    #: ``--cheaper`` as started (a HUP's fewer ``--workers`` may lower the minimum below it).
    _least: int = 0
    _share: BusyShare = field(default_factory=BusyShare, repr=False)
    _next_cycle: float = 0.0
    _queue_unknown_said: bool = False
    #: Workers in a request at the last tick that measured (what a reload starts from).
    _busy: int = 0
    #: A reload ran since the last cycle: the next one restarts the algorithm's clocks.
    _paused: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.cheaper is not None:
            self.desired = self.cheaper.initial
            self._least = self.cheaper.minimum

    @property
    def listed_workers(self) -> int:
        """Worker numbers the stats list even with no process (cheaper: up to ``--workers``,
        as uWSGI lists its cheap workers; else the workers wanted: forks that failed left the
        numbers never started out of the stats, which showed 17 rows of 32, all fine)."""
        return self.cheaper.maximum if self.cheaper is not None else self.desired

    def start(self) -> list[Action]:
        """The first workers (with ``--cheaper``, a line says how their number will change)."""
        said = [Log(LogLevel.INFO, self.cheaper.describe())] if self.cheaper else []
        return said + super().start()

    # -- by hand ----------------------------------------------------------------------------

    def handle_ttin(self, now: float) -> list[Action]:
        """One worker more (up to half the slots: a reload needs the other half; with
        ``--cheaper``, up to ``--workers``, and the algorithm may change it again)."""
        most = self.cheaper.maximum if self.cheaper else self.slots // 2
        if most and self.desired >= most:
            return [Log(LogLevel.WARNING, f"SIGTTIN: already at the most workers ({self.desired})")]
        self.desired += 1
        return [Log(LogLevel.INFO, f"SIGTTIN: workers {self.desired}"), *self._fill()]

    def handle_ttou(self, now: float) -> list[Action]:
        """One worker less (at least one; with ``--cheaper``, at least that many)."""
        if self.cheaper and self.desired <= self.cheaper.minimum:
            return [Log(LogLevel.INFO, f"SIGTTOU: already at --cheaper {self.desired}")]
        if self.desired <= 1:
            return [Log(LogLevel.INFO, "SIGTTOU: already at one worker")]
        self.desired -= 1
        return [Log(LogLevel.INFO, f"SIGTTOU: workers {self.desired}"), *self._trim(now)]

    def set_workers(self, count: int, now: float) -> list[Action]:
        """Run ``count`` workers (a binary upgrade's WINCH: none; the HUP after it: as many
        as before): the surplus leave after their requests, the missing start with the code
        the master holds. With none, the cheaper subsystem starts none either."""
        self.desired = count
        return self._trim(now) + self._fill()

    def hup_running(self) -> int:
        """What a HUP compares ``--workers`` with (:func:`~uwsgiapp.supervisor.options.on_hup`):
        the count TTIN/TTOU changed, which a reload resets; with ``--cheaper``, 0: the reload
        starts the count :meth:`_reload_count` says."""
        return 0 if self.cheaper else self.desired

    def hup_workers(self, workers: int | None) -> list[Action]:
        """A HUP read ``--workers`` again (None: unchanged): the reload's new workers are this
        many; with ``--cheaper`` it is the most, and a ``--workers`` not above ``--cheaper``
        lowers the fewest to ``--workers`` - 1 (a line says so) until ``--workers`` is over it
        again."""
        if workers is None:
            return []
        if self.cheaper is None:
            self.desired = workers
            return []
        least = min(self._least, max(1, workers - 1))
        self.cheaper = dataclasses.replace(self.cheaper, maximum=workers, minimum=least)
        self.desired = max(least, min(self.desired, workers))
        self._algorithm = None  # made again with the new bounds
        if least == self._least:
            return []
        said = (
            f"HUP: --workers {workers} is not above --cheaper {self._least}: the fewest is {least}"
        )
        return [Log(LogLevel.WARNING, f"{said} until --workers is above it again")]

    def _reload_count(self) -> list[Action]:
        """A HUP with ``--cheaper``: the new generation starts at ``--cheaper-initial``, or at
        the workers in a request now plus ``--cheaper-step`` if more (uWSGI's reload starts
        again at cheaper-initial; a reload at a peak that has passed would start as many new
        workers as the old). The old workers serve until the new ones are ready."""
        opts = self.cheaper
        if opts is None:
            return []
        count = max(opts.minimum, min(opts.maximum, max(opts.initial, self._busy + opts.step)))
        if count == self.desired:
            return []
        self.desired = count
        why = f"{self._busy} in a request, --cheaper-initial {opts.initial}"
        return [Log(LogLevel.INFO, f"cheaper: the reload starts {count_workers(count)} ({why})")]

    # -- the cheaper subsystem ---------------------------------------------------------------

    def _adapt(
        self,
        now: float,
        status: Callable[[int], WorkerStatus],
        queue: Callable[[], int | None] | None,
    ) -> list[Action]:
        """A tick: measure how busy the workers are; once a :data:`CYCLE`, decide. ``status``
        is the tick's reads (each slot is read once a tick, by the caller); busyness samples
        the workers every tick, spare and backlog only once a cycle."""
        opts = self.cheaper
        if opts is None or self.halted or not self.desired:  # none: a WINCH stopped them
            return []
        if self.mode is not Mode.RUNNING:  # a reload's new workers are no measure of load
            self._share.forget()
            self._next_cycle = now + CYCLE
            self._paused = True
            return []
        due = now >= self._next_cycle
        if not due and opts.algo != "busyness":
            return []
        alive = self._counted()
        loads = [_load(r, status(r.wid), opts.threads) for r in alive]
        self._busy = sum(1 for n, _ in loads if n)
        if opts.algo == "busyness":
            self._share.sample(now, sum(n for n, _ in loads) / max(1, sum(t for _, t in loads)))
        if not due:
            return []
        self._next_cycle = now + CYCLE
        if self._algorithm is None or self._paused:  # this cycle starts clocks, the next decides
            if self._algorithm is None:
                self._algorithm = algorithm(opts, now)
            else:  # after a reload
                self._algorithm.restart(now)
            self._paused = False
            self._share.take()
            return []
        return self._decide(now, loads, status, queue)

    def _decide(
        self,
        now: float,
        loads: list[tuple[int, int]],
        status: Callable[[int], WorkerStatus],
        queue: Callable[[], int | None] | None,
    ) -> list[Action]:
        """A cycle's decision, from ``loads`` (each counted worker's requests now, threads)."""
        opts = self.cheaper
        assert opts is not None and self._algorithm is not None
        waiting, said = self._read_queue(queue)
        cycle = Cycle(
            now,
            running=self.desired,
            idle=sum(1 for n, threads in loads if n < threads),
            empty=sum(1 for n, _ in loads if not n),
            busyness=self._share.take(),
            queue=waiting,
            can_spawn=not self.spawns_held,
        )
        before = copy.deepcopy(self._algorithm)
        verdict = self._algorithm.decide(cycle)
        if verdict.change < 0 and self.desired > opts.minimum and not self._least_busy(status):
            # Every worker is in a request: no stop now, and the algorithm is as if it had not
            # decided one (it decides again at the next cycle, as uWSGI's master retries).
            self._algorithm = before
            return said
        return said + self._apply(verdict, now, status)

    def _read_queue(
        self, queue: Callable[[], int | None] | None
    ) -> tuple[int | None, list[Action]]:
        """The longest listen queue for backlog and busyness (spare reads none: 0), None if
        unknown; the first time it is, a warning says what that means."""
        opts = self.cheaper
        assert opts is not None
        if queue is None or opts.algo == "spare":
            return 0, []
        waiting = queue()
        if waiting is not None or self._queue_unknown_said:
            return waiting, []
        self._queue_unknown_said = True
        what = (
            "backlog cannot work: it starts and stops no worker"
            if opts.algo == "backlog"
            else "its backlog alerts are off"
        )
        why = "the listen queue cannot be read (no TCP_INFO, or no unix_diag for a unix socket)"
        return None, [Log(LogLevel.WARNING, f"cheaper ({opts.algo}): {why}: {what}")]

    def _apply(
        self, verdict: Verdict, now: float, status: Callable[[int], WorkerStatus]
    ) -> list[Action]:
        """Carry out a verdict: more workers (the tick's fill starts them), or one stopped."""
        opts = self.cheaper
        assert opts is not None
        said = f"cheaper ({opts.algo}): {verdict.why}"
        if verdict.change > 0:
            more = min(verdict.change, opts.maximum - self.desired)
            if more <= 0:
                return []
            self.desired += more
            return [Log(LogLevel.INFO, f"{said}: {more} more, {count_workers(self.desired)}")]
        if verdict.change >= 0 or self.desired <= opts.minimum:
            return []
        rec = self._least_busy(status)
        if rec is None:
            return []
        self.desired -= 1
        return [
            Log(LogLevel.INFO, f"{said}: stopping {rec.label}, {count_workers(self.desired)}"),
            self._stop(rec, now, RETIRE),
        ]

    def _least_busy(self, status: Callable[[int], WorkerStatus]) -> WorkerRecord | None:
        """The worker a cheaper stop takes: a serving one in no request (with ``--threads``, a
        worker with requests in flight is never taken: it would stop taking work while they
        run, and the load it carries goes to the others), the highest-numbered (so the running
        workers keep the low numbers, as in uWSGI's stats); None if every one is in a request."""
        idle = [
            r for r in self._counted() if r.state is READY and not _in_requests(r, status(r.wid))
        ]
        return max(idle, key=lambda r: r.number) if idle else None


def _in_requests(rec: WorkerRecord, st: WorkerStatus) -> int:
    """The requests worker ``rec`` is in now (its slot may still be its predecessor's)."""
    return st.in_requests if st.pid == rec.pid else 0


def _load(rec: WorkerRecord, st: WorkerStatus, threads: int) -> tuple[int, int]:
    """Worker ``rec``'s requests now and its request threads (at a thread limit, fewer than
    ``--threads``; a slot still its predecessor's: none, and ``threads``)."""
    return (st.in_requests, st.threads) if st.pid == rec.pid else (0, threads)
