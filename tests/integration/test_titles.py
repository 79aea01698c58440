"""Process titles out of the box: ``ps`` tells the master from each worker (a real server)."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

from support.procs import Server, uwsgi_exchange, wait_until

import uwsgiproto


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def test_master_and_workers_show_their_role_in_ps(tmp_path: Path) -> None:
    server = Server(tmp_path, "supervisor_app:app", workers=2).start()
    try:
        expected = [
            "uwsgiapp worker 1 [supervisor_app:app]",
            "uwsgiapp worker 2 [supervisor_app:app]",
        ]

        def titled() -> bool:  # a worker sets its title just after fork: wait for it
            pids = children(server.pid)
            return len(pids) == 2 and sorted(cmdline(pid) for pid in pids) == expected

        wait_until(titled, 20, "2 workers with their titles")
        master = cmdline(server.pid)
        workers = sorted(cmdline(pid) for pid in children(server.pid))
    finally:
        server.stop()
    assert master == "uwsgiapp master [supervisor_app:app]"
    assert workers == [
        "uwsgiapp worker 1 [supervisor_app:app]",
        "uwsgiapp worker 2 [supervisor_app:app]",
    ]


def test_without_setproctitle_linux_gets_a_short_name(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['setproctitle'] = None\n"  # as if it were not installed
        "from uwsgiapp.supervisor.titles import set_title, worker_title\n"
        "set_title(*worker_title(12, 'app:app'))\n"
        "print(open('/proc/self/comm').read().strip())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "uwsgiapp w12"


def _worker_titles(server: Server) -> list[str]:
    return sorted(cmdline(pid) for pid in children(server.pid))


def _sleep_request(server: Server, path: str) -> threading.Thread:
    env = {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1"}
    env["QUERY_STRING"] = "1.5"
    packet = uwsgiproto.build_request(env)
    thread = threading.Thread(
        target=uwsgi_exchange, args=(server.socket, packet), kwargs={"timeout": 20}
    )
    thread.start()
    return thread


def test_request_titles_show_busy_with_the_request_then_idle(tmp_path: Path) -> None:
    server = Server(tmp_path, "supervisor_app:app", request_titles=True).start()
    base = "uwsgiapp worker 1 [supervisor_app:app]"
    try:
        wait_until(lambda: _worker_titles(server) == [f"{base} idle"], 20, "the idle title")
        request = _sleep_request(server, "/sleep/\x1b[31mred")
        busy = f"{base} busy GET /sleep/\\x1B[31mred"  # escaped, and no query string
        wait_until(lambda: _worker_titles(server) == [busy], 10, "the busy title")
        request.join(20)
        wait_until(lambda: _worker_titles(server) == [f"{base} idle"], 10, "idle again")
    finally:
        server.stop()


def test_request_titles_count_busy_threads(tmp_path: Path) -> None:
    server = Server(tmp_path, "supervisor_app:app", request_titles=True, threads=3).start()
    base = "uwsgiapp worker 1 [supervisor_app:app]"
    try:
        wait_until(lambda: _worker_titles(server) == [f"{base} idle"], 20, "the idle title")
        first = _sleep_request(server, "/sleep/a")
        wait_until(
            lambda: _worker_titles(server) == [f"{base} busy 1/3 GET /sleep/a"], 10, "one busy"
        )
        second = _sleep_request(server, "/sleep/b")
        two = [[f"{base} busy 2/3 GET /sleep/{x}"] for x in "ab"]
        wait_until(lambda: _worker_titles(server) in two, 10, "two busy")
        first.join(20)
        second.join(20)
        wait_until(lambda: _worker_titles(server) == [f"{base} idle"], 10, "idle again")
    finally:
        server.stop()


def test_without_request_titles_a_request_leaves_the_title_alone(tmp_path: Path) -> None:
    server = Server(tmp_path, "supervisor_app:app").start()
    base = "uwsgiapp worker 1 [supervisor_app:app]"
    try:
        wait_until(lambda: _worker_titles(server) == [base], 20, "the worker's title")
        request = _sleep_request(server, "/sleep")
        time.sleep(0.5)  # inside the 1.5 s request
        assert _worker_titles(server) == [base]
        request.join(20)
    finally:
        server.stop()


def test_request_titles_without_setproctitle_warn_and_serve(tmp_path: Path) -> None:
    server = Server(tmp_path, "supervisor_app:app", request_titles=True)
    hide = (
        "import runpy, sys; sys.modules['setproctitle'] = None; sys.argv[0] = 'uwsgiapp'; "
        "runpy.run_module('uwsgiapp', run_name='__main__', alter_sys=True)"
    )
    argv = server.command()
    assert argv[1:3] == ["-m", "uwsgiapp"]
    argv[1:3] = ["-c", hide]
    log = (tmp_path / "hidden.log").open("wb")
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
    try:
        wait_until(lambda: os.path.exists(server.socket), 20, "the socket")
        packet = uwsgiproto.build_request(
            {"REQUEST_METHOD": "GET", "PATH_INFO": "/pid", "SERVER_PROTOCOL": "HTTP/1.1"}
        )
        assert uwsgi_exchange(server.socket, packet, timeout=10).data.startswith(b"HTTP/1.1 200")
    finally:
        proc.terminate()
        proc.wait(20)
        log.close()
    text = (tmp_path / "hidden.log").read_text()
    assert "--request-titles: setproctitle cannot be imported; titles stay as they are" in text
