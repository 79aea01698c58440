"""Compatibility with uWSGI's ecosystem: the real ``uwsgitop`` (PyPI) reads our stats server,
and, when a ``uwsgi`` binary is at hand, our document has exactly its keys and ``uwsgiapp top``
reads a real uWSGI stats socket.

uWSGI is looked for in ``$UWSGI_BIN``, then on ``PATH``; the tests that need it skip, saying
so, without it (``pip install uwsgi`` compiles it).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from stats_kit import PYTHON, ROOT, Tmux, read_all, running, sample
from support.procs import short_tmpdir

from uwsgiapp.stats.document import build_document
from uwsgiapp.stats.server import StatsServer


@pytest.fixture
def sockdir() -> Iterator[str]:
    path = short_tmpdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def _uwsgitop() -> str:
    found = shutil.which("uwsgitop") or str(Path(sys.executable).parent / "uwsgitop")
    if not os.access(found, os.X_OK):
        pytest.skip("uwsgitop is not installed (pip install uwsgitop: the [test] extra)")
    return found


@pytest.mark.parametrize("http", [False, True], ids=["unix", "http"])
def test_real_uwsgitop_shows_our_workers(sockdir: str, http: bool) -> None:
    stats = sample()
    session = f"uwa-uwsgitop-{os.getpid()}-{int(http)}"
    if http:
        server = StatsServer("127.0.0.1:0", http=True, snapshot=sample)
        host, port = server.address  # type: ignore[misc]
        address = f"http://{host}:{port}"
    else:
        address = os.path.join(sockdir, "s.sock")
        server = StatsServer(address, snapshot=sample)
    with running(server):
        tmux = Tmux(session, [PYTHON, _uwsgitop(), address], width=200, height=30)
        try:
            rows = {
                w.id: re.compile(
                    rf"^\s*{w.id}\s+[\d.]+\s+{w.pid}\s+{w.requests}\s+\d+\s+"
                    rf"{w.exceptions}\s+0\s+{w.status}\s",
                    re.M,
                )
                for w in stats.workers
            }
            screen = tmux.wait_for(lambda s: all(r.search(s) for r in rows.values()))
            for w in stats.workers:
                assert rows[w.id].search(screen), screen
            assert f"req: {stats.requests}" in screen, screen
            assert "masterpid: 4000" in screen and "lq: 0" in screen, screen
            tmux.send_keys("q")
            assert "[exited 0]" in tmux.wait_for(lambda s: "[exited" in s), tmux.capture()
        finally:
            tmux.kill()


# --- a real uWSGI ---------------------------------------------------------------------------

APP = """
def application(environ, start_response):
    status = {"/404": "404 Not Found", "/500": "500 Internal Server Error"}.get(
        environ["PATH_INFO"], "200 OK")
    start_response(status, [("Content-Type", "text/plain")])
    return [b"hello"]
"""


def _uwsgi() -> str:
    found = os.environ.get("UWSGI_BIN") or shutil.which("uwsgi")
    if not found:
        pytest.skip("no uwsgi binary (set UWSGI_BIN, or pip install uwsgi)")
    return found


@pytest.fixture
def real_uwsgi(sockdir: str) -> Iterator[tuple[str, str]]:
    """A real uWSGI, 2 workers, stats on a unix socket: (uwsgi socket, stats socket)."""
    binary = _uwsgi()
    Path(sockdir, "app.py").write_text(APP)
    sock, stats = os.path.join(sockdir, "u.sock"), os.path.join(sockdir, "st.sock")
    with open(os.path.join(sockdir, "log"), "wb") as log:
        proc = subprocess.Popen(
            [
                binary,
                "--master",
                "--processes",
                "2",
                "--socket",
                sock,
                "--stats",
                stats,
                "--wsgi-file",
                "app.py",
                "--die-on-term",
            ],
            cwd=sockdir,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                doc = json.loads(read_all(stats))
                if all(w["pid"] and w["status"] == "idle" for w in doc["workers"]):
                    break
            except (OSError, ValueError):
                pass
            time.sleep(0.1)
        else:
            pytest.fail("uWSGI did not start: " + Path(sockdir, "log").read_text()[-2000:])
        yield sock, stats
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _keys(obj: object) -> object:
    """The key structure of a document: names in order, lists by their first element."""
    if isinstance(obj, dict):
        return [(k, _keys(v)) for k, v in obj.items()]
    if isinstance(obj, list):
        return [_keys(obj[0])] if obj else []
    return None


def test_our_document_has_exactly_uwsgis_keys_in_its_order(real_uwsgi: tuple[str, str]) -> None:
    theirs = json.loads(read_all(real_uwsgi[1]))
    ours = build_document(sample(), extended=False)
    theirs["locks"] = []  # uWSGI lists its internal locks; we have none
    # our idle cores have an empty req_info and no vars, as uWSGI's idle cores
    assert _keys(ours) == _keys(theirs)


def _uwsgi_packet(path: str) -> bytes:
    """A uwsgi request built by hand (what nginx sends, minus the headers)."""
    pairs = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": path,
        "REQUEST_URI": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "REMOTE_ADDR": "127.0.0.1",
    }
    block = b"".join(
        struct.pack("<H", len(k)) + k.encode() + struct.pack("<H", len(v)) + v.encode()
        for k, v in pairs.items()
    )
    return struct.pack("<BHB", 0, len(block), 0) + block


def test_top_once_reads_a_real_uwsgi(real_uwsgi: tuple[str, str]) -> None:
    sock, stats = real_uwsgi
    for path in ["/"] * 5 + ["/404"] * 2 + ["/500"]:
        assert read_all(sock, _uwsgi_packet(path)).startswith(b"HTTP/1.1 ")
    doc = json.loads(read_all(stats))
    assert sum(w["requests"] for w in doc["workers"]) == 8
    result = subprocess.run(
        [PYTHON, "-m", "uwsgiapp", "top", stats, "--once"],
        capture_output=True,
        text=True,
        timeout=20,
        env={**os.environ, "PYTHONPATH": ROOT},
    )
    assert result.returncode == 0, result.stderr
    assert "requests: 8" in result.stdout, result.stdout
    assert f"version {doc['version']}" in result.stdout
    for w in doc["workers"]:
        assert re.search(
            rf"^\s*{w['id']}\s+{w['pid']}\s+idle\s+{w['requests']}\s", result.stdout, re.M
        ), result.stdout
