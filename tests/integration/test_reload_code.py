"""HUP loads new code by default: the master re-imports the app and the modules it brought in
(the standard library and packages with C parts stay), the new workers fork from that; with
--lazy-apps each new worker imports it.
Real processes, real signals, a real nginx in front."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from support.procs import (
    APPS_DIR,
    Nginx,
    Server,
    short_tmpdir,
    stack,
    uwsgi_exchange,
    uwsgi_get,
    wait_until,
    worker_pids,
)

#: The reload's line: the app's file, its module count, the time, what is held.
REIMPORTED = r"reload: app re-imported (?:from \S+ )?\((\d+) modules\) in [0-9.]+ s(.*)"

pytestmark = pytest.mark.nginx

APP = """
from helpers import answer

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [answer().encode()]
"""
HELPER = """
def answer():
    return {version!r}
"""


def _answers(nginx: Nginx, expected: bytes, times: int = 6) -> bool:
    """Several requests in a row (so every worker is asked) all answer ``expected``."""
    return all(nginx.request("GET", "/")[2] == expected for _ in range(times))


def _app_dir(tmp_path: Path, version: str) -> Path:
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "reapp.py").write_text(APP)
    (appdir / "helpers.py").write_text(HELPER.format(version=version))
    return appdir


def test_hup_reimports_the_modules_the_app_imports(tmp_path: Path, nginx_available: None) -> None:
    appdir = _app_dir(tmp_path, "v1")
    with stack(tmp_path, "reapp:app", workers=2, pythonpath=[str(appdir)]) as (server, nginx):
        assert _answers(nginx, b"v1")
        # Only the helper changes (another length: a same-size rewrite in the same second
        # could reuse the .pyc); the app module itself is the same file.
        (appdir / "helpers.py").write_text(HELPER.format(version="v2-helper"))
        server.signal(signal.SIGHUP)
        wait_until(lambda: "ready, stopping" in server.log(), 10, "the reload")
        wait_until(lambda: _answers(nginx, b"v2-helper"), 10, "the new helper to answer")
        (appdir / "helpers.py").write_text(HELPER.format(version="v3-helpers"))
        server.signal(signal.SIGHUP)
        wait_until(lambda: server.log().count("ready, stopping") == 2, 10, "the second reload")
        wait_until(lambda: _answers(nginx, b"v3-helpers"), 10, "the newer helper to answer")
    log = server.log()
    assert "SIGHUP: graceful reload (generation 1): re-importing the app in the master" in log
    found = re.findall(REIMPORTED, log)
    assert len(found) == 2, log
    # reapp and helpers; the old ones freed (the master kept the first code for good before:
    # a local of its start-up held the first app)
    assert [(int(count) >= 2, rest) for count, rest in found] == [(True, "")] * 2, found


def test_hup_with_lazy_apps_says_the_workers_import(tmp_path: Path, nginx_available: None) -> None:
    appdir = _app_dir(tmp_path, "v1")
    options = {"workers": 2, "lazy_apps": True, "pythonpath": [str(appdir)]}
    with stack(tmp_path, "reapp:app", **options) as (server, nginx):
        assert _answers(nginx, b"v1")
        (appdir / "helpers.py").write_text(HELPER.format(version="v2-lazy"))
        server.signal(signal.SIGHUP)
        wait_until(lambda: _answers(nginx, b"v2-lazy"), 10, "the new code to answer")
    log = server.log()
    assert "graceful reload (generation 1): the new workers import the app (--lazy-apps)" in log
    assert "re-import" not in log


ZONE_APP = """
import zoneinfo
from helpers import answer

def app(environ, start_response):
    try:
        zoneinfo.ZoneInfo("Nowhere/Never")
        caught = "no error"
    except zoneinfo.ZoneInfoNotFoundError:  # raised by the C part, _zoneinfo
        caught = "caught"
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"{answer()} {caught}".encode()]
"""


def test_hup_keeps_libraries_with_c_parts_whole(tmp_path: Path, nginx_available: None) -> None:
    # zoneinfo (first imported by the app) raises through its extension module: re-imported
    # beside the kept _zoneinfo, its new exception class no longer matched what was raised,
    # and every request was a 500 after a reload (SQLAlchemy and numpy broke the same way).
    appdir = _app_dir(tmp_path, "v1")
    (appdir / "reapp.py").write_text(ZONE_APP)
    with stack(tmp_path, "reapp:app", workers=1, pythonpath=[str(appdir)]) as (server, nginx):
        assert _answers(nginx, b"v1 caught", 2)
        (appdir / "helpers.py").write_text(HELPER.format(version="v2-zone"))
        server.signal(signal.SIGHUP)
        wait_until(lambda: "ready, stopping" in server.log(), 10, "the reload")
        wait_until(lambda: _answers(nginx, b"v2-zone caught", 2), 10, "the new code")
    match = re.search(REIMPORTED, server.log())
    assert match and int(match[1]) == 2, server.log()  # reapp and helpers; zoneinfo stays


THREAD_APP = """
import threading
import time

threading.Thread(target=time.sleep, args=(3600,), name="cache-refresher", daemon=True).start()

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(sorted(t.name for t in threading.enumerate())).encode()]
"""


@pytest.mark.parametrize("lazy", [False, True])
def test_threads_started_at_import_in_the_master_are_named(
    tmp_path: Path, nginx_available: None, lazy: bool
) -> None:
    # A gunicorn user's app (no --preload there) starts a thread at import: preloaded, it runs
    # in the master only, and the workers serve without it. Said at start-up and at each HUP.
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "threadapp.py").write_text(THREAD_APP)
    options = {"workers": 1, "lazy_apps": lazy, "pythonpath": [str(appdir)]}
    with stack(tmp_path, "threadapp:app", **options) as (server, nginx):
        seen = nginx.request("GET", "/")[2]
        assert (b"cache-refresher" in seen) is lazy, seen
        server.signal(signal.SIGHUP)
        wait_until(lambda: "ready, stopping" in server.log(), 10, "the reload")
    said = [
        line.split("[WARNING] ", 1)[1] for line in server.log().splitlines() if "thread in" in line
    ]
    expected = (
        "started 1 thread in the master (cache-refresher): the workers are forked without them; "
        "unless their library starts them again after a fork (sentry-sdk's do), start them in "
        "each worker (--lazy-apps, or at the first request)"
    )
    assert said == ([] if lazy else [f"the app's import {expected}", f"the re-import {expected}"])


CONN_APP = """
import os
import socket
import sqlite3

# A Django wsgi.py that runs a query at import: the master holds the database connection.
_db = socket.create_connection(("127.0.0.1", int(os.environ["DB_PORT"])))
# And a SQLite cache opened at import, which SQLite forbids to carry across a fork.
_cache = sqlite3.connect(os.environ["DB_FILE"])
_cache.execute("create table if not exists t (x)")

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


@pytest.mark.parametrize("lazy", [False, True])
def test_connections_opened_at_import_in_the_master_are_named(
    tmp_path: Path, nginx_available: None, lazy: bool
) -> None:
    # Preloaded, every worker is forked sharing the import's connection, and workers using it
    # at once got each other's answers (a trial: PostgreSQL with CONN_MAX_AGE, wrong rows
    # served, then workers hung until harakiri) without a word. Said at start-up and each HUP.
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "connapp.py").write_text(CONN_APP)
    with socket.create_server(("127.0.0.1", 0)) as db:
        port = db.getsockname()[1]
        options = {
            "workers": 1,
            "lazy_apps": lazy,
            "pythonpath": [str(appdir)],
            "env": [f"DB_PORT={port}", f"DB_FILE={tmp_path / 'cache.db'}"],
        }
        with stack(tmp_path, "connapp:app", **options) as (server, nginx):
            assert nginx.request("GET", "/")[2] == b"ok"
            server.signal(signal.SIGHUP)
            wait_until(lambda: "ready, stopping" in server.log(), 10, "the reload")
    said = [
        line.split("[WARNING] ", 1)[1] for line in server.log().splitlines() if "left 1" in line
    ]
    expected = (
        f"left 1 connection open in the master (to 127.0.0.1:{port}): every worker is forked "
        "sharing it, and workers using one connection at once mix each other's queries and "
        "answers; close it at the end of the import (Django: django.db.connections.close_all()), "
        "or open it in each worker (--lazy-apps, or a uwsgiapp.postfork function)"
    )
    assert said == ([] if lazy else [f"the app's import {expected}", f"the re-import {expected}"])
    databases = [
        line.split("[WARNING] ", 1)[1].split(" open in the master")[0]
        for line in server.log().splitlines()
        if "SQLite database" in line
    ]
    left = f"left the SQLite database {tmp_path / 'cache.db'}"
    assert databases == ([] if lazy else [f"the app's import {left}", f"the re-import {left}"])


REOPENING_APP = """
import os
import socket
import sqlite3

from uwsgiapp import postfork

_db = socket.create_connection(("127.0.0.1", int(os.environ["DB_PORT"])))
_cache = sqlite3.connect(os.environ["DB_FILE"])
_kept = socket.create_connection(("127.0.0.1", int(os.environ["DB_PORT"])))


@postfork
def reconnect():  # the advice followed for two of them, not for the third
    global _db, _cache
    _db.close()
    _db = socket.create_connection(("127.0.0.1", int(os.environ["DB_PORT"])))
    _cache.close()  # its descriptor's number and file come back with the new connection
    _cache = sqlite3.connect(os.environ["DB_FILE"])

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""

KEPT = "worker 1, its postfork functions run: the app's import left 1 connection open in the"


def test_a_connection_a_postfork_function_reopens_is_not_said(tmp_path: Path) -> None:
    # The master warned of it at import although the app followed the advice: the first
    # worker says only what its postfork functions kept (the same descriptor, on the same
    # socket or file, not opened anew), once an import (not again as worker 1 recycles).
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "pfapp.py").write_text(REOPENING_APP)
    with socket.create_server(("127.0.0.1", 0)) as db:
        port = db.getsockname()[1]
        options = {
            "workers": 2,
            "max_requests": 1,
            "pythonpath": [str(appdir)],
            "env": [f"DB_PORT={port}", f"DB_FILE={tmp_path / 'cache.db'}"],
        }
        server = Server(tmp_path / "s", "pfapp:app", **options).start()
        try:
            wait_until(lambda: KEPT in server.log(), 10, "the kept one")
            for _ in range(3):  # recycles: worker 1 forked again, silent
                uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10)
            server.signal(signal.SIGHUP)
            wait_until(lambda: "ready, stopping" in server.log(), 10, "the reload")
            wait_until(lambda: server.log().count(" left ") == 2, 10, "its second")
        finally:
            server.stop()
    said = [line for line in server.log().splitlines() if " left " in line]
    assert len(said) == 2 and all(
        f"its postfork functions run: the app's import left 1 connection open in the master (to "
        f"127.0.0.1:{port})"
        in line
        or "the re-import left 1 connection" in line
        for line in said
    ), said
    assert "SQLite" not in server.log()


def test_touch_reload_reloads_with_the_new_code_and_only_while_running(
    tmp_path: Path, nginx_available: None
) -> None:
    appdir = _app_dir(tmp_path, "v1")
    flag = tmp_path / "reload.flag"  # missing at start: its creation reloads (uWSGI's way)
    options = {"workers": 2, "pythonpath": [str(appdir)], "touch_reload": [str(flag)]}
    with stack(tmp_path, "reapp:app", **options) as (server, nginx):
        assert _answers(nginx, b"v1")
        assert f"--touch-reload: {flag}: No such file or directory: its appearance" in server.log()
        (appdir / "helpers.py").write_text(HELPER.format(version="v2-touched"))
        flag.write_text("")
        wait_until(lambda: _answers(nginx, b"v2-touched"), 10, "the touched reload's code")
        wait_until(lambda: "ready, stopping" in server.log(), 10, "the old workers to stop")
        (appdir / "helpers.py").write_text(HELPER.format(version="v3-touched-again"))
        flag.touch()
        wait_until(lambda: server.log().count("ready, stopping") == 2, 10, "the second reload")
        assert _answers(nginx, b"v3-touched-again")
    log = server.log()
    assert log.count(f"--touch-reload: {flag} changed: graceful reload") == 2, log
    assert log.count("SIGHUP: graceful reload") == 2, log


POSTFORK_APP = """
import os
from uwsgiapp import postfork
from helpers import answer

@postfork
def open_pool():
    with open(os.environ["MARKS"], "a") as f:
        f.write(f"{os.getpid()} {answer()}\\n")

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [answer().encode()]
"""


def _reload_to(server: Server, nginx: Nginx, appdir: Path, version: str) -> None:
    """Change the helper, HUP, and wait until every worker answers with it."""
    (appdir / "helpers.py").write_text(HELPER.format(version=version))
    reloads = server.log().count("ready, stopping")
    server.signal(signal.SIGHUP)
    wait_until(lambda: server.log().count("ready, stopping") > reloads, 10, "the reload")
    wait_until(lambda: _answers(nginx, version.encode()), 10, "the new code")


AT_FORK_APP = (
    POSTFORK_APP.replace("from uwsgiapp import postfork\n", "").replace(
        "@postfork\ndef open_pool():", "def open_pool():"
    )
    + "\nos.register_at_fork(after_in_child=open_pool)\n"
    + "import atexit\natexit.register(print, 'bye')\n"
)


@pytest.mark.parametrize("source", [POSTFORK_APP, AT_FORK_APP], ids=["postfork", "at-fork"])
def test_postfork_runs_once_in_each_worker_across_reloads(
    tmp_path: Path, nginx_available: None, source: str
) -> None:
    # os.register_at_fork, which the README advised, cannot be undone: after two HUPs each
    # new worker ran the set-up of all three generations of the code (and each exit
    # function registered at import ran three times at every exit).
    appdir = _app_dir(tmp_path, "v1")
    (appdir / "reapp.py").write_text(source)
    marks = tmp_path / "marks"
    options = {"workers": 2, "pythonpath": [str(appdir)], "env": [f"MARKS={marks}"]}
    with stack(tmp_path, "reapp:app", **options) as (server, nginx):
        # Both first workers ran it before the first HUP (the stack is up once one accepts; a
        # worker stopped by the reload before its set-up never runs it).
        wait_until(lambda: marks.exists() and len(marks.read_text().split()) == 4, 10, "v1 x2")
        for version in ("v2", "v3"):
            _reload_to(server, nginx, appdir, version)
    lines = [line.split() for line in marks.read_text().splitlines()]
    assert sorted(version for _, version in lines) == ["v1", "v1", "v2", "v2", "v3", "v3"]
    assert len({pid for pid, _ in lines}) == 6  # each worker ran it once
    log = server.log()
    assert "still held" not in log, log  # the old code's registrations were let go of


def test_a_failing_postfork_stops_the_start_with_the_apps_exit_code(tmp_path: Path) -> None:
    app = tmp_path / "pfail.py"
    app.write_text(
        "from uwsgiapp import postfork\n\n"
        "@postfork\ndef connect():\n    raise ConnectionError('db down')\n\n"
        "def app(environ, start_response):\n    return []\n"
    )
    server = Server(tmp_path / "server", "pfail:app", workers=2, pythonpath=[str(tmp_path)])
    server.start(wait=False)
    try:
        assert server.wait(15) == 4  # as an app that cannot be imported
    finally:
        server.stop()
    log = server.log()
    assert "postfork function pfail.connect raised ConnectionError('db down')" in log, log
    assert "Traceback" in log and "raise ConnectionError('db down')" in log, log


ENV_APP = """
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [os.environ.get("APP_ENV", "-").encode()]
"""


def test_hup_reads_the_config_file_again(tmp_path: Path, nginx_available: None) -> None:
    # uWSGI re-reads its ini on HUP, gunicorn its config: ours kept every option as at start.
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "envapp.py").write_text(ENV_APP)
    config = tmp_path / "uwsgiapp.toml"
    config.write_text('workers = 1\nharakiri = 0\n[env]\nAPP_ENV = "prod"\n')
    options = {"pythonpath": [str(appdir)], "config": str(config)}
    with stack(tmp_path, "envapp:app", **options) as (server, nginx):
        assert _answers(nginx, b"prod")
        assert len(worker_pids(server.pid)) == 1
        assert "(max-requests), recycling" not in server.log()
        config.write_text(
            'workers = 3\nharakiri = 30\nmax-requests = 2\n[env]\nAPP_ENV = "staging"\n'
        )
        server.signal(signal.SIGHUP)
        wait_until(lambda: "ready, stopping" in server.log(), 10, "the reload")
        wait_until(lambda: len(worker_pids(server.pid)) == 3, 10, "three workers")
        assert _answers(nginx, b"staging")
        for _ in range(7):  # 3 workers, 2 requests each: one at least recycles
            assert nginx.request("GET", "/")[0] == 200
        wait_until(lambda: "(max-requests), recycling" in server.log(), 10, "a recycle")
    log = server.log()
    assert "HUP: --env read again: 1 set, 0 removed" in log
    assert "HUP: --workers read again: 3" in log
    assert "HUP: --max-requests 2 read again: the new workers take them" in log
    assert "HUP: --harakiri changed since the start: a restart or a USR2 upgrade applies it" in log


def test_hup_reads_an_ini_with_start_time_variables_as_unchanged(
    tmp_path: Path, nginx_available: None
) -> None:
    # A HUP reads the ini again from --chdir's directory, by its absolute path, later: %v, %o
    # and %t must still stand for the start's, or each HUP named --chdir and --env as changed.
    home = tmp_path / "server"  # the server's working directory (stack's)
    (home / "app").mkdir(parents=True)
    (home / "app" / "envapp.py").write_text(ENV_APP)
    (home / "app.ini").write_text("[uwsgi]\nchdir = %v/app\nprocesses = 1\nenv = APP_ENV=%o-%t\n")
    with stack(tmp_path, "envapp:app", ini="app.ini", pythonpath=[str(home / "app")]) as (
        server,
        nginx,
    ):
        started = nginx.request("GET", "/")[2]
        assert started.startswith(b"app.ini-"), started
        time.sleep(1.1)  # %t counts seconds
        server.signal(signal.SIGHUP)
        wait_until(lambda: "ready, stopping" in server.log(), 10, "the reload")
        assert _answers(nginx, started)
    assert "changed since the start" not in server.log(), server.log()


OWN_HANDLER_APP = """
import logging, os


log = logging.getLogger("ownlines")
log.setLevel(logging.INFO)
log.addHandler(logging.FileHandler(os.environ["OWN_LOG"]))
{broken}

def app(environ, start_response):
    log.info("served %s", environ["PATH_INFO"])
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def test_a_handler_the_app_adds_at_import_is_not_added_again_by_each_hup(
    tmp_path: Path, nginx_available: None
) -> None:
    # logging keeps its loggers across the re-import: each HUP added one more handler, and a
    # request wrote its line once per reload (uWSGI, which execs anew, writes it once).
    appdir = tmp_path / "app"
    appdir.mkdir()
    own_log = tmp_path / "own.log"
    (appdir / "ownapp.py").write_text(OWN_HANDLER_APP.format(broken=""))
    options = {"workers": 1, "pythonpath": [str(appdir)], "env": [f"OWN_LOG={own_log}"]}
    with stack(tmp_path, "ownapp:app", **options) as (server, nginx):
        for reloads in (1, 2):
            server.signal(signal.SIGHUP)
            wait_until(lambda n=reloads: server.log().count("ready, stopping") == n, 10, "a reload")
        # New code that cannot import: its handler goes, the old code's stays on.
        (appdir / "ownapp.py").write_text(OWN_HANDLER_APP.format(broken="import no_such_mod"))
        server.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in server.log(), 10, "the failed reload")
        server.signal(signal.SIGHUP)  # still broken: the workers that serve keep theirs
        wait_until(lambda: server.log().count("reload failed") == 2, 10, "the second one")
        assert nginx.request("GET", "/once")[2] == b"ok"
        # Fixed: the handler the old code had (put back after each failure) goes once more.
        (appdir / "ownapp.py").write_text(OWN_HANDLER_APP.format(broken="# fixed"))
        server.signal(signal.SIGHUP)
        wait_until(lambda: server.log().count("ready, stopping") == 3, 10, "the fixed reload")
        assert nginx.request("GET", "/after")[2] == b"ok"
        wait_until(lambda: "/after" in own_log.read_text(), 5, "the request's line")
    lines = own_log.read_text()
    assert lines.count("served /once") == 1 and lines.count("served /after") == 1, lines


def test_a_server_started_at_import_names_its_port_when_a_hup_cannot_reimport(
    tmp_path: Path,
) -> None:
    # prometheus_flask_exporter's start_http_server at import (the observe trial): the old
    # code's server holds the port, the re-import fails, and the line said only "Address
    # already in use".
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "portapp.py").write_text(
        "import socket\n"
        "metrics = socket.socket()\n"
        "metrics.bind(('127.0.0.1', 0))\n"  # a fixed port in real life; any port here:
        "metrics.listen()\n"
        "import os\n"
        "PORT = os.environ.setdefault('PORTAPP_PORT', str(metrics.getsockname()[1]))\n"
        "if metrics.getsockname()[1] != int(PORT):\n"
        "    metrics.close()\n"
        "    metrics = socket.socket()\n"
        "    metrics.bind(('127.0.0.1', int(PORT)))\n"
        "def app(environ, start_response):\n"
        "    start_response('200 OK', [])\n"
        "    return [b'ok']\n"
    )
    server = Server(tmp_path / "run", "portapp:app", workers=1, pythonpath=[str(appdir)])
    server.start()
    try:
        server.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in server.log(), 15, "the reload to fail")
    finally:
        server.stop()
    (line,) = [ln for ln in server.log().splitlines() if "cannot re-import the app" in ln]
    assert "Address already in use" in line
    assert "by the one the old code started at its import" in line and "--lazy-apps" in line


def _depths(nginx: Nginx, path: str = "/") -> dict[str, int]:
    depths: dict[str, int] = json.loads(nginx.request("GET", path)[2])
    return depths


def test_what_a_library_patched_into_the_standard_library_is_patched_once_across_hups(
    tmp_path: Path, nginx_available: None
) -> None:
    # sentry-sdk (an outside trial) wraps logging, threading, sys.excepthook and http.client at
    # init: re-imported by each HUP beside the standard library that stays, it wrapped its own
    # old wrappers, and after 3 HUPs one exception was sent 4 times (each old client alive).
    # With --stats, the thread that serves it during a re-import was started through the old
    # code's Thread.start, and ran in its wrapper: every old module was "still held".
    appdir = tmp_path / "app"
    appdir.mkdir()
    source = (APPS_DIR / "patching_app.py").read_text()
    (appdir / "patchapp.py").write_text(source)
    events = tmp_path / "events"
    options = {
        "workers": 1,
        "pythonpath": [str(appdir), str(APPS_DIR)],
        "env": [f"PATCH_EVENTS={events}"],
        "stats": os.path.join(short_tmpdir(), "stats.sock"),
    }
    once = {"callHandlers": 1, "excepthook": 1, "start": 1, "putrequest": 1}
    with stack(tmp_path, "patchapp:app", **options) as (server, nginx):
        for reloads in (1, 2, 3):
            server.signal(signal.SIGHUP)
            wait_until(lambda n=reloads: server.log().count("ready, stopping") == n, 10, "a HUP")
        assert _depths(nginx) == once
        assert _depths(nginx, "/boom") == once
        wait_until(events.exists, 5, "the event")
        # New code that fails after its library's init: its patches go, the old code's
        # come back (a worker forked after the failure has them, once).
        (appdir / "patchapp.py").write_text(source + "\nimport no_such_module_here\n")
        server.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in server.log(), 10, "the failed reload")
        (old_worker,) = worker_pids(server.pid)
        os.kill(old_worker, signal.SIGKILL)
        wait_until(lambda: worker_pids(server.pid) - {old_worker} != set(), 10, "a new worker")
        assert _depths(nginx) == once
        (appdir / "patchapp.py").write_text(source)
        server.signal(signal.SIGHUP)
        wait_until(lambda: server.log().count("ready, stopping") == 4, 10, "the fixed reload")
        assert _depths(nginx) == once
    assert len(events.read_text().splitlines()) == 1  # one event for one exception
    log = server.log()
    assert log.count("reload: app re-imported") == 4 and "still held" not in log, log
