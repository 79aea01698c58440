"""The local stack, started by the README's command (``make run``), answers through nginx.

The stack runs in its own session on a free loopback port with its run dir under tmp_path, and
is stopped the way a terminal's Ctrl-C stops it: SIGINT to its whole process group. Afterwards
every process it started (the uwsgiapp master and workers, the nginx master and workers) must
be gone. Only the PIDs started here are ever signalled.
"""

from __future__ import annotations

import http.client
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from deploy.deploy_testkit import ROOT, STATIC, alive, children_of, load_stack
from support.procs import free_port, http_request

pytestmark = [pytest.mark.nginx, pytest.mark.slow]


@dataclass
class Stack:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    pids: dict[str, int]

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, http.client.HTTPMessage, bytes]:
        return http_request(self.port, method, path, body, headers, timeout=10)

    def output(self) -> str:
        return self.log.read_text(errors="replace")


def readme_command(port: int, run_dir: Path) -> list[str]:
    """``make run`` (README's command) when this interpreter is the Makefile's venv, else the
    script it runs, with the same arguments."""
    venv = Path(sys.prefix)
    if shutil.which("make") and (venv / ".installed").exists():
        # -o: the venv is the one running this test; never reinstall it from here.
        return [
            "make",
            "-s",
            "-o",
            f"{venv}/.installed",
            "run",
            f"VENV={venv}",
            f"PORT={port}",
            f"RUN_DIR={run_dir}",
        ]
    return [sys.executable, "scripts/stack.py", "--port", str(port), "--run-dir", str(run_dir)]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory, nginx_available: None) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("stack")
    port = free_port()
    log = tmp / "stack.log"
    run_dir = tmp / "run"
    # Append mode: nginx opens /dev/stdout itself (access log) and must not overwrite the rest.
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            readme_command(port, run_dir),
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    pids_file = run_dir / "stack.pids"
    deadline = time.monotonic() + 30
    while not (pids_file.exists() and "stack running" in log.read_text(errors="replace")):
        if proc.poll() is not None or time.monotonic() > deadline:
            os.killpg(proc.pid, signal.SIGINT) if proc.poll() is None else None
            proc.wait(30)
            pytest.fail(f"stack did not start (exit {proc.returncode}):\n{log.read_text()}")
        time.sleep(0.05)
    running = Stack(proc, port, log, json.loads(pids_file.read_text()))
    try:
        yield running
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGINT)
            try:
                proc.wait(45)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def test_prints_the_url(stack: Stack) -> None:
    assert f"http://127.0.0.1:{stack.port}/" in stack.output()


def test_get_page(stack: Stack) -> None:
    status, headers, body = stack.request("GET", "/")
    assert status == 200
    assert headers["Content-Type"] == "text/html; charset=utf-8"
    assert b'<form method="post" action="/greet">' in body
    assert headers["Server"] == "nginx"


def test_form_post(stack: Stack) -> None:
    form = urllib.parse.urlencode({"name": "Ada <Lovelace>"}).encode()
    status, _, body = stack.request(
        "POST", "/greet", form, {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 200
    assert b"Hello, Ada &lt;Lovelace&gt;!" in body
    status, _, body = stack.request(
        "POST", "/greet", b"", {"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert status == 400
    assert b"400 Bad request" in body


def test_json(stack: Stack) -> None:
    status, headers, body = stack.request("GET", "/api/info?x=1")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    info = json.loads(body)
    assert info["args"] == {"x": "1"}
    assert info["remote_addr"] == "127.0.0.1"
    # Served by a worker, not by the master.
    assert info["pid"] != stack.pids["app"]
    status, _, body = stack.request(
        "POST", "/api/echo", b'{"n": [1, 2]}', {"Content-Type": "application/json"}
    )
    assert status == 200
    assert json.loads(body) == {"received": {"n": [1, 2]}}


def test_static_file_from_nginx(stack: Stack) -> None:
    # The example app has no static route (static_folder=None): a 200 here is nginx's.
    for name, ctype in (("hello.txt", "text/plain"), ("style.css", "text/css")):
        status, headers, body = stack.request("GET", f"/static/{name}")
        assert status == 200
        assert body == (STATIC / name).read_bytes()
        assert headers["Content-Type"] == ctype
        assert headers["Accept-Ranges"] == "bytes"  # nginx's static module
    status, _, _ = stack.request("GET", "/static/missing.txt")
    assert status == 404


def test_error_pages(stack: Stack) -> None:
    status, _, body = stack.request("GET", "/no/such/page")
    assert status == 404
    assert b"No page at <code>/no/such/page</code>" in body
    status, _, body = stack.request("GET", "/teapot")
    assert status == 418
    assert b"<h1>418 I'm a teapot</h1>" in body


def test_headers_nginx_accepts_reach_the_app(stack: Stack) -> None:
    # 7 KB of cookie: more than uwsgi's default 4 KB vars block, within nginx's 8k header
    # buffers; the app runs with --buffer-size 65535 so it takes whatever nginx passes.
    status, _, body = stack.request("GET", "/api/info", headers={"Cookie": "c=" + "x" * 7000})
    assert status == 200
    assert json.loads(body)["path"] == "/api/info"


def test_json_access_log_on_stdout(stack: Stack) -> None:
    stack.request("GET", "/healthz?log=1")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        lines = [ln for ln in stack.output().splitlines() if '"uri":"/healthz?log=1"' in ln]
        if lines:
            entry = json.loads(lines[0])
            assert entry["status"] == 200
            assert entry["method"] == "GET"
            return
        time.sleep(0.05)
    pytest.fail("no JSON access log line for /healthz?log=1")


def test_second_stack_on_the_same_run_dir_refuses(stack: Stack) -> None:
    run_dir = stack.log.parent / "run"
    result = subprocess.run(
        [sys.executable, "scripts/stack.py", "--port", "0", "--run-dir", str(run_dir)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "already running" in result.stderr
    assert (run_dir / "stack.pids").exists()  # the running stack's file is left alone


def test_zz_stops_cleanly_on_ctrl_c(stack: Stack) -> None:
    """Defined after every test that uses the stack, so it runs last: stops it."""
    app, nginx = stack.pids["app"], stack.pids["nginx"]
    started = {app, nginx, *children_of(app), *children_of(nginx)}
    assert len(children_of(app)) == 2, "uwsgiapp serve --workers 2"
    assert children_of(nginx), "nginx workers"
    os.killpg(stack.proc.pid, signal.SIGINT)  # what Ctrl-C in a terminal does
    stack.proc.wait(45)
    out = stack.output()
    assert "stack: got SIGINT: stopping" in out
    assert "stack: stopped\n" in out, out[-2000:]
    deadline = time.monotonic() + 5
    while any(alive(pid) for pid in started) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not [pid for pid in started if alive(pid)]
    assert not (stack.log.parent / "run" / "stack.pids").exists()


def test_missing_nginx_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "scripts/stack.py", "--port", "0", "--run-dir", str(tmp_path)],
        cwd=ROOT,
        env={**os.environ, "NGINX": str(tmp_path / "no-nginx")},
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 1
    assert "nginx" in result.stderr and "apt-get install" in result.stderr


def test_leftovers_of_a_killed_stack_are_named_not_killed(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stack = load_stack()
    dead = subprocess.Popen(["true"])
    dead.wait()
    pids_file = tmp_path / "stack.pids"
    pids_file.write_text(json.dumps({"stack": dead.pid, "app": os.getpid(), "nginx": dead.pid}))
    assert stack.already_running(pids_file) is None
    stack.warn_leftovers(pids_file)
    err = capsys.readouterr().err
    assert f"app pid {os.getpid()} from a previous stack may still be running" in err
    assert "nginx pid" not in err
    assert not pids_file.exists()
