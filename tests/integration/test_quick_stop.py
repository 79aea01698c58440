"""INT and QUIT: the quick stop, and what it says about the requests it cuts."""

from __future__ import annotations

import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from support.procs import Server, uwsgi_get, wait_for_serving, wait_until

pytestmark = pytest.mark.nginx


@pytest.mark.parametrize(
    ("signum", "threads"),
    [(signal.SIGINT, 1), (signal.SIGQUIT, 1), (signal.SIGINT, 2)],
    ids=["INT", "QUIT", "INT-threads"],
)
def test_a_quick_stop_says_which_request_it_cuts(tmp_path: Path, signum: int, threads: int) -> None:
    server = Server(tmp_path, "supervisor_app:app", workers=1, threads=threads).start()
    try:
        client = _sleeping_request(server, tmp_path)
        server.signal(signum)
        assert server.wait(15) == 0
        client.close()
    finally:
        server.stop()
    log = server.log()
    assert f"{signal.Signals(signum).name}: quick stop" in log  # the master's
    assert log.count("SIGINT: quick stop, cutting GET /sleep") == 1  # the worker's, told INT
    if threads > 1:  # which request thread took it is the kernel's choice
        assert re.search(r"SIGINT: quick stop, cutting GET /sleep \(thread [12]\)\n", log), log


def test_a_request_still_running_at_the_graceful_deadline_is_cut_and_named(
    tmp_path: Path,
) -> None:
    # TERM waits --graceful-timeout for the request; then SIGINT (the worker names the request
    # it cuts, the app's finally blocks run), and only then, if need be, SIGKILL.
    server = Server(tmp_path, "supervisor_app:app", workers=1, graceful_timeout=1).start()
    try:
        client = _sleeping_request(server, tmp_path)
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
        client.close()
    finally:
        server.stop()
    log = server.log()
    assert "stop deadline passed in a request (the oldest " in log
    assert "SIGINT: quick stop, cutting GET /sleep" in log
    assert "killing it" in log and "SIGKILL" not in log.split("cutting GET /sleep", 1)[1]


@pytest.mark.parametrize("threads", [1, 3])
def test_a_cut_request_runs_its_finally_blocks_with_threads_too(
    tmp_path: Path, threads: int
) -> None:
    # The README's promise at the graceful deadline. With --threads the requests run in
    # threads that the signal does not interrupt: they were daemon threads ended by the exit,
    # their finally blocks never ran (a lock, a transaction, a temp file left behind).
    server = Server(
        tmp_path, "supervisor_app:app", workers=1, threads=threads, graceful_timeout=1
    ).start()
    markers = [tmp_path / f"poll-{n}" for n in range(min(threads, 2))]
    clients = []
    try:
        wait_for_serving(server, 1)
        for marker in markers:
            client = socket.socket(socket.AF_UNIX)
            client.connect(server.socket)
            client.sendall(uwsgi_get("/poll", f"30&{marker}"))
            clients.append(client)
        wait_until(lambda: all(m.exists() for m in markers), 10, "the requests in the app")
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
    finally:
        for client in clients:
            client.close()
        server.stop()
    assert [m.read_text().endswith(" finally") for m in markers] == [True] * len(markers)
    log = server.log()
    assert log.count("SIGINT: quick stop, cutting GET /poll") == len(markers), log
    assert "request thread" not in log and "Traceback" not in log, log


def _poll(server: Server, query: str) -> socket.socket:
    client = socket.socket(socket.AF_UNIX)
    client.connect(server.socket)
    client.sendall(uwsgi_get("/poll", query))
    return client


def test_a_second_int_does_not_cut_the_clean_up_the_first_lets_run(tmp_path: Path) -> None:
    # A terminal's Ctrl-C reaches the worker, and the master passes its own on: two INTs.
    server = Server(tmp_path, "supervisor_app:app", workers=1, threads=2).start()
    marker = tmp_path / "poll"
    try:
        (worker,) = wait_for_serving(server, 1)
        client = _poll(server, f"30&{marker}&0.5")
        wait_until(marker.exists, 10, "the request in the app")
        os.kill(worker, signal.SIGINT)
        time.sleep(0.1)  # in its half-second clean-up
        os.kill(worker, signal.SIGINT)
        wait_until(lambda: marker.read_text().endswith(" finally"), 10, "the whole clean-up")
        client.close()
    finally:
        server.stop()
    assert server.log().count("SIGINT: quick stop, cutting GET /poll") == 1


def test_a_threaded_worker_that_stops_quickly_takes_no_new_request(tmp_path: Path) -> None:
    # While its busy threads unwind, the idle ones accepted: that request was cut at the exit,
    # without a word. It waits in the backlog for the next worker now.
    server = Server(tmp_path, "supervisor_app:app", workers=1, threads=3).start()
    first, second = tmp_path / "first", tmp_path / "second"
    try:
        (worker,) = wait_for_serving(server, 1)
        busy = _poll(server, f"30&{first}&0.5")
        wait_until(first.exists, 10, "the first request in the app")
        os.kill(worker, signal.SIGINT)  # as the master's cut at the graceful deadline
        time.sleep(0.03)
        late = _poll(server, f"0&{second}")
        late.settimeout(15)
        assert late.recv(100).startswith(b"HTTP/1.1 200"), server.log()
        assert second.read_text() != str(worker) + " finally"  # another worker served it
        busy.close()
        late.close()
    finally:
        server.stop()
    assert first.read_text() == f"{worker} finally"


def test_ctrl_c_to_the_whole_group_is_one_stop_not_deaths_to_replace(tmp_path: Path) -> None:
    # A terminal's Ctrl-C sends SIGINT to every process of the group: the workers may be gone
    # before the master reads its own SIGINT. Made certain here: the master is held (SIGSTOP)
    # until both are zombies and its SIGINT waits too.
    server = Server(tmp_path, "supervisor_app:app", workers=2).start()
    try:
        workers = wait_for_serving(server, 2)
        server.signal(signal.SIGSTOP)
        try:
            for pid in workers:
                os.kill(pid, signal.SIGINT)
            wait_until(lambda: all(_zombie(pid) for pid in workers), 10, "the workers' exits")
            server.signal(signal.SIGINT)
        finally:
            server.signal(signal.SIGCONT)
        assert server.wait(15) == 0
    finally:
        server.stop()
    log = server.log()
    assert "SIGINT: quick stop" in log and "all workers stopped" in log
    assert "starting a new one" not in log, log


def _zombie(pid: int) -> bool:
    stat = Path(f"/proc/{pid}/stat").read_text()
    return stat.rpartition(")")[2].split()[0] == "Z"


def _sleeping_request(server: Server, tmp_path: Path) -> socket.socket:
    """A request the app is sleeping in (for 30 s): its client connection."""
    wait_for_serving(server, 1)
    client = socket.socket(socket.AF_UNIX)
    client.connect(server.socket)
    marker = tmp_path / "in-the-app"
    client.sendall(uwsgi_get("/sleep", f"30&{marker}"))
    wait_until(marker.exists, 10, "the request in the app's sleep")
    return client
