"""The prefork supervisor with real forks, real signals and a real nginx in front."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import threading
import time
from collections.abc import Iterator
from itertools import pairwise
from pathlib import Path

import pytest
from support.load import Load
from support.procs import (
    Server,
    stack,
    uwsgi_exchange,
    uwsgi_get,
    wait_for_serving,
    wait_for_workers,
    wait_until,
)

import uwsgiproto

pytestmark = pytest.mark.nginx


def children(pid: int) -> set[int]:
    """Worker pids of the master (Linux /proc)."""
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def test_kill_9_worker_loses_only_in_flight_and_is_replaced(
    tmp_path: Path, nginx_available: None
) -> None:
    with stack(tmp_path, "nginx_app:app", workers=2) as (server, nginx):
        wait_until(lambda: len(children(server.pid)) == 2, 10, "2 workers")
        with Load(nginx.port, lambda n: "/sleep?0.05" if n % 5 == 0 else "/", clients=4) as load:
            load.wait_for(300, 20)
            victim = min(children(server.pid))
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: len(children(server.pid) - {victim}) == 2, 5, "a replacement worker")
            load.wait_for(load.result.total + 300, 20)
        result = load.result
    assert result.ok > 500
    # Only the killed worker's in-flight request may fail.
    assert len(result.failures) <= 1, result.failures
    # Replaced at once (no hold: that would say "new workers in N s"); the policy's tests
    # check the same decision without a clock.
    died = server.log().split("killed by signal 9 (SIGKILL)", 1)[1]
    assert "starting a new one" in died.split("\n", 1)[0]
    assert re.search(r"worker \d+ \(pid \d+\) started", died)


SLOW_APP = """
import os, time
time.sleep(1)  # a slow import: new workers must not take traffic before it is done
VERSION = {version!r}

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.2)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [VERSION.encode()]
"""


def test_ten_hup_reloads_under_load_drop_nothing_and_load_new_code(
    tmp_path: Path, nginx_available: None
) -> None:
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "slowapp.py").write_text(SLOW_APP.format(version="v1"))
    with stack(tmp_path, "slowapp:app", workers=2, lazy_apps=True, pythonpath=[str(appdir)]) as (
        server,
        nginx,
    ):
        wait_until(lambda: nginx.request("GET", "/")[2] == b"v1", 20, "v1 answering")
        with Load(nginx.port, lambda n: "/slow" if n % 40 == 0 else "/", clients=8) as load:
            served = []  # requests done when each reload had handed over
            for i in range(10):
                if i == 9:
                    (appdir / "slowapp.py").write_text(SLOW_APP.format(version="v2"))
                server.signal(signal.SIGHUP)
                # The next HUP once this one's new workers imported (1 s) and took over.
                reloads = i + 1
                wait_until(
                    lambda n=reloads: server.log().count("ready, stopping") == n, 20, "a reload"
                )
                served.append(load.result.total)
            wait_until(lambda: nginx.request("GET", "/")[2] == b"v2", 20, "v2 answering")
            load.wait_for(served[-1] + 1_000, 30)  # the new code under the same load
        result = load.result
        errors = nginx.upstream_errors()
    assert result.failures == [], result.failures[:10]
    # Requests were served through each reload's import and hand-over, and after the last.
    assert all(a < b for a, b in pairwise([0, *served])), served
    assert result.ok >= served[-1] + 1_000
    assert errors == []
    assert server.log().count("SIGHUP: graceful reload") == 10


def test_term_completes_every_queued_request_and_exits_zero(
    tmp_path: Path, nginx_available: None
) -> None:
    server = Server(tmp_path, "nginx_app:app", workers=2).start()
    try:
        wait_for_serving(server, 2)  # a worker still starting would be ended by the TERM
        packet = uwsgiproto.build_request(
            {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": "/sleep",
                "QUERY_STRING": "0.2",
                "SERVER_NAME": "t",
                "SERVER_PORT": "80",
                "SERVER_PROTOCOL": "HTTP/1.1",
            }
        )
        clients = []
        for _ in range(12):  # 6x more than workers: most wait in the listen backlog
            s = socket.socket(socket.AF_UNIX)
            s.settimeout(30)
            s.connect(server.socket)
            s.sendall(packet)
            clients.append(s)
        time.sleep(0.05)
        server.signal(signal.SIGTERM)
        answers = []
        for s in clients:
            data = b""
            try:
                while chunk := s.recv(65536):
                    data += chunk
            except OSError as exc:
                data = f"error {exc}".encode()
            s.close()
            answers.append(data.split(b"\r\n", 1)[0])
        code = server.wait(30)
    finally:
        server.stop()
    assert answers == [b"HTTP/1.1 200 OK"] * 12
    assert code == 0
    assert not os.path.exists(server.socket)


def test_harakiri_dumps_the_stuck_stack_and_replaces_the_worker(
    tmp_path: Path, nginx_available: None
) -> None:
    with stack(tmp_path, "nginx_app:app", workers=1, harakiri=1) as (server, nginx):
        started = time.monotonic()
        status, _, _ = nginx.request("GET", "/sleep?30")
        assert status == 502
        assert time.monotonic() - started < 10
        wait_until(lambda: nginx.request("GET", "/")[0] == 200, 10, "the next request")
        log = server.log()
    assert "HARAKIRI" in log
    assert "GET /sleep?30" in log
    assert "time.sleep(seconds)" in log  # the sleeping line, from the Python stack
    assert "in _sleep" in log
    # The Python stack starts at the app: the server's outer frames are counted, not shown
    # (the C-level dump before it, `line N in f` without a comma, still has them all).
    assert re.search(r'\(\d+ frames of the server above\)\n  File "(?!.*uwsgiapp/)', log), log
    assert not re.search(r'uwsgiapp/server/worker\.py", line \d+, in ', log), log


@pytest.mark.parametrize("lazy", [False, True])
def test_app_import_error_exits_quickly_without_fork_loop(tmp_path: Path, lazy: bool) -> None:
    (tmp_path / "brokenapp.py").write_text("import no_such_module_here\napp = None\n")
    server = Server(
        tmp_path, "brokenapp:app", workers=2, lazy_apps=lazy, pythonpath=[str(tmp_path)]
    ).start(wait=False)
    try:
        code = server.wait(5)
    finally:
        server.stop()
    assert code != 0
    log = server.log()
    assert "no_such_module_here" in log
    assert log.count("cannot load the app") <= 2  # at most one per worker, no loop


def test_max_requests_recycles_workers_without_failures(
    tmp_path: Path, nginx_available: None
) -> None:
    with stack(tmp_path, "nginx_app:app", workers=2, max_requests=50, max_requests_jitter=10) as (
        server,
        nginx,
    ):
        pids = set()
        for _ in range(400):
            status, _, body = nginx.request("GET", "/pid")
            assert status == 200
            pids.add(int(body))
        assert len(pids) >= 6
        assert "max-requests" in server.log()


# -- issue 14: max-requests recycling under load, TERM right after HUP or a worker's death ----


def processes_in(directory: Path) -> set[int]:
    """Live processes whose working directory is ``directory``: a server's master and workers
    (they run in the test's workdir; matched by cwd since setproctitle renames workers)."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if os.readlink(entry / "cwd") == str(directory):
                state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    found.add(int(entry.name))
    return found


@contextlib.contextmanager
def one_loop_turn(server: Server) -> Iterator[None]:
    """Whatever is done to the server inside reaches its master in a single loop turn.

    The master is stopped (SIGSTOP) meanwhile: the signals and child exits wait as pending and
    are handled together when it continues, as happens by chance on a busy machine. (Not for
    TTIN/TTOU: the kernel discards pending stop-class signals at SIGCONT.)
    """
    os.kill(server.pid, signal.SIGSTOP)
    try:
        yield
    finally:
        os.kill(server.pid, signal.SIGCONT)


def test_max_requests_under_concurrent_raw_clients_keeps_serving(tmp_path: Path) -> None:
    # A worker can serve its whole quota before a master tick saw it ready; its clean exit
    # used to count as a boot failure, and five in a row stopped the master with code 5.
    server = Server(tmp_path, "supervisor_app:app", workers=2, max_requests=10).start()
    packet = uwsgi_get("/")
    answers: list[bytes] = []
    stop = threading.Event()
    lock = threading.Lock()

    def client() -> None:
        while not stop.is_set():
            result = uwsgi_exchange(server.socket, packet, timeout=10)
            with lock:
                answers.append(result.data.split(b"\r\n", 1)[0] if result.data else result.end)
                if len(answers) >= 4000:
                    stop.set()

    threads = [threading.Thread(target=client, daemon=True) for _ in range(8)]
    try:
        wait_for_workers(server, 2)
        for t in threads:
            t.start()
        deadline = time.monotonic() + 60
        while not stop.is_set() and time.monotonic() < deadline:
            assert server.proc is not None
            if server.proc.poll() is not None:
                break
            time.sleep(0.05)
        stop.set()
        for t in threads:
            t.join(15)
        alive = server.proc is not None and server.proc.poll() is None
        after = uwsgi_exchange(server.socket, packet, timeout=10) if alive else None
    finally:
        stop.set()
        server.stop()
    log = server.log()
    assert alive, f"the master exited with {server.proc and server.proc.returncode}:\n{log[-3000:]}"
    assert "died while starting" not in log
    bad = [a for a in answers if a != b"HTTP/1.1 200 OK"]
    assert len(answers) >= 4000 and bad == [], bad[:10]
    assert log.count("(max-requests), recycling") >= 200  # 4000 requests, 10 per worker
    assert after is not None and after.data.startswith(b"HTTP/1.1 200 OK")


GRACEFUL = 5


def _assert_stops_everything(server: Server, workdir: Path) -> None:
    """The master exits 0 within the graceful timeout; no worker is left; none was killed."""
    started = time.monotonic()
    try:
        code = server.wait(GRACEFUL)
    except Exception:
        code = None
    left = processes_in(workdir) - {server.pid}
    took = time.monotonic() - started
    server.stop()
    for pid in left:  # never leave a process behind, even if the test failed
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    log = server.log()
    assert code == 0, f"master still running {took:.1f}s after TERM (workers {left}):\n{log}"
    assert left == set(), log
    assert "deadline passed" not in log  # every worker got the stop (none waited for a kill)
    assert "all workers stopped" in log


@pytest.mark.parametrize("turn", ["back-to-back", "same-loop-turn"])
def test_term_right_after_hup_stops_every_worker(tmp_path: Path, turn: str) -> None:
    # kill -HUP $M; kill -TERM $M: the reload's new workers used to be forked after TERM had
    # sent its stops, and were never told; the master waited for them forever.
    server = Server(tmp_path, "supervisor_app:app", workers=2, graceful_timeout=GRACEFUL).start()
    wait_for_workers(server, 2)
    if turn == "back-to-back":
        server.signal(signal.SIGHUP)
        server.signal(signal.SIGTERM)
    else:
        with one_loop_turn(server):
            server.signal(signal.SIGHUP)
            server.signal(signal.SIGTERM)
    _assert_stops_everything(server, tmp_path)


@pytest.mark.parametrize("turn", ["back-to-back", "same-loop-turn"])
def test_term_right_after_a_worker_died_stops_every_worker(tmp_path: Path, turn: str) -> None:
    server = Server(tmp_path, "supervisor_app:app", workers=2, graceful_timeout=GRACEFUL).start()
    victim = min(wait_for_workers(server, 2))
    if turn == "back-to-back":
        os.kill(victim, signal.SIGKILL)
        server.signal(signal.SIGTERM)
    else:
        with one_loop_turn(server):
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: victim not in processes_in(tmp_path), 5, "the worker to die")
            server.signal(signal.SIGTERM)
    _assert_stops_everything(server, tmp_path)


SLOW_FORK_APP = """
import os, time
# Every fork of a worker lingers here, before the worker has set up its signal handlers.
os.register_at_fork(after_in_child=lambda: time.sleep(0.5))

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_stop_sent_to_a_worker_being_forked_is_not_lost(tmp_path: Path) -> None:
    # A TERM reaching a worker between fork and its own signal set-up ran the master's handler
    # there and was dropped with the master's signal queue: the worker served on until the
    # graceful deadline's SIGKILL. The master now keeps its signals blocked across fork.
    (tmp_path / "slowfork.py").write_text(SLOW_FORK_APP)
    server = Server(
        tmp_path, "slowfork:app", workers=2, graceful_timeout=GRACEFUL, pythonpath=[str(tmp_path)]
    ).start()
    old = wait_for_workers(server, 2)
    server.signal(signal.SIGHUP)
    wait_until(lambda: len(children(server.pid) - old) == 2, 5, "the new workers' fork")
    server.signal(signal.SIGTERM)  # the new workers are still in the at-fork hook
    _assert_stops_everything(server, tmp_path)


SLOW_IMPORT_APP = """
import time
time.sleep(1.5)

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_usr1_while_lazy_workers_import_does_not_kill_them(tmp_path: Path) -> None:
    # The master forwards USR1 (log rotation) to every worker; one still importing the app had
    # the default disposition for it, i.e. died (and counted as a boot failure).
    (tmp_path / "slowimport.py").write_text(SLOW_IMPORT_APP)
    server = Server(
        tmp_path, "slowimport:app", workers=2, lazy_apps=True, pythonpath=[str(tmp_path)]
    ).start(wait=False)
    try:
        booting = wait_for_workers(server, 2)
        server.signal(signal.SIGUSR1)
        wait_until(lambda: server._ready(), 15, "the workers to load the app")
        answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10)
        workers = children(server.pid)
    finally:
        server.stop()
    assert "killed by signal 10" not in server.log()
    assert workers == booting
    assert answer.data.startswith(b"HTTP/1.1 200 OK")


def test_a_burst_of_hups_with_lazy_apps_keeps_the_workers_bounded(tmp_path: Path) -> None:
    # Each HUP forked a new generation while the previous one, still importing, was kept until
    # a hand-over that the next HUP postponed: 40 HUPs 30 ms apart piled up 64 workers and the
    # master crashed past its status table (a struct.error traceback, the service down).
    (tmp_path / "slowimport.py").write_text(SLOW_IMPORT_APP)
    server = Server(
        tmp_path, "slowimport:app", workers=2, lazy_apps=True, pythonpath=[str(tmp_path)]
    ).start(timeout=20)
    try:
        wait_for_workers(server, 2)
        most = 0
        for _ in range(40):
            server.signal(signal.SIGHUP)
            time.sleep(0.03)
            most = max(most, len(children(server.pid)))
        wait_until(lambda: "ready, stopping" in server.log(), 15, "the last reload's hand-over")
        wait_until(lambda: len(children(server.pid)) == 2, 10, "2 workers")
        answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10)
        alive = server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
    log = server.log()
    assert alive and "Traceback" not in log, log[-3000:]
    assert most <= 12, most  # 2 serving, 2 importing, retired ones on their way out
    assert answer.data.startswith(b"HTTP/1.1 200 OK")
    # (Two HUPs pending at the same time are one: the kernel does not queue standard signals,
    # and a busy master's loop turn can outlast the 30 ms between two.)
    assert log.count("SIGHUP: graceful reload") >= 10


VERSIONED_SLOW_APP = """
import os, time
time.sleep(1.5)
VERSION = {version!r}

def app(environ, start_response):
    if environ["PATH_INFO"] == "/slow":
        time.sleep(0.3)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%s %d" % (VERSION.encode(), os.getpid())]
"""


def _get(server: Server, path: str = "/") -> bytes:
    data = uwsgi_exchange(server.socket, uwsgi_get(path), timeout=10).data
    return data.split(b"\r\n\r\n", 1)[-1]


def _serving(server: Server) -> set[bytes]:
    """The answers of two concurrent slow requests (one per worker when both serve)."""
    answers: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: answers.append(_get(server, "/slow"))) for _ in range(2)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(15)
    return set(answers)


def _lazy_versioned(tmp_path: Path) -> tuple[Server, Path]:
    """A --lazy-apps server of 2 workers (not started) for VERSIONED_SLOW_APP v1, and the
    module's file (a deploy rewrites it)."""
    appdir = tmp_path / "app"
    appdir.mkdir()
    module = appdir / "versioned.py"
    module.write_text(VERSIONED_SLOW_APP.format(version="v1"))
    server = Server(tmp_path, "versioned:app", workers=2, lazy_apps=True, pythonpath=[str(appdir)])
    return server, module


def test_hup_hup_with_broken_code_keeps_the_serving_workers(tmp_path: Path) -> None:
    # The 2nd HUP comes while the 1st reload's workers still import; the 2nd reload's cannot
    # load the app. The workers serving v1 must be the ones kept, counted as the current set:
    # not joined by others forked anew (which would import the broken code), not lingering
    # beside the 1st reload's.
    server, module = _lazy_versioned(tmp_path)
    server.start(timeout=20)
    try:
        serving = wait_for_workers(server, 2)
        expected = {b"v1 %d" % pid for pid in serving}
        wait_until(lambda: _serving(server) == expected, 15, "both workers serving v1")
        time.sleep(0.3)  # the master's tick has seen them ready
        server.signal(signal.SIGHUP)
        wait_until(lambda: len(children(server.pid)) == 4, 5, "the 1st reload's workers")
        time.sleep(0.3)  # they have read v1 and are in its slow import
        module.write_text("raise RuntimeError('broken deploy')\n")
        server.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in server.log(), 10, "the 2nd reload to fail")
        time.sleep(2.5)  # the 1st reload's workers would be ready by now
        workers = children(server.pid)
        answers = {_get(server).split()[0] for _ in range(10)}
        alive = server.proc is not None and server.proc.poll() is None
    finally:
        server.stop()
    log = server.log()
    assert alive, log[-3000:]
    assert workers == serving, log[-3000:]
    assert answers == {b"v1"}


def test_a_lazy_replacement_that_cannot_load_the_app_leaves_the_others_serving(
    tmp_path: Path,
) -> None:
    # --lazy-apps: a replacement that cannot import the code now on disk (a deploy half
    # written) must not take down the workers that loaded the old; the master tries again
    # later and, once the code imports, is back to every worker.
    server, module = _lazy_versioned(tmp_path)
    server.start(timeout=20)
    try:
        first = wait_for_serving(server, 2, timeout=15)
        both = {b"v1 %d" % pid for pid in first}
        wait_until(lambda: _serving(server) == both, 15, "both workers serving v1")
        module.write_text("raise RuntimeError('half a deploy')\n")
        victim, survivor = sorted(first)
        os.kill(victim, signal.SIGKILL)  # a crash, a harakiri, a recycle: a replacement imports
        wait_until(lambda: "trying again in 1 s" in server.log(), 10, "the failed replacement")
        assert _get(server) == b"v1 %d" % survivor
        assert server.proc is not None and server.proc.poll() is None
        module.write_text(VERSIONED_SLOW_APP.format(version="v2"))  # the deploy completes
        # The next try imports it (a worker past its start-up has loaded the app).
        pids = wait_for_serving(server, 2, timeout=20)
    finally:
        server.stop()
    log = server.log()
    assert survivor in pids and victim not in pids, log[-2000:]
    assert "could not load the app; 1 worker serves on" in log
    assert "stopping (no fork loop)" not in log


@pytest.mark.parametrize("threads", [1, 2])
def test_a_lazy_worker_at_max_requests_serves_on_while_replacements_cannot_load(
    tmp_path: Path, threads: int
) -> None:
    # --lazy-apps + --max-requests + code on disk that does not import: the worker left serving
    # the old code went on recycling at its max-requests, and as the last one it stopped the
    # server (exit 4). It now serves on until a replacement loads, then recycles.
    server, module = _lazy_versioned(tmp_path)
    server.options.update(max_requests=8, threads=threads)
    server.start(timeout=20)

    def slow_at_once() -> set[bytes]:  # as many as both workers have threads: each gets some
        answers: list[bytes] = []
        slow = [
            threading.Thread(target=lambda: answers.append(_get(server, "/slow")))
            for _ in range(2 * threads)
        ]
        for t in slow:
            t.start()
        for t in slow:
            t.join(15)
        return set(answers)

    try:
        first = wait_for_serving(server, 2, timeout=15)
        # Both have answered, so both told the master they serve (their handlers, which
        # wait_for_serving looks for, come a moment before): the master then counts them.
        both = {b"v1 %d" % pid for pid in first}
        wait_until(lambda: slow_at_once() == both, 15, "both workers serving v1")
        time.sleep(0.3)  # the master's tick has seen them ready
        module.write_text("raise RuntimeError('half a deploy')\n")
        victim, survivor = sorted(first)
        os.kill(victim, signal.SIGKILL)
        wait_until(lambda: "trying again in 1 s" in server.log(), 10, "the failed replacement")
        answers = {_get(server) for _ in range(12)}  # past its max-requests
        assert server.proc is not None and server.proc.poll() is None
        module.write_text(VERSIONED_SLOW_APP.format(version="v2"))  # the deploy completes
        # A replacement loads v2 (the retry's back-off: up to a few seconds); the hold is let
        # go, and the survivor recycles after its next request: slow ones, as many at once as
        # both workers have threads, so that it gets one.
        wait_until(lambda: _get(server).startswith(b"v2"), 30, "a worker serving v2")

        def recycled() -> bool:
            slow_at_once()
            return survivor not in children(server.pid)

        wait_until(recycled, 20, "the survivor to recycle")
        later = {_get(server).split()[0] for _ in range(4)}
    finally:
        server.stop()
    log = server.log()
    assert answers == {b"v1 %d" % survivor}, log[-2000:]
    assert "but new workers cannot load the app: serving on until one can" in log, log[-2000:]
    assert later == {b"v2"} and "stopping (no fork loop)" not in log
