"""The worker loop: accept on the shared listening sockets, hand each fd to the Handler.

Listening sockets are non-blocking and shared by every worker. Under load, ``accept`` succeeds
without any wait; when the queue is empty a worker sleeps in ``epoll`` (``EPOLLEXCLUSIVE``, so a
new connection wakes one idle worker, not all) together with the signal wake-up pipe. Signal
handlers only set flags; the loop acts on them between requests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import select
import signal
import time
from collections.abc import Callable
from types import FrameType
from typing import Protocol

from uwsgiapp.server.connection import Handler
from uwsgiapp.server.listeners import Listener, queued_connections

log = logging.getLogger("uwsgiapp.error")

#: How often an idle worker wakes to check that its master is alive (seconds).
IDLE_TICK = 1.0


class RequestHooks(Protocol):
    """What the worker reports around each request (the supervisor's shared status slot)."""

    def begin(self) -> None:
        """A connection was accepted and is about to be served."""

    def end(self, requests: int) -> None:
        """The connection is closed; ``requests`` served so far."""


class Worker:
    """Serve connections from ``listeners`` until told to stop."""

    def __init__(
        self,
        handler: Handler,
        listeners: list[Listener],
        *,
        max_requests: int = 0,
        hooks: RequestHooks | None = None,
        master_pid: int = 0,
        should_recycle: Callable[[], bool] | None = None,
    ) -> None:
        self.handler = handler
        self.listeners = listeners
        self.max_requests = max_requests
        self.hooks = hooks
        self.master_pid = master_pid
        self.should_recycle = should_recycle
        self.alive = True
        self.drain_backlog = False
        self.requests = 0
        self._wake_r = -1
        self._wake_w = -1
        self._epoll: select.epoll | None = None

    # -- signals (handlers only set flags) ----------------------------------------------------

    def _on_graceful(self, signum: int, frame: FrameType | None) -> None:
        # TERM: finish the current request and what already waits in the backlog, then exit.
        self.alive = False
        self.drain_backlog = True

    def _on_reload(self, signum: int, frame: FrameType | None) -> None:
        # The master reloads by starting new workers first; we just finish and leave.
        self.alive = False

    def _on_quick(self, signum: int, frame: FrameType | None) -> None:
        raise SystemExit(0)

    def install_signals(self) -> None:
        """Worker signal dispositions (after fork: the master's handlers must not run here)."""
        signal.signal(signal.SIGTERM, self._on_graceful)
        signal.signal(signal.SIGHUP, self._on_reload)
        signal.signal(signal.SIGINT, self._on_quick)
        signal.signal(signal.SIGQUIT, self._on_quick)
        signal.signal(signal.SIGUSR1, lambda s, f: reopen_logs())
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        self._wake_r, self._wake_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        signal.set_wakeup_fd(self._wake_w, warn_on_full_buffer=False)

    # -- loop ---------------------------------------------------------------------------------

    def run(self) -> None:
        """Accept and serve until stopped; then (on TERM) serve what waits in the backlog."""
        if self._wake_r < 0:
            self.install_signals()
        epoll = select.epoll()
        self._epoll = epoll
        for listener in self.listeners:
            listener.sock.setblocking(False)
            epoll.register(listener.sock.fileno(), select.EPOLLIN | select.EPOLLEXCLUSIVE)
        epoll.register(self._wake_r, select.EPOLLIN)
        try:
            while self.alive:
                served = False
                for listener in self.listeners:
                    served = self._accept_batch(listener) or served
                if not served and self.alive:
                    self._idle_wait()
            if self.drain_backlog:
                for listener in self.listeners:
                    self._accept_batch(
                        listener, draining=True, limit=queued_connections(listener.sock)
                    )
        finally:
            epoll.close()
            self._epoll = None

    def _accept_batch(
        self, listener: Listener, draining: bool = False, limit: int | None = None
    ) -> bool:
        """Serve connections from one listener until its queue is empty (or we must stop).

        ``limit``: when draining, serve at most this many (what was queued when we started).
        """
        accept = listener.sock._accept  # type: ignore[attr-defined]  # raw (fd, addr): no socket object
        allow = listener.allow
        handle = self.handler.handle
        hooks = self.hooks
        served = False
        drained = 0
        while self.alive or (draining and (limit is None or drained < limit)):
            drained += 1
            try:
                fd, addr = accept()
            except BlockingIOError:
                return served
            except OSError as exc:
                log.error("accept() on %s failed: %s", listener.spec, exc)
                time.sleep(0.1)
                return served
            served = True
            if allow is not None and not allow.allows(addr[0]):
                log.warning(
                    "refused connection from %s on %s: not in uwsgi-allow-from",
                    addr[0],
                    listener.spec,
                )
                os.close(fd)
                continue
            if hooks is not None:
                hooks.begin()
            handle(fd, addr or listener.spec)
            self.requests += 1
            if hooks is not None:
                hooks.end(self.requests)
            if self.max_requests and self.requests >= self.max_requests:
                log.info(
                    "worker %d: served %d requests (max-requests), recycling",
                    os.getpid(),
                    self.requests,
                )
                self.alive = False
            elif self.should_recycle is not None and self.should_recycle():
                self.alive = False
        return served

    def _idle_wait(self) -> None:
        assert self._epoll is not None
        for fd, _ in self._epoll.poll(IDLE_TICK):
            if fd == self._wake_r:
                with contextlib.suppress(OSError):
                    os.read(self._wake_r, 512)
        if self.master_pid and os.getppid() != self.master_pid:
            log.error("worker %d: master %d is gone, exiting", os.getpid(), self.master_pid)
            self.alive = False


def reopen_logs() -> None:
    """USR1: reopen every file handler of our loggers (after logrotate moved the files)."""
    for name in ("uwsgiapp.error", "uwsgiapp.access", "uwsgiapp"):
        for handler in logging.getLogger(name).handlers:
            if isinstance(handler, logging.FileHandler):
                handler.acquire()
                try:
                    handler.close()
                    handler.stream = handler._open()
                finally:
                    handler.release()
