"""``uwsgiapp top``: addresses, rates, ``--once`` against a real StatsServer (unix, TCP, HTTP),
errors, and the live view under tmux."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import threading
from collections.abc import Iterator

import pytest
from stats_kit import PYTHON, ROOT, Tmux, running, sample, server_stats, spec_of, worker
from support.procs import short_tmpdir

from uwsgiapp.stats.document import build_document
from uwsgiapp.stats.model import CoreStats, ServerStats
from uwsgiapp.stats.reader import parse_source
from uwsgiapp.stats.server import StatsServer
from uwsgiapp.stats.top import Sample, rates, render


def top(
    *args: str, timeout: float = 20, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_STATS")}
    return subprocess.run(
        [PYTHON, "-m", "uwsgiapp", "top", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**environ, "PYTHONPATH": ROOT, **(env or {})},
    )


@pytest.fixture
def sockdir() -> Iterator[str]:
    path = short_tmpdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.parametrize(
    "text, expected",
    [
        ("/run/stats.sock", {"path": "/run/stats.sock"}),
        ("stats.sock", {"path": "stats.sock"}),
        ("unix:rel/s.sock", {"path": "rel/s.sock"}),
        ("@abstract", {"path": "\0abstract"}),
        ("127.0.0.1:9191", {"host": "127.0.0.1", "port": 9191}),
        (":9191", {"host": "127.0.0.1", "port": 9191}),
        ("[::1]:9191", {"host": "::1", "port": 9191}),
        ("http://127.0.0.1:9191", {"host": "127.0.0.1", "port": 9191, "http_path": "/"}),
        ("http://localhost/x", {"host": "localhost", "port": 80, "http_path": "/x"}),
    ],
)
def test_parse_source(text: str, expected: dict[str, object]) -> None:
    source = parse_source(text)
    for key, value in expected.items():
        assert getattr(source, key) == value


@pytest.mark.parametrize("text", ["", "https://x:1", "host:99999", "host:port", "[::1]9"])
def test_parse_source_rejects(text: str) -> None:
    with pytest.raises(ValueError):
        parse_source(text)


def test_rates_from_deltas_never_negative() -> None:
    from uwsgiapp.stats.document import build_document

    before = Sample(10.0, build_document(server_stats(worker(1, 100), worker(2, 50))))
    after = Sample(12.0, build_document(server_stats(worker(1, 160), worker(2, 10))))
    assert rates(before, after) == {1: 30.0, 2: 0.0}  # worker 2 respawned: counter restarted
    assert rates(None, after) == {}
    lines = render(before, after, "x")
    assert "req/s: 30.0" in lines[1]


def _row_for(text: str, wid: int, pid: int, requests: int) -> bool:
    pattern = rf"^\s*{wid}\s+{pid}\s+\w+\s+{requests}\s"
    return re.search(pattern, text, re.MULTILINE) is not None


def _assert_rows(out: str, stats: ServerStats) -> None:
    for w in stats.workers:
        assert _row_for(out, w.id, w.pid, w.requests), out
    assert f"requests: {stats.requests}" in out
    assert "master pid 4000" in out


def test_once_over_unix_tcp_and_http(sockdir: str) -> None:
    stats = sample()
    path = os.path.join(sockdir, "s.sock")
    with running(StatsServer(path, snapshot=sample)):
        result = top(path, "--once")
    assert result.returncode == 0, result.stderr
    assert "\x1b" not in result.stdout  # plain text, no escape codes
    _assert_rows(result.stdout, stats)
    assert re.search(r"^\s*2\s+4002\s+busy\s", result.stdout, re.MULTILINE)
    assert "21.0M" in result.stdout  # worker 1's RSS
    assert "1.5" in result.stdout  # avg_rt 1500 µs in ms

    with running(StatsServer("127.0.0.1:0", snapshot=sample)) as server:
        result = top(spec_of(server.address), "--once")
    assert result.returncode == 0, result.stderr
    _assert_rows(result.stdout, stats)

    with running(StatsServer("127.0.0.1:0", http=True, snapshot=sample)) as server:
        result = top(f"http://{spec_of(server.address)}", "--once")
        assert result.returncode == 0, result.stderr
        _assert_rows(result.stdout, stats)
        # Without http://, the HTTP server waits for a request: the timeout says what to give.
        address = spec_of(server.address)
        plain = top(address, "--once", "--timeout", "0.5")  # no answer comes: not 3 s for it
    assert plain.returncode == 4
    assert f"(with --stats-http, give http://{address}/" in plain.stderr

    # A unix socket in HTTP mode has no URL: --http says so (the health check's flag too).
    with running(StatsServer(path, http=True, snapshot=sample)):
        result = top(path, "--once", "--http")
        plain = top(path, "--once", "--timeout", "0.5")
    assert result.returncode == 0, result.stderr
    _assert_rows(result.stdout, stats)
    assert plain.returncode == 4 and "(with --stats-http, add --http;" in plain.stderr


def test_without_addr_the_servers_own_setting_is_read() -> None:
    # What the uwsgiapp image sets for its health check; `docker exec CONTAINER uwsgiapp top`.
    with running(StatsServer("127.0.0.1:0", http=True, snapshot=sample)) as server:
        env = {"UWSGIAPP_STATS": spec_of(server.address), "UWSGIAPP_STATS_HTTP": "1"}
        result = top("--once", env=env)
    assert result.returncode == 0, result.stderr
    _assert_rows(result.stdout, sample())
    nothing = top("--once")
    assert nothing.returncode == 2
    assert "no ADDR given and UWSGIAPP_STATS is not set" in nothing.stderr


def test_errors_have_their_exit_codes(sockdir: str) -> None:
    assert top(os.path.join(sockdir, "none.sock"), "--once").returncode == 3
    assert top("ftp://x", "--once").returncode == 2
    assert top("x.sock", "--once", "--interval", "0").returncode == 2
    # a server that answers something else than a stats document
    listener = socket.socket(socket.AF_UNIX)
    path = os.path.join(sockdir, "junk.sock")
    listener.bind(path)
    listener.listen()

    def answer_junk() -> None:
        conn, _ = listener.accept()
        conn.sendall(b"hello, not json")
        conn.close()

    thread = threading.Thread(target=answer_junk, daemon=True)
    thread.start()
    result = top(path, "--once")
    thread.join(5)
    listener.close()
    assert result.returncode == 4
    assert "not a JSON stats document" in result.stderr


@pytest.mark.parametrize("kind", ["unix", "tcp"])
def test_a_silent_socket_may_be_the_uwsgi_one(sockdir: str, kind: str) -> None:
    # `uwsgiapp top` given the uwsgi socket (which waits for a request, as a stats server in
    # HTTP mode does): the line names both, and how to tell.
    listener = socket.socket(socket.AF_UNIX if kind == "unix" else socket.AF_INET)
    listener.bind(os.path.join(sockdir, "uwsgi.sock") if kind == "unix" else ("127.0.0.1", 0))
    listener.listen()
    address = listener.getsockname()
    spec = address if kind == "unix" else f"127.0.0.1:{address[1]}"
    with listener:
        result = top(spec, "--once", "--timeout", "0.5")  # no answer comes: not 3 s for it
    assert result.returncode == 4
    assert "timed out reading the stats" in result.stderr
    assert f"`uwsgiapp ping {spec}` answers on a uwsgi socket" in result.stderr
    assert ("give http://" in result.stderr) is (kind == "tcp")


def test_live_view_under_tmux_shows_rows_and_rates(sockdir: str) -> None:
    counts = {"n": 1000}

    def snap() -> ServerStats:
        counts["n"] += 50  # 50 requests per read
        return server_stats(worker(1, counts["n"]), worker(2, 7, status="busy"))

    path = os.path.join(sockdir, "s.sock")
    session = f"uwa-top-{os.getpid()}"
    with running(StatsServer(path, snapshot=snap)):
        tmux = Tmux(
            session,
            [PYTHON, "-m", "uwsgiapp", "top", path, "--interval", "0.3"],
            width=120,
            height=30,
        )
        try:
            screen = tmux.wait_for(
                lambda s: (
                    "REQ/S" in s
                    and re.search(r"^\s*1\s+4001\s+idle\s+1\d{3}\s+\d", s, re.M) is not None
                    and re.search(r"^\s*2\s+4002\s+busy\s+7\s", s, re.M) is not None
                    and re.search(r"req/s: [1-9]", s) is not None
                )
            )
            assert "REQ/S" in screen, screen
            assert re.search(r"^\s*2\s+4002\s+busy\s+7\s", screen, re.M), screen
            assert re.search(r"req/s: [1-9]", screen), screen  # rate from deltas
            tmux.send_keys("q")
            assert "[exited 0]" in tmux.wait_for(lambda s: "[exited" in s), tmux.capture()
        finally:
            tmux.kill()


def test_once_prints_no_control_character_of_the_document(sockdir: str) -> None:
    # Whoever listens at the address writes the text: a title, a cleared screen and a forged
    # line reached root's terminal through --once ("plain text" was only ours).
    import json

    evil = "\x1b]0;PWNED\x07\x1b[2J\r\nFAKE LINE"
    doc = {"version": evil, "pid": 1, "workers": [{"id": 1, "pid": 2, "status": evil}]}
    path = os.path.join(sockdir, "fake.sock")
    listener = socket.socket(socket.AF_UNIX)
    listener.bind(path)
    listener.listen(1)

    def serve() -> None:
        conn, _ = listener.accept()
        with conn:
            conn.sendall(json.dumps(doc).encode())

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        result = top(path, "--once")
    finally:
        thread.join(10)
        listener.close()
    assert result.returncode == 0, result.stderr
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f]", result.stdout), repr(result.stdout)
    assert "\\x1B]0;PWNED\\x07" in result.stdout
    assert not any(line.startswith("FAKE LINE") for line in result.stdout.splitlines())


def test_a_threaded_workers_state_counts_its_busy_threads() -> None:
    # "busy" with one request in flight or all of them: the busy threads of all tell which.
    cores = tuple(
        CoreStats(id=i, requests=5, in_request=i < 3, request_start=1_700_000_100 if i < 3 else 0)
        for i in range(4)
    )
    doc = build_document(server_stats(worker(1, 20, status="busy", cores=cores), worker(2, 7)))
    lines = render(None, Sample(0.0, doc), "test")
    assert re.search(r"^\s*1\s+4001\s+busy 3/4\s+20\s", "\n".join(lines), re.M), lines
    assert re.search(r"^\s*2\s+4002\s+idle\s+7\s", "\n".join(lines), re.M), lines


def test_the_live_view_without_a_terminal_says_so_and_names_once() -> None:
    # `docker exec CONTAINER uwsgiapp top` (no -t), or its output piped: curses' traceback.
    result = top("127.0.0.1:9")
    assert result.returncode == 2, result
    assert result.stderr == (
        "uwsgiapp top: error: the live view needs a terminal (docker exec -t, kubectl exec -t);"
        " --once prints one snapshot as plain text\n"
    )


@pytest.mark.parametrize("term", ["", "uwa-no-such-terminal"])
def test_the_live_view_on_a_terminal_this_system_cannot_drive_says_so(term: str) -> None:
    # `kubectl exec -it` passes no TERM; a TERM from the user's desktop (xterm-kitty) has no
    # terminfo entry in a slim image: curses' "setupterm: could not find terminal" traceback.
    import pty

    leader, follower = pty.openpty()
    environ = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_STATS")}
    try:
        proc = subprocess.run(
            [PYTHON, "-m", "uwsgiapp", "top", "127.0.0.1:9"],
            stdin=follower,
            stdout=follower,
            stderr=subprocess.PIPE,
            text=True,
            timeout=20,
            env={**environ, "PYTHONPATH": ROOT, "TERM": term},
        )
    finally:
        os.close(follower)
        os.close(leader)
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    assert f"cannot drive this terminal (TERM={term!r}: " in proc.stderr, proc.stderr
    assert "e.g. TERM=xterm, or use --once" in proc.stderr, proc.stderr
