"""``uwsgiapp dev``: a real werkzeug server in a subprocess, answering and reloading."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli.cli_testkit import free_port, run_cli

from uwsgiapp.devserver import DevOptions, DevServerError, check_options, is_loopback

StartDev = Callable[..., "subprocess.Popen[bytes]"]

APP = """\
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"{text}"]
"""


def get(url: str, timeout: float = 2) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_for(url: str, want: bytes, deadline: float = 20) -> tuple[int, bytes]:
    """Poll until the body contains ``want`` (or fail after ``deadline`` seconds)."""
    end = time.monotonic() + deadline
    last: object = None
    while time.monotonic() < end:
        try:
            status, body = get(url)
            if want in body:
                return status, body
            last = body
        except OSError as exc:
            last = exc
        time.sleep(0.1)
    raise AssertionError(f"no {want!r} from {url} within {deadline}s; last: {last!r}")


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[StartDev]:
    """Start ``python -m uwsgiapp dev ...`` in its own session; kill that group afterwards."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "uwsgiapp", "dev", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its reloader child shares this group: killed with it
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


def _bump(path: Path, text: str) -> None:
    path.write_text(text)
    later = time.time() + 2  # a clearly newer mtime, whatever the file system's resolution
    os.utime(path, (later, later))


def test_dev_serves_and_reloads(tmp_path: Path, start_dev: StartDev) -> None:
    app = tmp_path / "site.py"
    app.write_text(APP.format(text="first"))
    port = free_port()
    proc = start_dev("site.py:app", "--port", str(port))
    url = f"http://127.0.0.1:{port}/"
    assert wait_for(url, b"first") == (200, b"first")
    _bump(app, APP.format(text="second"))
    assert wait_for(url, b"second") == (200, b"second")
    os.killpg(proc.pid, signal.SIGTERM)
    out = proc.communicate(timeout=5)[0]
    assert f"* Running on http://127.0.0.1:{port}".encode() in out
    assert b"Debugger is active" in out


def test_dev_broken_app_shows_error_then_recovers(tmp_path: Path, start_dev: StartDev) -> None:
    (tmp_path / "pkgapp.py").write_text("raise RuntimeError('not yet')\n")
    port = free_port()
    start_dev("pkgapp", "--port", str(port), "--no-debugger")
    url = f"http://127.0.0.1:{port}/"
    status, body = wait_for(url, b"not yet")
    assert status == 500 and b"RuntimeError" in body
    _bump(tmp_path / "pkgapp.py", APP.format(text="fixed").replace("def app", "def application"))
    assert wait_for(url, b"fixed")[0] == 200


def test_dev_no_reload_import_error_exits(tmp_path: Path) -> None:
    r = run_cli("dev", "missing_mod_xyz:app", "--no-reload", "--port", "0", cwd=tmp_path)
    assert r.returncode == 2
    assert b"No module named 'missing_mod_xyz'" in r.stderr
    assert b"Traceback (most recent call last)" not in r.stderr.split(b"\n")[0]


@pytest.mark.parametrize(
    "args",
    [
        ["app:app", "--host", "0.0.0.0"],
        ["app:app", "--host", "::"],
        ["app:app", "--host", "192.0.2.1"],
    ],
)
def test_dev_refuses_remote_debugger(tmp_path: Path, args: list[str]) -> None:
    r = run_cli("dev", *args, cwd=tmp_path)
    assert r.returncode == 2
    assert b"refusing to serve the interactive debugger" in r.stderr
    assert b"--allow-remote-debugger" in r.stderr


def test_check_options() -> None:
    check_options(DevOptions(app="a:b", host="0.0.0.0", debugger=False))
    check_options(DevOptions(app="a:b", host="0.0.0.0", allow_remote_debugger=True))
    check_options(DevOptions(app="a:b", host="localhost"))
    check_options(DevOptions(app="a:b", host="::1"))
    with pytest.raises(DevServerError):
        check_options(DevOptions(app="a:b", host="10.1.2.3"))
    with pytest.raises(DevServerError, match="--port"):
        check_options(DevOptions(app="a:b", port=70000))


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("8.8.8.8", False)],
)  # fmt: skip
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected
