"""What a worker runs at its end, and what the app's import in the master must not break.

- atexit handlers and queued thread-pool work run in each worker that ends as asked (a stop,
  max-requests), as under uWSGI and gunicorn (sentry-sdk flushes its events there).
- A print at import appears once (the master flushes before it forks), a print in a request at
  once (stdout is line-buffered).
- A dictConfig at import (Django's LOGGING) does not silence uwsgiapp's own log.
"""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest
from support.procs import LogCursor, Server, wait_until

from uwsgiapp.client import parse_address, request
from uwsgiapp.supervisor.workerexit import EXIT_WORK_SECONDS


def get(server: Server, path: str) -> bytes:
    return request(parse_address(server.socket), path).body


def events(path: Path) -> list[tuple[str, int]]:
    if not path.exists():
        return []
    return [(a.rsplit(" ", 1)[0], int(a.rsplit(" ", 1)[1])) for a in path.read_text().splitlines()]


@pytest.fixture
def lifecycle(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    monkeypatch.setenv("LIFECYCLE_EVENTS", str(tmp_path / "events.log"))
    return tmp_path / "events.log"


def test_atexit_and_queued_work_run_in_workers_that_end_as_asked(
    tmp_path: Path, lifecycle: Path
) -> None:
    server = Server(tmp_path, "lifecycle_app:app", workers=1).start()
    try:
        first = int(get(server, "/task"))
        server.signal(signal.SIGHUP)  # a reload retires it
        wait_until(lambda: ("atexit", first) in events(lifecycle), 10, "the first worker's exit")
        # The pool's task (0.5 s) was done before the atexit handlers ran, as at a normal exit.
        mine = [name for name, pid in events(lifecycle) if pid == first]
        assert mine == ["task done", "atexit"]
        wait_until(lambda: int(get(server, "/")) != first, 10, "the new worker")
        second = int(get(server, "/"))
    finally:
        server.stop()
    assert ("atexit", second) in events(lifecycle)  # a stop (TERM)
    assert ("atexit", server.pid) in events(lifecycle)  # the master's own exit runs them too


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT], ids=["INT", "QUIT"])
def test_a_quick_stop_runs_the_atexit_handlers_but_not_the_queued_work(
    tmp_path: Path, lifecycle: Path, signum: int
) -> None:
    # What an error tracker still queues is flushed by its atexit handler (sentry-sdk's): a
    # Ctrl-C lost it. The pool's queued task is what a quick stop cuts: it does not run.
    server = Server(tmp_path, "lifecycle_app:app", workers=1).start()
    try:
        worker = int(get(server, "/task"))
        server.signal(signum)
        assert server.wait(15) == 0
    finally:
        server.stop()
    mine = [name for name, pid in events(lifecycle) if pid == worker]
    assert mine == ["atexit"], events(lifecycle)
    assert ("atexit", server.pid) in events(lifecycle)


def test_a_worker_that_dies_runs_no_exit_work(tmp_path: Path, lifecycle: Path) -> None:
    server = Server(tmp_path, "lifecycle_app:app", workers=1).start()
    try:
        with pytest.raises(Exception):  # noqa: B017 - the worker is gone before answering
            get(server, "/exit")
        wait_until(lambda: "exited with code 3" in server.log(), 10, "the crash")
        get(server, "/")  # the new worker serves: a stop while it booted would skip its atexit
    finally:
        server.stop()
    assert [name for name, _ in events(lifecycle)].count("atexit") == 2  # master, new worker


def test_prints_appear_once_and_at_once(tmp_path: Path, lifecycle: Path) -> None:
    server = Server(tmp_path, "lifecycle_app:app", workers=3).start()
    try:
        pid = int(get(server, "/print"))
        wait_until(lambda: f"PRINTED IN A REQUEST {pid}" in server.log(), 10, "the request's print")
    finally:
        server.stop()
    assert server.log().count("PRINTED AT IMPORT") == 1, server.log()


def test_the_apps_dictconfig_does_not_silence_the_servers_log(
    tmp_path: Path, lifecycle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LIFECYCLE_DICTCONFIG", "1")
    server = Server(tmp_path, "lifecycle_app:app", workers=1).start()
    cursor = LogCursor(server.log_path)
    try:
        pid = int(get(server, "/"))
        with pytest.raises(Exception):  # noqa: B017
            get(server, "/exit")
        wait_until(
            lambda: any(f"(pid {pid}) exited with code 3" in line for line in cursor.new_lines()),
            10,
            "the crash line",
        )
        server.signal(signal.SIGHUP)
        wait_until(lambda: "reload:" in server.log(), 10, "the reload lines")
    finally:
        server.stop()
    log = server.log()
    assert "the app's logging configuration disabled uwsgiapp" in log


def test_a_thread_that_never_ends_keeps_a_leaving_worker_5_s_at_most(
    tmp_path: Path, lifecycle: Path
) -> None:
    # A worker leaving on its own (here: a reload) has no kill deadline from the master:
    # joining a thread that never ends must not keep it, and its slot, forever.
    server = Server(tmp_path, "lifecycle_app:app", workers=1).start()
    try:
        first = int(get(server, "/forever"))
        server.signal(signal.SIGHUP)
        wait_until(lambda: int(get(server, "/")) != first, 10, "the new worker")
        wait_until(
            lambda: f"(pid {first}): its exit work" in server.log(), EXIT_WORK_SECONDS + 5, "it"
        )
        wait_until(lambda: f"(pid {first}) exited with code 0" in server.log(), 5, "its exit")
        assert ("atexit", first) not in events(lifecycle)  # still joining the thread
    finally:
        server.stop()


def test_a_thread_the_apps_import_started_keeps_the_stopping_master_5_s_at_most(
    tmp_path: Path, lifecycle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A non-daemon thread started at import (in the master, which imports the app): after
    # "all workers stopped" the interpreter's exit joined it for ever, past a second TERM,
    # until a SIGKILL (Kubernetes' grace period, every stop).
    monkeypatch.setenv("LIFECYCLE_IMPORT_THREAD", "forever")
    server = Server(tmp_path, "lifecycle_app:app", workers=1).start()
    try:
        get(server, "/")
        server.signal(signal.SIGTERM)
        assert server.wait(EXIT_WORK_SECONDS + 10) == 0
        assert f"master (pid {server.pid}): its exit work (the app's threads" in server.log()
    finally:
        server.stop()


def test_a_second_term_does_not_cut_the_masters_exit_work(
    tmp_path: Path, lifecycle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Its thread ends within the bound: the atexit handlers run after it (sentry's flush). A
    # second TERM meanwhile (systemd's, a user's) raised SystemExit in the join, and the
    # master left without them.
    monkeypatch.setenv("LIFECYCLE_IMPORT_THREAD", "3")
    server = Server(tmp_path, "lifecycle_app:app", workers=1).start()
    try:
        get(server, "/")
        server.signal(signal.SIGTERM)
        wait_until(lambda: "all workers stopped" in server.log(), 15, "the workers' stop")
        server.signal(signal.SIGTERM)
        assert server.wait(EXIT_WORK_SECONDS + 10) == 0
    finally:
        server.stop()
    assert ("atexit", server.pid) in events(lifecycle)


def test_a_worker_leaving_on_its_own_is_replaced_before_its_exit_work_ends(
    tmp_path: Path, lifecycle: Path
) -> None:
    # max-requests: the worker stops accepting, then joins the app's threads (here one that
    # never ends: EXIT_WORK_SECONDS). Its slot says it is leaving, so the master starts the
    # next worker at once; the requests meanwhile waited in the backlog for those seconds.
    server = Server(tmp_path, "lifecycle_app:app", workers=1, max_requests=3).start()
    try:
        first = int(get(server, "/forever"))
        for _ in range(3):  # within its max-requests (start-up's own probe may have been one)
            second = int(get(server, "/"))
            leaving = f"(pid {first}) exited" not in server.log()
            if second != first:
                break
        assert second != first
        assert leaving, "the next worker served only once the first one had exited"
        wait_until(lambda: f"(pid {first}) exited with code 0" in server.log(), 15, "its exit")
        assert f"(pid {first}) exited with code 0; starting a new one" not in server.log()
        # The replacement is named with its own pid under the same number.
        assert f"worker 1 (pid {first}) started" in server.log()
        assert f"worker 1 (pid {second}) started" in server.log()
    finally:
        server.stop()


def test_a_quick_stop_does_not_wait_for_the_apps_threads(tmp_path: Path, lifecycle: Path) -> None:
    server = Server(tmp_path, "lifecycle_app:app", workers=1).start()
    try:
        pid = int(get(server, "/forever"))
        started = time.monotonic()
        server.signal(signal.SIGINT)
        assert server.wait(10) == 0
        assert time.monotonic() - started < EXIT_WORK_SECONDS - 1
    finally:
        server.stop()
    assert f"(pid {pid}): its exit work" not in server.log()
    assert ("atexit", pid) in events(lifecycle)  # not the join: the atexit handlers only


def test_workers_of_a_killed_master_serve_what_queues_before_they_leave(tmp_path: Path) -> None:
    # A master killed with SIGKILL (not PID 1: a supervisord or a VM's): its idle worker left
    # at once, the busy one kept the socket to the end of its request, and each connection
    # made meanwhile waited in the queue for it, then was reset (nginx: a 502; gunicorn's and
    # uWSGI's workers serve it).
    import threading

    from support.procs import alive, worker_pids

    server = Server(tmp_path, "supervisor_app:app", workers=2).start()
    marker = tmp_path / "busy"
    orphans: set[int] = set()
    slow: list[bytes] = []
    try:
        wait_until(lambda: len(worker_pids(server.pid)) == 2, 10, "two workers")
        orphans = worker_pids(server.pid)
        busy = threading.Thread(target=lambda: slow.append(get(server, f"/sleep?3&{marker}")))
        busy.start()
        wait_until(marker.exists, 10, "the slow request in a worker")
        busy_pid = int(marker.read_text())
        server.signal(signal.SIGKILL)
        idle = (orphans - {busy_pid}).pop()
        wait_until(lambda: not alive(idle), 10, "the idle worker's exit")  # its queue empty
        assert alive(busy_pid)
        # Queued at the busy worker's copy of the socket: served once its request is done
        assert get(server, "/").startswith(b"pid ")
        busy.join(10)
        assert slow and slow[0].startswith(b"slept pid ")
        wait_until(lambda: not alive(busy_pid), 15, "the busy worker's exit")
    finally:
        for pid in orphans:  # ours: stopped whatever failed
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        server.stop()
    log = server.log()
    assert "is gone: serving what waits in the listen queue, then exiting" in log, log


def test_idle_workers_of_a_killed_master_say_they_go(tmp_path: Path) -> None:
    """With no request in hand they left without a word: the log just stopped (uWSGI's and
    gunicorn's workers each say it)."""
    from support.procs import alive, worker_pids

    server = Server(tmp_path, "supervisor_app:app", workers=2).start()
    orphans: set[int] = set()
    try:
        wait_until(lambda: len(worker_pids(server.pid)) == 2, 10, "two workers")
        orphans = worker_pids(server.pid)
        time.sleep(0.5)  # both idle in their loops
        server.signal(signal.SIGKILL)
        wait_until(lambda: not any(alive(pid) for pid in orphans), 10, "the workers' exit")
    finally:
        for pid in orphans:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        server.stop()
    said = [line for line in server.log().splitlines() if "is gone: serving" in line]
    assert {pid for pid in orphans if any(f"(pid {pid})" in line for line in said)} == orphans


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["TERM", "INT"])
def test_a_temporary_file_a_reference_cycle_holds_is_removed_at_the_workers_end(
    tmp_path: Path, lifecycle: Path, monkeypatch: pytest.MonkeyPatch, signum: int
) -> None:
    # Django's upload of a client that left mid-body: its temp file, held in a cycle, stayed
    # on disk for good once the worker ended with os._exit (the interpreter's exit collects).
    temps = tmp_path / "temps"
    temps.mkdir()
    monkeypatch.setenv("TMPS", str(temps))
    server = Server(tmp_path / "s", "lifecycle_app:app", workers=1).start()
    try:
        name = get(server, "/cycle").decode()
        assert Path(name).exists()
        server.signal(signum)
        assert server.wait(15) == 0
    finally:
        server.stop()
    assert not list(temps.iterdir())


def test_the_logging_configuration_line_is_worker_1s_with_lazy_apps(
    tmp_path: Path, lifecycle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Each --lazy-apps worker imports the app: every start and recycle said it again (8 lines
    # a minute with --max-requests 5).
    monkeypatch.setenv("LIFECYCLE_DICTCONFIG", "1")
    options = {"workers": 2, "lazy_apps": True, "max_requests": 1}
    server = Server(tmp_path, "lifecycle_app:app", **options).start()
    try:
        for _ in range(4):  # recycles
            get(server, "/")
        wait_until(lambda: server.log().count(" started") >= 5, 10, "the recycled workers")
    finally:
        server.stop()
    log = server.log()
    said = [line for line in log.splitlines() if "logging configuration disabled" in line]
    by = {line.split("[", 2)[1].split("]")[0] for line in said}  # the pids that said it
    ones = set(re.findall(r"worker 1 \(pid (\d+)\) started", log))
    twos = set(re.findall(r"worker 2 \(pid (\d+)\) started", log))
    assert said and twos and by <= ones, (said, ones)  # worker 2 never says it
