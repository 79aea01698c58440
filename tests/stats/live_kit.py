"""Helpers of the live stats tests: read a running server's stats three ways."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Callable
from typing import Any

from prometheus_client.parser import text_string_to_metric_families
from stats_kit import PYTHON, ROOT, read_all

from uwsgiapp.stats.reader import FetchError

Address = str | tuple[str, int]


def http_get(address: Address, target: str = "/", timeout: float = 5.0) -> bytes:
    """The body of an HTTP/1.0 GET to a --stats-http server (asserting a 200)."""
    raw = read_all(address, f"GET {target} HTTP/1.0\r\n\r\n".encode(), timeout)
    head, _, body = raw.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.0 200"), raw[:300]
    return body


def document(address: Address) -> dict[str, Any]:
    """The JSON document (HTTP mode)."""
    doc: dict[str, Any] = json.loads(http_get(address))
    return doc


def metrics(address: Address) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of /metrics, parsed by prometheus_client: (name, labels) → value."""
    text = http_get(address, "/metrics").decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def total(
    samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **want: str
) -> float:
    """The sum of ``name``'s samples whose labels include ``want``."""
    return sum(
        v
        for (n, labels), v in samples.items()
        if n == name and all((k, w) in labels for k, w in want.items())
    )


def top_once(spec: str) -> str:
    """``uwsgiapp top SPEC --once``'s output (asserting success)."""
    done = subprocess.run(
        [PYTHON, "-m", "uwsgiapp", "top", spec, "--once"],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=ROOT,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def wait_doc(
    read: Callable[[], dict[str, Any]], check: Callable[[dict[str, Any]], bool], timeout: float
) -> dict[str, Any]:
    """Read the document until ``check`` holds; fail with the last one after ``timeout``."""
    deadline = time.monotonic() + timeout
    doc: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            doc = read()
        except (OSError, AssertionError, FetchError):  # the stats socket may not be bound yet
            doc = {}
        if doc and check(doc):
            return doc
        time.sleep(0.05)
    raise AssertionError(f"stats never matched within {timeout}s; last: {json.dumps(doc)[:2000]}")


def accepting(doc: dict[str, Any]) -> int:
    """Workers that accept."""
    return sum(1 for w in doc["workers"] if w["accepting"])


def wsum(doc: dict[str, Any], key: str) -> int:
    """``key`` summed over the workers."""
    return sum(int(w[key]) for w in doc["workers"])
