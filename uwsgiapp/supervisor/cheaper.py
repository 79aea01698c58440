"""uWSGI's cheaper subsystem: how many workers to run, between ``--cheaper`` and ``--workers``.

Pure decisions: once a :data:`CYCLE` the master hands the algorithm a :class:`Cycle` (the
workers counted, how many are idle now, the share of request threads that were busy since the
last cycle, the longest listen queue) and applies the :class:`Verdict` it gets back
(:mod:`~uwsgiapp.supervisor.scaling`). The algorithms follow uWSGI 2.0's (core/master_utils.c,
plugins/cheaper_busyness): ``spare`` (the default) reacts to every worker being busy,
``backlog`` to the listen queue, ``busyness`` to the average busy share over
``--cheaper-overload`` seconds, with its cheaper multiplier, respawn penalty and backlog alert.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from uwsgiapp.config import Config

#: Seconds between two decisions (uWSGI's master cycle: its algorithms count these).
CYCLE = 1.0
#: uWSGI's busyness: cycles in a row between min and max that reset the cheaper timer.
TOLERANCE = 3


@dataclass(frozen=True, slots=True, kw_only=True)
class CheaperOptions:
    """The cheaper options (uWSGI's names without ``cheaper-``); ``maximum`` is ``--workers``."""

    minimum: int
    maximum: int
    initial: int
    step: int = 1
    overload: int = 3
    algo: str = "spare"
    #: Request threads per worker: a worker is busy when all of them are in a request.
    threads: int = 1
    busyness_min: int = 25
    busyness_max: int = 50
    multiplier: int = 10
    penalty: int = 2
    backlog_alert: int = 33
    backlog_step: int = 1
    backlog_multiplier: int = 3
    backlog_nonzero: int = 60

    @classmethod
    def from_config(cls, config: Config) -> CheaperOptions | None:
        """From a validated :class:`~uwsgiapp.config.Config`; None without ``--cheaper``."""
        if not config.cheaper:
            return None
        return cls(
            minimum=config.cheaper,
            maximum=config.workers,
            initial=config.cheaper_initial or config.cheaper,
            step=config.cheaper_step,
            overload=config.cheaper_overload,
            algo=config.cheaper_algo,
            threads=config.threads,
            busyness_min=config.cheaper_busyness_min,
            busyness_max=config.cheaper_busyness_max,
            multiplier=config.cheaper_busyness_multiplier,
            penalty=config.cheaper_busyness_penalty,
            backlog_alert=config.cheaper_busyness_backlog_alert,
            backlog_step=config.cheaper_busyness_backlog_step,
            backlog_multiplier=config.cheaper_busyness_backlog_multiplier,
            backlog_nonzero=config.cheaper_busyness_backlog_nonzero,
        )

    def describe(self) -> str:
        """For the start-up line: 'cheaper busyness: 8..128 workers, 16 at start, step 16'."""
        return (
            f"cheaper {self.algo}: {self.minimum}..{self.maximum} workers, {self.initial} at "
            f"start, step {self.step}, every {self.overload} s"
        )


@dataclass(frozen=True, slots=True)
class Cycle:
    """What one decision is made from."""

    now: float
    #: The workers the master keeps now (started, starting, or about to be).
    running: int
    #: Of the workers alive, those with a request thread free now (starting ones included:
    #: they will take work); none: every worker is busy, the overload test.
    idle: int
    #: The share of the workers' request threads in a request since the last cycle, 0..1.
    busyness: float = 0.0
    #: The longest listen queue now (connections waiting for a worker's accept); None: it
    #: cannot be read (no TCP_INFO, no unix_diag), which is no reason to start or stop.
    queue: int | None = 0
    #: False while new workers are held (a crash loop, an app that cannot load).
    can_spawn: bool = True
    #: Of the workers alive, those in no request now (the ones a stop may take); None: as
    #: ``idle`` (one thread per worker, where the two are the same).
    empty: int | None = None

    @property
    def unoccupied(self) -> int:
        """The workers in no request now (``empty``, else ``idle``)."""
        return self.idle if self.empty is None else self.empty


@dataclass(frozen=True, slots=True)
class Verdict:
    """``change`` > 0: start that many workers; -1: stop one; 0: keep. ``why``: the log line."""

    change: int = 0
    why: str = ""


KEEP = Verdict()


class Algorithm(Protocol):
    """One cheaper algorithm: a decision per cycle."""

    def decide(self, cycle: Cycle) -> Verdict:
        """What to do about the worker count now."""
        ...

    def restart(self, now: float) -> None:
        """Its clocks and counts start again at ``now`` (after a reload: the time the new
        workers took to start measured nothing); what it learnt (busyness' multiplier) stays."""
        ...


def _more(opts: CheaperOptions, cycle: Cycle, step: int) -> int:
    """Workers to start: ``step``, as far as ``--workers`` allows."""
    return max(0, min(step, opts.maximum - cycle.running))


@dataclass
class Spare:
    """uWSGI's default: every worker busy for ``overload`` cycles → ``step`` more; idle ones →
    one fewer each ``overload`` cycles, but never while exactly one worker is idle (one spare
    is the stable state). With ``--threads``, a worker is busy when every thread is in a
    request, and idle when none is (a worker with some threads in requests is neither: it is
    no reason for more workers, and no spare to stop)."""

    opts: CheaperOptions
    overloaded: int = 0
    idle_cycles: int = 0

    def decide(self, cycle: Cycle) -> Verdict:
        """As uWSGI's ``uwsgi_cheaper_algo_spare``."""
        opts = self.opts
        if cycle.idle:
            self.overloaded = max(0, self.overloaded - 1)
        else:
            self.overloaded += 1
            self.idle_cycles = 0
        if cycle.can_spawn and self.overloaded >= opts.overload:
            self.overloaded = 0
            more = _more(opts, cycle, opts.step)
            why = f"every worker busy for {opts.overload} s"
            return Verdict(more, why) if more else KEEP
        idle = cycle.unoccupied
        if self.overloaded or idle <= 1:
            return KEEP
        self.idle_cycles += 1
        if cycle.running > opts.minimum and self.idle_cycles % opts.overload == 0:
            return Verdict(-1, f"{idle} workers idle")
        return KEEP

    def restart(self, now: float) -> None:
        """The busy and idle cycles count from 0."""
        self.overloaded = self.idle_cycles = 0


@dataclass
class Backlog:
    """uWSGI's ``backlog``: more than ``overload`` connections waiting → ``step`` more; fewer
    than ``overload`` → one fewer, each cycle (no idle time required, as uWSGI's); a queue
    that cannot be read changes nothing."""

    opts: CheaperOptions

    def decide(self, cycle: Cycle) -> Verdict:
        """As uWSGI's ``uwsgi_cheaper_algo_backlog``."""
        opts = self.opts
        if cycle.queue is None:
            return KEEP
        if cycle.can_spawn and cycle.queue > opts.overload:
            more = _more(opts, cycle, opts.step)
            why = f"{cycle.queue} connections waiting (over {opts.overload})"
            return Verdict(more, why) if more else KEEP
        if cycle.queue < opts.overload and cycle.running > opts.minimum:
            return Verdict(-1, f"{cycle.queue} connections waiting (under {opts.overload})")
        return KEEP

    def restart(self, now: float) -> None:
        """Nothing to restart: backlog looks at each cycle alone."""


@dataclass
class Busyness:
    """uWSGI's ``busyness`` (Łukasz Mierzwa's plugin), decided every ``overload`` seconds from
    the average busy share: over ``busyness_max`` → ``step`` more; under ``busyness_min`` →
    one fewer, once ``overload`` x multiplier seconds passed since the last change (the
    multiplier grows by ``penalty`` when workers stopped come back soon, and shrinks back one
    at a time). A listen queue over ``backlog_alert``, or one that stayed non-empty for
    ``backlog_nonzero`` seconds, starts ``backlog_step`` emergency workers at once, which are
    stopped sooner (``overload`` x ``backlog_multiplier``)."""

    opts: CheaperOptions
    started: float
    multiplier: int = 0
    checked: float = 0.0
    next_stop: float = 0.0
    last_stop: float = -math.inf
    #: "spawn" or "stop": the last change made.
    last: str = ""
    tolerance: int = 0
    emergency: int = 0
    queued_since: float | None = None
    shares: list[float] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.multiplier = self.opts.multiplier
        self.checked = self.started
        self._stop_later(self.started)

    def restart(self, now: float) -> None:
        """The period, the wait before a stop and the queue's non-empty time start at ``now``
        (the multiplier and the emergency workers stay)."""
        self.checked = now
        self.shares.clear()
        self.tolerance = 0
        self.queued_since = None
        self._stop_later(now)

    def _stop_later(self, now: float) -> None:
        multiplier = self.opts.backlog_multiplier if self.emergency else self.multiplier
        self.next_stop = now + self.opts.overload * multiplier

    def _lower_multiplier(self) -> str:
        if self.multiplier <= self.opts.multiplier:
            return ""
        self.multiplier -= 1
        return f"; multiplier down to {self.multiplier}"

    def decide(self, cycle: Cycle) -> Verdict:
        """As uWSGI's ``cheaper_busyness_algo`` (one call a cycle)."""
        self.shares.append(cycle.busyness)
        if cycle.now - self.checked >= self.opts.overload:
            self.checked = cycle.now
            average = 100.0 * sum(self.shares) / len(self.shares)
            self.shares.clear()
            return self._check(cycle, average)
        if self._alert(cycle):
            return self._emergency(cycle, f"{cycle.queue} connections waiting")
        if not cycle.queue:
            self.queued_since = None
        elif self.queued_since is None:
            self.queued_since = cycle.now
        elif cycle.can_spawn and cycle.now - self.queued_since >= self.opts.backlog_nonzero:
            self.queued_since = cycle.now
            waited = f"connections waiting for {self.opts.backlog_nonzero} s"
            return self._emergency(cycle, waited)
        return KEEP

    def _check(self, cycle: Cycle, average: float) -> Verdict:
        """The end of an ``overload`` period: its average busyness decides."""
        opts = self.opts
        busy = f"{average:.0f}% busy over {opts.overload} s"
        if average > opts.busyness_max:
            self.tolerance = 0
            more = _more(opts, cycle, opts.step) if cycle.can_spawn else 0
            if not more:
                return KEEP
            self.last = "spawn"
            if cycle.now - self.last_stop <= opts.overload * self.multiplier:
                self.multiplier += opts.penalty
                busy += f"; workers back soon after a stop: multiplier up to {self.multiplier}"
            else:
                busy += self._lower_multiplier()
            self._stop_later(cycle.now)
            return Verdict(more, busy)
        if self._alert(cycle):
            return self._emergency(cycle, f"{cycle.queue} connections waiting")
        if cycle.running <= 1:
            return KEEP
        if average < opts.busyness_min:
            self.tolerance = 0
            if cycle.running <= opts.minimum or cycle.now < self.next_stop:
                return KEEP
            if self.last == "stop":
                busy += self._lower_multiplier()
            self._stop_later(cycle.now)
            self.last_stop, self.last = cycle.now, "stop"
            self.emergency = max(0, self.emergency - 1)
            return Verdict(-1, busy)
        self.emergency = max(0, self.emergency - 1)
        self.tolerance += 1
        if self.tolerance >= TOLERANCE:  # busy enough for a while: the idle time starts again
            self._stop_later(cycle.now)
        else:  # a short spike: this period does not count as idle
            self.next_stop += opts.overload
        return KEEP

    def _alert(self, cycle: Cycle) -> bool:
        """More connections waiting than ``backlog_alert`` (an unknown queue: never), and room
        for more workers."""
        opts = self.opts
        if cycle.queue is None or not cycle.can_spawn:
            return False
        return cycle.queue > opts.backlog_alert and cycle.running < opts.maximum

    def _emergency(self, cycle: Cycle, why: str) -> Verdict:
        """uWSGI's ``spawn_emergency_worker``."""
        self.multiplier = self.opts.multiplier
        self.last = "spawn"
        more = _more(self.opts, cycle, self.opts.backlog_step)
        self.emergency += more
        self._stop_later(cycle.now)
        return Verdict(more, f"{why} (over {self.opts.backlog_alert})") if more else KEEP


def algorithm(opts: CheaperOptions, now: float) -> Algorithm:
    """The algorithm ``opts.algo`` names, starting at ``now``."""
    if opts.algo == "backlog":
        return Backlog(opts)
    if opts.algo == "busyness":
        return Busyness(opts, now)
    return Spare(opts)


@dataclass
class BusyShare:
    """The share of request threads in a request, averaged over time from the master's ticks
    (the worker slots say who is in a request now; a tick is a tenth of a second)."""

    last: float | None = None
    area: float = 0.0
    span: float = 0.0

    def sample(self, now: float, share: float) -> None:
        """At ``now``, ``share`` (0..1) of the request threads are in a request."""
        if self.last is not None and now > self.last:
            self.area += (now - self.last) * share
            self.span += now - self.last
        self.last = now

    def take(self) -> float:
        """The average since the last take (0 with no time measured), and start again."""
        share = self.area / self.span if self.span else 0.0
        self.area = self.span = 0.0
        return share

    def forget(self) -> None:
        """Nothing measured counts (the workers were being replaced)."""
        self.last = None
        self.area = self.span = 0.0
