"""A bounded loopback HTTP load loop (threads with keep-alive connections to nginx)."""

from __future__ import annotations

import http.client
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class LoadResult:
    """What the load loop saw."""

    ok: int = 0
    failures: list[str] = field(default_factory=list)
    bodies: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        """Requests sent."""
        return self.ok + len(self.failures)


class Load:
    """``clients`` threads sending ``path_for(i)`` requests until stopped or ``limit`` reached."""

    def __init__(
        self,
        port: int,
        path_for: Callable[[int], str],
        clients: int = 8,
        limit: int = 1_000_000,
        timeout: float = 30,
    ) -> None:
        self.port = port
        self.path_for = path_for
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
            path = self.path_for(n)
            try:
                conn.request("GET", path)
                resp = conn.getresponse()
                body = resp.read()
                status = resp.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
                outcome = f"{path}: {type(exc).__name__}: {exc}"
            else:
                outcome = "" if status == 200 else f"{path}: HTTP {status} {body[:60]!r}"
            with self._lock:
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
