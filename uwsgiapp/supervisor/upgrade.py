"""A binary upgrade (gunicorn's ``USR2``): the master starts a new master, which takes over its
listening sockets; the effects (the decisions are :mod:`~uwsgiapp.supervisor.handover`'s).

On ``USR2`` the old master renames its pidfile to ``<pidfile>.oldbin`` and forks a child that
executes the command the server was started with (the same interpreter, ``sys.executable``; the
same arguments, ``sys.orig_argv``; the start's directory and environment) with the listening
sockets left open and named in :data:`~uwsgiapp.supervisor.handover.VARIABLE`. The new master
(:func:`~uwsgiapp.supervisor.takeover.receive`) takes them instead of binding, imports the app,
starts its workers and, once one serves, writes the pidfile; both masters' workers accept
meanwhile. ``WINCH`` then stops the old master's workers, ``TERM`` or ``QUIT`` the old master;
if the new master exits first, the old one renames the pidfile back (and starts its workers
again if WINCH had stopped them).

The child is not a worker: it leaves none of the master's handlers, blocked signals or
descriptors (other than the sockets) to the new master, has no parent-death signal (it must
outlive the old master), and stays in the old master's process group (a terminal's Ctrl-C
stops both, as gunicorn's). While both masters run, neither removes the socket files (each
:class:`~uwsgiapp.server.listeners.Listener` is ``shared``) nor tells systemd it stops.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
from typing import NoReturn

from uwsgiapp.config import Config
from uwsgiapp.server import safefiles
from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.logs import flush_std
from uwsgiapp.stats.server import StatsServer
from uwsgiapp.supervisor import options, takeover
from uwsgiapp.supervisor.actions import Action, Log, LogLevel, Notify, WorkerState
from uwsgiapp.supervisor.handover import (
    TOUCHED,
    Do,
    Passed,
    PassedSocket,
    Standing,
    child_exit,
    decide,
    exec_environ,
    oldbin,
)
from uwsgiapp.supervisor.mastersignals import MASTER_SIGNUMS
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.registrations import fork_hooks_quiet
from uwsgiapp.supervisor.sdnotify import Notifier
from uwsgiapp.supervisor.takeover import Start

__all__ = ["TOUCHED", "Upgrade", "put_back", "set_aside"]

log = logging.getLogger("uwsgiapp.error")

#: An exit the master reaped: (pid, exit code or None, signal or None).
Exit = tuple[int, int | None, int | None]


def set_aside(pidfile: str, pid: int) -> bool:
    """Rename ``pidfile`` to its ``.oldbin`` if it holds ``pid`` (never following a link);
    True if renamed. OSError: it cannot be."""
    if not safefiles.holds_pid(pidfile, pid):
        return False
    with safefiles.in_parent(pidfile) as (parent, name):
        os.rename(name, oldbin(name), src_dir_fd=parent, dst_dir_fd=parent)
    return True


def put_back(pidfile: str, pid: int, child: int) -> bool:
    """The new master ``child`` is gone: ``.oldbin`` (if it holds ``pid``) back to
    ``pidfile``, unless another server's pidfile is there now; True if renamed."""
    if not safefiles.holds_pid(oldbin(pidfile), pid):
        return False
    if safefiles.read_pid(pidfile) not in (None, child):
        return False
    try:
        with safefiles.in_parent(pidfile) as (parent, name):
            os.replace(oldbin(name), name, src_dir_fd=parent, dst_dir_fd=parent)
    except OSError:
        return False
    return True


def _exec_new_master(start: Start, environ: dict[str, str], passed: Passed) -> NoReturn:
    """In the forked child: become the new master. Nothing here logs (another thread of the
    master may have held the log's lock at the fork)."""
    try:
        signal.set_wakeup_fd(-1)
        for signum in (*MASTER_SIGNUMS, signal.SIGPIPE, signal.SIGXFSZ):  # as subprocess does
            signal.signal(signum, signal.SIG_DFL)
        env = exec_environ(environ, passed, os.getpid())
        keep = sorted({s.fd for s in passed.sockets} | set(_systemd_fds(environ, passed.parent)))
        with contextlib.suppress(OSError):
            os.chdir(start.cwd)
        low = 3
        for fd in keep:
            with contextlib.suppress(OSError):
                os.set_inheritable(fd, True)
            os.closerange(low, fd)
            low = fd + 1
        os.closerange(low, max(low + 1, os.sysconf("SC_OPEN_MAX")))
        signal.pthread_sigmask(signal.SIG_SETMASK, ())
        os.execve(start.executable, start.argv, env)
    except BaseException as exc:
        with contextlib.suppress(BaseException):
            os.write(2, f"uwsgiapp: USR2: cannot execute the new master: {exc}\n".encode())
    finally:
        os._exit(127)


def _systemd_fds(environ: dict[str, str], parent: int) -> range:
    """The descriptors systemd passed the old master, passed on as they came."""
    count = environ.get("LISTEN_FDS", "")
    if environ.get("LISTEN_PID") != str(parent) or not count.isdigit():
        return range(0)
    return range(3, 3 + min(int(count), 64))


class Upgrade:
    """One master's part in binary upgrades: the new master it started (``child``), the old
    one that started it (``parent``), and its workers a WINCH stopped."""

    def __init__(
        self,
        config: Config,
        listeners: list[Listener],
        stats: StatsServer | None,
        policy: Policy,
        notifier: Notifier,
    ) -> None:
        self.pidfile = config.pidfile
        self.sockets = [*listeners, *([stats.listener] if stats is not None else [])]
        self.policy = policy
        self.notifier = notifier
        self.child = 0
        self.parent = takeover.claim()
        #: How many workers a WINCH stopped (0: none).
        self.stopped = 0
        #: A USR2's new master writes the pidfile once a worker serves: a script that waits
        #: for it to send WINCH must not leave nobody accepting while the app imports.
        self.pidfile_due = bool(self.pidfile and self.parent)
        self._share(bool(self.parent))

    @property
    def paired(self) -> bool:
        """Another master serves on these sockets: the old one, or the new one."""
        return bool(self.child or self.parent)

    def standing(self) -> Standing:
        """Where this master stands (what :func:`~uwsgiapp.supervisor.handover.decide` asks)."""
        return Standing(
            child=self.child,
            parent=self.parent,
            workers_stopped=bool(self.stopped),
            stopping=self.policy.stopping,
            pid1=os.getpid() == 1,
            init=container_init(),
            can_exec=options.start_environ() is not None,
            cwd_lost=takeover.started() is None,
        )

    def on_signal(self, name: str, now: float) -> tuple[str, list[Action] | None]:
        """``USR2``, ``WINCH``, a ``HUP`` after a WINCH, a touch of ``--touch-reload``: what
        is done (None: the policy's, for the signal named: a touch's is a HUP's)."""
        do, line = decide(name, self.standing())
        if do is Do.POLICY:
            return ("HUP" if name == TOUCHED else name), None
        return name, self._carry_out(do, line, now)

    def _carry_out(self, do: Do, line: str, now: float) -> list[Action]:
        said: list[Action] = [Log(LogLevel.INFO, line)] if line else []
        if do is Do.REFUSE:
            return [Log(LogLevel.WARNING, line)]
        if do is Do.UPGRADE:
            return self._begin()
        if do is Do.STOP_WORKERS:
            self.stopped = max(1, self.policy.desired)
            return said + self.policy.set_workers(0, now)
        if do is Do.START_WORKERS:
            count, self.stopped = self.stopped, 0
            # READY=1 says this master's pid: systemd's main process again (NotifyAccess=all).
            ready = Notify(f"READY=1\nSTATUS={count} workers started again")
            return [*said, *self.policy.set_workers(count, now), ready]
        return said

    def _begin(self) -> list[Action]:
        """USR2: the pidfile set aside, the new master started."""
        start, environ = takeover.started(), options.start_environ()
        assert start is not None and environ is not None  # decide() checked
        if refused := _cannot_start(start):
            return [Log(LogLevel.WARNING, f"SIGUSR2 refused: {refused}")]
        moved = False
        if self.pidfile:
            try:
                moved = set_aside(self.pidfile, os.getpid())
            except OSError as exc:
                return [
                    Log(
                        LogLevel.WARNING,
                        f"SIGUSR2 refused: cannot rename the pidfile {self.pidfile} to "
                        f"{oldbin(self.pidfile)} ({exc.strerror or exc}); the new master "
                        "could not write it either",
                    )
                ]
        sockets = tuple(
            PassedSocket(spec=s.spec, fd=s.sock.fileno(), path=s.path, inode=s.inode)
            for s in self.sockets
        )
        try:
            pid = self._fork(start, dict(environ), Passed(parent=os.getpid(), sockets=sockets))
        except OSError as exc:
            if moved:
                put_back(self.pidfile, os.getpid(), 0)
            return [Log(LogLevel.ERROR, f"SIGUSR2: cannot fork the new master: {exc}")]
        self.child = pid
        self._share(True)
        aside = f"; pidfile renamed to {oldbin(self.pidfile)}" if moved else ""
        return [
            Log(
                LogLevel.INFO,
                f"SIGUSR2: binary upgrade: new master (pid {pid}) started ({' '.join(start.argv)}, "
                f"in {start.cwd}) with this master's {len(sockets)} listening sockets{aside}; "
                "this master "
                "serves on: WINCH stops its workers, then TERM or QUIT ends it",
            )
        ]

    def _fork(self, start: Start, environ: dict[str, str], passed: Passed) -> int:
        # Blocked across fork, as for a worker: the master's handlers must not run in the child.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNUMS)
        flush_std()
        try:
            with fork_hooks_quiet():  # the app's fork hooks are for workers
                pid = os.fork()
            if pid == 0:
                _exec_new_master(start, environ, passed)
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return pid

    def tick(self, exits: list[Exit], now: float) -> list[Action]:
        """Take the new master's exit out of ``exits`` (reaped with the workers); notice that
        the old master is gone."""
        actions: list[Action] = self._write_pidfile() if self.pidfile_due else []
        if self.parent and os.getppid() != self.parent:
            actions.append(
                Log(
                    LogLevel.INFO,
                    f"binary upgrade: the old master (pid {self.parent}) has exited; this "
                    "master owns the socket files and the pidfile now",
                )
            )
            self.parent = 0
            self._share(False)
        for item in exits:
            if self.child and item[0] == self.child:
                exits.remove(item)
                return actions + self._child_ended(*item, now=now)
        return actions

    def _write_pidfile(self) -> list[Action]:
        if not any(r.state is WorkerState.READY for r in self.policy.records.values()):
            return []
        self.pidfile_due = False
        try:
            safefiles.write_pidfile(self.pidfile, os.getpid())
        except OSError as exc:
            return [Log(LogLevel.ERROR, f"--pidfile: cannot write {self.pidfile}: {exc}")]
        return [Log(LogLevel.INFO, f"binary upgrade: a worker serves; pidfile {self.pidfile}")]

    def _child_ended(
        self, pid: int, code: int | None, signum: int | None, now: float
    ) -> list[Action]:
        self.child = 0
        self._share(False)
        back = bool(self.pidfile) and put_back(self.pidfile, os.getpid(), pid)
        line = child_exit(pid, code, signum) + ": this master serves on"
        line += f"; pidfile {self.pidfile} is this master's again" if back else ""
        clean = code == 0 and signum is None
        # READY=1 says this master's pid: systemd's main process again, if the new one was.
        ready = Notify(f"READY=1\nSTATUS=the new master (pid {pid}) ended; this one serves")
        actions: list[Action] = [Log(LogLevel.INFO if clean else LogLevel.ERROR, line), ready]
        if self.stopped:  # nobody would accept on the sockets
            count, self.stopped = self.stopped, 0
            actions.append(Log(LogLevel.INFO, f"starting the {count} workers WINCH stopped again"))
            actions += self.policy.set_workers(count, now)
        return actions

    def _share(self, shared: bool) -> None:
        for listener in self.sockets:
            listener.shared = shared
        self.notifier.paired = shared
        self.notifier.handback = self.parent


def _cannot_start(start: Start) -> str:
    """Why no new master can start from ``start`` ("" if it can): checked before the fork,
    as the child's failures come back as a bare exit code."""
    if not os.access(start.executable, os.X_OK):  # after --uid: the user's, not root's
        return f"this master (uid {os.getuid()}) cannot execute {start.executable}"
    if not os.path.isdir(start.cwd):
        return (
            f"the directory this master was started in, {start.cwd}, is gone or cannot be "
            "entered (a release removed? after --uid, the user's rights): the new master "
            "would have none to start in; start with an absolute --chdir through the release "
            "symlink, or restart"
        )
    return ""


#: The inits a container runs its command under (docker run --init's, and the common others).
CONTAINER_INITS = frozenset({"docker-init", "tini", "tini-static", "dumb-init", "catatonit"})


def container_init() -> str:
    """The name of the container init whose child this master is ('' if none): as PID 1 it
    ends the container once its child, this master, exits (systemd, also PID 1, does not)."""
    if os.getppid() != 1:
        return ""
    try:
        with open("/proc/1/comm") as fh:
            name = fh.read().strip()
    except OSError:
        return ""
    return name if name in CONTAINER_INITS else ""
