"""A deploy's bad releases, each loaded by a HUP under load through a real nginx: new code that
ends the process importing it (``os._exit``, a segfault, an abort) or never finishes importing.
The preloaded app's new code is imported in a child first: each reload is called off, the old
workers serve on, and the good release after them reloads."""

from __future__ import annotations

import signal
from pathlib import Path

import pytest
from reliability.conftest import Report, sized
from support.load import Load
from support.procs import stack, wait_until, worker_pids

pytestmark = pytest.mark.nginx

APP = """
import os

VERSION = {version!r}
{body}

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
"""

BAD = {
    "os._exit": "os._exit(3)",
    "segfault": "import ctypes; ctypes.string_at(0)",
    "abort": "os.abort()",
    "hang": "while True:\n    pass",
}


def test_bad_releases_under_load_fail_only_their_reload(
    tmp_path: Path, nginx_available: None, report: Report
) -> None:
    rounds = sized(1, 3)
    report(
        f"HUP with a release that exits, segfaults, aborts or hangs at import, under load "
        f"({rounds} round(s) of each)",
        "each reload is called off with one line naming what happened, the master and its old "
        "workers serve on (the same pids): 0 failed requests, no upstream error in nginx's "
        "log; the good release after them reloads",
    )
    module = tmp_path / "release.py"
    module.write_text(APP.format(version="v1", body=""))
    options = {"workers": 2, "pythonpath": [str(tmp_path)], "reload_check_timeout": 1}
    with stack(tmp_path, "release:app", **options) as (server, nginx):
        wait_until(lambda: len(worker_pids(server.pid)) == 2, 10, "2 workers")
        old = worker_pids(server.pid)
        with Load(nginx.port, lambda n: f"/?n={n}", clients=4) as load:
            load.wait_for(100, 20)
            failed = 0
            for _ in range(rounds):
                for name, body in BAD.items():
                    module.write_text(APP.format(version=f"v2-{name}", body=body))
                    server.signal(signal.SIGHUP)
                    failed += 1
                    wait_until(lambda f=failed: server.log().count("reload failed") == f, 30, name)
                    load.wait_for(load.result.total + 50, 20)
                    assert worker_pids(server.pid) == old, server.log()
            module.write_text(APP.format(version="v3", body=""))
            server.signal(signal.SIGHUP)
            wait_until(lambda: "ready, stopping" in server.log(), 30, "the good release")
            wait_until(lambda: "v3" in load.result.bodies, 20, "v3 to answer")
            load.wait_for(load.result.total + 100, 20)
        result = load.result
        errors = nginx.upstream_errors()
    log = server.log()
    said = [line for line in log.splitlines() if "tried in a child process" in line]
    report.add(
        reloads_called_off=failed,
        requests=result.total,
        failed=len(result.failures),
        nginx_upstream_errors=len(errors),
    )
    assert result.failures == [], result.failures[:5]
    assert errors == []
    assert set(result.bodies) == {"v1", "v3"}
    assert len(said) == failed, log
    assert "Fatal Python error" not in log and "Traceback" not in log, log
