"""The stats listener: uWSGI's stats server, driven from the master's loop, never blocking it.

Plain mode (``--stats``), as uWSGI: accept, write the JSON document, close; nothing is read.
HTTP mode (``--stats-http``): read the request line, answer ``GET /metrics`` with the Prometheus
text, ``GET /health`` with 200 while a worker accepts (503 when none does: a probe's check),
``GET /`` with the JSON document, another path with a 404 and another method with a 405
(:mod:`~uwsgiapp.stats.httproutes`), HTTP/1.0, then close.

Every socket is non-blocking and every client has a deadline: one that sends nothing, reads
slowly or never closes is dropped when its time is up, and at most ``max_clients`` are open at
once (more are closed at accept). The master either calls :meth:`StatsServer.poll` with a small
timeout from its loop, or adds :meth:`StatsServer.fileno` (an epoll fd, readable when there is
work) to what it waits on, calls :meth:`StatsServer.on_readable` when it is readable, and caps
its own wait with :meth:`StatsServer.next_timeout` so deadlines are kept.
"""

from __future__ import annotations

import contextlib
import logging
import selectors
import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import TracebackType

from uwsgiapp import unpatched
from uwsgiapp.addresses import AllowList
from uwsgiapp.server.listeners import Listener, bind
from uwsgiapp.server.throttle import accept_failures, refused_peers
from uwsgiapp.stats.httproutes import Renders, route
from uwsgiapp.stats.model import ServerStats

log = logging.getLogger("uwsgiapp.error")

#: The longest request line HTTP mode reads; more without a newline is answered 400.
MAX_REQUEST_LINE = 4096
#: Bytes read and thrown away after the answer (request headers) before giving up and closing.
MAX_DRAIN = 64 * 1024

_READ, _WRITE, _LINGER = 0, 1, 2
#: Seconds the listener is left out of the selector after ``accept`` failed (EMFILE), or until
#: a client is closed: still readable, it would end every wait of the master's loop at once.
ACCEPT_PAUSE = 1.0


@dataclass(slots=True, eq=False)
class _Client:
    sock: socket.socket
    deadline: float
    state: int = _READ
    inbuf: bytearray = field(default_factory=bytearray)
    out: bytes = b""
    sent: int = 0
    drained: int = 0
    events: int = 0


class StatsServer:
    """A stats listener on ``spec`` (unix path, ``host:port``, ``[v6]:port``).

    TCP peers must pass ``allow`` (default: loopback only). ``snapshot`` is called at most once
    per :meth:`poll` that has a client to answer: the connections one poll accepts share it, so
    a flood of connections costs one snapshot per poll, not one per connection. ``timeout``
    bounds each client's whole life (reading the request, writing the answer); ``linger`` how
    long we wait for the peer to close after the answer, so that unread request bytes never
    turn our close into a reset.
    """

    def __init__(
        self,
        spec: str,
        allow: AllowList | None = None,
        http: bool = False,
        *,
        snapshot: Callable[[], ServerStats],
        minified: bool = False,
        max_clients: int = 64,
        timeout: float = 3.0,
        linger: float = 1.0,
        max_accepts: int = 256,
        backlog: int = 128,
        chmod: int = 0o660,
    ) -> None:
        if allow is None:
            allow = AllowList.parse(["127.0.0.1", "::1"])
        self.http = http
        self.snapshot = snapshot
        self.minified = minified
        self.max_clients = max_clients
        self.timeout = timeout
        self.linger = linger
        self.max_accepts = max_accepts
        #: Counters, for logs and tests: answers completed, clients dropped on a deadline or an
        #: error, connections closed at accept (over the cap or not allowed).
        self.served = self.dropped = self.rejected = 0
        self.listener: Listener = bind(spec, backlog=backlog, chmod=chmod, allow=allow)
        self.listener.sock.setblocking(False)
        self._sel = unpatched.DefaultSelector()
        self._sel.register(self.listener.sock, selectors.EVENT_READ, None)
        self._clients: dict[int, _Client] = {}
        self._resume_at: float | None = None  # when the listener is out of the selector
        self._accept_failures = accept_failures("stats", ACCEPT_PAUSE)
        self._refused = refused_peers(option="stats-allow-from (unset: uwsgi-allow-from's)")

    # --- what the master calls ---------------------------------------------------------

    @property
    def address(self) -> str | tuple[str, int]:
        """Where we listen: the unix path, or (host, port) with the port actually bound."""
        if self.listener.unix_name:
            return self.listener.unix_name
        name = self.listener.sock.getsockname()
        if isinstance(name, str):
            return name
        return (str(name[0]), int(name[1]))

    @property
    def clients(self) -> int:
        """Connections open now."""
        return len(self._clients)

    def client_fds(self) -> set[int]:
        """The descriptors of the connections open now (a HUP's re-import, during which the
        master serves the stats, must not take them for connections the app's code opened)."""
        return set(self._clients)

    def fileno(self) -> int:
        """A descriptor readable whenever :meth:`on_readable` has work (the epoll fd on Linux;
        elsewhere the listening socket, and then the master should simply :meth:`poll`)."""
        selector_fileno = getattr(self._sel, "fileno", None)
        if selector_fileno is not None:
            return int(selector_fileno())
        return self.listener.sock.fileno()

    def next_timeout(self) -> float | None:
        """Seconds until the next client deadline or the end of a pause in accepting (0 if
        passed); None with neither."""
        times = [c.deadline for c in self._clients.values()]
        if self._resume_at is not None:
            times.append(self._resume_at)
        return max(0.0, min(times) - time.monotonic()) if times else None

    def on_readable(self) -> None:
        """Do whatever is ready now, without waiting."""
        self.poll(0.0)

    def poll(self, timeout: float = 0.0) -> None:
        """Wait at most ``timeout`` seconds for activity, handle it, drop expired clients."""
        if self._resume_at is not None and time.monotonic() >= self._resume_at:
            self._resume_at = None  # accept again
            self._sel.register(self.listener.sock, selectors.EVENT_READ, None)
        for throttle in (self._accept_failures, self._refused):
            if throttle.due():
                throttle.flush()
        deadline_wait, wait = self.next_timeout(), max(0.0, timeout)
        wait = wait if deadline_wait is None else min(wait, deadline_wait)
        try:
            ready = self._sel.select(wait)
        except InterruptedError:
            ready = []
        renders = Renders(self.snapshot, self.minified)
        for key, mask in ready:
            if key.data is None:
                self._accept(renders)
            else:
                client: _Client = key.data
                if self._clients.get(client.sock.fileno()) is client:
                    self._service(client, mask, renders)
        self._expire(time.monotonic())

    def close(self) -> None:
        """Close every client and the listener (its unix socket file is removed)."""
        for client in list(self._clients.values()):
            self._drop(client, counted=False)
        with contextlib.suppress(KeyError, ValueError):
            self._sel.unregister(self.listener.sock)
        self._sel.close()
        self.listener.close()

    def close_after_fork(self) -> None:
        """In a forked worker: close the inherited descriptors, leave the socket file (it is
        the master's) and the master's clients alone."""
        for client in self._clients.values():
            client.sock.close()
        self._clients.clear()
        self._sel.close()
        self.listener.close(unlink=False)

    def __enter__(self) -> StatsServer:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- connections ---------------------------------------------------------------------

    def _accept(self, renders: Renders) -> None:
        for _ in range(self.max_accepts):
            try:
                conn, peer = self.listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:  # EMFILE and friends: the listener rests (see ACCEPT_PAUSE)
                self._accept_failures.add(exc)
                self._resume_at = time.monotonic() + ACCEPT_PAUSE
                with contextlib.suppress(KeyError, ValueError):
                    self._sel.unregister(self.listener.sock)
                return
            allow = self.listener.allow
            if allow is not None and self.listener.is_tcp and not allow.allows(str(peer[0])):
                self.rejected += 1
                self._refused.add((str(peer[0]), f"the stats socket {self.listener.spec}"))
                conn.close()
                continue
            if len(self._clients) >= self.max_clients and not self._make_room():
                self.rejected += 1
                conn.close()
                continue
            conn.setblocking(False)
            client = _Client(conn, time.monotonic() + self.timeout)
            self._clients[conn.fileno()] = client
            if self.http:
                self._watch(client, selectors.EVENT_READ)
            else:
                self._answer(client, renders.get("json"))

    def _service(self, client: _Client, mask: int, renders: Renders) -> None:
        if client.state == _READ:
            self._read_request(client, renders)
        elif client.state == _WRITE:
            self._write(client)
        else:
            self._drain(client)

    def _watch(self, client: _Client, events: int) -> None:
        if client.events == events:
            return
        if client.events:
            self._sel.modify(client.sock, events, client)
        else:
            self._sel.register(client.sock, events, client)
        client.events = events

    def _answer(self, client: _Client, payload: bytes | None) -> None:
        if payload is None:  # the snapshot failed: already logged
            self._drop(client)
            return
        client.state = _WRITE
        client.out = payload
        self._write(client)

    def _write(self, client: _Client) -> None:
        view = memoryview(client.out)
        while client.sent < len(view):
            try:
                client.sent += client.sock.send(view[client.sent :])
            except (BlockingIOError, InterruptedError):
                self._watch(client, selectors.EVENT_WRITE)
                return
            except OSError:
                self._drop(client)
                return
        self.served += 1
        client.state = _LINGER
        client.deadline = min(client.deadline, time.monotonic() + self.linger)
        with contextlib.suppress(OSError):
            client.sock.shutdown(socket.SHUT_WR)
        self._drain(client)

    def _drain(self, client: _Client) -> None:
        """After the answer: read and discard until the peer closes (then close quietly)."""
        while True:
            try:
                data = client.sock.recv(16384)
            except (BlockingIOError, InterruptedError):
                self._watch(client, selectors.EVENT_READ)
                return
            except OSError:
                data = b""
            client.drained += len(data)
            if not data or client.drained > MAX_DRAIN:
                self._drop(client, counted=False)
                return

    def _read_request(self, client: _Client, renders: Renders) -> None:
        eof = False
        while b"\n" not in client.inbuf and len(client.inbuf) <= MAX_REQUEST_LINE:
            try:
                data = client.sock.recv(MAX_REQUEST_LINE + 2 - len(client.inbuf))
            except (BlockingIOError, InterruptedError):
                break
            except OSError:
                self._drop(client)
                return
            if not data:
                eof = True
                break
            client.inbuf += data
        line, newline, _ = bytes(client.inbuf).partition(b"\n")
        if not newline and len(client.inbuf) <= MAX_REQUEST_LINE and not eof:
            return  # wait for the rest of the line (or the deadline)
        if not newline and eof and not client.inbuf:
            self._drop(client)  # connected and left without a word
            return
        self._answer(client, route(line if newline else None, renders))

    def _expire(self, now: float) -> None:
        for client in [c for c in self._clients.values() if c.deadline <= now]:
            # Past the linger time the answer is out: not a failure.
            self._drop(client, counted=client.state != _LINGER)

    def _make_room(self) -> bool:
        """At the cap, drop a client already answered (it only waits for its peer's close),
        else the one that has waited longest without a whole request: 64 connections that send
        nothing (or a byte a second), or read nothing and never close, held every slot, and each
        health check was refused. A real client sends its request at once: a poll or two."""
        for state in (_LINGER, _READ):
            waiting = [client for client in self._clients.values() if client.state == state]
            if waiting:
                self._drop(min(waiting, key=lambda c: c.deadline), counted=state == _READ)
                return True
        return False

    def _drop(self, client: _Client, counted: bool = True) -> None:
        if counted:
            self.dropped += 1
        self._clients.pop(client.sock.fileno(), None)
        if client.events:
            with contextlib.suppress(KeyError, ValueError):
                self._sel.unregister(client.sock)
            client.events = 0
        client.sock.close()
        if self._resume_at is not None:  # a descriptor is free: accept at the next poll
            self._resume_at = 0.0
