"""The container health check asks the master (the stats server), not a worker.

``python -m uwsgiapp.stats.health`` and ``GET /health`` of ``--stats-http``: healthy while a
worker accepts, busy or not. A ``uwsgiapp ping`` is answered by a worker: with every worker
busy it times out, and an orchestrator would replace a replica that is only saturated.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from live_kit import accepting, wait_doc
from stats_kit import read_all, running, sample
from support.procs import Server, short_tmpdir

from uwsgiapp.client import ClientError, parse_address, request
from uwsgiapp.config.configload import FALSE_WORDS, TRUE_WORDS
from uwsgiapp.stats import reader
from uwsgiapp.stats.document import health_verdict
from uwsgiapp.stats.health import EXIT_UNHEALTHY, stats_source
from uwsgiapp.stats.health import main as health_main
from uwsgiapp.stats.reader import fetch, parse_source
from uwsgiapp.stats.server import StatsServer


def health(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "uwsgiapp.stats.health", *args],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )


def occupy(server: Server, seconds: int) -> threading.Thread:
    """A thread that will keep one worker busy for ``seconds`` (not started); the request may
    be cut (a stop) or outlive the client's timeout: that is no failure here."""

    def ask() -> None:
        with contextlib.suppress(ClientError):
            request(parse_address(server.socket), f"/sleep?{seconds}", timeout=seconds + 10)

    return threading.Thread(target=ask, daemon=True)


def test_the_verdict_counts_busy_workers_as_alive() -> None:
    assert health_verdict([(True, True), (False, False)], 7) == (
        True,
        "healthy: 1 worker accepts (1 busy); master pid 7",
    )
    assert health_verdict([(False, False)], 7)[0] is False
    assert health_verdict([(False, False)], 7) == (
        False,
        "unhealthy: 0 workers accept (0 busy); master pid 7",
    )
    # A graceful stop's worker still in a request: it read as a fault, "0 workers accept".
    assert health_verdict([(False, True), (False, False)], 7) == (
        False,
        "unhealthy: 0 workers accept (0 busy), 1 leaving, finishing its requests; master pid 7",
    )
    assert health_verdict([(True, False), (False, True), (False, True)], 7)[1] == (
        "healthy: 1 worker accepts (0 busy), 2 leaving, finishing their requests; master pid 7"
    )
    assert health_verdict([], 7) == (
        False,
        "unhealthy: no worker yet (the master is starting: the app's import); master pid 7",
    )


@pytest.mark.parametrize(
    ("address", "env", "http", "want"),
    [
        ("", {"UWSGIAPP_STATS": "127.0.0.1:9191"}, False, ("127.0.0.1", 9191, "", "")),
        (
            "",
            {"UWSGIAPP_STATS": " :9191 ", "UWSGIAPP_STATS_HTTP": "True"},
            False,
            ("127.0.0.1", 9191, "", "/"),
        ),
        (
            "",
            {"UWSGIAPP_STATS": "/run/s.sock", "UWSGIAPP_STATS_HTTP": "yes"},
            False,
            ("", 0, "/run/s.sock", "/"),
        ),
        (
            "",
            {"UWSGIAPP_STATS": "127.0.0.1:9191", "UWSGIAPP_STATS_HTTP": "off"},
            False,
            ("127.0.0.1", 9191, "", ""),
        ),
        ("@st", {"UWSGIAPP_STATS": "127.0.0.1:9191"}, True, ("", 0, "\0st", "/")),
        ("http://[::1]:9/x", {}, False, ("::1", 9, "", "/x")),
    ],
)
def test_the_address_follows_the_servers_environment(
    address: str, env: dict[str, str], http: bool, want: tuple[str, int, str, str]
) -> None:
    source = stats_source(address, env, http)
    assert (source.host, source.port, source.path, source.http_path) == want


def test_get_health_is_200_while_a_worker_accepts_503_when_none_does() -> None:
    stopped = dataclasses.replace(
        sample(), workers=tuple(dataclasses.replace(w, accepting=False) for w in sample().workers)
    )
    with running(StatsServer("127.0.0.1:0", http=True, snapshot=sample)) as up:
        raw = read_all(up.address, b"GET /health HTTP/1.0\r\n\r\n")
        assert raw.startswith(b"HTTP/1.0 200 OK\r\n")
        assert raw.endswith(b"\r\n\r\nhealthy: 3 workers accept (1 busy); master pid 4000\n")
        head = read_all(up.address, b"HEAD /health?probe=1 HTTP/1.1\r\n\r\n")
        assert head.startswith(b"HTTP/1.0 200 OK\r\n") and head.endswith(b"\r\n\r\n")
    with running(StatsServer("127.0.0.1:0", http=True, snapshot=lambda: stopped)) as down:
        raw = read_all(down.address, b"GET /health HTTP/1.0\r\n\r\n")
        assert raw.startswith(b"HTTP/1.0 503 Service Unavailable\r\n")
        # The sample's busy worker, no longer accepting, is leaving (a stop's).
        assert raw.endswith(
            b"unhealthy: 0 workers accept (0 busy), 1 leaving, finishing its requests; master "
            b"pid 4000\n"
        )


def test_a_wildcard_ipv6_address_is_asked_over_ipv4_where_the_loopback_has_no_ipv6(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # UWSGIAPP_STATS=[::]:9191 in Docker (whose loopback has no IPv6): the server answered on
    # IPv4 too, the check's connect to :: failed with EADDRNOTAVAIL, and the container was
    # unhealthy for good. (A loopback without IPv6 cannot be had here: its connect stands in.)
    real = reader.socket.create_connection

    def no_ipv6(address: tuple[str, int], timeout: float) -> object:
        if address[0] == "::":
            raise OSError(99, "Cannot assign requested address")
        return real(address, timeout=timeout)

    monkeypatch.setattr(reader.socket, "create_connection", no_ipv6)
    with running(StatsServer("127.0.0.1:0", snapshot=sample)) as up:
        port = up.address[1]  # type: ignore[index]
        assert health_main([f"[::]:{port}"], {}) == 0
        assert "healthy: 3 workers accept" in capsys.readouterr().out
        assert health_main([f"[::1]:{port}"], {}) == 3  # a given address is asked, no other


def test_nothing_to_ask_is_a_usage_error_and_no_answer_is_exit_3() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}
    done = health(env=env)
    assert done.returncode == 2 and "UWSGIAPP_STATS is not set" in done.stderr
    sockdir = short_tmpdir()
    try:
        done = health(os.path.join(sockdir, "nobody.sock"), env=env)
    finally:
        shutil.rmtree(sockdir, ignore_errors=True)
    assert done.returncode == 3 and "cannot connect" in done.stderr
    # The same check as a command of uwsgiapp's: "uwsgiapp health" was "invalid choice".
    same = subprocess.run(
        [sys.executable, "-m", "uwsgiapp", "health", "/nonexistent/nobody.sock"],
        capture_output=True,
        text=True,
        timeout=30,
        env=env,
    )
    assert same.returncode == 3 and "health: error: cannot connect" in same.stderr
    usage = subprocess.run(
        [sys.executable, "-m", "uwsgiapp", "health"], capture_output=True, text=True, env=env
    )
    assert usage.returncode == 2 and "UWSGIAPP_STATS is not set" in usage.stderr


@pytest.mark.parametrize("http", [False, True])
def test_a_saturated_server_is_healthy_where_a_ping_times_out(tmp_path: Path, http: bool) -> None:
    sockdir = short_tmpdir()
    stats = os.path.join(sockdir, "stats.sock")
    source = stats_source(stats, {}, http)
    server = Server(tmp_path, "stats_app:app", workers=1, stats=stats, stats_http=http)
    busy = occupy(server, 30)  # ended by the quick stop below
    try:
        server.start()
        wait_doc(lambda: fetch(source), accepting, 15)
        busy.start()
        wait_doc(lambda: fetch(source), lambda d: d["workers"][0]["status"] == "busy", 5)
        ping = subprocess.run(
            [sys.executable, "-m", "uwsgiapp", "ping", "--timeout", "1", server.socket],
            capture_output=True,
            timeout=30,
        )
        env = {**os.environ, "UWSGIAPP_STATS": stats, "UWSGIAPP_STATS_HTTP": str(http)}
        done = health(env=env)
        assert ping.returncode != 0  # the one worker is busy: nobody answers the ping
        assert done.returncode == 0, done.stderr
        assert done.stdout == f"healthy: 1 worker accepts (1 busy); master pid {server.pid}\n"
    finally:
        server.signal(signal.SIGINT)
        busy.join(30)
        server.stop()
        shutil.rmtree(sockdir, ignore_errors=True)


def test_no_worker_accepting_is_exit_1(tmp_path: Path) -> None:
    # The one worker is busy when TERM comes: it finishes its request but no longer accepts.
    sockdir = short_tmpdir()
    stats = os.path.join(sockdir, "stats.sock")
    server = Server(tmp_path, "stats_app:app", workers=1, stats=stats, graceful_timeout=20)
    busy = occupy(server, 4)
    try:
        server.start()
        wait_doc(lambda: fetch(parse_source(stats)), accepting, 15)
        busy.start()
        wait_doc(
            lambda: fetch(parse_source(stats)), lambda d: d["workers"][0]["status"] == "busy", 5
        )
        server.signal(signal.SIGTERM)
        done = wait_health(stats, lambda d: d.returncode != 0)
        assert done.returncode == EXIT_UNHEALTHY, done.stderr
        assert done.stdout.startswith("unhealthy: 0 workers accept")
    finally:
        if busy.is_alive():  # checked: a quick stop cuts the rest of its 4 s
            server.signal(signal.SIGINT)
            busy.join(30)
        server.stop()
        shutil.rmtree(sockdir, ignore_errors=True)


def wait_health(
    address: str, check: Callable[[subprocess.CompletedProcess[str]], bool]
) -> subprocess.CompletedProcess[str]:
    deadline = time.monotonic() + 10
    while True:
        done = health(*address.split())
        if check(done) or time.monotonic() > deadline:
            return done
        time.sleep(0.1)


def test_the_check_reads_a_boolean_as_the_server_does() -> None:
    assert (reader._TRUE, reader._FALSE) == (TRUE_WORDS, FALSE_WORDS)


def test_the_check_finds_the_server_as_serve_configures_it() -> None:
    # An image that sets its defaults (UWSGIAPP_DEFAULT_STATS, as README shows) had a probe
    # that always failed: the check read UWSGIAPP_STATS alone.
    image = {"UWSGIAPP_DEFAULT_STATS": "127.0.0.1:9191", "UWSGIAPP_DEFAULT_STATS_HTTP": "1"}
    source = reader.stats_source("", image)
    assert (source.host, source.port, source.http_path) == ("127.0.0.1", 9191, "/")
    mine = {**image, "UWSGIAPP_STATS": "127.0.0.1:9292", "UWSGIAPP_STATS_HTTP": "off"}
    source = reader.stats_source("", mine)
    assert (source.port, source.http) == (9292, False)
    # Set but empty, the variable turns the server's stats off: the check has no address.
    with pytest.raises(ValueError, match="no ADDR given"):
        reader.stats_source("", {**image, "UWSGIAPP_STATS": ""})
    # A value serve refuses is refused here too (it read as "no", and the check timed out).
    with pytest.raises(ValueError, match="UWSGIAPP_STATS_HTTP: expected a boolean, got 'maybe'"):
        reader.stats_source("127.0.0.1:9191", {"UWSGIAPP_STATS_HTTP": "maybe"})
    # A probe's URL: the document is at /, which the check asks.
    for page in ("/health", "/metrics"):
        source = reader.stats_source(f"http://127.0.0.1:9191{page}", {})
        assert source.http_path == "/"


SLOW_IMPORT = """
import os, time
deadline = time.monotonic() + 30
while not os.path.exists({go!r}) and time.monotonic() < deadline:  # the test says when
    time.sleep(0.05)

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


@pytest.mark.parametrize("http", [False, True])
def test_the_stats_answer_while_the_master_imports_the_app(tmp_path: Path, http: bool) -> None:
    # A slow first import (a warm-up, a remote config): the stats listener accepted and said
    # nothing until it ended, so a probe waited out its own timeout (3 s: "timed out reading
    # the stats") instead of getting its 503 at once.
    go = tmp_path / "go"
    (tmp_path / "slowimport.py").write_text(SLOW_IMPORT.format(go=str(go)))
    sockdir = short_tmpdir()
    stats = os.path.join(sockdir, "stats.sock")
    server = Server(
        tmp_path, "slowimport:app", workers=1, stats=stats, stats_http=http,
        pythonpath=[str(tmp_path)],
    )  # fmt: skip
    env = {**os.environ, "UWSGIAPP_STATS": stats, "UWSGIAPP_STATS_HTTP": str(http)}
    try:
        server.start(wait=False)
        deadline = time.monotonic() + 15
        while not os.path.exists(stats) and time.monotonic() < deadline:
            time.sleep(0.05)
        done = health(env=env)
        assert done.returncode == EXIT_UNHEALTHY, done.stderr
        assert done.stdout == (
            "unhealthy: no worker yet (the master is starting: the app's import); "
            f"master pid {server.pid}\n"
        )
        assert (
            fetch(parse_source(stats) if not http else stats_source(stats, {}, True))["workers"]
            == []
        )
        go.touch()
        args = [stats, *(["--http"] if http else [])]
        assert wait_health(" ".join(args), lambda d: d.returncode == 0).returncode == 0
    finally:
        server.stop()
        shutil.rmtree(sockdir, ignore_errors=True)
    assert "started 1 thread" not in server.log(), server.log()  # the stats' own thread
