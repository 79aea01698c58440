"""A bounded loopback HTTP load loop (threads with keep-alive connections to nginx)."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass(frozen=True)
class Call:
    """One request of the loop; ``expect``, when set, is the exact response body required."""

    method: str
    path: str
    body: bytes | None = None
    expect: bytes | None = None


@dataclass
class LoadResult:
    """What the load loop saw."""

    ok: int = 0
    failures: list[str] = field(default_factory=list)
    bodies: dict[str, int] = field(default_factory=dict)
    #: With ``timeline=True``: (sent at, done at, path, failure or "") per request, monotonic.
    timeline: list[tuple[float, float, str, str]] = field(default_factory=list)

    @property
    def total(self) -> int:
        """Requests sent."""
        return self.ok + len(self.failures)


class Load:
    """``clients`` threads sending ``path_for(i)`` requests until stopped or ``limit`` reached.

    ``path_for`` may return a :class:`Call` instead of a path (another method, a body, an
    expected response body); ``timeline=True`` keeps each request's send and end times.
    """

    def __init__(
        self,
        port: int,
        path_for: Callable[[int], str | Call],
        clients: int = 8,
        limit: int = 1_000_000,
        timeout: float = 30,
        timeline: bool = False,
    ) -> None:
        self.port = port
        self.path_for = path_for
        self.timeline = timeline
        self.clients = clients
        self.limit = limit
        self.timeout = timeout
        self.result = LoadResult()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._count = 0
        self._threads = [threading.Thread(target=self._client, daemon=True) for _ in range(clients)]

    def _next(self) -> int | None:
        with self._lock:
            if self._stop.is_set() or self._count >= self.limit:
                return None
            self._count += 1
            return self._count

    def _client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
        while (n := self._next()) is not None:
            call = self.path_for(n)
            if isinstance(call, str):
                call = Call("GET", call)
            path = call.path
            sent_at = time.monotonic()
            try:
                conn.request(call.method, path, body=call.body)
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                outcome = f"{path}: {type(exc).__name__}: {exc}"
            else:
                outcome = "" if status == 200 else f"{path}: HTTP {status} {body[:60]!r}"
                if not outcome and call.expect is not None and body != call.expect:
                    outcome = f"{path}: wrong body ({len(body)} bytes) {body[:60]!r}"
            with self._lock:
                if self.timeline:
                    self.result.timeline.append((sent_at, time.monotonic(), path, outcome))
                if outcome:
                    self.result.failures.append(outcome)
                else:
                    self.result.ok += 1
                    key = body[:40].decode("latin-1")
                    self.result.bodies[key] = self.result.bodies.get(key, 0) + 1
        conn.close()

    def __enter__(self) -> Load:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> LoadResult:
        """Stop and wait for every client; returns the result."""
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        return self.result

    def wait_for(self, requests: int, timeout: float) -> None:
        """Block until ``requests`` were sent (or ``timeout``)."""
        deadline = time.monotonic() + timeout
        while self.result.total < requests and time.monotonic() < deadline:
            time.sleep(0.05)
