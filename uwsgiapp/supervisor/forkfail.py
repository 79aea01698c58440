"""Forks that fail: the master could not start a worker (the process or thread limit, memory,
its own descriptors) and tries again a while later, saying why once.

Each missing worker was tried again at every 0.1 s tick, a line each time (50 lines a second
with 8 workers wanted and 3 running under a process limit), and the line named only the errno.
Now a failed fork holds every spawn, the rest of its batch too, for a wait that doubles up to
:data:`FORK_RETRY`'s longest; the first failure is said at once with its likely cause, then
one line every :data:`FORK_SAY_EVERY` seconds while forks keep failing. Pure: no processes,
``now`` is given (monotonic seconds).
"""

from __future__ import annotations

import errno
from dataclasses import dataclass, field

from uwsgiapp.exitcodes import ServeExit
from uwsgiapp.oslimits import THREAD_LIMIT
from uwsgiapp.supervisor.actions import Action, Halt, Log, LogLevel, Mode
from uwsgiapp.supervisor.roster import Roster

__all__ = ["FORK_RETRY", "FORK_SAY_EVERY", "NO_ROOM_TRIES", "ForkFailures", "Forking", "fork_cause"]

#: After a failed fork, seconds before the next try; doubling up to the second value while
#: forks keep failing (back to the first once one works).
FORK_RETRY = (0.5, 5.0)
#: Seconds between two lines while forks keep failing.
FORK_SAY_EVERY = 30.0
#: Failed forks in a row for the master's open-files limit that stop a first start (3: some
#: 3.5 s of tries; a descriptor the master held only a moment, a health check's, is let go).
NO_ROOM_TRIES = 3

_CAUSES = {
    errno.EAGAIN: THREAD_LIMIT,
    errno.ENOMEM: "out of memory: the kernel would not commit the new process's memory "
    "(a memory cgroup's limit, vm.overcommit_memory)",
    errno.EMFILE: "the master's open-files limit (ulimit -n, systemd's LimitNOFILE=): each "
    "worker costs it descriptors, --log-master's pipes most",
    errno.ENFILE: "the whole system is out of open files (fs.file-max)",
}


def fork_cause(code: int | None) -> str:
    """What most often makes a fork fail with errno ``code`` ("" when nothing is known)."""
    return _CAUSES.get(code, "") if code is not None else ""


@dataclass
class ForkFailures:
    """The forks that failed since the last one that worked: when to try again, what to say."""

    failed: int = 0
    #: When the first of them failed, and when a line last said so.
    since: float = 0.0
    said_at: float = 0.0
    #: The wait before the next try (seconds).
    retry: float = 0.0
    #: The last one failed for the master's own open-files limit (EMFILE).
    no_room: bool = False

    def failed_now(
        self, error: OSError, now: float, running: int, wanted: int
    ) -> tuple[float, str | None]:
        """A fork failed with ``error`` (``running`` of ``wanted`` workers are there): the
        seconds to wait before the next try, and the line to log (None: said lately)."""
        first, most = FORK_RETRY
        self.no_room = error.errno == errno.EMFILE
        self.retry = min(self.retry * 2, most) if self.failed else first
        if not self.failed:
            self.since = now
        self.failed += 1
        if self.failed > 1 and now - self.said_at < FORK_SAY_EVERY:
            return self.retry, None
        self.said_at = now
        cause = fork_cause(error.errno)
        workers = f"{running} of {wanted} workers running"
        if self.failed == 1:
            why = f" ({cause})" if cause else ""
            return self.retry, (
                f"cannot fork a worker: {error}{why}; {workers}; trying again in "
                f"{self.retry:g} s, then less often while forks fail"
            )
        return self.retry, (
            f"still cannot fork a worker: {self.failed} tries failed in {now - self.since:.0f} s "
            f"(the last: {error}); {workers}; trying again every {self.retry:g} s"
        )


@dataclass
class Forking(Roster):
    """The roster with the forks that failed (:class:`ForkFailures`)."""

    forks: ForkFailures = field(default_factory=ForkFailures)

    def spawn_failed(self, wid: int, error: OSError, now: float) -> str | None:
        """The arbiter could not fork for a :class:`~uwsgiapp.supervisor.actions.Spawn`: no
        spawn (this batch's neither) until the next try; what to log, if anything."""
        self.pending.clear()
        running = len(self._counted())
        wait, said = self.forks.failed_now(error, now, running, self.desired)
        self.spawns_held = True
        self.respawn_at = max(self.respawn_at, now + wait)
        return said

    def out_of_room(self) -> list[Action]:
        """Stop (exit 3, as a first worker with too few descriptors stops the start) when the
        first workers cannot be forked for the master's own open-files limit and none runs:
        no later try can work while the limit holds (``--log-master``'s pipes under a low
        ``ulimit -n``: the master waited without a worker, its health check 503, for good)."""
        if not self.forks.no_room or self.forks.failed < NO_ROOM_TRIES or self.served:
            return []
        if self._counted() or self.mode is Mode.STOPPING:  # a TERM meanwhile: its stop, 0
            return []
        self.halted = True
        said = (
            "cannot fork the first workers for the master's open-files limit (ulimit -n, "
            "systemd's LimitNOFILE=, a container's nofile): stopping (no fork loop)"
        )
        return [Log(LogLevel.ERROR, said), Halt(ServeExit.START_FAILED)]

    def spawned(self, wid: int, generation: int, pid: int, now: float) -> str:
        """As :meth:`Roster.spawned`; once the forks that worked leave no worker missing, the
        next failure is a first one again (under a limit that holds all but one, each
        recycle's fork worked and the missing worker's failure was said as a first one: 30
        lines a minute, and no longer wait)."""
        label = super().spawned(wid, generation, pid, now)
        if len(self._counted()) >= self.desired:
            self.forks = ForkFailures()
        return label
