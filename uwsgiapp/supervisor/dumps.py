"""Each worker's stack dumps (faulthandler: a segfault, a harakiri's USR2) go to a file of its
own, which the master reads once the worker has exited and logs as one record.

faulthandler writes a dump piece by piece, a ``write`` for each part of each line, from a
signal handler: written straight into the log that the master and the other workers write
to as well, their lines were spliced into the middle of the dump's. An anonymous memory file
(``memfd_create``) made by the master before the fork is inherited by the worker; nothing is
named on disk, and where there is none (not Linux) the dumps go to the error log as before.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import signal
import time
from collections.abc import Callable

from uwsgiapp.server.logs import arm_fault_dumps
from uwsgiapp.server.logtext import escape_log_text
from uwsgiapp.supervisor.livegauges import forget_live_gauges
from uwsgiapp.supervisor.oomkills import OomKills

log = logging.getLogger("uwsgiapp.error")

#: The most of a dump that is logged (faulthandler writes at most 100 frames of 100 threads).
MAX_DUMP = 256 * 1024


def judged_usr2(marked: Callable[[], bool], own: int | None) -> Callable[[], bool]:
    """A worker's test of the SIGUSR2 that came: the master's harakiri (``marked`` in its
    status slot) or one sent by hand. Either way its Python handler runs (this is asked from
    it) and logs the stacks that matter, so what faulthandler had already written into the
    worker's dump file ``own`` is emptied: a harakiri's stack was logged twice (some hundred
    lines a request), a hand-sent USR2's at the worker's exit as an ERROR, taking a later
    crash's room. A worker stuck where Python code cannot run (a C library that retries its
    call on EINTR) never asks: its dump stays, the only stack its harakiri gets."""

    def harakiri() -> bool:
        if own is not None:
            with contextlib.suppress(OSError):
                os.ftruncate(own, 0)
                os.lseek(own, 0, os.SEEK_SET)
        return marked()

    return harakiri


def dump_text(data: bytes) -> str:
    """What a dump file held, as the log shows it: control characters escaped line by line,
    trailing blank lines dropped."""
    lines = data.decode("ascii", "backslashreplace").rstrip().splitlines()
    return "\n".join(escape_log_text(line) for line in lines)


class DumpFiles:
    """The master's dump file of each live worker, by pid."""

    def __init__(self) -> None:
        self._by_pid: dict[int, int] = {}
        #: The memory cgroup's OOM kills, counted from now (read once, and at a SIGKILL).
        self.oom = OomKills()
        self._create = getattr(os, "memfd_create", None)
        #: The last file could not be made (said once until one can: the master out of
        #: descriptors tries again at every spawn).
        self._failing = False

    def open(self) -> int | None:
        """A new worker's file, made before the fork; None where there can be none."""
        if self._create is None:
            return None
        try:
            fd: int = self._create("uwsgiapp-dump")
        except OSError as exc:
            # Out of fds (it may pass: tried again) or refused (a seccomp filter: for good).
            if exc.errno in (errno.ENOSYS, errno.EPERM, errno.EACCES):
                self._create = None
            elif self._failing:
                return None
            self._failing = True
            log.warning("no dump file for a new worker, its stack dumps go to the log: %s", exc)
            return None
        self._failing = False
        return fd

    def forked(self, pid: int, fd: int | None) -> None:
        """In the master: ``fd`` is worker ``pid``'s (or the fork failed: ``pid`` 0)."""
        if fd is None:
            return
        if pid:
            self._by_pid[pid] = fd
        else:
            os.close(fd)

    def in_worker(self, own: int | None = None) -> None:
        """In a new worker: its siblings' files are not its own, and a crash dumps to ``own``
        from here on, before the worker serves too (a --lazy-apps import, a postfork function):
        the dumps of workers crashing as they start were written into the shared log."""
        for fd in self._by_pid.values():
            os.close(fd)
        self._by_pid.clear()
        if own is not None:
            arm_fault_dumps((), own)
            # A process the app forks meanwhile (its import, a postfork function) dumps its
            # own crash to the log, not into this file (logged at the worker's end, as its).
            os.register_at_fork(after_in_child=_dumps_to_the_log)

    def exited(self, pid: int, signum: int | None = None) -> str | None:
        """Worker ``pid`` was reaped (``signum``: the signal that ended it): log what it
        dumped, if anything, and drop its file. Its prometheus_client live gauges go
        (:mod:`uwsgiapp.supervisor.livegauges`). Returns who sent a SIGKILL when that is
        known: the OOM killer, whose count its memory cgroup raised (for the exit line)."""
        killer = self.oom.rose() if signum == signal.SIGKILL else None
        forget_live_gauges(pid)
        fd = self._by_pid.pop(pid, None)
        if fd is None:
            return killer
        try:
            data = os.pread(fd, MAX_DUMP, 0)
            written = os.fstat(fd).st_mtime  # when it was dumped: a harakiri's is logged later
        except OSError as exc:
            data = b""
            log.warning("cannot read the dump file of the worker with pid %d: %s", pid, exc)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)
        if data.strip():
            log.error(
                "the stacks of the worker with pid %d when it got its signal at %s "
                "(faulthandler):\n%s%s",
                pid,
                clock_time(written),
                dump_text(data),
                f"\n(the rest cut: the first {MAX_DUMP // 1024} KiB)"
                if len(data) == MAX_DUMP
                else "",
            )
        return killer


def _dumps_to_the_log() -> None:
    arm_fault_dumps(())


def clock_time(when: float) -> str:
    """``when`` (epoch seconds) as the local time of day with milliseconds, as the log's."""
    return time.strftime("%H:%M:%S", time.localtime(when)) + f",{int(when % 1 * 1000):03d}"
