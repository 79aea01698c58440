"""The child process of a HUP's trial import, and its life seen from the master's loop (what
is decided about it: :mod:`~uwsgiapp.supervisor.trial`).

At a HUP with a preloaded app the master forks a child that imports the new code as the
master's re-import would (:func:`~uwsgiapp.supervisor.reload.trial_import`), then the loop goes
on: the workers of the old code are replaced, recycled and killed at their harakiri as
always, and the stats and the signals are served. The child is reaped with the workers
(:func:`~uwsgiapp.supervisor.workerexit.reap`); if it imported the new code, the reload begins
as a HUP begins it, and the master imports the code itself; if not, one line says what became
of it and the reload is off. A stop kills it, and so does a new HUP (which starts another).

The child is in a process group of its own, killed whole once it has ended (what its import
started, as a ``multiprocessing`` helper, goes with it); it closes its copies of the listening
sockets (a stop's drain counts on the workers' being the last), ends with ``os._exit`` (none of
the master's exit work runs in it), and dies with the master (``PR_SET_PDEATHSIG``: SIGKILL,
which an app's own handler cannot take).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from uwsgiapp.config import Config
from uwsgiapp.server.logs import arm_fault_dumps, flush_std
from uwsgiapp.supervisor import options
from uwsgiapp.supervisor.actions import Action, Log, LogLevel, Notify, ReloadKind
from uwsgiapp.supervisor.dumps import MAX_DUMP
from uwsgiapp.supervisor.mastersignals import MASTER_SIGNUMS
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.registrations import fork_hooks_quiet
from uwsgiapp.supervisor.reload import trial_import
from uwsgiapp.supervisor.titles import set_title
from uwsgiapp.supervisor.trial import (
    Deadline,
    TrialEnd,
    failed,
    failure,
    failure_traceback,
    one_line,
    passed,
    record,
    stack_frames,
    started_line,
    traceback_of,
    where,
)
from uwsgiapp.supervisor.workerexit import die_with_parent

log = logging.getLogger("uwsgiapp.error")

_exit = os._exit  # the child notes the app's calls of os._exit, then ends through this one

#: An exit the master reaped: (pid, exit code or None, signal or None).
Exit = tuple[int, int | None, int | None]


def _channel() -> int | None:
    """The file the child writes its records and stacks into: anonymous memory, else a file
    removed at once; None if neither can be made (the exit status alone then says)."""
    with contextlib.suppress(OSError, AttributeError):
        return os.memfd_create("uwsgiapp-trial")
    with contextlib.suppress(OSError):
        import tempfile  # only where memfd_create is missing

        fd, path = tempfile.mkstemp(prefix="uwsgiapp-trial-")
        os.unlink(path)
        return fd
    return None


@dataclass(slots=True)
class Child:
    """A trial import under way: the child's ``pid``, its file, its deadline."""

    pid: int
    channel: int | None
    deadline: Deadline

    def kill(self, signum: int = signal.SIGKILL) -> None:
        """``signum`` to the child's process group (to the child alone if it has none yet:
        not reaped, its pid is still its own)."""
        try:
            os.killpg(self.pid, signum)
        except OSError:
            with contextlib.suppress(OSError):
                os.kill(self.pid, signum)

    def end(self, code: int | None, signum: int | None, now: float) -> TrialEnd:
        """The child was reaped: what it left; what its import started (its group, while
        anything is in it) is killed."""
        with contextlib.suppress(OSError):
            os.killpg(self.pid, signal.SIGKILL)
        output: str | None = None
        if self.channel is not None:
            try:
                output = os.pread(self.channel, MAX_DUMP, 0).decode("utf-8", "replace")
            except OSError:
                output = ""
            os.close(self.channel)
            self.channel = None
        overdue = self.deadline.timeout if self.deadline.dumped else 0.0
        return TrialEnd(self.pid, code, signum, now - self.deadline.started, output, overdue)

    def drop(self) -> None:
        """Called off: killed, its file closed (its exit, reaped later, is nobody's)."""
        self.kill()
        if self.channel is not None:
            os.close(self.channel)
            self.channel = None


def start(config: Config, before: set[str], forget: Callable[[], None], now: float) -> Child:
    """Fork the child that imports the new code (``before``: the modules loaded before the
    app's; ``forget``: what a child of the master closes and resets first). OSError: no child."""
    channel = _channel()
    master = os.getpid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNUMS)
    flush_std()
    try:
        with fork_hooks_quiet():  # the old code's set-up for a worker: the child is none
            pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        if channel is not None:
            os.close(channel)
        raise
    if pid == 0:
        _child(config, before, forget, channel, mask, master)
    signal.pthread_sigmask(signal.SIG_SETMASK, mask)
    with contextlib.suppress(OSError):  # as the child does: a kill right now finds its group
        os.setpgid(pid, pid)
    return Child(pid, channel, Deadline(now, config.reload_check_timeout))


def _child(
    config: Config,
    before: set[str],
    forget: Callable[[], None],
    channel: int | None,
    mask: set[int | signal.Signals],
    master: int,
) -> NoReturn:
    code = 1
    pid = os.getpid()
    try:
        with contextlib.suppress(OSError):
            os.setpgid(0, 0)
        forget()
        die_with_parent(signal.SIGKILL)
        if os.getppid() != master:  # it died before the line above: nothing waits for us
            _exit(1)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        set_title(f"uwsgiapp trial import {config.app}", "uwsgiapp trial")
        if channel is not None:
            arm_fault_dumps((signal.SIGUSR2,), channel)  # a crash's stack, or the deadline's
            _note_exits(channel, pid)
        error = trial_import(config, before)
        code = 0 if error is None else 1
        if error is not None and (detail := traceback_of(error)):
            # Spaces escaped: a record's text is one line of single spaces (the carets' place).
            _write(channel, record(pid, "traceback", json.dumps(detail).replace(" ", "\\u0020")))
        _write(channel, record(pid, "ok" if error is None else "error", one_line(error or "")))
    except BaseException as exc:
        _write(channel, record(pid, "error", f"the trial import failed: {exc!r}"))
    finally:
        with contextlib.suppress(BaseException):
            flush_std()  # what the app printed as it imported
        _exit(code)


def _write(channel: int | None, data: bytes) -> None:
    if channel is not None:
        with contextlib.suppress(OSError):
            os.write(channel, data)


def _note_exits(channel: int, pid: int) -> None:
    """The app's import may end its process with ``os._exit``: where it does is noted first
    (in this child only, which is thrown away; a process it forks notes nothing)."""

    def noted(status: int) -> NoReturn:
        if os.getpid() == pid:
            _write(channel, record(pid, "at", where(stack_frames(sys._getframe(1)))))
        _exit(status)

    os._exit = noted


class ReloadCheck:
    """The master's trial imports (one at a time) for ``policy``'s HUPs, when it re-imports
    the app (``--reload-check-timeout`` above 0)."""

    def __init__(self, config: Config, policy: Policy) -> None:
        self.config = config
        self.policy = policy
        self.wanted = policy.reload_kind is ReloadKind.REIMPORT and config.reload_check_timeout > 0
        self._child: Child | None = None
        self._workers: int | None = None  # the --workers the HUP read again
        self._dropped: set[int] = set()  # the pids of children called off, not reaped yet

    @property
    def running(self) -> bool:
        """A child imports the new code now."""
        return self._child is not None

    def begin(
        self, now: float, most_workers: int, before: set[str], forget: Callable[[], None]
    ) -> list[Action]:
        """A HUP: the options read again, and a child to import the new code (a HUP during
        one calls that one off: the newest code is the one tried)."""
        actions: list[Action] = []
        if self._child is not None:
            actions.append(
                Log(
                    LogLevel.INFO,
                    f"reload: SIGHUP during the trial import (pid {self._child.pid}): called "
                    "off, the newest code is tried instead",
                )
            )
            self._drop()
        self._workers, said = options.on_hup(most_workers, self.policy.hup_running())
        actions += said
        try:
            self._child = start(self.config, before, forget, now)
        except OSError as exc:
            options.rollback()
            return actions + failed(self.policy, f"cannot fork a child to import it: {exc}")
        options.hold_environ()
        return [
            *actions,
            Log(LogLevel.INFO, started_line(self._child.pid, self.config.reload_check_timeout)),
            Notify("RELOADING=1\nSTATUS=reloading"),  # as a reload without the child says it
        ]

    def tick(self, exits: list[Exit], now: float) -> list[Action]:
        """Take the child's exit (and those of children called off) out of ``exits``: the
        reload goes on or is off; else its deadline, if passed."""
        child = self._child
        mine = {*self._dropped, child.pid if child is not None else 0}
        ended = [e for e in exits if e[0] in mine]
        for item in ended:
            exits.remove(item)
            self._dropped.discard(item[0])
        if child is None:
            return []
        for pid, code, signum in ended:
            if pid == child.pid:
                self._child = None
                return self._ended(child.end(code, signum, now), now)
        signum = child.deadline.due(now)
        if signum is signal.SIGUSR2:  # to the child alone: faulthandler writes its stacks
            os.kill(child.pid, signum)
        elif signum is not None:
            child.kill(signum)
        return []

    def _ended(self, end: TrialEnd, now: float) -> list[Action]:
        why = failure(end)
        if why is not None:
            options.rollback()
            return failed(self.policy, why, failure_traceback(end))
        said = f"reload: the new code imported in the child in {end.seconds:.2f} s"
        options.release_environ()
        return [Log(LogLevel.INFO, said), *passed(self.policy, now, self._workers)]

    def call_off(self, name: str, now: float) -> list[Action]:
        """A stop signal (``name``: 'TERM') during the child's import: it is called off."""
        child = self._child
        if child is None:
            return []
        self._drop()
        return [
            Log(
                LogLevel.WARNING,
                f"reload: SIG{name} during the re-import of the app: called off after "
                f"{now - child.deadline.started:.2f} s, the old code stays; stopping",
            )
        ]

    def _drop(self) -> None:
        """The child is called off: killed, the options its HUP read undone."""
        child, self._child = self._child, None
        if child is not None:
            child.drop()
            self._dropped.add(child.pid)
            options.rollback()

    def close_in_worker(self) -> None:
        """In a worker forked while a child tries the new code: the child's result file,
        which the worker would otherwise hold (and its pages) for its whole life."""
        child = self._child
        if child is not None and child.channel is not None:
            with contextlib.suppress(OSError):
                os.close(child.channel)

    def kill(self) -> None:
        """The master ends: no child outlives it."""
        if self._child is not None:
            self._child.drop()
            self._child = None
