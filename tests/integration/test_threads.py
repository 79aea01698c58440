"""``--threads N`` with real nginx, real forks and real threads: concurrency, harakiri on one
thread, HUP and TERM under threaded load (each request's own environ and input:
tests/reliability/test_threads_isolation.py)."""

from __future__ import annotations

import json
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from support.load import Load
from support.procs import (
    Server,
    http_request,
    stack,
    uwsgi_exchange,
    uwsgi_get,
    wait_for_workers,
    wait_until,
)

from uwsgiapp.server.throttle import INVALID_LOG_BURST, INVALID_LOG_WINDOW

pytestmark = pytest.mark.nginx


def _concurrently(port: int, paths: list[str]) -> list[tuple[int, bytes]]:
    """Send every path at once (a thread each); the answers."""
    answers: list[tuple[int, bytes]] = []
    lock = threading.Lock()

    def one(path: str) -> None:
        status, _, body = http_request(port, "GET", path, timeout=30)
        with lock:
            answers.append((status, body))

    threads = [threading.Thread(target=one, args=(path,)) for path in paths]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(40)
    return answers


def test_16_slow_requests_on_2_workers_of_8_threads_take_one_request_time(
    tmp_path: Path, nginx_available: None
) -> None:
    with stack(tmp_path, "threads_app:app", workers=2, threads=8) as (server, nginx):
        wait_for_workers(server, 2)
        _concurrently(nginx.port, ["/sleep?0.01"] * 16)  # warm: every thread has started
        answers = _concurrently(nginx.port, ["/sleep?1"] * 16)
    assert [status for status, _ in answers] == [200] * 16
    served = [json.loads(body) for _, body in answers]
    # All 16 were in the app at one moment (one at a time per thread, 8 would wait for others).
    assert max(s["began"] for s in served) < min(s["ended"] for s in served), served
    assert len({(s["pid"], s["thread"]) for s in served}) == 16
    assert len({s["pid"] for s in served}) == 2
    assert all(s["multithread"] for s in served)


def test_harakiri_on_one_thread_names_its_frame_while_seven_others_serve(
    tmp_path: Path, nginx_available: None
) -> None:
    with stack(tmp_path, "threads_app:app", workers=1, threads=8, harakiri=1) as (server, nginx):
        wait_for_workers(server, 1)
        stuck: list[int] = []
        blocker = threading.Thread(
            target=lambda: stuck.append(http_request(nginx.port, "GET", "/stuck?60")[0])
        )
        blocker.start()
        with Load(nginx.port, lambda n: "/sleep?0.1", clients=7, timeout=30) as load:
            wait_until(lambda: "HARAKIRI" in server.log(), 10, "the harakiri")
            wait_until(lambda: "exited" in server.log() or "killed" in server.log(), 10, "kill")
            load.wait_for(load.result.total + 50, 20)
        blocker.join(30)
        log = server.log()
    assert stuck == [502]
    # The other threads' requests finished: the worker stopped accepting at the dump.
    assert load.result.failures == [], load.result.failures[:5]
    assert load.result.ok > 50
    match = re.search(
        r"harakiri: worker 1 \(pid \d+\) thread (\d+) stuck in GET /stuck\?60 for", log
    )
    assert match, log
    own = log[match.start() :].split("harakiri: worker", 2)[1]
    assert "in stuck_here" in own and "time.sleep(seconds)" in own, own
    assert "(also busy) in GET /sleep?0.1" in log or "no request" not in log


def test_a_harakiri_writes_a_stack_its_busy_threads_share_once(
    tmp_path: Path, nginx_available: None
) -> None:
    # Threads that wait on one thing (a database gone) have one stack: eight threads wrote it
    # eight times, ~490 lines for one harakiri.
    with stack(tmp_path, "threads_app:app", workers=1, threads=4, harakiri=1) as (server, nginx):
        wait_for_workers(server, 1)
        answers = _concurrently(nginx.port, ["/stuck?60"] * 4)
        log = server.log()
    assert [status for status, _ in answers] == [502] * 4
    lines = re.findall(r"harakiri: worker 1 \(pid \d+\) thread (\d) (.*)", log)
    assert len(lines) == 4, log
    first = lines[0][0]
    assert lines[0][1].startswith("stuck in GET /stuck?60 for") and lines[0][1].endswith(
        "its stack:"
    )
    for _thread, text in lines[1:]:
        assert text.startswith("(also busy) in GET /stuck?60 for"), text
        assert text.endswith(f"its stack is thread {first}'s, above"), text
    assert log.count("time.sleep(seconds)") == 1, log


def test_after_a_harakiri_the_other_threads_long_requests_finish(
    tmp_path: Path, nginx_available: None
) -> None:
    # The worker accepts no more once it dumped its stack (a new one serves meanwhile); its
    # other threads' requests get until --harakiri more seconds before the kill. One second
    # (a single thread's grace) cut a 5.5 s request with a 502.
    with stack(tmp_path, "threads_app:app", workers=1, threads=4, harakiri=4) as (server, nginx):
        wait_for_workers(server, 1)
        answers: dict[str, int] = {}

        def ask(path: str) -> None:
            answers[path] = http_request(nginx.port, "GET", path, timeout=30)[0]

        stuck = threading.Thread(target=ask, args=("/stuck?60",))
        stuck.start()
        time.sleep(1)
        other = threading.Thread(target=ask, args=("/sleep?5.5",))
        other.start()
        wait_until(lambda: "HARAKIRI" in server.log(), 10, "the harakiri")
        other.join(30)
        stuck.join(30)
        log = server.log()
    assert answers == {"/stuck?60": 502, "/sleep?5.5": 200}, log
    assert "then killing it (in 4s) if it stays" in log


def test_harakiri_cuts_a_thread_stuck_in_python_code_at_once(
    tmp_path: Path, nginx_available: None
) -> None:
    # With threads the stuck worker is killed only after --harakiri more seconds (its other
    # threads' grace): a request stuck in Python ran on till then, and one that ended in
    # between was served, though the log had said "killing it". The stuck thread's request is
    # now cut at the harakiri (its finally blocks run); its worker still leaves.
    options = {"workers": 1, "threads": 4, "harakiri": 2}
    with stack(tmp_path, "threads_app:app", **options) as (server, nginx):
        wait_for_workers(server, 1)
        started = time.monotonic()
        status = http_request(nginx.port, "GET", "/spin?7", timeout=30)[0]
        took = time.monotonic() - started
        wait_until(lambda: "spin: finally ran" in server.log(), 10, "the app's finally")
        log = server.log()
    assert status == 502, log
    assert took < 4.5, (took, log)  # cut at 2 s (and a tick), not killed at 4 s nor served at 7
    assert "stuck in GET /spin?7" in log


@pytest.mark.parametrize("sig", [signal.SIGHUP, signal.SIGTERM])
def test_hup_and_term_under_threaded_load_fail_nothing(
    tmp_path: Path, nginx_available: None, sig: signal.Signals
) -> None:
    with stack(tmp_path, "threads_app:app", workers=2, threads=4) as (server, nginx):
        wait_for_workers(server, 2)
        paths = ["/sleep?0.2", "/sleep?0.01", "/", "/sleep?0.05"]
        with Load(nginx.port, lambda n: paths[n % 4], clients=16, timeout=30) as load:
            load.wait_for(200, 20)
            if sig == signal.SIGHUP:
                for reloads in range(1, 4):  # each HUP once the last one's workers took over
                    server.signal(sig)
                    wait_until(
                        lambda n=reloads: server.log().count("ready, stopping") == n, 15, "a reload"
                    )
                load.wait_for(load.result.total + 200, 20)
            else:
                # TERM: every request nginx passed on finishes; later ones find no socket.
                server.signal(sig)
                assert server.wait(30) == 0
        result = load.result
        errors = nginx.upstream_errors()
        log = server.log()
    if sig == signal.SIGHUP:
        assert result.failures == [], result.failures[:5]
        assert errors == []
    else:
        # After TERM the socket is gone: nginx answers 502 without reaching us ("connect()
        # failed"); no request that reached a worker may fail.
        reached = [e for e in errors if "connect() to" not in e]
        assert reached == [], reached[:5]
    assert "Traceback" not in log


def test_held_back_body_lines_are_counted_at_the_windows_end(tmp_path: Path) -> None:
    # With --threads, the request threads leave the throttled lines' count to the main thread:
    # it was said only at the next such response or at the worker's exit, minutes later.
    (tmp_path / "overrun.py").write_text(
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [('Content-Length', '5')])\n"
        "    return [b'0123456789abcdef']\n"
    )
    server = Server(tmp_path, "overrun:app", pythonpath=[str(tmp_path)], workers=1, threads=2)
    server.start()
    try:
        for _ in range(INVALID_LOG_BURST + 3):
            assert uwsgi_exchange(server.socket, uwsgi_get("/over"), timeout=10).data.endswith(
                b"\r\n\r\n01234"
            )
        wait_until(
            lambda: "3 more responses whose body or Content-Length did not fit" in server.log(),
            INVALID_LOG_WINDOW + 5,
            "the window's count",
        )
    finally:
        server.stop()
