"""How a worker the master gives up on is made to go: a harakiri (its stacks dumped, then a
kill after a grace) and a deadline passed (a quick stop first for the request a graceful stop
would cut, else SIGKILL). Pure, as the rest of the policy: it returns actions."""

from __future__ import annotations

import signal
from collections.abc import Callable
from dataclasses import dataclass

from uwsgiapp.supervisor.actions import (
    DUMP_GRACE,
    QUICK_GRACE,
    Action,
    Log,
    LogLevel,
    Signal,
    WorkerRecord,
)
from uwsgiapp.supervisor.roster import HARAKIRI, READY, RETIRING, STOPPING
from uwsgiapp.supervisor.scaling import Scaling
from uwsgiapp.supervisor.status import WorkerStatus

__all__ = ["Kills"]


@dataclass
class Kills(Scaling):
    """The roster, its worker count's controls, and how a worker is made to go."""

    def _harakiri(
        self,
        rec: WorkerRecord,
        why: str,
        wall: float,
        now: float,
        st: WorkerStatus,
        stuck: tuple[float, float] | None = None,
    ) -> list[Action]:
        """Past its harakiri (``stuck``: the request's start and limit; None: its loop's
        silence past --harakiri, ``wall`` its length): stacks dumped (USR2), then killed: after
        --harakiri more seconds while other requests of its threads are in flight (it accepts no
        more, a new worker serves), else once the dump is written (DUMP_GRACE)."""
        # One told to leave (a HUP's, a TERM's) or replaced already has its successor.
        then = "; a new worker takes its place" if rec.state is READY else ""
        start, limit = stuck or (0.0, self.harakiri)
        rec.state = HARAKIRI
        rec.harakiri_start = start
        # The others' time: theirs is --harakiri (or, without it, what a stop gives them), not
        # the stuck request's own bound (set_harakiri(3600) gave them an hour).
        grace = (self.harakiri or self.graceful_timeout) if st.in_requests > 1 else DUMP_GRACE
        rec.deadline = now + grace
        self.harakiris[rec.wid] = self.harakiris.get(rec.wid, 0) + 1
        bound = (
            f"limit {limit:g}s"
            if limit == self.harakiri
            else f"its own limit, {round(limit, 1):g}s from its start, set by the app's "
            "set_harakiri"
        )
        said = (
            f"HARAKIRI: {rec.label} {why} for {wall - start if stuck else wall:.1f}s "
            f"({bound}): dumping its stack and cutting the request, then killing "
            f"it (in {grace:g}s) if it stays{then}"
        )
        return [Log(LogLevel.ERROR, said), Signal(rec.pid, signal.SIGUSR2, rec.wid)]

    def _told_tick(
        self, rec: WorkerRecord, st: WorkerStatus, now: float, wall: float
    ) -> list[Action]:
        """A worker told to go (a HUP's, a TERM's): ``--harakiri`` still bounds its request
        (it ran on to --graceful-timeout, 30 s, where uWSGI cuts it at its harakiri); else
        its deadline."""
        stuck = st.past_harakiri(wall, self.harakiri) if st.pid == rec.pid else None
        if rec.state is STOPPING and stuck:
            told_by = rec.deadline
            actions = self._harakiri(rec, "stuck in one request", wall, now, st, stuck)
            rec.deadline = min(rec.deadline, told_by)  # never past its stop's (review: threads)
            return actions
        return [] if now < rec.deadline else self._deadline_passed(rec, st, now, wall)

    def while_importing(
        self, now: float, wall: float, status: Callable[[int], WorkerStatus]
    ) -> list[Action]:
        """While the master's loop waits for a HUP's re-import of the app (seconds, for a big
        app): what bounds the workers' requests, ``--harakiri`` (its dump, then its kill) and
        the stop deadlines, which only send signals (nothing is forked meanwhile). A request
        stuck meanwhile ran on until the import's end (a 3 s harakiri cut at 9.7 s)."""
        actions: list[Action] = []
        for rec in list(self.records.values()):
            st = status(rec.wid)
            if rec.state is STOPPING or rec.state is HARAKIRI:
                actions += self._told_tick(rec, st, now, wall)
            elif rec.state is READY or rec.state is RETIRING:
                stuck = st.past_harakiri(wall, self.harakiri) if st.pid == rec.pid else None
                if stuck:
                    actions += self._harakiri(rec, "stuck in one request", wall, now, st, stuck)
        return actions

    def _deadline_passed(
        self, rec: WorkerRecord, st: WorkerStatus, now: float, wall: float
    ) -> list[Action]:
        """A worker told to go is still there at its deadline: SIGKILL; but one still in a
        request after a graceful stop, or a harakiri's whose other threads are (their
        --harakiri seconds more ran out), gets a quick stop first, so that it logs the requests
        it cuts and the app's finally blocks run (they were SIGKILLed unsaid)."""
        what = "harakiri" if rec.state is HARAKIRI else "stop"
        in_one = st.pid == rec.pid and st.request_start
        # Another thread's request than the stuck one (which, in a C call, only the kill ends).
        others = st.busy_cores > 1 or (st.busy_cores and st.request_start != rec.harakiri_start)
        if (rec.state is STOPPING or (rec.state is HARAKIRI and others)) and not rec.cut and in_one:
            rec.cut = True
            rec.deadline = now + QUICK_GRACE
            return [
                Log(
                    LogLevel.WARNING,
                    f"{rec.label}: {what} deadline passed in a request "
                    f"(the oldest {wall - st.request_start:.1f}s in): cutting it (SIGINT), "
                    f"killing it in {QUICK_GRACE:g}s if it stays",
                ),
                Signal(rec.pid, signal.SIGINT),
            ]
        rec.deadline = now + 3600  # once
        rec.killed = True
        return [
            Log(LogLevel.WARNING, f"{rec.label}: {what} deadline passed, killing it"),
            Signal(rec.pid, signal.SIGKILL),
        ]
