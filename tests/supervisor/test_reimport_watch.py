"""While a HUP's re-import holds the master's loop (seconds, for a big app), the workers are
still looked at: ``--harakiri`` cuts a stuck request then, not at the import's end (a 3 s
harakiri cut at 9.7 s), and a worker that exits is out of the stats (a health check said
"healthy: 2 workers accept" of two dead ones) until the loop replaces it."""

from __future__ import annotations

import contextlib
import json
import logging
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from support.procs import Server, short_tmpdir, wait_until

from uwsgiapp.client import ClientError, parse_address, request
from uwsgiapp.supervisor.actions import WorkerRecord, WorkerState
from uwsgiapp.supervisor.meanwhile import Watch

SLOW_APP = """
import os, time
from pathlib import Path

flag = Path(os.environ["SLOW_FLAG"])
if flag.exists():  # the HUP's re-import; the first import is quick
    spin, wait = map(float, flag.read_text().split())
    end = time.monotonic() + spin
    while time.monotonic() < end:  # gevent's loop does not run meanwhile: it reaps later
        pass
    time.sleep(wait)


def app(environ, start_response):
    if environ["PATH_INFO"] == "/stuck":
        time.sleep(60)
    if environ["PATH_INFO"] == "/exit":
        os._exit(3)
    start_response("200 OK", [])
    return [b"ok"]
"""


def _stats(path: str) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    doc: dict[str, object] = json.loads(data)
    return doc


def _ask(address: str, path: str) -> None:
    with contextlib.suppress(ClientError):  # cut: what the test waits for
        request(parse_address(address), path, timeout=30)


GREEN = "from gevent import monkey\nmonkey.patch_all()\n"


@pytest.mark.parametrize("green", [False, True], ids=["plain", "gevent"])
def test_the_workers_are_looked_at_while_the_master_imports_the_app(
    tmp_path: Path, green: bool
) -> None:
    """With gevent, the app's re-import in the master reaps the killed workers itself (its
    child watcher), here once the thread has seen them exit: their exits were never seen,
    and a TERM then waited for them to its deadline."""
    if green:
        pytest.importorskip("gevent")
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "slowre.py").write_text((GREEN if green else "") + SLOW_APP)
    flag = tmp_path / "slow"
    stats = f"{short_tmpdir()}/stats.sock"
    server = Server(
        tmp_path, "slowre:app", workers=2, pythonpath=[str(apps)], harakiri=2,
        reload_check_timeout=0, stats=stats, env=[f"SLOW_FLAG={flag}"],
    )  # fmt: skip
    server.start(timeout=20)
    asked: list[threading.Thread] = []
    try:
        wait_until(lambda: _accepting(stats) == 2, 15, "two workers ready")  # else stopped
        # The stats say what the slots say; the master takes them for ready at its next tick
        # (0.1 s): a HUP before that is a HUP of starting workers (their own test's case).
        time.sleep(0.3)
        flag.write_text("5 4" if green else "0 12")
        server.signal(signal.SIGHUP)
        wait_until(lambda: "re-importing the app in the master" in server.log(), 10, "the import")
        for path in ("/stuck", "/exit"):
            asked.append(threading.Thread(target=_ask, args=(server.socket, path)))
            asked[-1].start()
        said = "exited while the master imports the app"
        wait_until(lambda: server.log().count(said) == 2, 10, "both workers gone meanwhile")
        doc = _stats(stats)
        assert _accepting(stats) == 0, doc  # 2 dead workers were "2 workers accept"
        log = server.log()
        assert "reload: app re-imported" not in log, log  # all of it while the import ran
        # Dumped and cut (a Python sleep: the worker's handler runs, and it leaves).
        assert "HARAKIRI: worker" in log and "stuck in GET /stuck; its stack" in log, log
        wait_until(lambda: "reload: app re-imported" in server.log(), 20, "the import's end")
        flag.unlink()
        wait_until(lambda: _ok(server.socket), 15, "new workers serving")
        server.signal(signal.SIGTERM)
        assert server.wait(20) == 0  # every exit seen: none waited for
    finally:
        server.stop()
        for thread in asked:
            thread.join(30)


def _ok(address: str) -> bool:
    try:
        return request(parse_address(address), "/", timeout=5).status == 200
    except ClientError:
        return False


def _accepting(stats: str) -> int:
    workers = _stats(stats)["workers"]
    assert isinstance(workers, list)
    return sum(1 for worker in workers if worker["accepting"] and worker["pid"])


class _Policy:
    """What :class:`Watch` asks of the policy: its records, and no deadline to act on."""

    def __init__(self, records: dict[int, WorkerRecord]) -> None:
        self.records = records

    def while_importing(self, now: float, wall: float, status: object) -> list[object]:
        return []


def test_a_worker_told_to_leave_that_exits_meanwhile_is_not_said_to_be_replaced(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # Two HUPs a few seconds apart: the first reload's old workers, retired and done, exited
    # during the second re-import, and a WARNING said each would be replaced (none is).
    procs = [subprocess.Popen([sys.executable, "-c", "pass"]) for _ in range(3)]
    try:
        states = (WorkerState.READY, WorkerState.STOPPING, WorkerState.RETIRING)
        records = {
            wid: WorkerRecord(wid, proc.pid, 1, 0.0, state=state, number=wid + 1)
            for wid, (proc, state) in enumerate(zip(procs, states, strict=True))
        }
        watch = Watch(_Policy(records), lambda wid: None, lambda actions: None)  # type: ignore[arg-type]
        wait_until(lambda: all(watch._look(p.pid) for p in procs), 10, "the exits")
        with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
            watch.tick()
        assert watch.gone == {p.pid for p in procs}  # out of the stats, all three
        said = [r.getMessage() for r in caplog.records]
        assert said == [f"worker 1 (pid {procs[0].pid}) exited while the master imports the "
                        "app: replaced once the import ends"], said  # fmt: skip
    finally:
        for proc in procs:
            proc.wait()


RECYCLE_APP = """
import os, time
from pathlib import Path

flag = Path(os.environ["SLOW_FLAG"])
if flag.exists():  # the HUP's re-import, in the master: 4 s
    time.sleep(4)


def app(environ, start_response):
    start_response("200 OK", [])
    return [b"ok"]
"""


def test_workers_at_max_requests_serve_on_while_the_master_imports_new_code(
    tmp_path: Path,
) -> None:
    # Under a steady load every worker reached its max-requests during the import and left,
    # and nothing was forked to replace them: no worker served until the import's end (the
    # health check said "0 workers accept").
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "recyc.py").write_text(RECYCLE_APP)
    flag = tmp_path / "slow"
    server = Server(
        tmp_path, "recyc:app", workers=1, pythonpath=[str(apps)], max_requests=4,
        reload_check_timeout=0, env=[f"SLOW_FLAG={flag}"],
    )  # fmt: skip
    server.start(timeout=20)
    try:
        wait_until(lambda: _ok(server.socket), 15, "the worker serving")
        time.sleep(0.3)
        flag.write_text("")
        server.signal(signal.SIGHUP)
        wait_until(lambda: "re-importing the app in the master" in server.log(), 10, "the import")
        time.sleep(0.3)
        slowest = 0.0
        for _ in range(8):  # past its max-requests, while the import runs
            began = time.monotonic()
            assert _ok(server.socket)
            slowest = max(slowest, time.monotonic() - began)
        log = server.log()
        assert "reload: app re-imported" not in log, log  # all of it during the import
        assert slowest < 2.0, log  # each served at once, none waited for the import's end
        assert "the master imports new code (a reload) and starts no worker meanwhile" in log
        wait_until(lambda: "reload: app re-imported" in server.log(), 20, "the import's end")
        flag.unlink()
        wait_until(lambda: _ok(server.socket), 15, "the new worker serving")
        assert "exited while the master imports the app" not in server.log()
    finally:
        server.stop()
