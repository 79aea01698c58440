"""prometheus_client's multiprocess mode: a reaped worker's live gauges go, as gunicorn users'
``child_exit`` hook (``mark_process_dead``) makes them go; its counters stay."""

from __future__ import annotations

import os
import signal
from pathlib import Path

from support.procs import Server, uwsgi_exchange, uwsgi_get, wait_until

from uwsgiapp.supervisor.livegauges import live_gauge_files, multiproc_dir

APP = """
import os
from prometheus_client import Counter, Gauge

IN_FLIGHT = Gauge("app_in_flight", "requests in flight", multiprocess_mode="livesum")
HITS = Counter("app_hits", "requests")


def app(environ, start_response):
    IN_FLIGHT.inc()  # left up: the worker is killed before its request would end
    HITS.inc()
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def test_a_killed_worker_s_live_gauges_are_removed_and_its_counters_kept(tmp_path: Path) -> None:
    metrics = tmp_path / "metrics"
    metrics.mkdir()
    (tmp_path / "gauged.py").write_text(APP)
    server = Server(
        tmp_path / "run",
        "gauged:app",
        workers=1,
        pythonpath=[str(tmp_path)],
        env=[f"PROMETHEUS_MULTIPROC_DIR={metrics}"],
    )
    server.start()
    try:
        answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
        pid = int(answer.rpartition(b"\r\n\r\n")[2])
        files = set(os.listdir(metrics))
        assert {f"gauge_livesum_{pid}.db", f"counter_{pid}.db"} <= files, files
        os.kill(pid, signal.SIGKILL)
        # Without it the gauge said 1 request in flight for ever: the dead worker's file stayed.
        wait_until(
            lambda: f"gauge_livesum_{pid}.db" not in os.listdir(metrics), 10, "the gauge gone"
        )
        assert f"counter_{pid}.db" in os.listdir(metrics)
    finally:
        server.stop()


def test_only_the_reaped_process_s_live_gauges_are_named() -> None:
    names = [
        "gauge_livesum_12.db",
        "gauge_liveall_12.db",
        "gauge_livesum_112.db",  # another pid that ends in 12
        "gauge_all_12.db",  # kept after a process ends (mode all)
        "counter_12.db",
        "histogram_12.db",
    ]
    assert live_gauge_files(names, 12) == ["gauge_livesum_12.db", "gauge_liveall_12.db"]
    assert multiproc_dir({}) == ""
    assert multiproc_dir({"prometheus_multiproc_dir": "/m"}) == "/m"
    assert (
        multiproc_dir({"PROMETHEUS_MULTIPROC_DIR": "/n", "prometheus_multiproc_dir": "/m"}) == "/n"
    )
