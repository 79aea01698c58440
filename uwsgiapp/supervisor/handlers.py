"""What ``uwsgiapp serve`` builds from its options: before the master runs, the sockets and the
stats server; in each worker, its request handler with its access logger, and its loop."""

from __future__ import annotations

import errno
import logging
import os
import resource
from typing import Any

from uwsgiapp.config import Config
from uwsgiapp.config.netopts import stats_peers
from uwsgiapp.exitcodes import WorkerExit
from uwsgiapp.harakiri import serve_in_this_thread
from uwsgiapp.importer import WSGIApp
from uwsgiapp.logtargets import is_stream
from uwsgiapp.server.accesslog import keep_only
from uwsgiapp.server.decisions import drain_limit, too_few_descriptors
from uwsgiapp.server.inflight import set_request_source, worker_number
from uwsgiapp.server.intake import Handler
from uwsgiapp.server.listeners import Listener, bind_all
from uwsgiapp.server.logs import make_access_log
from uwsgiapp.server.masterflags import MasterFlags
from uwsgiapp.server.threaded import ThreadedWorker
from uwsgiapp.server.worker import Worker
from uwsgiapp.server.wsgierrors import ErrorLogStream
from uwsgiapp.stats.server import StatsServer
from uwsgiapp.supervisor.status import (
    CoreWriter,
    SlotWriter,
    count_requests,
    count_thread_requests,
)
from uwsgiapp.unpatched import threads_patched_by
from uwsgiapp.wsgi.contract import AccessLogger
from uwsgiapp.wsgi.environ import EnvironSettings
from uwsgiproto import Limits

__all__ = [
    "access_log",
    "bind",
    "bind_stats",
    "build_handler",
    "make_worker",
    "refuse_green_threads",
]

log = logging.getLogger("uwsgiapp.error")


def build_handler(app: WSGIApp, config: Config) -> Handler:
    """The per-worker request handler for ``app`` under ``config``."""
    return Handler(
        app,
        limits=Limits(buffer_size=config.buffer_size, max_vars=config.max_vars),
        settings=EnvironSettings(
            mount=config.mount,
            limit_post=config.limit_post,
            # As uWSGI and gunicorn say (werkzeug's debugger refuses to run multiprocess).
            multiprocess=config.workers > 1,
            multithread=config.threads > 1,
            errors=_errors_stream(config),
        ),
        socket_timeout=config.socket_timeout,
        access_log=access_log(config),
        post_buffering=config.post_buffering,
        spool_dir=config.post_buffering_dir,
    )


def _errors_stream(config: Config) -> ErrorLogStream | None:
    """``wsgi.errors``: the error log's (its file; with JSON, its records, on stderr too), or
    None for the process's stderr (the error log's own stream, in text)."""
    if is_stream(config.error_log_file) and config.error_log_format != "json":
        return None
    return ErrorLogStream()


def refuse_green_threads(threads: int) -> None:
    """End a worker whose ``--threads`` the app's monkey-patching turned into green threads,
    as a worker that cannot load the app ends (at start, the server stops with code 4)."""
    patcher = threads_patched_by()
    if patcher is None:
        return
    log.error(
        "worker %d cannot serve the app with --threads %d: its import monkey-patched the "
        "standard library's threads into %s's green ones (gevent's monkey.patch_all(), "
        "eventlet's monkey_patch()), which would run the request threads one at a time and "
        "hang at the first that waits; serve it with --threads 1 (one request at a time per "
        "worker, as gunicorn's sync worker) and more --workers",
        worker_number(),
        threads,
        patcher,
    )
    raise SystemExit(WorkerExit.APP_LOAD)


def refuse_without_descriptors(loops: int, lazy: bool = False) -> None:
    """End a worker that the open-files limit leaves too few descriptors to serve, as a worker
    that cannot load the app ends (at start, the server stops with code 4, not a fork loop)."""
    limit = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    try:
        used = len(os.listdir("/proc/self/fd")) - 1  # the listing's own descriptor
    except OSError as exc:
        if exc.errno != errno.EMFILE:
            return  # no /proc: nothing to say
        used = limit
    why = too_few_descriptors(limit, used, loops, lazy)
    if why is not None:
        log.error("worker %d cannot serve: %s", worker_number(), why)
        raise SystemExit(WorkerExit.NO_ROOM)


def make_worker(
    config: Config,
    handler: Handler,
    listeners: list[Listener],
    slot: SlotWriter,
    *,
    cores: list[CoreWriter],
    master: tuple[int, MasterFlags],
    counting: bool,
) -> Worker | ThreadedWorker:
    """The worker loop: one thread (the request path as it always was), or ``--threads``
    (``cores``: each thread's part of the worker's slot; ``master``: the master's pid and
    flags; ``counting``: the stats count each request). Its ``--max-requests`` with this
    worker's share of ``--max-requests-jitter``."""
    master_pid, master_flags = master
    max_requests = config.max_requests
    if max_requests and config.max_requests_jitter:
        import random  # only with a jitter

        max_requests += random.randint(0, config.max_requests_jitter)
    refuse_without_descriptors(config.threads, config.lazy_apps)
    drain = drain_limit(config.graceful_timeout)
    worker: Worker | ThreadedWorker
    if config.threads == 1:
        set_request_source(lambda: handler.responder.current)
        hooks = count_requests(handler, slot) if counting else slot
        serve_in_this_thread(hooks.set_harakiri)
        worker = Worker(
            handler,
            listeners,
            max_requests=max_requests,
            hooks=hooks,
            master_pid=master_pid,
            drain_seconds=drain,
            on_leaving=slot.leaving,
            master_flags=master_flags,
        )
    else:
        refuse_green_threads(config.threads)
        if counting:
            count_thread_requests(handler, slot)
        worker = ThreadedWorker(
            handler,
            listeners,
            threads=config.threads,
            max_requests=max_requests,
            cores=cores,
            master_pid=master_pid,
            drain_seconds=drain,
            on_leaving=slot.leaving,
            master_flags=master_flags,
            harakiri=config.harakiri,
        )
    worker.on_tick = slot.beat
    return worker


def access_log(config: Config) -> AccessLogger | None:
    """The access logger ``config`` asks for; with ``--log-4xx``, ``--log-5xx``,
    ``--log-slow`` or ``--log-big``, for only the requests they name."""
    logger = make_access_log(config.access_log, config.access_log_file)
    classes = "4" * config.log_4xx + "5" * config.log_5xx
    if logger is None or not (classes or config.log_slow or config.log_big):
        return logger
    return keep_only(logger, classes, config.log_slow / 1000, config.log_big)


def bind(config: Config) -> list[Listener]:
    """Bind every configured socket."""
    return bind_all(
        config.socket,
        backlog=config.listen,
        chmod=config.chmod_socket,
        allow_from=config.uwsgi_allow_from,
    )


def bind_stats(config: Config) -> StatsServer | None:
    """The ``--stats`` listener (bound with the uwsgi sockets, before any drop), or None."""
    if not config.stats:
        return None
    return StatsServer(
        config.stats,
        stats_peers(config),
        http=config.stats_http,
        snapshot=_no_snapshot_yet,
        minified=config.stats_minified,
        chmod=config.chmod_socket,
    )


def _no_snapshot_yet() -> Any:
    raise RuntimeError("the master is not running yet")
