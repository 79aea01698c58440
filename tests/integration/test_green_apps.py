"""Apps that monkey-patch the standard library at import (gevent's ``monkey.patch_all()``,
eventlet's ``monkey_patch()``: Flask-SocketIO apps and many older ones), served as gunicorn's
sync worker and uWSGI serve them: one request at a time per worker, a graceful TERM. A real
server behind a real nginx; the app is imported in the master (the default) and, patched, the
master's own loop runs in the patched process."""

from __future__ import annotations

import concurrent.futures
import importlib.util
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from support.procs import Server, free_port, stack, wait_until

pytestmark = pytest.mark.nginx

PATCHES = {
    "gevent": "from gevent import monkey\nmonkey.patch_all()\n",
    "eventlet": "import eventlet\neventlet.monkey_patch()\n",
}

APP = """
import os
import time


def app(environ, start_response):
    if environ["PATH_INFO"] == "/hang":
        time.sleep(60)  # in the hub: --harakiri's stack must name this line, not the hub's
    if environ["PATH_INFO"] == "/sleep":
        open(environ["QUERY_STRING"], "w").close()  # the test waits for it: in the app
        time.sleep(1)  # the library's sleep, which waits in its hub
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getpid()).encode()]
"""


def _need(library: str) -> None:
    # Looked for, not imported: eventlet's import hooks every later fork of the test process
    # (a DeprecationWarning at each), gevent's changes what a fork does.
    if importlib.util.find_spec(library) is None:
        pytest.skip(f"{library} is not installed")


def _write_app(tmp_path: Path, library: str) -> None:
    _need(library)
    (tmp_path / "green.py").write_text(PATCHES[library] + APP)


@pytest.mark.parametrize("tcp", [False, True])
@pytest.mark.parametrize("library", sorted(PATCHES))
def test_a_monkey_patched_app_serves_and_stops_gracefully(
    tmp_path: Path, nginx_available: None, library: str, tcp: bool
) -> None:
    # gevent and eventlet delete select.epoll: every worker crashed at start, for ever; and
    # eventlet's os.read waited on the master's empty wake-up pipe: a TERM was never acted on.
    # On TCP, the last one out's look at who holds the socket took select.poll, which eventlet
    # deletes too: the worker crashed at the stop; and gevent's os.close closes in its hub, so
    # the master's hold on the socket stayed: none was ever the last one out.
    _write_app(tmp_path, library)
    where = {"socket": f"127.0.0.1:{free_port()}", "log_level": "debug"} if tcp else {}
    with stack(tmp_path, "green:app", pythonpath=[str(tmp_path)], workers=1, **where) as (
        server,
        nginx,
    ):
        status, _, pid = nginx.request("GET", "/", timeout=20)
        assert status == 200, server.log()
        with concurrent.futures.ThreadPoolExecutor(1) as pool:
            marker = tmp_path / "in-the-app"
            slow = pool.submit(nginx.request, "GET", f"/sleep?{marker}", timeout=30)
            wait_until(marker.exists, 20, "the slow request in the app")
            server.signal(15)
            status, _, slow_pid = slow.result(30)
        assert (status, slow_pid) == (200, pid)  # the request in flight finished
        try:
            assert server.wait(30) == 0
        except subprocess.TimeoutExpired:
            raise AssertionError(f"TERM did not stop the server:\n{server.log()}") from None
    log = server.log()
    assert "Traceback" not in log
    assert ("closes for the stop: new connections dropped" in log) == tcp, log
    # eventlet's threading stands for the main thread with an object of its own: it was named
    # as a thread the import started.
    assert "thread in the master" not in log


@pytest.mark.parametrize("library", sorted(PATCHES))
def test_threads_of_a_monkey_patched_app_are_refused_with_the_reason(
    tmp_path: Path, nginx_available: None, library: str
) -> None:
    # Its request threads became green threads blocked in the server's real epoll: the first
    # request that waited hung the worker, and its stop with it.
    _write_app(tmp_path, library)
    server = Server(tmp_path / "server", "green:app", pythonpath=[str(tmp_path)], threads=2)
    server.start(wait=False)
    try:
        code = server.wait(30)
    except subprocess.TimeoutExpired:
        code = None
    finally:
        server.stop()
    log = server.log()
    assert code == 4, log
    assert "monkey-patched the standard library's threads" in log
    assert "serve it with --threads 1" in log


def test_check_config_refuses_the_threads_of_a_monkey_patched_app(tmp_path: Path) -> None:
    # The deploy gate passed (exit 0), and the start then exited 4 (a gunicorn -k gevent line
    # turned into --threads 4, as its hint said).
    _write_app(tmp_path, "gevent")
    env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}
    done = subprocess.run(
        [sys.executable, "-m", "uwsgiapp", "serve", "green:app", "--threads", "4",
         "--socket", "a.sock", "--check-config"],
        cwd=tmp_path, env=env, capture_output=True, timeout=60, check=False,
    )  # fmt: skip
    err = done.stderr.decode()
    assert done.returncode == 4, err
    assert "--threads 4: the app's import monkey-patched the standard library's threads" in err


@pytest.mark.parametrize("library", sorted(PATCHES))
def test_a_monkey_patched_app_under_the_images_defaults_reloads_and_stops(
    tmp_path: Path, nginx_available: None, library: str
) -> None:
    # The Docker image turns --log-master and --stats on. With gevent the app did not load
    # (the log-master thread, alive as the import patched threading, broke the import's
    # module lock); with either library a HUP hung the master for good (the stats thread of
    # the re-import waited, patched, in the hub to say it had started); eventlet's stop wrote
    # a KeyError traceback from the log-master thread's end.
    _write_app(tmp_path, library)
    stats = f"unix:{tmp_path / 'stats.sock'}"
    options = {"log_master": True, "stats": stats, "workers": 1}
    with stack(tmp_path, "green:app", pythonpath=[str(tmp_path)], **options) as (server, nginx):
        status, _, first = nginx.request("GET", "/", timeout=20)
        assert status == 200, server.log()
        server.signal(1)
        wait_until(lambda: "reload: 1 new worker" in server.log(), 30, "the reload")

        def another_worker() -> bool:
            status, _, pid = nginx.request("GET", "/", timeout=20)
            return status == 200 and pid != first

        wait_until(another_worker, 20, "the new worker serving")
        server.signal(15)
        try:
            assert server.wait(30) == 0
        except subprocess.TimeoutExpired:
            raise AssertionError(f"TERM did not stop the server:\n{server.log()}") from None
    assert "Traceback" not in server.log(), server.log()


def test_a_gevent_workers_exit_work_is_bounded_too(tmp_path: Path, nginx_available: None) -> None:
    # The exit's watchdog was a patched thread, a greenlet: it never ran while an atexit
    # function blocked outside the hub, and the worker stayed as long as that function. A
    # quick stop of the worker alone (no master's kill behind it) runs them for 1.5 s at most.
    _need("gevent")
    slow_exit = (
        "\nimport atexit\n_app = app\n\n"
        "def app(environ, start_response):  # this worker's exit will block outside the hub\n"
        "    atexit.register(os.system, 'sleep 6')\n"
        "    return _app(environ, start_response)\n"
    )
    (tmp_path / "green.py").write_text(PATCHES["gevent"] + APP + slow_exit)
    with stack(tmp_path, "green:app", pythonpath=[str(tmp_path)], workers=1) as (server, nginx):
        status, _, body = nginx.request("GET", "/", timeout=20)
        assert status == 200, server.log()
        worker = int(body)
        os.kill(worker, signal.SIGINT)
        said = "its exit work (atexit handlers) still runs after 1."  # of 1.5 s, what is left
        wait_until(lambda: said in server.log(), 20, "the exit work's bound")
        wait_until(lambda: f"(pid {worker}) exited" in server.log(), 15, "the worker's exit")


@pytest.mark.parametrize("library", sorted(PATCHES))
def test_a_harakiri_names_the_green_apps_line_not_the_hubs(
    tmp_path: Path, nginx_available: None, library: str
) -> None:
    # A request waiting in the library's hub is a suspended greenlet: the stack logged was the
    # hub's loop (gevent/hub.py, in run), the app's stuck line nowhere.
    _write_app(tmp_path, library)
    options = {"workers": 1, "harakiri": 1}
    with stack(tmp_path, "green:app", pythonpath=[str(tmp_path)], **options) as (server, nginx):
        status, _, _ = nginx.request("GET", "/hang", timeout=30)
        assert status == 502
        wait_until(lambda: "harakiri: " in server.log(), 15, "the harakiri line")
    log = server.log()
    said = log[log.index("harakiri: ") :]
    assert "stuck in GET /hang" in said, said
    assert 'green.py", line' in said and "time.sleep(60)" in said, said
