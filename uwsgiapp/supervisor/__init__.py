"""``uwsgiapp serve``: bind the sockets, load the app, run the master and its workers.

Order of start-up: logging → bind (as the starting user, e.g. root for a privileged path) →
pidfile → drop to ``--uid/--gid`` (master and workers; the unix socket is chowned first so the
dropped master can still remove it) → load the app (unless ``--lazy-apps``) → fork workers.
"""

from __future__ import annotations

import contextlib
import grp
import logging
import os
import pwd
import sys

from protocol import Limits
from uwsgiapp.config import Config
from uwsgiapp.importer import AppImportError, WSGIApp, load_app
from uwsgiapp.server.connection import Handler
from uwsgiapp.server.listeners import Listener, ListenerError, bind_all
from uwsgiapp.server.logs import make_access_log, setup_error_log
from uwsgiapp.supervisor.arbiter import Arbiter
from uwsgiapp.supervisor.policy import EXIT_APP_LOAD, EXIT_BOOT_LOOP
from uwsgiapp.wsgi.environ import EnvironSettings

log = logging.getLogger("uwsgiapp.error")

#: Exit code when a socket cannot be bound or privileges cannot be dropped.
EXIT_BIND = 3

__all__ = ["EXIT_APP_LOAD", "EXIT_BIND", "EXIT_BOOT_LOOP", "build_handler", "serve"]


def build_handler(app: WSGIApp, config: Config) -> Handler:
    """The per-worker request handler for ``app`` under ``config``."""
    return Handler(
        app,
        limits=Limits(buffer_size=config.buffer_size),
        settings=EnvironSettings(mount=config.mount, limit_post=config.limit_post),
        socket_timeout=config.socket_timeout,
        access_log=make_access_log(config.access_log, config.access_log_file),
    )


def bind(config: Config) -> list[Listener]:
    """Bind every configured socket."""
    return bind_all(
        config.socket,
        backlog=config.listen,
        chmod=config.chmod_socket,
        allow_from=config.uwsgi_allow_from,
    )


def _ids(config: Config) -> tuple[int, int]:
    """Resolve --uid/--gid (names or numbers) to ids; -1 where not set."""
    uid = gid = -1
    if config.uid:
        try:
            entry = (
                pwd.getpwuid(int(config.uid)) if config.uid.isdigit() else pwd.getpwnam(config.uid)
            )
        except (KeyError, ValueError):
            raise ListenerError(f"--uid: no such user {config.uid!r}") from None
        uid = entry.pw_uid
        gid = entry.pw_gid
    if config.gid:
        try:
            gid = int(config.gid) if config.gid.isdigit() else grp.getgrnam(config.gid).gr_gid
        except KeyError:
            raise ListenerError(f"--gid: no such group {config.gid!r}") from None
    return uid, gid


def drop_privileges(config: Config, listeners: list[Listener]) -> None:
    """Switch to --uid/--gid after binding; unix socket files are handed over first."""
    uid, gid = _ids(config)
    if uid < 0 and gid < 0:
        return
    for listener in listeners:
        if listener.path:
            os.chown(listener.path, uid, gid)
    if gid >= 0:
        os.setgroups([gid])
        os.setgid(gid)
    if uid >= 0:
        os.setuid(uid)
    log.info("running as uid %d gid %d", os.getuid(), os.getgid())


def serve(config: Config) -> int:
    """Run ``uwsgiapp serve`` with ``config``; returns the process exit code."""
    setup_error_log(config.error_log_file)
    try:
        listeners = bind(config)
    except ListenerError as exc:
        log.error("%s", exc)
        return EXIT_BIND
    pidfile = config.pidfile
    try:
        if pidfile:
            with open(pidfile, "w") as f:
                f.write(f"{os.getpid()}\n")
        try:
            drop_privileges(config, listeners)
        except (ListenerError, OSError) as exc:
            log.error("cannot drop privileges: %s", exc)
            return EXIT_BIND
        for listener in listeners:
            log.info("listening on %s", listener.spec)
        before = set(sys.modules)
        app: WSGIApp | None = None
        if not config.lazy_apps:
            try:
                app = load_app(config.app, chdir=config.chdir, pythonpath=config.pythonpath)
            except AppImportError as exc:
                log.error("cannot load app %r: %s", config.app, exc)
                return EXIT_APP_LOAD
        arbiter = Arbiter(config, listeners, app, build_handler)
        arbiter.remember_modules(before)
        return arbiter.run()
    finally:
        for listener in listeners:
            listener.close()
        if pidfile:
            with contextlib.suppress(OSError):
                os.unlink(pidfile)
