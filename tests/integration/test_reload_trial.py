"""A HUP whose new code ends or hangs the process that imports it: a child imports it before
the master does, the reload is called off and the old workers serve on, supervised as ever.
Real ``uwsgiapp serve`` processes, real signals; no timing is asserted."""

from __future__ import annotations

import os
import signal
import threading
from pathlib import Path

import pytest
from support.procs import (
    Server,
    uwsgi_exchange,
    uwsgi_get,
    wait_for_serving,
    wait_until,
    worker_pids,
)

APP = """
import os
import time

VERSION = {version!r}
{body}

def app(environ, start_response):
    if environ["PATH_INFO"] == "/stuck":
        time.sleep(60)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{{VERSION}} {{os.getpid()}}".encode()]
"""

#: New code that ends the process importing it, and the words its line has (the line of the
#: call is line 6 of the module: the body's first line).
ENDS = {
    "os._exit": ("os._exit(3)", "exited with code 3 (os._exit at {module}, line 6)"),
    "segfault": ("import ctypes; ctypes.string_at(0)", "was killed by signal 11 (SIGSEGV) at "),
    "abort": ("os.abort()", "was killed by signal 6 (SIGABRT) at {module}, line 6"),
}


def _write(module: Path, version: str, body: str = "") -> None:
    module.write_text(APP.format(version=version, body=body))


def _answer(server: Server) -> tuple[str, int]:
    """The version and the pid of the worker that answered one request."""
    data = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=30).data
    version, pid = data.rpartition(b"\r\n\r\n")[2].decode().split()
    return version, int(pid)


def _serving(server: Server, version: str, pids: set[int]) -> bool:
    """Several requests in a row answer ``version``, from workers among ``pids``."""
    answers = [_answer(server) for _ in range(6)]
    return all(v == version and pid in pids for v, pid in answers)


def _reloads_to(server: Server, module: Path, version: str) -> None:
    """Write ``version`` of the app, HUP, and wait until every worker answers with it."""
    _write(module, version)
    server.signal(signal.SIGHUP)
    wait_until(lambda: "ready, stopping" in server.log(), 30, f"the reload to {version}")
    wait_until(lambda: _serving(server, version, worker_pids(server.pid)), 20, version)


def _start(tmp_path: Path, **options: object) -> tuple[Server, Path, set[int]]:
    module = tmp_path / "trialapp.py"
    _write(module, "v1")
    server = Server(tmp_path / "server", "trialapp:app", pythonpath=[str(tmp_path)], **options)
    server.start()
    old = wait_for_serving(server, 2)
    wait_until(lambda: _serving(server, "v1", old), 10, "v1 to answer")
    return server, module, old


@pytest.mark.parametrize("how", list(ENDS))
def test_new_code_that_ends_the_process_as_it_imports_fails_only_the_reload(
    tmp_path: Path, how: str
) -> None:
    # The master imported it itself and died with it: no master, then no workers (exit 3, or
    # killed by SIGSEGV), the service down for a deploy's bad release.
    server, module, old = _start(tmp_path, workers=2)
    try:
        body, words = ENDS[how]
        _write(module, "v2", body)
        server.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in server.log(), 30, "the reload to be called off")
        assert server.proc is not None and server.proc.poll() is None, server.log()
        assert worker_pids(server.pid) == old  # the old workers, untouched; the child reaped
        assert _serving(server, "v1", old)
        _reloads_to(server, module, "v3")  # then a good release reloads as ever
    finally:
        code = server.stop()
    log = server.log()
    assert code == 0, log
    (said,) = [line for line in log.splitlines() if "tried in a child process" in line]
    assert "reload: cannot re-import the app, keeping the old code: its import" in said
    assert words.format(module=module) in said, said
    assert f"{module}, line 6" in said, said  # where, in the app
    assert "reload failed (the app cannot be re-imported): keeping the old workers" in log
    assert "Fatal Python error" not in log, log  # the child's stack is the line's
    assert log.count("reload: app re-imported") == 1, log  # v3's only


def test_new_code_that_hangs_at_import_is_given_up_at_the_deadline(tmp_path: Path) -> None:
    # The master imported it itself and never came back: nothing replaced or killed since.
    server, module, old = _start(tmp_path, workers=2, reload_check_timeout=1)
    try:
        _write(module, "v2", "while True:\n    pass")
        server.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in server.log(), 30, "the deadline")
        assert worker_pids(server.pid) == old  # the child killed and reaped
        assert _serving(server, "v1", old)
    finally:
        code = server.stop()
    log = server.log()
    assert code == 0, log
    (said,) = [line for line in log.splitlines() if "tried in a child process" in line]
    assert "was still importing after 1 s (--reload-check-timeout) at " in said, said
    assert said.endswith((f"{module}, line 6", f"{module}, line 7")), said


def test_the_old_workers_are_supervised_while_the_new_code_imports(tmp_path: Path) -> None:
    # A hang at import held the master's loop: a worker killed meanwhile was not replaced, one
    # stuck in a request was not killed at its harakiri. A new HUP then tries the newest code.
    server, module, old = _start(tmp_path, workers=2, harakiri=1)
    try:
        _write(module, "v2", "open(__file__ + '.importing', 'w').close(); time.sleep(3600)")
        server.signal(signal.SIGHUP)
        wait_until(Path(f"{module}.importing").exists, 10, "the new code's import")
        started = server.log().count(") started")
        os.kill(min(old), signal.SIGKILL)
        wait_until(lambda: server.log().count(") started") > started, 10, "its replacement")
        # The replacement, forked while the child imports, holds none of the child's files.
        for pid in worker_pids(server.pid) - old:
            if not Path(f"/proc/{pid}/cmdline").read_bytes().startswith(b"uwsgiapp trial"):
                fds = Path(f"/proc/{pid}/fd")
                links = {os.readlink(fds / fd) for fd in os.listdir(fds)}
                assert not [link for link in links if "uwsgiapp-trial" in link], links
        stuck = threading.Thread(  # a request that never ends, in whichever worker takes it
            target=uwsgi_exchange,
            args=(server.socket, uwsgi_get("/stuck")),
            kwargs={"timeout": 90},
            daemon=True,
        )
        stuck.start()
        wait_until(lambda: "HARAKIRI" in server.log(), 20, "the harakiri")
        stuck.join(30)
        assert "reload failed" not in server.log() and "ready, stopping" not in server.log()
        _reloads_to(server, module, "v3")
    finally:
        code = server.stop()
    log = server.log()
    assert code == 0, log
    assert "reload: SIGHUP during the trial import (pid " in log, log
    assert "called off, the newest code is tried instead" in log, log
    assert "reload failed" not in log, log


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] == "Z"  # killed, not yet reaped
    except FileNotFoundError:
        return True


def test_what_the_new_codes_import_started_ends_with_its_child(tmp_path: Path) -> None:
    # A process the import starts (a helper daemon, a multiprocessing pool) would outlive the
    # child thrown away, orphaned; the master's own import starts its own.
    server, module, old = _start(tmp_path, workers=2)
    spawned = tmp_path / "spawned"
    try:
        _write(
            module,
            "v2",
            f"import subprocess; p = subprocess.Popen(['sleep', '300']); "
            f"open({str(spawned)!r}, 'w').write(str(p.pid)); os._exit(3)",
        )
        server.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in server.log(), 30, "the reload to be called off")
        sleeper = int(spawned.read_text())
        wait_until(lambda: _gone(sleeper), 10, "the import's own child to be killed")
        assert worker_pids(server.pid) == old
    finally:
        server.stop()
