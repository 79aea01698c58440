"""The supervisor's vocabulary: worker and master states, the actions the policy asks the arbiter
to carry out, and the master's record of one worker. Values only; no decisions, no processes.
"""

from __future__ import annotations

import logging
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from enum import Enum, IntEnum

from uwsgiapp.exitcodes import ServeExit
from uwsgiapp.termsignals import STOP_SIGNALS

#: Consecutive workers that may die during boot before the master gives up.
BOOT_FAILURE_LIMIT = 5
#: A worker could not load the app while others serve: seconds before the next try, doubling
#: up to the second value (back to the first once a worker loads it).
LOAD_RETRY = (1.0, 10.0)
#: A crash loop (more serving workers dying unasked in a second than 2 a worker, and 2): spawns
#: wait this long, doubling up to the second value while it lasts (uWSGI's "respawning too
#: fast"); back to the first after the third value's seconds without one.
CRASH_HOLD = (1.0, 8.0, 30.0)
#: During a crash hold with no worker serving or starting: one worker is started at most this
#: often, so that the requests the crash spares are served meanwhile (gunicorn respawns at once).
CRASH_PROBE_EVERY = 1.0
#: Seconds between the harakiri stack dump and the kill; and the quick-stop grace (also what
#: a worker still in a request at its graceful deadline gets after SIGINT, before SIGKILL).
DUMP_GRACE = 1.0
QUICK_GRACE = 2.0
#: What a worker retired while the others keep serving gets: finish the current request, leave.
RETIRE = signal.SIGHUP
#: The signals that stop the master (uwsgiapp.termsignals.STOP_SIGNALS); by name, as its queue
#: holds them.
STOPS = frozenset(signum.name.removeprefix("SIG") for signum in STOP_SIGNALS)


class WorkerState(str, Enum):
    """Where one worker is, as the master sees it (a ``str`` so logs and tests read it)."""

    BOOTING = "booting"  # forked; its slot does not say ready yet
    READY = "ready"  # loaded the app and accepts
    STOPPING = "stopping"  # told to stop; killed at ``deadline``
    HARAKIRI = "harakiri"  # stuck in a request: stack dump asked, killed at ``deadline``
    #: Stopped accepting on its own (max-requests) while in requests: replaced at once, its
    #: requests are not cut (--harakiri still times them); once in none, STOPPING.
    RETIRING = "retiring"

    @property
    def alive_for_work(self) -> bool:
        """Booting or ready: counts towards the workers serving (not told to go)."""
        return self in (WorkerState.BOOTING, WorkerState.READY)


class Mode(str, Enum):
    """What the master as a whole is doing."""

    RUNNING = "running"
    RELOADING = "reloading"  # a HUP's new generation is booting; the old one serves
    STOPPING = "stopping"  # TERM/INT/QUIT: nothing is spawned any more


class ReloadKind(str, Enum):
    """What a HUP does about the app's code."""

    REIMPORT = "reimport"  # the master re-imports it; new workers fork from the new code
    LAZY = "lazy"  # each new worker imports it (--lazy-apps)
    RECYCLE = "recycle"  # new processes, forked from the code already loaded


class LogLevel(IntEnum):
    """The error log levels the policy uses (their :mod:`logging` numbers)."""

    INFO = logging.INFO
    WARNING = logging.WARNING
    ERROR = logging.ERROR


@dataclass(frozen=True, slots=True)
class Spawn:
    """Fork a worker into status slot ``wid`` for ``generation``."""

    wid: int
    generation: int


@dataclass(frozen=True, slots=True)
class Signal:
    """Send ``signum`` to worker ``pid``; ``harakiri``: its status slot, marked first (a
    harakiri's USR2, which the worker tells from one sent by hand)."""

    pid: int
    signum: int
    harakiri: int = -1


@dataclass(frozen=True, slots=True)
class Log:
    """A line for the error log; ``traceback``: the one it stands for (a failed import's),
    under the line in the text log, in the record's ``traceback`` in the JSON one."""

    level: LogLevel
    message: str
    traceback: str = ""


@dataclass(frozen=True, slots=True)
class Halt:
    """Stop the master with ``code`` (killing any worker still alive)."""

    code: ServeExit


@dataclass(frozen=True, slots=True)
class Reimport:
    """Re-import the preloaded app in the master before forking new workers."""


@dataclass(frozen=True, slots=True)
class StopAccepting:
    """Close the master's listening sockets and remove the unix socket files: once the workers
    have drained the queues and closed theirs, a new connection is refused."""


@dataclass(frozen=True, slots=True)
class ReopenLogs:
    """Reopen the master's log files (on ``why``: USR1, or a HUP, whose new workers then write
    to the new files, as uWSGI's ``log-reopen``: those moved only, ``moved_only``)."""

    why: str = "USR1: log files reopened (the workers' too)"
    moved_only: bool = False


@dataclass(frozen=True, slots=True)
class Notify:
    """Tell the service manager (systemd's ``Type=notify``): ``READY=1``, ``STOPPING=1``…"""

    state: str


Action = Spawn | Signal | Log | Halt | Reimport | StopAccepting | ReopenLogs | Notify


#: How late a worker loop's beat may be (it beats once a second at most, the master looks once a
#: tick): an idle worker is not taken for a stalled one at a --harakiri of 1 s.
BEAT_SLACK = 2.0
#: A gap between the master's ticks over this (they come every 0.1 s) is the master's own stop.
MASTER_GAP = 1.0


@dataclass(slots=True)
class WorkerRecord:
    """The master's view of one worker process."""

    wid: int
    pid: int
    generation: int
    started: float
    state: WorkerState = WorkerState.BOOTING
    deadline: float = 0.0  # when to SIGKILL (stopping / harakiri)
    #: Told to cut its request (a quick stop): at the deadline, nothing is left but SIGKILL.
    cut: bool = False
    #: When the request its harakiri was for began (its other threads' are cut at the end).
    harakiri_start: float = 0.0
    #: The master sent it SIGKILL: its SIGKILL death is the master's, whatever else the
    #: memory cgroup counted meanwhile (an app's child the OOM killer took).
    killed: bool = False
    #: Its worker number, 1..N (0: not given, the slot's then).
    number: int = 0
    #: Its RSS (MB) when a tick first saw it before its first request (--reload-on-rss); 0: unseen.
    fresh_rss: float = 0.0
    #: Forked for a reload that failed (ended at once): its number is a serving worker's too.
    failed_reload: bool = False
    #: Its slow start was logged (:data:`~uwsgiapp.supervisor.roster.SLOW_BOOT`).
    boot_said: bool = False
    #: Forked before any worker served: its failing to load the app stops the start.
    first_start: bool = False
    #: Its request count when last seen to change (or to be in a request), and when (a busy
    #: worker's loop may not come round to its beat for a while: its requests are its life).
    seen_requests: int = 0
    seen_at: float = 0.0

    def stalled(self, beat: float, now: float, harakiri: float) -> float:
        """Seconds since this ready worker, in no request, was last seen alive (its loop's
        ``beat`` or a request counted, whichever came later), if over ``harakiri`` by more than
        :data:`BEAT_SLACK`; else 0 (also without a beat, or without harakiri). Connections
        queue for such a worker, and no request starts: a thread holding the GIL in C code,
        a SIGSTOP."""
        silent = now - max(beat, self.seen_at)
        return silent if beat and harakiri and silent > harakiri + BEAT_SLACK else 0.0

    @property
    def label(self) -> str:
        """How log lines name it: 'worker 2 (pid 1234)', by its number ('worker 2 (pid 1236,
        of the failed reload)' for one of a failed reload's new workers)."""
        whose = ", of the failed reload" if self.failed_reload else ""
        return f"worker {self.number or self.wid + 1} (pid {self.pid}{whose})"


def woke(records: Iterable[WorkerRecord], last: float, now: float) -> float:
    """The master's tick at ``now``, its previous at ``last``: a gap over :data:`MASTER_GAP`
    (the master itself stopped: Ctrl-Z, ``docker pause``, a frozen cgroup, with its workers)
    counts as each worker seen alive now; they had no time to beat either. Returns ``now``."""
    if now - last > MASTER_GAP:
        for rec in records:
            rec.seen_at = max(rec.seen_at, now)
    return now


def describe_exit(code: int | None, signum: int | None) -> str:
    """'exited with code 3' / 'killed by signal 9 (SIGKILL)'."""
    if code is None and signum is None:  # its status taken by a waiter of the app's (gevent)
        return "ended (its status was read by the app's code in the master, gevent's maybe)"
    if signum is not None:
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = "?"
        return f"killed by signal {signum} ({name})"
    return f"exited with code {code}"


def unexpected_death(signum: int | None, in_requests: int) -> str:
    """What a worker's death nobody asked for suggests: a SIGKILL the master did not send is
    most likely the kernel's OOM killer (in a container, only the worker dies: the container
    is not marked OOMKilled, so this line is the only trace)."""
    hint = ""
    if signum == signal.SIGKILL:
        hint = (
            ", not sent by uwsgiapp: the OOM killer (dmesg says; in a container, the oom_kill "
            "count of its cgroup's memory.events, or memory.oom_control with cgroup v1), or a "
            "kill -9"
        )
    if in_requests > 1:
        return f"{hint} (it was in {in_requests} requests, which got no answer)"
    return hint + (" (it was in a request, which got no answer)" if in_requests else "")


def count_workers(count: int, kind: str = "") -> str:
    """'1 worker', '2 new workers'."""
    return f"{count} {kind + ' ' if kind else ''}worker{'' if count == 1 else 's'}"
