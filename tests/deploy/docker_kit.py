"""Helpers for the Docker tests: the engine, compose, containers, HTTP and a load generator.

Everything here shells out to the ``docker`` CLI (and ``docker compose`` or ``docker-compose``)
with a timeout, so a hung engine fails a test instead of the whole run.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import shutil
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from deploy.deploy_testkit import ROOT

OFFLINE_SCRIPT = ROOT / "deploy" / "images" / "offline.sh"
#: The base images docker-compose.yml and the Dockerfile use, by their exact names.
BASE_IMAGES = ("python:3.12-slim", "nginx:1.27-alpine")
#: The app image the tests build (APP_IMAGE in the compose and stack files): a name of their own,
#: removed at the end, so that a developer's `uwsgiapp-example` is never overwritten.
APP_IMAGE = f"uwsgiapp-test-{os.getpid()}"

#: Set by .ci/run once it has an engine: then a missing engine fails the tests, never skips.
REQUIRED_ENV = "UWSGIAPP_DOCKER_REQUIRED"

#: Figures for the terminal summary (tests/deploy/conftest.py prints them): name -> text.
FIGURES: dict[str, str] = {}
#: Why the Docker tests were skipped, for the terminal summary.
SKIPPED: list[str] = []


class DockerError(RuntimeError):
    pass


def run(
    argv: Sequence[str],
    *,
    timeout: float = 120,
    check: bool = True,
    env: Mapping[str, str] | None = None,
    cwd: Path = ROOT,
) -> subprocess.CompletedProcess[str]:
    """Run a command with a timeout; raise DockerError (with its output) when it fails."""
    try:
        result = subprocess.run(
            list(argv),
            capture_output=True,
            text=True,
            timeout=timeout,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired as exc:
        raise DockerError(f"{' '.join(argv)}: no result in {timeout:.0f} s") from exc
    if check and result.returncode != 0:
        raise DockerError(
            f"{' '.join(argv)}: exit {result.returncode}\n{result.stdout[-3000:]}"
            f"\n{result.stderr[-3000:]}"
        )
    return result


def engine_problem() -> str | None:
    """Why no Docker engine can be used here, or None when one answers."""
    if shutil.which("docker") is None:
        return "the docker CLI is not installed (apt-get install -y docker.io; .ci/run does it)"
    try:
        result = run(["docker", "info", "--format", "{{.ServerVersion}}"], timeout=30, check=False)
    except DockerError as exc:
        return str(exc)
    if result.returncode != 0 or not result.stdout.strip():
        reason = (result.stderr.strip().splitlines() or ["no answer"])[-1]
        return f"no Docker engine answers ({reason}); start dockerd (.ci/run does it)"
    return None


def compose_cli() -> list[str] | None:
    """``docker compose`` when the v2 plugin exists, else ``docker-compose``, else None."""
    with contextlib.suppress(DockerError):
        if run(["docker", "compose", "version"], timeout=30, check=False).returncode == 0:
            return ["docker", "compose"]
    tool = shutil.which("docker-compose")
    return [tool] if tool else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def inspect(ids: Sequence[str], template: str) -> list[str]:
    if not ids:
        return []
    return run(["docker", "inspect", "--format", template, *ids]).stdout.split("\n")[: len(ids)]


def container_ips(ids: Sequence[str]) -> set[str]:
    """Every IPv4 address of the given containers, on any network."""
    out = inspect(ids, "{{range .NetworkSettings.Networks}}{{.IPAddress}} {{end}}")
    return {ip for line in out for ip in line.split()}


def health(ids: Sequence[str]) -> list[str]:
    return inspect(ids, "{{if .State.Health}}{{.State.Health.Status}}{{else}}none{{end}}")


def wait_until(what: str, predicate: object, timeout: float, interval: float = 0.25) -> float:
    """Poll ``predicate()`` until true; return the seconds it took, raise after ``timeout``."""
    assert callable(predicate)
    started = time.monotonic()
    last: BaseException | None = None
    while time.monotonic() - started < timeout:
        try:
            if predicate():
                return time.monotonic() - started
        except DockerError as exc:  # e.g. a container that is being replaced
            last = exc
        time.sleep(interval)
    raise AssertionError(f"{what}: not within {timeout:.0f} s" + (f" ({last})" if last else ""))


# --- HTTP through nginx ----------------------------------------------------------------------


def request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Mapping[str, str] | None = None,
    timeout: float = 15,
) -> tuple[int, dict[str, str], bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=dict(headers or {}))
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def access_log_upstreams(log_text: str, uri_marker: str) -> list[str]:
    """``upstream`` of every JSON access-log line whose URI contains ``uri_marker``: the
    address nginx passed each request to (several, comma-separated, when it retried)."""
    found = []
    for line in log_text.splitlines():
        start = line.find("{")
        if start < 0 or uri_marker not in line:
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(line[start:])
            if uri_marker in entry.get("uri", ""):
                found.append(str(entry["upstream"]))
    return found


def upstream_hosts(upstreams: Sequence[str]) -> Counter[str]:
    """How many requests each upstream host (port dropped) finally answered."""
    hosts: Counter[str] = Counter()
    for value in upstreams:
        last = value.split(",")[-1].strip().split(" : ")[-1]
        hosts[last.rsplit(":", 1)[0]] += 1
    return hosts


# --- load ------------------------------------------------------------------------------------


@dataclass
class LoadResult:
    requests: int = 0
    ok: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    errors: Counter[str] = field(default_factory=Counter)
    seconds: float = 0.0

    @property
    def failed(self) -> int:
        """Non-2xx responses plus socket errors (what wrk reports as failures)."""
        return self.requests - self.ok

    @property
    def rate(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def summary(self) -> str:
        bad = {str(k): v for k, v in self.statuses.items() if not 200 <= k < 300}
        return (
            f"{self.requests} requests in {self.seconds:.1f} s ({self.rate:.0f} req/s), "
            f"{self.failed} failed: non-2xx {bad or 0}, socket errors {dict(self.errors) or 0}"
        )


#: What the POST loads send (the example app's /api/echo answers it back): nginx passes a POST
#: to another replica only if it could not send it, so each one reset after it was sent fails.
POST_BODY = b'{"order": 1, "items": ["a", "b"]}'
#: POSTs that may fail (502) for each replica stopped while nginx still sends it traffic: a
#: connection whose handshake is still under way once the last process stopped waiting for it
#: (0.6 s; one answered with a SYN cookie is not waited for) is reset after nginx sent the POST
#: on it (before the last one out, one queued between the last accept and the close was: one
#: in about 2,000 POSTs at one of several stops; GETs are retried elsewhere). Each stop with
#: the listeners left open (the bug this guards) failed more than that.
RESETS_PER_STOP = 1


class Load:
    """Keep-alive requests (GETs, or ``body`` POSTed as JSON) from ``threads`` threads against
    127.0.0.1:``port`` until stopped (or ``max_seconds``/``max_requests``, whichever comes
    first). Every non-2xx response and every socket error counts as a failure."""

    def __init__(
        self,
        port: int,
        path: str = "/healthz",
        threads: int = 4,
        max_seconds: float = 120,
        max_requests: int = 200_000,
        timeout: float = 30,
        body: bytes | None = None,
    ) -> None:
        self.port, self.path, self.timeout = port, path, timeout
        self.body = body
        self.max_seconds, self.max_requests = max_seconds, max_requests
        self.result = LoadResult()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._loop, daemon=True) for _ in range(threads)]
        self._started = 0.0

    def _record(self, status: int | None, error: str | None) -> bool:
        with self._lock:
            r = self.result
            r.requests += 1
            if status is not None:
                r.statuses[status] += 1
                if 200 <= status < 300:
                    r.ok += 1
            if error is not None:
                r.errors[error] += 1
            return r.requests < self.max_requests

    def _loop(self) -> None:
        conn: http.client.HTTPConnection | None = None
        deadline = self._started + self.max_seconds
        more = True
        while more and not self._stop.is_set() and time.monotonic() < deadline:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=self.timeout)
            try:
                if self.body is None:
                    conn.request("GET", self.path)
                else:
                    headers = {"Content-Type": "application/json"}
                    conn.request("POST", self.path, body=self.body, headers=headers)
                resp = conn.getresponse()
                resp.read()
                more = self._record(resp.status, None)
                if resp.will_close:
                    conn.close()
                    conn = None
            except (OSError, http.client.HTTPException) as exc:
                more = self._record(None, type(exc).__name__)
                conn.close()
                conn = None
        if conn is not None:
            conn.close()

    def __enter__(self) -> Load:
        self._started = time.monotonic()
        for t in self._threads:
            t.start()
        return self

    def stop(self) -> LoadResult:
        self._stop.set()
        for t in self._threads:
            t.join(self.timeout + 5)
        self.result.seconds = time.monotonic() - self._started
        return self.result

    def __exit__(self, *exc: object) -> None:
        self.stop()
