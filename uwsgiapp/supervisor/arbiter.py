"""The master process: executes what :class:`~uwsgiapp.supervisor.policy.Policy` decides.

Signal handlers only enqueue the signal's name; the loop wakes on the signal wake-up pipe (or a
0.1 s tick), reaps children, feeds events to the policy and carries out the actions: fork,
kill, re-import, halt. Workers are built before fork (app preloaded, sockets bound) and changed
after it (signals, title, slot, optional lazy import).
"""

from __future__ import annotations

import collections
import contextlib
import gc
import logging
import os
import signal
import sys
import time
from collections.abc import Callable

from uwsgiapp import unpatched
from uwsgiapp.buildinfo import running_version
from uwsgiapp.config import Config
from uwsgiapp.exitcodes import ServeExit, WorkerExit
from uwsgiapp.hooks import PostforkError
from uwsgiapp.importer import AppImportError, WSGIApp, load_app
from uwsgiapp.server import logs as server_logs
from uwsgiapp.server.inflight import set_worker_number
from uwsgiapp.server.intake import Handler
from uwsgiapp.server.listeners import Listener, somaxconn_cap
from uwsgiapp.server.logs import arm_fault_dumps, flush_std, reopen_logs, reopen_said
from uwsgiapp.server.masterflags import MasterFlags
from uwsgiapp.server.sockdiag import SockDiag
from uwsgiapp.stats.model import ServerStats, SocketStats
from uwsgiapp.stats.server import StatsServer
from uwsgiapp.supervisor import actions as A
from uwsgiapp.supervisor import observe, options, titles
from uwsgiapp.supervisor.cheaper import CheaperOptions
from uwsgiapp.supervisor.dumps import DumpFiles, judged_usr2
from uwsgiapp.supervisor.handlers import make_worker
from uwsgiapp.supervisor.importconns import postfork_and_say
from uwsgiapp.supervisor.logmaster import LogMaster
from uwsgiapp.supervisor.mastersignals import MASTER_SIGNUMS, MasterSignals
from uwsgiapp.supervisor.meanwhile import Watch
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.queuewatch import QueueWatch
from uwsgiapp.supervisor.reload import reimport, reload_kind
from uwsgiapp.supervisor.sdnotify import Notifier
from uwsgiapp.supervisor.sockfiles import SocketFiles
from uwsgiapp.supervisor.status import StatusTable
from uwsgiapp.supervisor.touch import TouchWatch
from uwsgiapp.supervisor.trialrun import ReloadCheck
from uwsgiapp.supervisor.upgrade import TOUCHED, Upgrade
from uwsgiapp.supervisor.workerexit import die_with_parent, kill_all, leave, reap
from uwsgiapp.wsgi.errors import QuickStop, RequestCut

log = logging.getLogger("uwsgiapp.error")

TICK = 0.1


class Arbiter:
    """Master of ``config.workers`` worker processes sharing ``listeners``."""

    def __init__(
        self,
        config: Config,
        listeners: list[Listener],
        app: WSGIApp | None,
        build_handler: Callable[[WSGIApp, Config], Handler],
        stats: StatsServer | None = None,
        notifier: Notifier | None = None,
    ) -> None:
        self.config = config
        self.listeners = listeners
        self.app = app
        self.build_handler = build_handler
        self.table = StatusTable(max(64, config.workers * 4), cores=config.threads)
        self.policy = Policy(
            workers=config.workers,
            graceful_timeout=config.graceful_timeout,
            harakiri=config.harakiri,
            reload_kind=reload_kind(config, preloaded=app is not None),
            reload_on_rss_mb=config.reload_on_rss,
            max_worker_lifetime=config.max_worker_lifetime,
            max_worker_lifetime_delta=config.max_worker_lifetime_delta,
            slots=self.table.capacity,
            cheaper=CheaperOptions.from_config(config),
        )
        self.signals: collections.deque[str] = collections.deque()
        self.pid = os.getpid()
        self.handlers = MasterSignals(self.signals)
        #: The modules loaded before the app (what a reload must not re-import): boot's.
        self.modules_before_app: set[str] = set()
        self.observer = observe.Observer()
        self.stats = stats
        self.notifier = notifier or Notifier(None)
        self.master_flags = MasterFlags()  # before any fork: shared with every worker
        self._sockdiag = SockDiag()
        # What a listen queue holds: --listen, or the kernel's cap under it (a queue full at
        # somaxconn never reached --listen, and was never said).
        self._backlog = somaxconn_cap(config.listen) or config.listen
        self.dumps = DumpFiles()
        self.funnel = LogMaster()  # inert; boot starts one for --log-master
        self.touch = TouchWatch(config.touch_reload) if config.touch_reload else None
        self.check = ReloadCheck(config, self.policy)  # a HUP's new code, tried in a child
        self.watch = Watch(self.policy, self.table.read, self._execute, self.master_flags)
        if stats is not None:
            stats.snapshot = self.snapshot
        self.queues = QueueWatch(self._socket_stats, self.observer)
        self.socket_files = SocketFiles(listeners)  # one removed while it serves is said
        self.upgrade = Upgrade(config, listeners, stats, self.policy, self.notifier)  # USR2

    def run(self) -> int:
        """Run until stopped; returns the exit code."""
        titles.set_title(*titles.master_title(self.config.app))
        self.handlers.install()
        log.info("master %d: starting %s (%s)", self.pid, A.count_workers(self.policy.desired),
                 running_version())  # fmt: skip
        code = self._execute(self.policy.start())
        stats = self.stats
        wake = self.handlers.wake_r
        waits = [wake] if stats is None else [wake, stats.fileno()]
        while code is None:
            with contextlib.suppress(InterruptedError):
                unpatched.select_fds(waits, [], [], TICK)
            with contextlib.suppress(OSError):
                while unpatched.read(wake, 4096):
                    pass
            now = time.monotonic()
            if stats is not None:
                self._serve_stats(stats)
            self.queues.tick(now)
            self.socket_files.tick(now)
            server_logs.tell_write_failures()  # the master's lines a full disk dropped, if due
            running = self.policy.mode is A.Mode.RUNNING and not self.check.running
            if self.touch and running and self.touch.due(now, rebase="HUP" in self.signals):
                self.signals.append(TOUCHED)  # a HUP's reload, the same lines (not WINCH's)
            actions: list[A.Action] = []
            exits = reap() + self.watch.take_lost()
            # Ctrl-C reaches the whole group: the workers' exits with it are the stop's (one C call)
            if not A.STOPS.isdisjoint(self.signals):
                actions += self._signal_actions(now)
            actions += self.check.tick(exits, now)  # the trial import's exit taken out
            actions += self.upgrade.tick(exits, now)  # and a new master's (USR2)
            for pid, exit_code, signum in exits:
                killer = self.dumps.exited(pid, signum)  # the OOM killer, if its count rose
                actions += self.policy.on_exit(pid, exit_code, signum, now, self.table.read, killer)
            actions += self._signal_actions(now)
            rss = observe.rss_mb if self.config.reload_on_rss else None
            actions += self.policy.on_tick(now, time.time(), self.table.read, rss, self._queue)
            code = self._execute(actions)
            # A stop while another master serves on the sockets is not the whole server's.
            stopping = self.policy.stopping and not self.upgrade.paired
            self.master_flags.publish(self.policy.recycles_held, stopping)
        return code

    def _signal_actions(self, now: float) -> list[A.Action]:
        actions: list[A.Action] = []
        while self.signals:
            name, upgrading = self.upgrade.on_signal(self.signals.popleft(), now)  # USR2, WINCH…
            if upgrading is not None:
                actions += upgrading
                continue
            if name == "HUP" and self.policy.mode is not A.Mode.STOPPING and self.check.wanted:
                most = self.table.capacity // 2
                actions += self.check.begin(now, most, self.modules_before_app, self._for_trial)
                continue  # the reload begins once the child has imported the new code
            if name == "HUP" and self.policy.mode is not A.Mode.STOPPING:
                actions += self._options_again()
            elif name in A.STOPS:
                actions += self.check.call_off(name, now)
            actions += self.policy.on_signal(name, now)
        return actions

    def _options_again(self) -> list[A.Action]:
        """A HUP reads the options again (:mod:`~uwsgiapp.supervisor.options`)."""
        workers, said = options.on_hup(self.table.capacity // 2, self.policy.hup_running())
        return [*said, *self.policy.hup_workers(workers)]

    def _serve_stats(self, stats: StatsServer) -> None:
        """Answer what the stats clients are owed (never waits). A failure here is logged and
        never stops the master."""
        try:
            stats.poll(0.0)
        except Exception:
            log.exception("stats: serving a client failed")

    def _socket_stats(self) -> tuple[SocketStats, ...]:
        return observe.socket_stats(
            ((lis.spec, lis.sock) for lis in self.listeners),
            self._backlog,
            self._sockdiag.queue,
        )

    def _queue(self) -> int | None:
        return observe.longest_queue((lis.sock for lis in self.listeners), self._sockdiag.queue)

    def snapshot(self) -> ServerStats:
        """The server's numbers now (what the stats server serves)."""
        return self.observer.recent(self._snapshot())

    def _snapshot(self) -> ServerStats:
        return observe.snapshot(
            observe.Inputs(
                pid=self.pid,
                records=self.watch.alive(self.policy.records.values()),
                status=self.table.read,
                counters=self.table.counters,
                observer=self.observer,
                harakiris=self.policy.harakiris,
                numbers=self.policy.slot_numbers,
                sockets=self._socket_stats(),
                cores=self.table.read_cores if self.config.threads > 1 else None,
                threads=self.config.threads,
                uid=os.getuid(),
                gid=os.getgid(),
                cwd=observe.cwd(),
                listed=self.policy.listed_workers,
            )
        )

    def _execute(self, actions: list[A.Action]) -> ServeExit | None:
        for action in actions:
            if not self.policy.wanted(action):  # overtaken by a later event of the batch
                continue
            match action:
                case A.Spawn(wid, generation):
                    if self.signals:  # a TERM amid many forks is not kept waiting for them all
                        code = self._execute(self._signal_actions(time.monotonic()))
                        if code is not None:
                            return code
                        if not self.policy.wanted(action):
                            continue
                    self._spawn(wid, generation)
                case A.Signal(pid, signum, slot):
                    if slot >= 0:
                        self.table.mark_harakiri(slot)
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signum)
                case A.Log(level, message, detail):
                    log.log(level, "%s", message, extra={"traceback": detail} if detail else None)
                case A.Reimport():  # keeps the old app if the new code fails to import
                    code = self._reimport()
                    if code is not None:
                        return code
                case A.StopAccepting():
                    # Now, not after the TERMs: a worker quick to drain read 'not stopping'.
                    self.master_flags.publish(self.policy.recycles_held, not self.upgrade.paired)
                    # Its copies only kept the sockets open past the workers' drain (resets).
                    for listener in self.listeners:
                        listener.close()
                case A.ReopenLogs(why, moved_only):
                    try:
                        reopen_said(self.funnel.reopen(moved_only), reopen_logs(moved_only), why)
                    except OSError as exc:  # e.g. a dropped master may not create the new file
                        sig = why.partition(":")[0]
                        sys.stderr.write(f"uwsgiapp: {sig}: cannot reopen the log files: {exc}\n")
                case A.Notify(state):
                    self.notifier.send(state)
                case A.Halt(code):
                    self.check.kill()
                    kill_all(self.policy.records, self.dumps.exited)
                    return code
        return None

    def _reimport(self) -> ServeExit | None:
        """A HUP's re-import; called off (the old code and workers stay) if the new code does
        not import, or by a stop signal, which is then carried out at once."""
        config, before, stats = self.config, self.modules_before_app, self.stats
        app = reimport(config, before, self._install_app, self.handlers, stats, self.watch)
        if app is not None:
            return None
        self.policy.hup_workers(options.rollback())
        now = time.monotonic()
        if not A.STOPS.isdisjoint(self.signals):  # the stop that called it off
            return self._execute(self._signal_actions(now))
        return self._execute(self.policy.reimport_failed(now))

    def _install_app(self, app: WSGIApp) -> None:
        """The re-imported app replaces the old one, before the old code is collected."""
        self.app = app

    def _spawn(self, wid: int, generation: int) -> None:
        cores = self.table.reset(wid, 0)
        self.observer.spawned(wid, time.time(), self.table.counters(wid).requests, cores)
        # The master's signals stay blocked across fork until the child has reset them: else a
        # stop sent to a worker just forked ran the master's handler there and was dropped with
        # its queue (the worker served on till the kill); blocked, it acts on the new handler.
        mask = signal.pthread_sigmask(signal.SIG_BLOCK, MASTER_SIGNUMS)
        flush_std()  # else each worker would write the master's buffered lines again
        dump_fd = self.dumps.open()
        try:
            self.funnel.before_fork()
            pid = os.fork()
        except OSError as exc:
            self.funnel.after_fork(0)
            self.dumps.forked(0, dump_fd)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            if said := self.policy.spawn_failed(wid, exc, time.monotonic()):
                log.error("%s", said)
            return
        if pid:
            self.funnel.after_fork(pid)
            self.dumps.forked(pid, dump_fd)
            signal.pthread_sigmask(signal.SIG_SETMASK, mask)
            log.info("%s started", self.policy.spawned(wid, generation, pid, time.monotonic()))
            return
        code: int = WorkerExit.CRASHED
        finish = quick = False  # the exit work: only when the loop ended as asked
        try:
            code = self._worker_main(wid, mask, dump_fd)
            finish = code == 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
            quick = isinstance(exc, (QuickStop, RequestCut))  # its exit work, bounded
        except BaseException:
            log.exception("worker %d crashed", self.policy.number(wid))
        finally:
            leave(code, finish=finish, quick=quick)

    def _forget_master(self) -> None:
        """In a process just forked (a worker, a HUP's trial import): the master's descriptors
        closed, its signal handlers and queue gone (the signals stay blocked)."""
        signal.set_wakeup_fd(-1)
        os.close(self.handlers.wake_r)
        os.close(self.handlers.wake_w)
        if self.stats is not None:
            self.stats.close_after_fork()
        self.notifier.close()
        self.signals.clear()
        for signum in MASTER_SIGNUMS:
            signal.signal(signum, signal.SIG_DFL)
        if self.handlers.app_chld is not None:  # what the app's import set (a SIG_IGN)
            signal.signal(signal.SIGCHLD, self.handlers.app_chld)

    def _for_trial(self) -> None:
        """In a HUP's trial import: what a worker forgets, and the listening sockets."""
        self._forget_master()
        self.dumps.in_worker()
        for listener in self.listeners:
            listener.close(unlink=False)

    def _worker_main(self, wid: int, mask: set[int | signal.Signals], dump: int | None) -> int:
        """In the worker after fork (``mask``: the mask to restore; ``dump``: its dump file)."""
        self._forget_master()
        self.check.close_in_worker()
        self.dumps.in_worker(dump)
        # Until its own handlers: a stop ends a booting worker; USR1 must not kill an importing one.
        signal.signal(signal.SIGUSR1, lambda s, f: reopen_logs())
        signal.signal(signal.SIGUSR2, signal.SIG_IGN)  # by hand: a booting worker lives on
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        die_with_parent()
        set_worker_number(self.policy.number(wid))
        title, comm = titles.worker_title(self.policy.number(wid), self.config.app)
        titles.set_title(title, comm)
        app = self.app
        if app is None:  # lazy-apps: import here, after fork
            try:
                app = load_app(
                    self.config.app, chdir=self.config.chdir, pythonpath=self.config.pythonpath
                )
            except AppImportError as exc:
                log.error("worker %d cannot load the app: %s", self.policy.number(wid), exc)
                return WorkerExit.APP_LOAD
        try:
            postfork_and_say(self.policy.number(wid))  # run_postfork, then what it kept
        except PostforkError as exc:
            log.error("worker %d: %s", self.policy.number(wid), exc, exc_info=exc.__cause__)
            return WorkerExit.APP_LOAD
        slot = self.table.hooks(wid, os.getpid())
        config = options.for_workers(self.config)  # what the last HUP read of them
        handler = self.build_handler(app, config)
        worker = make_worker(
            config,
            handler,
            self.listeners,
            slot,
            cores=[self.table.core(wid, i) for i in range(self.config.threads)],
            master=(self.pid, self.master_flags),
            counting=self.stats is not None,
        )
        worker.install_signals()
        worker.judge_usr2 = judged_usr2(slot.harakiri_marked, dump)  # the master's USR2?
        signal.signal(signal.SIGUSR2, worker.dump_stuck)
        # A C extension's segfault leaves the Python stack in the log; for USR2 (harakiri) the C
        # dump works even outside Python bytecode: dropped if the handler above runs (dumps.py).
        arm_fault_dumps((signal.SIGUSR2,), dump)
        # What exists now lives as long as the worker: frozen (an O(1) splice), the cyclic GC
        # no longer walks it (Flask: -0.7 µs a request) nor writes to the master's shared pages;
        # a collection first only after a lazy-apps import (collecting the master's would).
        if self.app is None:
            gc.collect()
        gc.freeze()
        slot.ready()
        if self.config.request_titles and titles.request_titles_available():
            titles.RequestTitles(title, lambda: worker.serving).start()
        worker.run()
        slot.leaving()  # the master starts a replacement while this one does its exit work
        return 0
