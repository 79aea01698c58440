"""The master's signals around a HUP's re-import of the app (in the master, the default):
a stop during the import is not kept waiting for it, and the handlers an app sets at import
do not replace the master's. Real processes, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.procs import (
    Server,
    short_tmpdir,
    uwsgi_exchange,
    uwsgi_get,
    wait_for_serving,
    wait_until,
)

SLOW_APP = """
import os
import time

FLAG = os.environ["SLOW_FLAG"]
if os.path.exists(FLAG):  # the deploy's import is slow (a warm-up, a remote config)
    open(FLAG + ".importing", "w").close()
    time.sleep(float(open(FLAG).read() or 60))

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


@pytest.mark.parametrize("trial", [True, False], ids=["in-a-child", "in-the-master"])
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGQUIT], ids=["TERM", "QUIT"])
def test_a_stop_during_the_reimport_calls_it_off_and_stops(
    tmp_path: Path, signum: signal.Signals, trial: bool
) -> None:
    # Docker's stop during a 20 s re-import was acted on only after it: Docker's KILL came
    # first (exit 137, nothing logged). The import is a child's first (the master's loop goes
    # on), or the master's own (--reload-check-timeout 0: a stop interrupts it).
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    flag = tmp_path / "slow.flag"
    options = {"workers": 2, "pythonpath": [str(tmp_path)], "env": [f"SLOW_FLAG={flag}"]}
    options["reload_check_timeout"] = 60 if trial else 0
    server = Server(tmp_path / "server", "slowapp:app", **options).start()
    try:
        old = wait_for_serving(server, 2)
        flag.write_text("")
        server.signal(signal.SIGHUP)
        wait_until((tmp_path / "slow.flag.importing").exists, 10, "the re-import to start")
        sent = time.monotonic()
        server.signal(signum)
        try:
            code = server.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"the {signum.name} waited for the import:\n{server.log()}")
        took = time.monotonic() - sent
    finally:
        server.stop()
    log = server.log()
    assert code == 0, log
    assert took < 5, log
    name = signum.name
    said = [line for line in log.splitlines() if "during the re-import" in line]
    assert len(said) == 1, log
    assert f"reload: {name} during the re-import of the app: called off after" in said[0]
    assert said[0].endswith("the old code stays; stopping"), said[0]
    stop = "SIGTERM: graceful stop" if name == "SIGTERM" else f"{name}: quick stop"
    assert stop in log, log
    assert "re-imported" not in log and "reload failed" not in log, log
    for pid in old:  # the old workers were stopped as asked, not killed at a deadline
        assert f"(pid {pid})" in log, log
    assert "killing" not in log, log


def test_the_stats_server_answers_during_the_reimport(tmp_path: Path) -> None:
    # The health check (which asks the stats server) timed out during a long re-import: the
    # container turned unhealthy (Swarm replaced it) during a reload that was going fine.
    # The import asked during is the master's own (--reload-check-timeout 0): by default a
    # child imports the new code first, while the master's loop answers as it always does.
    (tmp_path / "slowapp.py").write_text(SLOW_APP)
    flag = tmp_path / "slow.flag"
    stats = f"{short_tmpdir()}/stats.sock"
    options = {"workers": 2, "pythonpath": [str(tmp_path)], "env": [f"SLOW_FLAG={flag}"]}
    options["reload_check_timeout"] = 0
    server = Server(tmp_path / "server", "slowapp:app", stats=stats, **options).start()
    health = [sys.executable, "-m", "uwsgiapp.stats.health", stats]
    try:
        # Healthy first: a HUP retires the workers the master has not yet seen ready.
        wait_until(lambda: subprocess.run(health, timeout=30).returncode == 0, 15, "healthy")
        flag.write_text("5")  # seconds
        server.signal(signal.SIGHUP)
        wait_until((tmp_path / "slow.flag.importing").exists, 10, "the re-import to start")
        asked = subprocess.run(health, capture_output=True, text=True, timeout=30)
        importing = "re-imported" not in server.log()
        wait_until(lambda: "ready, stopping" in server.log(), 20, "the reload")
    finally:
        server.stop()
    assert importing, server.log()  # the check was answered during the import
    assert asked.returncode == 0, asked.stderr
    assert asked.stdout.startswith("healthy: 2 workers accept"), asked.stdout
    assert "thread" not in server.log(), server.log()  # not named as the import's own


SIGNAL_APP = """
import os
import signal

def _clean_up(signum, frame):  # the app's own: it does not stop the master
    with open(os.environ["MARKS"], "a") as f:
        f.write(f"the app's handler ran in {os.getpid()}\\n")

signal.signal(signal.SIGTERM, _clean_up)
signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # a library that does not want zombies

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_the_master_takes_its_signals_back_after_a_reimport(tmp_path: Path) -> None:
    # At start-up the master sets its handlers after the import; a HUP's re-import left the
    # app's in place, and every later TERM ran the app's handler: stopped only by a KILL.
    (tmp_path / "sigapp.py").write_text(SIGNAL_APP)
    marks = tmp_path / "marks"
    options = {"workers": 1, "pythonpath": [str(tmp_path)], "env": [f"MARKS={marks}"]}
    server = Server(tmp_path / "server", "sigapp:app", **options).start()
    try:
        (old,) = wait_for_serving(server, 1)
        server.signal(signal.SIGHUP)
        wait_until(lambda: "ready, stopping" in server.log(), 10, "the reload")
        # Reaped and said (with SIGCHLD ignored the kernel would reap it, unseen)
        wait_until(lambda: f"(pid {old}) exited" in server.log(), 10, "the old worker's exit")
        server.signal(signal.SIGTERM)
        try:
            code = server.wait(10)
        except subprocess.TimeoutExpired:
            pytest.fail(f"TERM did not stop the master:\n{server.log()}")
    finally:
        server.stop()
    log = server.log()
    assert code == 0, log
    assert not marks.exists(), marks.read_text()
    said = [line for line in log.splitlines() if "set its own handler" in line]
    assert len(said) == 1, log  # at the re-import; at start-up the master's come after it
    # SIGCHLD is not named: the app's SIG_IGN is the workers' (the master's own stays here)
    expected = "reload: the app's import set its own handler for SIGTERM: the master's"
    assert expected in said[0], said
    assert "SIGTERM: graceful stop" in log and "all workers stopped" in log, log


CHLD_APP = """
import os
import signal
import subprocess

if os.environ.get("IGNORE_CHLD"):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)  # a library that does not want zombies

def app(environ, start_response):
    child = subprocess.Popen(["true"])  # never waited for: with SIGCHLD ignored, no zombie
    child.returncode = 0  # (its __del__ must not reap it)
    start_response("200 OK", [("Content-Type", "text/plain")])
    ignored = signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN
    return [f"{child.pid} {ignored}".encode()]
"""


def _state(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


@pytest.mark.parametrize("lazy", [False, True], ids=["preloaded", "lazy-apps"])
@pytest.mark.parametrize("ignore", [True, False], ids=["app-ignores", "default"])
def test_the_workers_keep_the_sigchld_the_app_set(tmp_path: Path, lazy: bool, ignore: bool) -> None:
    """An app's SIGCHLD SIG_IGN at import was reset in every worker: each child a request
    left unwaited stayed a zombie (gunicorn and uWSGI --lazy-apps keep it)."""
    (tmp_path / "chldapp.py").write_text(CHLD_APP)
    env = ["IGNORE_CHLD=1"] if ignore else []
    options = {"workers": 1, "pythonpath": [str(tmp_path)], "env": env, "lazy_apps": lazy}
    server = Server(tmp_path / "server", "chldapp:app", **options).start()
    try:
        for round_ in range(2):  # at start, then after a HUP's re-import
            wait_for_serving(server, 1)
            answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
            text, ignored = answer.rpartition(b"\r\n\r\n")[2].decode().split()
            assert ignored == str(ignore), (round_, server.log())
            pid = int(text)
            wait_until(lambda p=pid: _state(p) in ("Z", "gone"), 5, "the child's exit")
            time.sleep(0.2)
            assert _state(pid) == ("gone" if ignore else "Z"), round_
            if round_ == 0:
                server.signal(signal.SIGHUP)
                wait_until(lambda: "ready, stopping" in server.log(), 15, "the reload")
    finally:
        server.stop()


@pytest.mark.parametrize("lazy", [True, False], ids=["lazy-apps", "preloaded"])
def test_a_lazy_apps_handler_the_worker_replaces_is_said_once(tmp_path: Path, lazy: bool) -> None:
    """With --lazy-apps the app's import in each worker set its SIGTERM handler, and the
    worker's replaced it unsaid (its clean-up never ran; gunicorn's workers keep the app's)."""
    (tmp_path / "sigapp.py").write_text(SIGNAL_APP)
    marks = tmp_path / "marks"
    options = {"workers": 2, "pythonpath": [str(tmp_path)], "env": [f"MARKS={marks}"]}
    server = Server(tmp_path / "server", "sigapp:app", lazy_apps=lazy, **options).start()
    try:
        wait_for_serving(server, 2)
    finally:
        assert server.stop() == 0
    said = [line for line in server.log().splitlines() if "set its own handler" in line]
    expected = "worker 1 (pid"
    if lazy:
        assert len(said) == 1 and expected in said[0] and "for SIGTERM: the worker's" in said[0]
    else:  # the master's import: its handlers were put in place after it, the workers' own
        assert said == []
    assert not marks.exists()  # the app's handler ran nowhere: the stop was the server's


FILE_CHLD_APP = """
import os
import signal

if os.path.exists(os.environ["IGNORE_FILE"]):
    signal.signal(signal.SIGCHLD, signal.SIG_IGN)

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN).encode()]
"""


class _StartedIgnoringChld(Server):
    """A server started by a parent that ignores SIGCHLD (inherited across exec)."""

    def command(self) -> list[str]:
        code = "import os, signal, sys; signal.signal(signal.SIGCHLD, signal.SIG_IGN); "
        code += "os.execv(sys.argv[1], sys.argv[1:])"
        return [sys.executable, "-c", code, *super().command()]


def _ignored(server: Server) -> bool:
    answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
    return answer.rpartition(b"\r\n\r\n")[2] == b"True"


@pytest.mark.parametrize("inherited", [False, True], ids=["started-default", "started-ignoring"])
def test_the_workers_take_the_sigchld_of_the_code_they_run(tmp_path: Path, inherited: bool) -> None:
    """A HUP whose new code no longer ignores SIGCHLD kept the old code's SIG_IGN in every
    new worker (subprocess exit codes read 0); a server started with SIGCHLD ignored lost the
    SIG_IGN the app's own import set (a review's repros)."""
    (tmp_path / "fchld.py").write_text(FILE_CHLD_APP)
    flag = tmp_path / "IGNORE"
    flag.touch()
    options = {"workers": 1, "pythonpath": [str(tmp_path)], "env": [f"IGNORE_FILE={flag}"]}
    kind = _StartedIgnoringChld if inherited else Server
    server = kind(tmp_path / "server", "fchld:app", **options).start()
    try:
        wait_for_serving(server, 1)
        assert _ignored(server)
        flag.unlink()
        server.signal(signal.SIGHUP)
        wait_until(lambda: "ready, stopping" in server.log(), 15, "the reload")
        wait_for_serving(server, 1)
        assert not _ignored(server)
    finally:
        server.stop()


BREAKABLE_CHLD_APP = """
import os
import signal

if os.path.exists(os.environ["BROKEN_FILE"]):
    raise RuntimeError("a broken deploy")
signal.signal(signal.SIGCHLD, signal.SIG_IGN)

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(signal.getsignal(signal.SIGCHLD) == signal.SIG_IGN).encode()]
"""


def test_a_failed_reimport_leaves_the_workers_the_old_codes_sigchld(tmp_path: Path) -> None:
    """The master's own import of the new code failed before it set SIG_IGN: the workers
    started after, running the old code, lost the old code's (a review's repro)."""
    (tmp_path / "bchld.py").write_text(BREAKABLE_CHLD_APP)
    broken = tmp_path / "BROKEN"
    options = {"workers": 1, "pythonpath": [str(tmp_path)], "env": [f"BROKEN_FILE={broken}"]}
    server = Server(tmp_path / "server", "bchld:app", reload_check_timeout=0, **options)
    try:
        server.start()
        (old,) = wait_for_serving(server, 1)
        assert _ignored(server)
        broken.touch()
        server.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in server.log(), 15, "the failed reload")
        if old in wait_for_serving(server, 1):  # a worker started after: the old code's
            os.kill(old, signal.SIGKILL)
            wait_until(lambda: old not in wait_for_serving(server, 1), 10, "a new worker")
        assert _ignored(server)
    finally:
        server.stop()
