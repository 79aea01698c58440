"""``uwsgiapp serve``: bind, load, run workers."""

from __future__ import annotations

import logging
import os

from protocol import Limits
from uwsgiapp.config import Config
from uwsgiapp.importer import AppImportError, WSGIApp, load_app
from uwsgiapp.server.connection import Handler
from uwsgiapp.server.listeners import Listener, ListenerError, bind_all
from uwsgiapp.server.logs import make_access_log, setup_error_log
from uwsgiapp.server.worker import Worker
from uwsgiapp.wsgi.environ import EnvironSettings

log = logging.getLogger("uwsgiapp.error")

#: Exit code when the app cannot be loaded (the supervisor stops instead of forking in a loop).
EXIT_APP_LOAD = 4
#: Exit code when a socket cannot be bound.
EXIT_BIND = 3


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


def serve(config: Config) -> int:
    """Run ``uwsgiapp serve`` with ``config``; returns the process exit code."""
    setup_error_log(config.error_log_file)
    try:
        listeners = bind(config)
    except ListenerError as exc:
        log.error("%s", exc)
        return EXIT_BIND
    try:
        try:
            app = load_app(config.app, chdir=config.chdir, pythonpath=config.pythonpath)
        except AppImportError as exc:
            log.error("cannot load app: %s", exc)
            return EXIT_APP_LOAD
        for listener in listeners:
            log.info("listening on %s", listener.spec)
        worker = Worker(build_handler(app, config), listeners, max_requests=config.max_requests)
        log.info("worker %d ready", os.getpid())
        worker.run()
        return 0
    finally:
        for listener in listeners:
            listener.close()
