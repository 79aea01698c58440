"""USR1 after logrotate moved the files: the master and every worker write to the new files."""

from __future__ import annotations

import re
import signal
import threading
from pathlib import Path

import pytest
from support.procs import Server, uwsgi_exchange, wait_until, worker_pids

import uwsgiproto


def _sleep_request(server: Server, seconds: float) -> bytes:
    packet = uwsgiproto.build_request(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/sleep",
            "QUERY_STRING": str(seconds),
            "REQUEST_URI": f"/sleep?{seconds}",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
    )
    return uwsgi_exchange(server.socket, packet, timeout=15).data


def _both_workers_serve(server: Server) -> None:
    """Two requests at once: each worker holds one (the other is busy, so it is not woken)."""
    answers: list[bytes] = []
    threads = [
        threading.Thread(target=lambda: answers.append(_sleep_request(server, 0.4)))
        for _ in range(2)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(20)
    assert len(answers) == 2 and all(a.startswith(b"HTTP/1.1 200") for a in answers), answers


def _pids(path: Path) -> set[int]:
    return {int(p) for p in re.findall(r"^\[pid: (\d+)\|", path.read_text(), re.M)}


def test_usr1_moves_every_worker_and_the_master_to_the_new_files(tmp_path: Path) -> None:
    access_log = tmp_path / "access.log"
    error_log = tmp_path / "error.log"
    server = Server(
        tmp_path / "server",
        "supervisor_app:app",
        workers=2,
        access_log="uwsgi",
        access_log_file=str(access_log),
        error_log_file=str(error_log),
    ).start()
    try:
        wait_until(lambda: len(worker_pids(server.pid)) == 2, 10, "2 workers")
        # Both workers have the file open: make each write a line to it.
        for _ in range(10):
            _both_workers_serve(server)
            if len(_pids(access_log)) == 2:
                break
        served_by = _pids(access_log)
        assert len(served_by) == 2, access_log.read_text()
        access_log.rename(tmp_path / "access.log.1")
        error_log.rename(tmp_path / "error.log.1")
        server.signal(signal.SIGUSR1)
        wait_until(access_log.exists, 10, "the new access log")

        def both_write_the_new_file() -> bool:
            _both_workers_serve(server)
            return _pids(access_log) == served_by

        wait_until(both_write_the_new_file, 20, "both workers writing the new access log")
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
    finally:
        server.stop()
    # The master's lines after the reopen (stopping) went to the new error log.
    assert "all workers stopped" in error_log.read_text()
    assert "USR1: log files reopened" in error_log.read_text()
    assert "all workers stopped" not in (tmp_path / "error.log.1").read_text()


def test_a_hups_reload_writes_to_moved_logs_anew(tmp_path: Path) -> None:
    # uWSGI's log-reopen: logrotate's postrotate sends HUP (the ini's key was taken without a
    # word, and the master and the new workers went on writing the moved file).
    access_log = tmp_path / "access.log"
    error_log = tmp_path / "error.log"
    server = Server(
        tmp_path / "server",
        "supervisor_app:app",
        workers=1,
        access_log="uwsgi",
        access_log_file=str(access_log),
        error_log_file=str(error_log),
    ).start()
    try:
        old = worker_pids(server.pid)
        access_log.rename(tmp_path / "access.log.1")
        error_log.rename(tmp_path / "error.log.1")
        server.signal(signal.SIGHUP)
        wait_until(lambda: len(worker_pids(server.pid) - old) == 1, 10, "the new worker")
        wait_until(lambda: not old & worker_pids(server.pid), 10, "the old worker gone")
        _both_workers_serve(server)
        (new,) = worker_pids(server.pid)
        wait_until(lambda: _pids(access_log) == {new}, 10, "the new worker's line")
    finally:
        server.stop()
    assert (
        "HUP: log files moved away reopened (the new workers write to them)"
        in error_log.read_text()
    )
    assert "reload: 1 new worker ready" in error_log.read_text()


def test_a_hup_leaves_the_apps_own_log_files_that_did_not_move(tmp_path: Path) -> None:
    # A HUP reopens what logrotate moved; reopening an app's FileHandler(mode="w") that did
    # not move emptied it at every reload.
    log_path = tmp_path / "app-own.log"
    (tmp_path / "ownlog.py").write_text(
        "import logging\n"
        f"handler = logging.FileHandler({str(log_path)!r}, mode='w')\n"
        "logger = logging.getLogger('ownlog')\nlogger.addHandler(handler)\n"
        "logger.warning('imported')\n\n"
        "def app(environ, start_response):\n    start_response('200 OK', [])\n    return []\n"
    )
    server = Server(
        tmp_path / "server",
        "ownlog:app",
        pythonpath=[str(tmp_path)],
        reload_preloaded=False,  # no re-import, which would empty it itself
        workers=1,
    ).start()
    try:
        old = worker_pids(server.pid)
        server.signal(signal.SIGHUP)
        wait_until(lambda: not old & worker_pids(server.pid), 10, "the old worker gone")
        server.signal(signal.SIGUSR1)  # nor a USR1, with nothing moved
        said = (
            "USR1: the master has no log file to reopen (the server's logs go to stdout and "
            "stderr; the workers reopen the app's, if any)"
        )
        wait_until(lambda: said in server.log(), 10, "USR1's line")
    finally:
        server.stop()
    assert log_path.read_text() == "imported\n"
    assert "log files moved away reopened" not in server.log()


CHATTY_APP = """\
import logging, os, sys

logging.basicConfig(level=logging.INFO)  # the console handler: stderr, as Django's


def app(environ, start_response):
    tag = environ["QUERY_STRING"]
    print(f"printed {tag}")  # stdout
    sys.stderr.write(f"to stderr {tag}\\n")
    os.write(2, f"fd 2 {tag}\\n".encode())  # what C code would write
    logging.getLogger("app").error("logged %s", tag)
    if tag.startswith("boom"):
        raise RuntimeError(f"kaboom {tag}")
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def _get(server: Server, tag: str) -> bytes:
    packet = uwsgiproto.build_request(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "QUERY_STRING": tag,
            "REQUEST_URI": "/",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
    )
    return uwsgi_exchange(server.socket, packet, timeout=15).data


def test_capture_output_sends_what_the_app_prints_to_the_error_log(tmp_path: Path) -> None:
    (tmp_path / "chatty.py").write_text(CHATTY_APP)
    error_log = tmp_path / "error.log"
    server = Server(
        tmp_path / "server",
        "chatty:app",
        pythonpath=[str(tmp_path)],
        error_log_file=str(error_log),
        capture_output=True,
    ).start()
    try:
        assert _get(server, "one").startswith(b"HTTP/1.1 200")
        assert _get(server, "boom1").startswith(b"HTTP/1.1 500")
        expected = ["printed one", "to stderr one", "fd 2 one", "logged one", "kaboom boom1"]
        wait_until(lambda: all(s in error_log.read_text() for s in expected), 10, "the lines")
        # After logrotate's move and USR1, the output follows the new file.
        error_log.rename(tmp_path / "error.log.1")
        server.signal(signal.SIGUSR1)
        wait_until(error_log.exists, 10, "the new error log")

        def reopened() -> bool:
            _get(server, "two")
            return "printed two" in error_log.read_text()

        wait_until(reopened, 10, "the app's output in the new file")
        # (With --log-master the lines that follow may come a moment later.)
        wait_until(lambda: "fd 2 two" in error_log.read_text(), 10, "what fd 2 got")
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
    finally:
        server.stop()
    old = (tmp_path / "error.log.1").read_text()
    assert "printed one" in old and "printed two" not in old
    # Nothing of it on the terminal (the server's own stdout/stderr).
    assert "printed one" not in server.log()


@pytest.mark.parametrize("log_master", [False, True])
def test_a_log_file_that_cannot_be_reopened_is_said_on_stderr_and_not_called_reopened(
    tmp_path: Path, log_master: bool
) -> None:
    # logrotate's `create` made a file the (dropped) master cannot open, or a link was planted:
    # the failure went only to the file moved away, where nobody looks, and with --log-master
    # "USR1: log files reopened" followed it. And with --log-master every HUP said "log files
    # moved away reopened" (and reopened them) though nothing had moved.
    error_log = tmp_path / "error.log"
    server = Server(
        tmp_path / "server",
        "supervisor_app:app",
        workers=1,
        error_log_file=str(error_log),
        log_master=log_master,
    ).start()
    try:
        old = worker_pids(server.pid)
        server.signal(signal.SIGHUP)
        wait_until(lambda: "reload: 1 new worker ready" in error_log.read_text(), 10, "reload")
        wait_until(lambda: not old & worker_pids(server.pid), 10, "the old worker gone")
        error_log.rename(tmp_path / "error.log.1")
        error_log.symlink_to(tmp_path / "elsewhere")  # refused: a link is never followed
        server.signal(signal.SIGUSR1)
        wait_until(lambda: "cannot reopen log file" in server.log(), 10, "the failure on stderr")
    finally:
        server.stop()
    moved = (tmp_path / "error.log.1").read_text()
    assert "cannot reopen log file" in moved and "log files reopened" not in moved, moved
    assert "log files moved away reopened" not in moved, moved
    assert not (tmp_path / "elsewhere").exists()
