"""Through real nginx, 2 workers, ``--stats`` in HTTP mode: after exactly N requests (200, 404,
500, one harakiri, one kill -9), the JSON, the Prometheus text and ``uwsgiapp top --once``
agree with each other and with what was sent; a busy worker and a waiting listen queue show.

A request killed by harakiri is not counted (the worker never finished it), as in uWSGI.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import threading
from pathlib import Path

import pytest
from live_kit import accepting, document, metrics, top_once, total, wait_doc, wsum
from support.procs import free_port, nginx_binary, stack

pytestmark = [
    pytest.mark.nginx,
    pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed"),
]

OK, MISSING, BOOM = 12, 5, 3


def test_json_prometheus_and_top_agree_with_what_was_sent(tmp_path: Path) -> None:
    port = free_port()
    address = ("127.0.0.1", port)
    options = {"workers": 2, "harakiri": 1, "stats": f"127.0.0.1:{port}", "stats_http": True}
    with stack(tmp_path, "stats_app:app", **options) as (_server, nginx):
        wait_doc(lambda: document(address), lambda d: accepting(d) == 2, 15)
        for path, count, status in (
            ("/ok", OK, 200),
            ("/missing", MISSING, 404),
            ("/boom", BOOM, 500),
        ):
            for _ in range(count):
                assert nginx.request("GET", path)[0] == status
        assert nginx.request("GET", "/sleep?5")[0] == 502  # harakiri
        doc = wait_doc(lambda: document(address), lambda d: accepting(d) == 2, 15)
        victim = next(w for w in doc["workers"] if w["accepting"])
        os.kill(victim["pid"], signal.SIGKILL)
        n = OK + MISSING + BOOM
        doc = wait_doc(
            lambda: document(address),
            lambda d: accepting(d) == 2 and wsum(d, "respawn_count") == 4,
            15,
        )
        assert wsum(doc, "requests") == n
        assert wsum(doc, "exceptions") == BOOM
        assert wsum(doc, "harakiri_count") == 1
        # Workers 1 and 2, as uWSGI shows them: each replacement (of the harakiri victim, of
        # the killed one) took the number it replaced, and its predecessors' counts with it
        # (they were rows of their own, "cheap" with pid 0, for good).
        assert all(w["pid"] != victim["pid"] for w in doc["workers"])
        assert [w["id"] for w in doc["workers"]] == [1, 2]
        live = [w for w in doc["workers"] if w["pid"]]
        assert len(live) == 2 and all(w["status"] == "idle" for w in live)
        classes = {
            k: sum(w["uwsgiapp"]["statuses"][k] for w in doc["workers"])
            for k in ("2xx", "4xx", "5xx")
        }
        assert classes == {"2xx": OK, "4xx": MISSING, "5xx": BOOM}
        assert wsum(doc, "tx") > 0 and all(w["rss"] > 0 and w["vsz"] >= w["rss"] for w in live)

        m = metrics(address)
        assert total(m, "uwsgiapp_requests_total") == n
        for cls, count in (("2xx", OK), ("4xx", MISSING), ("5xx", BOOM)):
            assert total(m, "uwsgiapp_requests_total", status=cls) == count
        assert total(m, "uwsgiapp_request_duration_seconds_count") == n
        assert total(m, "uwsgiapp_worker_exceptions_total") == BOOM
        assert total(m, "uwsgiapp_worker_harakiri_total") == 1
        assert total(m, "uwsgiapp_worker_spawns_total") == 4
        assert total(m, "uwsgiapp_workers", state="idle") == 2
        assert total(m, "uwsgiapp_workers") == len(doc["workers"])

        out = top_once(f"http://127.0.0.1:{port}/")
        assert f"requests: {n} " in out and f"exceptions: {BOOM} " in out, out
        assert "harakiri: 1 " in out and "2 idle" in out, out
        rows = [
            line.split()
            for line in out.splitlines()
            if re.match(r"^\s+\d+\s+\d+\s+(idle|busy|cheap)", line)
        ]
        assert sorted(int(r[3]) for r in rows) == sorted(w["requests"] for w in doc["workers"]), out
        assert sum(int(r[-2]) for r in rows) == 4 and sum(int(r[-1]) for r in rows) == 1, out


def test_busy_worker_and_listen_queue(tmp_path: Path) -> None:
    port = free_port()
    address = ("127.0.0.1", port)
    options = {"workers": 2, "stats": f"127.0.0.1:{port}", "stats_http": True}
    with stack(tmp_path, "stats_app:app", **options) as (server, nginx):
        wait_doc(lambda: document(address), lambda d: accepting(d) == 2, 15)
        results: list[int] = []
        # Busy until the checks are done, however slow the machine (not for a fixed time).
        gate = tmp_path / "open"
        sleepers = [
            threading.Thread(
                target=lambda: results.append(nginx.request("GET", f"/gate?{gate}")[0])
            )
            for _ in range(2)
        ]
        for t in sleepers:
            t.start()
        held: list[socket.socket] = []
        try:
            doc = wait_doc(
                lambda: document(address),
                lambda d: all(w["status"] == "busy" for w in d["workers"]),
                5,
            )
            assert all(w["cores"][0]["in_request"] == 1 for w in doc["workers"])
            m = metrics(address)
            assert total(m, "uwsgiapp_worker_busy") == 2
            assert total(m, "uwsgiapp_workers", state="busy") == 2
            assert "workers: 2 (2 busy)" in top_once(f"http://127.0.0.1:{port}/")
            # Both workers busy: connections wait in the uwsgi socket's accept queue.
            for _ in range(3):
                c = socket.socket(socket.AF_UNIX)
                c.connect(server.socket)
                held.append(c)
            doc = document(address)
            assert doc["listen_queue"] == 3 and doc["sockets"][0]["queue"] == 3, doc
            assert total(metrics(address), "uwsgiapp_listen_queue") == 3
            assert "listen queue: 3 " in top_once(f"http://127.0.0.1:{port}/")
        finally:
            gate.touch()
            for t in sleepers:
                t.join(15)
        assert results == [200, 200]
        try:
            wait_doc(
                lambda: document(address),
                lambda d: (
                    d["listen_queue"] == 0 and all(w["status"] == "idle" for w in d["workers"])
                ),
                10,
            )
        finally:
            for c in held:
                c.close()


def test_reloads_and_recycling_keep_workers_1_to_n_and_counters_growing(tmp_path: Path) -> None:
    # A HUP starts the new workers while the old ones serve; max-requests starts a replacement
    # while the old one still exits. Either way the stats show workers 1..N (a uwsgi exporter
    # counted 4 workers for 2, half of them "cheap" and not accepting, after one deploy), and
    # each worker's counters only grow (Prometheus' rate()).
    port = free_port()
    address = ("127.0.0.1", port)
    options = {
        "workers": 2,
        "max_requests": 5,
        "stats": f"127.0.0.1:{port}",
        "stats_http": True,
    }
    with stack(tmp_path, "stats_app:app", **options) as (server, nginx):
        wait_doc(lambda: document(address), lambda d: accepting(d) == 2, 15)
        before: dict[tuple[str, tuple[tuple[str, str], ...]], float] = {}
        sent = 0
        for step in range(3):
            for _ in range(12):  # some workers reach max-requests and are replaced
                assert nginx.request("GET", "/ok")[0] == 200
                sent += 1
            if step < 2:
                server.signal(signal.SIGHUP)
            # A request is counted after its response went out: nginx may have it first.
            doc = wait_doc(
                lambda: document(address),
                lambda d, n=sent: accepting(d) == 2 and wsum(d, "requests") >= n,
                15,
            )
            assert [w["id"] for w in doc["workers"]] == [1, 2], doc["workers"]
            assert all(w["pid"] and w["status"] != "cheap" for w in doc["workers"])
            m = metrics(address)
            counters = {
                k: v
                for k, v in m.items()
                if k[0] in ("uwsgiapp_requests_total", "uwsgiapp_worker_spawns_total")
            }
            assert all(v >= before.get(k, 0) for k, v in counters.items()), (before, counters)
            before = counters
            assert total(m, "uwsgiapp_requests_total") == sent
            assert total(m, "uwsgiapp_workers") == 2
        assert wsum(doc, "requests") == sent
