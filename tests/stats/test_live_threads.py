"""``--stats`` with ``--threads``: the threads share one Responder, so they count at its
access-log point under the worker's lock; the JSON and Prometheus text still add up."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from live_kit import accepting, document, metrics, total, wait_doc, wsum
from support.procs import free_port, nginx_binary, stack

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed"),
]


def test_threaded_workers_count_every_response(tmp_path: Path) -> None:
    port = free_port()
    address = ("127.0.0.1", port)
    options = {"workers": 2, "threads": 4, "stats": f"127.0.0.1:{port}", "stats_http": True}
    sent = {"/ok": 40, "/missing": 12, "/boom": 4}
    expect = {"/ok": 200, "/missing": 404, "/boom": 500}
    failures: list[str] = []
    with stack(tmp_path, "stats_app:app", **options) as (_server, nginx):
        wait_doc(lambda: document(address), lambda d: accepting(d) == 2, 15)

        def client(path: str, count: int) -> None:
            for _ in range(count):
                status = nginx.request("GET", path)[0]
                if status != expect[path]:
                    failures.append(f"{path}: {status}")

        # Concurrent clients, so that threads of one worker count at the same time.
        threads = [
            threading.Thread(target=client, args=(path, count // 4))
            for path, count in sent.items()
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        n = sum(sent.values())
        doc = wait_doc(lambda: document(address), lambda d: counted(d) >= n, 15)
        families = metrics(address)
    assert failures == []
    assert wsum(doc, "requests") == n
    # One core per request thread (uWSGI's cores), each with its own count.
    assert all(len(w["cores"]) == 4 for w in doc["workers"])
    # A core counts the connections its thread took, so also the start-up probes that
    # connected and closed without a request.
    assert n <= sum(c["requests"] for w in doc["workers"] for c in w["cores"]) <= n + 3
    assert sum(1 for w in doc["workers"] for c in w["cores"] if c["requests"]) >= 2
    assert wsum(doc, "exceptions") == sent["/boom"]
    assert total(families, "uwsgiapp_requests_total", status="2xx") == sent["/ok"]
    assert total(families, "uwsgiapp_requests_total", status="4xx") == sent["/missing"]
    assert total(families, "uwsgiapp_requests_total", status="5xx") == sent["/boom"]


def counted(doc: dict[str, Any]) -> int:
    """The requests both the workers and their cores have counted (the lower of the two)."""
    return min(
        wsum(doc, "requests"), sum(c["requests"] for w in doc["workers"] for c in w["cores"])
    )


def test_thread_cores_count_on_across_recycles(tmp_path: Path) -> None:
    # A worker recycled by --max-requests: its requests carry on in the stats, and so must its
    # cores' (as uWSGI's), or the cores of the document add up to the last process's only.
    port = free_port()
    address = ("127.0.0.1", port)
    options = {"threads": 2, "max_requests": 10, "stats": f"127.0.0.1:{port}", "stats_http": True}
    n = 25
    with stack(tmp_path, "stats_app:app", **options) as (_server, nginx):
        wait_doc(lambda: document(address), lambda d: accepting(d) == 1, 15)
        statuses = [nginx.request("GET", "/ok")[0] for _ in range(n)]
        # A thread's core counts once its connection is closed, after the access-log point
        # where the worker's count is taken: wait for both.
        doc = wait_doc(lambda: document(address), lambda d: counted(d) >= n, 15)
    assert statuses == [200] * n
    (worker,) = doc["workers"]
    assert worker["requests"] == n and worker["respawn_count"] >= 3
    # A core also counts the connections its thread took without a request (start-up probes).
    assert n <= sum(c["requests"] for c in worker["cores"]) <= n + 3, worker["cores"]
