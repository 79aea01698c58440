"""``uwsgiapp serve``: bind the sockets, load the app, run the master and its workers.

Order of start-up: logging → resolve ``--uid/--gid`` → bind (as the starting user, e.g. root
for a privileged path) → pidfile → drop to ``--uid/--gid`` (master and workers: the unix
sockets and log files are chowned to them first; a warning names any file the dropped master
will not be able to remove at exit) → load the app (unless ``--lazy-apps``) → fork workers.
A stop signal before the master loop runs unwinds through the same clean-up as a normal exit.
Exit codes: :class:`uwsgiapp.exitcodes.ServeExit`.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import stat
import sys
import threading
from dataclasses import replace
from types import FrameType

from uwsgiapp.config import Config
from uwsgiapp.config.activation import systemd_sockets
from uwsgiapp.exitcodes import ServeExit
from uwsgiapp.importer import AppImportError, WSGIApp
from uwsgiapp.logtargets import is_stream
from uwsgiapp.pathreach import unreachable_hint
from uwsgiapp.server import safefiles
from uwsgiapp.server.listeners import Listener, ListenerError, somaxconn_cap
from uwsgiapp.server.logs import ErrorTail, access_handler, arm_fault_dumps, setup_error_log
from uwsgiapp.server.spool import check_spool_dir, spooling_said
from uwsgiapp.server.wsgierrors import take_unhandled_records
from uwsgiapp.stats.server import StatsServer
from uwsgiapp.supervisor import meanwhile, privileges, takeover, titles
from uwsgiapp.supervisor.arbiter import Arbiter
from uwsgiapp.supervisor.handlers import bind, bind_stats, build_handler
from uwsgiapp.supervisor.handover import oldbin
from uwsgiapp.supervisor.importconns import open_fds
from uwsgiapp.supervisor.keptmodules import library_dirs, site_dirs
from uwsgiapp.supervisor.listening import say_listening
from uwsgiapp.supervisor.logmaster import LogMaster
from uwsgiapp.supervisor.mastersignals import EARLY_SIGNUMS, forget_early, keep_for_later
from uwsgiapp.supervisor.meanwhile import stats_clients
from uwsgiapp.supervisor.oomkills import OomKills, rss_limit_problem
from uwsgiapp.supervisor.pidcheck import server_in_pidfile, unremovable_pidfile
from uwsgiapp.supervisor.privileges import Ids, PrivilegeError
from uwsgiapp.supervisor.reload import first_import, say_import_leftovers
from uwsgiapp.supervisor.rootpaths import access_log_file, anchored
from uwsgiapp.supervisor.sdnotify import Notifier
from uwsgiapp.supervisor.workerexit import end_master
from uwsgiapp.termsignals import STOP_SIGNALS

log = logging.getLogger("uwsgiapp.error")

__all__ = ["bind", "build_handler", "serve"]


def _log_files(config: Config) -> list[str]:
    """Log files the dropped processes write, to be created and handed over before the drop.

    The master holds both open (the workers write to its files) and USR1 reopens them; the
    process's own streams and devices (/dev/null) are not handed over.
    """
    paths = dict.fromkeys((config.error_log_file, access_log_file(config)))  # logto: one file
    return [path for path in paths if not is_stream(path) and not _is_device(path)]


def _is_device(path: str) -> bool:
    try:
        return stat.S_ISCHR(os.stat(path).st_mode)
    except OSError:
        return False


def _startup_warnings(config: Config) -> None:
    if os.geteuid() == 0:
        log.warning("running as root: so does the app; --uid/--gid drop to a user after binding")
    if config.access_log == "off" and config.access_log_file != "-":
        log.warning(
            "--access-log-file %s is not written: --access-log is off (give it uwsgi, json or "
            "combined)",
            config.access_log_file,
        )
    if config.reload_on_rss and (
        said := rss_limit_problem(config.reload_on_rss, config.workers, OomKills().limit())
    ):
        log.warning("%s", said)
    cap = somaxconn_cap(config.listen)
    if cap is not None:  # uWSGI refuses to start; the server works, with a shorter queue
        log.warning(
            "--listen %d is over net.core.somaxconn (%d): the kernel keeps each listen queue at "
            "%d; raise it (sysctl net.core.somaxconn=%d; a container: docker run --sysctl)",
            config.listen,
            cap,
            cap,
            config.listen,
        )


def _report_leftovers(listeners: list[Listener], pidfile: str) -> None:
    for listener in listeners:
        if listener.path and listener.inode is not None and not listener.shared:
            with contextlib.suppress(OSError):
                st = os.lstat(listener.path)
                if (st.st_dev, st.st_ino) == listener.inode:
                    log.warning("could not remove socket file %s", listener.path)
    if pidfile and safefiles.holds_pid(pidfile, os.getpid()):
        why = unremovable_pidfile(pidfile)
        log.warning("could not remove pidfile %s%s", pidfile, f": {why}" if why else "")


class _StopDuringStart(KeyboardInterrupt):
    """TERM/INT/QUIT before the master loop runs; a KeyboardInterrupt: the importer passes it."""


_STOPPED: list[str] = []  # stops in start-up: raised again if the import swallowed one


def _stop_during_start(signum: int, frame: FrameType | None) -> None:
    _STOPPED.append(signal.Signals(signum).name)
    raise _StopDuringStart(_STOPPED[-1])


def serve(config: Config) -> int:
    """Run ``uwsgiapp serve`` with ``config``; returns the process exit code."""
    # Until the arbiter installs its handlers (after a possibly slow app import), a stop signal
    # must still unwind through the clean-up below instead of killing us with files left.
    _STOPPED.clear()
    previous = {s: signal.signal(s, keep_for_later) for s in EARLY_SIGNUMS}
    previous.update((s, signal.signal(s, _stop_during_start)) for s in STOP_SIGNALS)
    previous[signal.SIGCHLD] = signal.signal(signal.SIGCHLD, signal.SIG_DFL)  # (not inherited)
    takeover.receive()  # the sockets an old master passed (USR2), and how this one started
    # With the error log in a file, why the server stopped is said on stderr too (a copy of
    # it made now: --capture-output points fd 2 at the file).
    tail = ErrorTail(-1 if is_stream(config.error_log_file) else os.dup(2))
    log.addHandler(tail)
    try:
        code = _serve(config)
    except _StopDuringStart as exc:
        log.info("%s during start-up: stopped", exc)
        code = 0
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        forget_early()
        log.removeHandler(tail)
    where = _error_log_opened()
    # Not opened (its directory missing, a read-only filesystem): the reason went to stderr
    # already, and naming a file that was never written would send the reader to it.
    if code and tail.terminal >= 0 and where:
        tail.tell(code, where)
    tail.drop_terminal()
    return end_master(code)


def _error_log_opened() -> str | None:
    """The file the error log went to, if one was opened (None: stderr, or it could not be)."""
    for handler in logging.getLogger("uwsgiapp").handlers:
        if handler.get_name() == "uwsgiapp.error_log" and isinstance(handler, logging.FileHandler):
            return handler.baseFilename
    return None


def _access_log_opens(config: Config) -> bool:
    """The master opens the access log file, before the drop: the workers write to the file it
    holds (:func:`~uwsgiapp.server.logs.access_handler`). A path it cannot open stops the start
    here, with one line."""
    access = access_log_file(config)
    if not is_stream(access):
        try:
            access_handler(access)
        except OSError as exc:
            log.error("--access-log-file: cannot open %s: %s", access, exc.strerror or exc)
            return False
    return True


def _enter_chdir(config: Config) -> Config | None:
    """Enter ``--chdir`` first, as gunicorn does (uWSGI binds its sockets there too): every
    relative path (socket, pidfile, logs) is taken from it; None if it cannot be entered.

    The directory is kept as written, made absolute, so that a HUP's re-import enters it
    again (a deploy's ``current`` symlink then moves the app). The log files are made
    absolute too: an app that changes directory at import must not make a worker (or USR1's
    reopen) look for them elsewhere.
    """
    base = os.getcwd()
    if config.chdir:
        base = chdir = os.path.abspath(config.chdir)
        try:
            os.chdir(chdir)
        except OSError as exc:
            print(
                f"uwsgiapp: --chdir: cannot enter {chdir}: {exc.strerror or exc}", file=sys.stderr
            )
            return None
        config = replace(config, chdir=chdir)
    return anchored(config, base)


def _serve(config: Config) -> int:
    entered = _enter_chdir(config)
    if entered is None:
        return ServeExit.START_FAILED
    config = entered
    try:
        setup_error_log(
            config.error_log_file,
            level=logging.getLevelName(config.log_level.upper()),
            capture=config.capture_output,
            fmt=config.error_log_format,
        )
    except OSError as exc:
        # A refusal (safefiles) names the path itself; an errno does not.
        said = f"cannot open {os.path.abspath(config.error_log_file)}: {exc.strerror}"
        print(f"uwsgiapp: --error-log-file: {said if exc.strerror else exc}", file=sys.stderr)
        return ServeExit.START_FAILED
    take_unhandled_records()
    if not _access_log_opens(config):
        return ServeExit.START_FAILED
    running = server_in_pidfile(config.pidfile)
    if running is not None:  # overwritten, then removed at our stop, it would be lost to it
        log.error(
            "--pidfile: %s names pid %d, a uwsgiapp that is running: stop it first, or give "
            "this server a pidfile of its own",
            config.pidfile,
            running,
        )
        return ServeExit.START_FAILED
    try:  # before binding: a bad name must not leave a socket behind
        ids = privileges.resolve(config.uid, config.gid)
        owner = privileges.resolve_owner(config.chown_socket) if config.chown_socket else None
    except PrivilegeError as exc:
        log.error("%s", exc)
        return ServeExit.START_FAILED
    takeover.say_received()
    try:
        listeners = bind(config)
    except ListenerError as exc:
        log.error("%s", exc)
        return ServeExit.START_FAILED
    try:
        stats = bind_stats(config)
    except ListenerError as exc:
        for listener in listeners:
            listener.close()
        log.error("--stats: %s", exc)
        return ServeExit.START_FAILED
    takeover.bound()
    try:
        return _with_listeners(config, ids, owner, listeners, stats)
    finally:
        if stats is not None:
            stats.close()
            _report_leftovers([stats.listener], "")


def _with_listeners(
    config: Config,
    ids: Ids,
    owner: Ids | None,
    listeners: list[Listener],
    stats: StatsServer | None,
) -> int:
    """Pidfile, privilege drop, app load and the master's run, with the sockets bound."""
    pidfile = config.pidfile  # absolute (_enter_chdir): the app's import may change directory
    pidfile_written = False
    try:
        if pidfile:
            # Set first: a stop signal that lands just after the write (start-up stops unwind
            # as an exception) must still remove it. Removal checks that it holds our pid.
            pidfile_written = True
            try:  # a USR2's new master writes it once it serves (Upgrade.tick)
                if not takeover.parent():
                    safefiles.write_pidfile(pidfile, os.getpid())
            except OSError as exc:
                log.error("--pidfile: cannot write %s: %s", pidfile, exc.strerror or exc)
                return ServeExit.START_FAILED
        # Before the drop (see sdnotify); taken out of the environment, so that the app's
        # processes cannot speak for the service (as libsystemd's unset_environment).
        notifier = Notifier(os.environ.pop("NOTIFY_SOCKET", None))
        for spec in set(systemd_sockets(os.environ)) - set(config.socket):
            with contextlib.suppress(OSError):  # unused: not passed on to what the app execs
                os.set_inheritable(int(spec.removeprefix("fd://")), False)
        for name in ("LISTEN_PID", "LISTEN_FDS", "LISTEN_FDNAMES"):
            os.environ.pop(name, None)  # the sockets are ours now (sd_listen_fds's unset)
        if not _hand_over(ids, owner, listeners, stats, config):
            return ServeExit.START_FAILED
        _startup_warnings(config)
        say_listening(listeners, stats.listener if stats is not None else None)
        if config.post_buffering:  # as the workers' user, and absolute: the app may chdir
            spooled, error = check_spool_dir(config.post_buffering_dir)
            if error:
                log.error("--post-buffering-dir: %s", error)
                return ServeExit.START_FAILED
            config = replace(config, post_buffering_dir=spooled)
            log.info("%s", spooling_said(config.post_buffering, spooled, config.limit_post))
        return _load_and_run(config, listeners, stats, notifier)
    finally:
        takeover.alone([*listeners, *([stats.listener] if stats is not None else [])])
        for listener in listeners:
            listener.close()
        if pidfile_written:
            safefiles.remove_pidfile(pidfile, os.getpid())
            safefiles.remove_pidfile(oldbin(pidfile), os.getpid())  # a USR2's new master ran
        _report_leftovers(listeners, pidfile if pidfile_written else "")


def _hand_over(
    ids: Ids,
    owner: Ids | None,
    listeners: list[Listener],
    stats: StatsServer | None,
    config: Config,
) -> bool:
    """Give the ``--socket`` files to ``--chown-socket``'s ``owner``; then hand the other unix
    sockets and the log files to ``ids`` and become them; False (logged) if not."""
    stats_socket = [] if stats is None else [stats.listener]  # goes to ``ids`` in any case
    given = [] if owner is None else [lis for lis in listeners if not lis.shared]
    owned = stats_socket if given else [*listeners, *stats_socket]
    try:
        if owner is not None:
            privileges.hand_sockets(owner, [(lis.path, lis.inode) for lis in given if lis.path])
    except PrivilegeError as exc:
        log.error("%s", exc)
        return False
    for lis in given:
        if not lis.path and lis.unix_name:  # an inherited one's file is its maker's to chown
            log.warning(
                "--chown-socket: %s (%s) was passed in, not bound here: not chowned (systemd: "
                "SocketUser= and SocketGroup= in the .socket unit)",
                lis.spec,
                lis.unix_name,
            )
    # A socket an old master passed (USR2) was handed over at its start.
    sockets = [(lis.path, lis.inode) for lis in owned if lis.path and not lis.shared]
    if not ids.wanted:
        return True
    logs = _log_files(config)
    warnings = privileges.drop_warnings(
        ids,
        [path for path, _ in sockets],
        config.pidfile,
        logs,
        [lis.path for lis in given if lis.path],
    )
    library_dirs()  # what a HUP's re-import asks of sysconfig, while it can be read
    site_dirs()
    try:
        privileges.drop(ids, sockets, logs)
    except (PrivilegeError, OSError) as exc:
        log.error("cannot drop privileges: %s", exc)
        return False
    log.info("running as uid %d gid %d", os.getuid(), os.getgid())
    # Started cleanly, the app's import served from what was loaded as root; a module first
    # imported in a request then failed with a 500 (ModuleNotFoundError).
    unreadable = unreachable_hint(sys.path, os.getuid()).strip()
    if unreadable:
        warnings.append(f"{unreadable}: a module first imported after the start fails")
    for warning in warnings:
        log.warning("%s", warning)
    return True


def _load_and_run(
    config: Config, listeners: list[Listener], stats: StatsServer | None, notifier: Notifier
) -> int:
    """Load the app (unless lazy-apps) and run the master until it stops."""
    before = set(sys.modules)
    app: WSGIApp | None = None
    arm_fault_dumps(())  # a C extension that crashes at import leaves its Python stack
    # --log-master's thread starts before the import: a thread keeps the sys.excepthook of
    # its start, and the app's (sentry-sdk patches it) would hold the old code past a HUP.
    with LogMaster.serving(config) as funnel:
        if not config.lazy_apps:
            threads, fds = threading.enumerate(), open_fds()
            try:
                with meanwhile.first_start(stats, config, listeners):  # a probe: 503, not silence
                    app = first_import(config)
            except AppImportError as exc:
                log.error("cannot load app %r: %s", config.app, exc)
                return ServeExit.APP_LOAD
            say_import_leftovers(threads, fds | stats_clients(stats), "the app's import")
        if config.request_titles and not titles.request_titles_available():
            log.warning(
                "--request-titles: setproctitle cannot be imported; titles stay as they are"
            )
        if _STOPPED:  # the import swallowed it: stopped all the same
            raise _StopDuringStart(_STOPPED[0])
        arbiter = Arbiter(config, listeners, app, build_handler, stats, notifier)
        arbiter.modules_before_app = before
        arbiter.funnel = funnel
        del app  # the arbiter holds it; this frame's would keep the first code past every HUP
        return arbiter.run()
