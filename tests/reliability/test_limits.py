"""Limits against a live server (and through nginx where nginx is in the path).

Each limit gives a clear error: the right status (or a close where uWSGI closes too), one log
line naming the limit, no traceback, the app not called when the request is refused, and the
same worker pids afterwards.

What the code does, and so what is asserted: a vars block over ``--buffer-size`` or over 512
vars is refused by the codec (``uwsgiproto/decoder.py``): one WARNING "invalid uwsgi packet ...",
the connection closed without an answer (nginx then answers 502), as uWSGI does. A bad
CONTENT_LENGTH is refused before the app (``uwsgiapp/server/intake.py``): 400 for anything
but digits, 413 over ``--limit-post`` (the body drained, so nginx gets the 413, not a reset).
A body shorter than promised makes the app's read raise ClientDisconnected (an OSError) after
``--socket-timeout``.
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from reliability.conftest import Report
from reliability.mutate import CORPUS
from support.procs import (
    LogCursor,
    Nginx,
    RawResult,
    Server,
    stack,
    uwsgi_exchange,
    wait_for_workers,
    worker_pids,
)

from uwsgiproto import build_request

pytestmark = pytest.mark.nginx

SOCKET_TIMEOUT = 2.0
LIMIT_POST = 1000
TIMEOUT = SOCKET_TIMEOUT + 8  # a client-side bound that only a hang reaches


@dataclass
class Live:
    """A server (and the nginx in front of it) shared by this module's tests."""

    server: Server
    nginx: Nginx
    app_report: Path
    workers: set[int]

    def paths_seen(self) -> list[str]:
        """PATH_INFO of every request the app was called for."""
        if not self.app_report.exists():
            return []
        return [
            json.loads(line).get("path", "") for line in self.app_report.read_text().splitlines()
        ]


def _live(factory: pytest.TempPathFactory, name: str, **options: Any) -> Iterator[Live]:
    workdir = factory.mktemp(name)
    app_report = workdir / "app-report.jsonl"
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("FUZZ_APP_REPORT", str(app_report))
        with stack(workdir, "fuzz_app:app", socket_timeout=SOCKET_TIMEOUT, **options) as (
            server,
            nginx,
        ):
            workers = wait_for_workers(server, options.get("workers", 1))
            yield Live(server, nginx, app_report, workers)
    assert "Traceback" not in server.log()


@pytest.fixture(scope="module")
def default(tmp_path_factory: pytest.TempPathFactory, nginx_available: None) -> Iterator[Live]:
    """uWSGI's default buffer-size (4096), limit-post 1000, two workers."""
    yield from _live(
        tmp_path_factory, "default", workers=2, limit_post=LIMIT_POST, buffer_size=4096
    )


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory, nginx_available: None) -> Iterator[Live]:
    """buffer-size 65535 (the maximum), no limit-post, one worker."""
    yield from _live(tmp_path_factory, "big", workers=1, buffer_size=65535)


class Watch:
    """What one test made a live server log; checks afterwards that it stayed healthy."""

    def __init__(self, live: Live) -> None:
        self.live = live
        self.cursor = LogCursor(live.server.log_path)
        self.lines: list[str] = []

    def new_lines(self) -> list[str]:
        time.sleep(0.05)  # nginx may answer a moment before the worker's line is flushed
        self.lines += self.cursor.new_lines()
        return self.lines

    def one_line(self, level: str, *fragments: str) -> str:
        """The test's only log line so far: at ``level``, containing every fragment."""
        lines = self.new_lines()
        assert len(lines) == 1, lines
        assert f"[{level}]" in lines[0], lines
        for fragment in fragments:
            assert fragment in lines[0], (fragment, lines)
        self.lines = []
        return lines[0]

    def healthy(self) -> None:
        lines = self.new_lines()
        assert not [line for line in lines if "[ERROR]" in line or "Traceback" in line], lines
        assert worker_pids(self.live.server.pid) == self.live.workers
        assert "starting a new one" not in self.live.server.log()


@pytest.fixture
def watch_default(default: Live) -> Iterator[Watch]:
    watch = Watch(default)
    yield watch
    watch.healthy()


@pytest.fixture
def watch_big(big: Live) -> Iterator[Watch]:
    watch = Watch(big)
    yield watch
    watch.healthy()


def request(path: str, body: bytes = b"", **extra: str) -> bytes:
    variables = {
        "REQUEST_METHOD": "POST" if body or "CONTENT_LENGTH" in extra else "GET",
        "PATH_INFO": path,
        "REQUEST_URI": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        **extra,
    }
    return build_request(variables, body)


def status_of(result: RawResult) -> int:
    assert result.end != "timeout", "the server did not close the connection"
    if not result.data:
        return 0
    return int(result.data.split(b"\r\n", 1)[0].split(b" ")[1])


def body_of(result: RawResult) -> dict[str, Any]:
    return json.loads(result.data.partition(b"\r\n\r\n")[2])  # type: ignore[no-any-return]


# -- the vars block ----------------------------------------------------------------------------


def test_vars_block_over_buffer_size(default: Live, watch_default: Watch, report: Report) -> None:
    report(
        "Limits: vars block over --buffer-size",
        "closed without an answer (nginx: 502) and one WARNING naming the limit, as uWSGI does",
    )
    sock = default.server.socket
    # A whole oversized block, and a header alone that claims one.
    packet = request("/over", HTTP_X_BIG="b" * 5000)
    result = uwsgi_exchange(sock, packet, timeout=TIMEOUT)
    assert status_of(result) == 0
    watch_default.one_line(
        "WARNING",
        "invalid uwsgi packet",
        f"invalid request block size: {len(packet) - 4}",
        "(max 4096)",
    )
    result = uwsgi_exchange(sock, b"\x00\xff\xff\x00", timeout=TIMEOUT)
    assert status_of(result) == 0
    watch_default.one_line("WARNING", "invalid request block size: 65535 (max 4096)")
    # The largest block that fits is fine.
    fits = request("/fits", HTTP_X_BIG="")
    fits = request("/fits", HTTP_X_BIG="f" * (4096 - (len(fits) - 4)))
    assert len(fits) - 4 == 4096
    result = uwsgi_exchange(sock, fits, timeout=TIMEOUT)
    assert status_of(result) == 200 and body_of(result)["path"] == "/fits"
    # Through nginx: a 5 KB header makes a block over 4096.
    status, _, _ = default.nginx.request("GET", "/over-nginx", headers={"X-Big": "n" * 5000})
    assert status == 502
    watch_default.one_line("WARNING", "invalid request block size", "(max 4096)")
    assert "/over" not in default.paths_seen() and "/over-nginx" not in default.paths_seen()
    report.add(direct="closed", through_nginx=status)


def test_65535_byte_block(
    default: Live, big: Live, watch_default: Watch, watch_big: Watch, report: Report
) -> None:
    report(
        "Limits: a 65,535-byte vars block",
        "accepted with --buffer-size 65535, refused clearly with the default; a 65,535-byte "
        "value (which cannot fit) refused as malformed",
    )
    packet = (CORPUS / "valid" / "max_block_65535.bin").read_bytes()
    assert int.from_bytes(packet[1:3], "little") == 65535
    result = uwsgi_exchange(big.server.socket, packet, timeout=TIMEOUT)
    assert status_of(result) == 200
    assert body_of(result)["longest_var"] > 65000
    assert watch_big.new_lines() == []
    result = uwsgi_exchange(default.server.socket, packet, timeout=TIMEOUT)
    assert status_of(result) == 0
    watch_default.one_line("WARNING", "invalid request block size: 65535 (max 4096)")
    # A value length of 65535 inside a smaller block overruns it.
    overrun = (CORPUS / "invalid" / "value_length_65535.bin").read_bytes()
    assert status_of(uwsgi_exchange(big.server.socket, overrun, timeout=TIMEOUT)) == 0
    watch_big.one_line("WARNING", "invalid uwsgi packet", "overruns")
    # Through nginx, with the big server: an 8 KB header (nginx's own header buffer limit).
    status, _, payload = big.nginx.request("GET", "/big-nginx", headers={"X-Big": "n" * 7500})
    assert status == 200 and json.loads(payload)["longest_var"] >= 7500
    report.add(block_65535_big="200", block_65535_default="closed", nginx_7500_byte_header=status)


def test_max_vars(big: Live, watch_big: Watch, report: Report) -> None:
    report(
        "Limits: max_vars (512)",
        "512 vars accepted, 513 refused (too many vars), through nginx too (502)",
    )

    def many(n: int) -> bytes:
        base = request("/vars")
        # request() has 8 vars; pad with empty-valued ones up to n.
        extra = {f"K{i:04d}": "" for i in range(n - 8)}
        assert len(extra) + 8 == n
        return base if n == 8 else request("/vars", **extra)

    result = uwsgi_exchange(big.server.socket, many(512), timeout=TIMEOUT)
    assert status_of(result) == 200
    result = uwsgi_exchange(big.server.socket, many(513), timeout=TIMEOUT)
    assert status_of(result) == 0
    watch_big.one_line("WARNING", "invalid uwsgi packet", "513", "raise --max-vars")
    # Through nginx: 600 headers are 600+ vars.
    headers = {f"X-N{i:03d}": "v" for i in range(600)}
    status, _, _ = big.nginx.request("GET", "/many-nginx", headers=headers)
    assert status == 502
    watch_big.one_line("WARNING", "invalid uwsgi packet")
    headers = {f"X-N{i:03d}": "v" for i in range(400)}
    status, _, _ = big.nginx.request("GET", "/many-nginx", headers=headers)
    assert status == 200
    report.add(vars_512="200", vars_513="closed", nginx_600_headers=502, nginx_400_headers=200)


def test_max_vars_raised(tmp_path_factory: pytest.TempPathFactory, nginx_available: None) -> None:
    # 600 request headers (gunicorn serves them; uWSGI with its max-vars raised): --max-vars.
    for live in _live(tmp_path_factory, "many-vars", workers=1, max_vars=1000):
        headers = {f"X-N{i:03d}": "v" for i in range(600)}
        status, _, payload = live.nginx.request("GET", "/many-nginx", headers=headers)
        assert status == 200 and json.loads(payload)["path"] == "/many-nginx"
        over = request("/too-many", **{f"K{i:04d}": "" for i in range(1000)})
        assert status_of(uwsgi_exchange(live.server.socket, over, timeout=TIMEOUT)) == 0
        assert "too many vars: 1008 (max 1000)" in live.server.log()


# -- CONTENT_LENGTH ----------------------------------------------------------------------------


def test_content_length_over_limit_post(
    default: Live, watch_default: Watch, report: Report
) -> None:
    report(
        "Limits: CONTENT_LENGTH over --limit-post",
        "413 without calling the app, one WARNING, the body drained (nginx passes the 413, "
        "no reset)",
        limit_post=LIMIT_POST,
    )
    sock = default.server.socket
    result = uwsgi_exchange(sock, request("/at-limit", b"a" * LIMIT_POST), timeout=TIMEOUT)
    assert status_of(result) == 200 and body_of(result)["body_len"] == LIMIT_POST
    assert watch_default.new_lines() == []
    result = uwsgi_exchange(sock, request("/over-limit", b"a" * (LIMIT_POST + 1)), timeout=TIMEOUT)
    assert status_of(result) == 413
    # The client gets the status's words; the limit and the option are for the log only.
    assert result.data.endswith(b"\r\n\r\nRequest Entity Too Large\n")
    # Which request (it named only the connection: nginx's socket or port).
    watch_default.one_line(
        "WARNING", "refused request", f"over limit-post {LIMIT_POST} (POST /over-limit)"
    )
    # 19+ digits: 413 too (no int() of a 4,300-digit string), and nothing waits for the body.
    result = uwsgi_exchange(sock, request("/huge", CONTENT_LENGTH="9" * 30), timeout=TIMEOUT)
    assert status_of(result) == 413 and result.seconds < SOCKET_TIMEOUT
    watch_default.one_line("WARNING", "refused request", "CONTENT_LENGTH of 30 digits")
    status, _, payload = default.nginx.request(
        "POST", "/post-over-limit-nginx", body=b"n" * 200_000
    )
    assert status == 413 and payload == b"Request Entity Too Large\n"
    watch_default.one_line("WARNING", "refused request", "CONTENT_LENGTH 200000")
    assert not [e for e in default.nginx.upstream_errors() if "post-over-limit" in e]
    assert not {"/over-limit", "/huge", "/post-over-limit-nginx"} & set(default.paths_seen())
    report.add(at_limit=200, over_limit=413, digits_30=413, through_nginx=status)


def test_content_length_of_thousands_of_digits_is_413(
    big: Live, watch_big: Watch, report: Report
) -> None:
    report(
        "Limits: CONTENT_LENGTH of 5,000 digits",
        "413 without calling the app even with no --limit-post (past int()'s 4,300 digits: "
        "no traceback), one WARNING, nothing waits for the body",
    )
    value = "9" * 5000
    result = uwsgi_exchange(
        big.server.socket, request("/digits", CONTENT_LENGTH=value), timeout=TIMEOUT
    )
    assert status_of(result) == 413 and result.seconds < SOCKET_TIMEOUT
    assert result.data.endswith(b"\r\n\r\nRequest Entity Too Large\n")
    watch_big.one_line("WARNING", "refused request", "CONTENT_LENGTH of 5000 digits")
    assert "/digits" not in big.paths_seen()
    report.add(digits_5000=413)


@pytest.mark.parametrize(
    "value",
    ["-1", "-0", "+5", " 5", "5 ", "0x10", "1e3", "1.5", "abc", "\u00b2", "5, 5"],
)
def test_bad_content_length_is_400(
    default: Live, watch_default: Watch, report: Report, value: str
) -> None:
    report(
        f"Limits: CONTENT_LENGTH {value!r}",
        "400 without calling the app, one WARNING line",
    )
    path = f"/bad-cl-{value.encode('unicode_escape').decode()}"
    result = uwsgi_exchange(
        default.server.socket, request(path, CONTENT_LENGTH=value), timeout=TIMEOUT
    )
    assert status_of(result) == 400
    watch_default.one_line("WARNING", "refused request", "invalid CONTENT_LENGTH")
    assert path not in default.paths_seen()


def test_bad_content_length_through_nginx(
    default: Live, watch_default: Watch, report: Report
) -> None:
    report(
        "Limits: bad Content-Length through nginx",
        "nginx refuses it itself (400); nothing reaches the server",
    )
    for value in ("-1", "abc", "1e3"):
        with socket.create_connection(("127.0.0.1", default.nginx.port), timeout=TIMEOUT) as s:
            s.sendall(f"POST /cl HTTP/1.1\r\nHost: x\r\nContent-Length: {value}\r\n\r\n".encode())
            answer = b"".join(iter(lambda: s.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.1 400"), answer[:80]
    assert watch_default.new_lines() == []
    assert "/cl" not in default.paths_seen()


def test_server_protocol_with_cr_lf_is_400(
    default: Live, watch_default: Watch, report: Report
) -> None:
    # Regression (found by the live fuzz): the app was called, then blamed at ERROR.
    report(
        "Limits: SERVER_PROTOCOL with CR/LF (raw client)",
        "400 before the app, one WARNING line, nothing at ERROR",
    )
    packet = request("/proto", SERVER_PROTOCOL="HTTP/1.1\r\nX-Injected: 1")
    result = uwsgi_exchange(default.server.socket, packet, timeout=TIMEOUT)
    assert result.data.startswith(b"HTTP/1.0 400 Bad Request\r\n")
    assert b"X-Injected" not in result.data
    watch_default.one_line("WARNING", "refused request", "SERVER_PROTOCOL")
    assert "/proto" not in default.paths_seen()


# -- a body shorter than promised --------------------------------------------------------------


def _stall(server: Server, packet: bytes) -> tuple[bytes, float]:
    """Send ``packet`` and keep the connection open: (answer, seconds until the server closed)."""
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(TIMEOUT)
        s.connect(server.socket)
        s.sendall(packet)
        started = time.monotonic()
        answer = b"".join(iter(lambda: s.recv(65536), b""))
        return answer, time.monotonic() - started


def test_body_shorter_than_promised(
    default: Live, big: Live, watch_default: Watch, watch_big: Watch, report: Report
) -> None:
    report(
        "Limits: body shorter than promised",
        "a small body (read before the app) that stalls: 408 after --socket-timeout, the app "
        "not called; a large one the app reads: its read raises ClientDisconnected (an OSError) "
        "after --socket-timeout; one INFO line each, nothing hangs",
        socket_timeout=SOCKET_TIMEOUT,
    )
    window = (SOCKET_TIMEOUT * 0.9, SOCKET_TIMEOUT + 3)
    # Small (<= 64 KB): the worker waits for it without calling the app.
    answer, small_s = _stall(default.server, request("/short-small", CONTENT_LENGTH="100") + b"x")
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert window[0] <= small_s <= window[1]
    watch_default.one_line(
        "INFO",
        "stalled",
        "its body incomplete",
        "after 2 s (POST /short-small: 1 of 100 bytes in); closing",
    )
    # None of it: nginx's `uwsgi_pass_request_body off` with CONTENT_LENGTH still passed.
    answer, _ = _stall(default.server, request("/no-body", CONTENT_LENGTH="100"))
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    watch_default.one_line(
        "INFO", "(POST /no-body: 0 of 100 bytes in): nginx sent none of it", "body off"
    )
    # ... and when the client closes instead: at once, one line, the app not called.
    result = uwsgi_exchange(
        default.server.socket, request("/short-eof", CONTENT_LENGTH="100") + b"x", timeout=TIMEOUT
    )
    assert status_of(result) == 0 and result.seconds < SOCKET_TIMEOUT / 2
    watch_default.one_line("INFO", "closed the connection before sending all it promised")
    assert not {"/short-small", "/short-eof"} & set(default.paths_seen())
    # Large (the server without limit-post): the app is called, its read fails after the
    # socket timeout, and the error it lets escape is answered 408 (it was a close: nginx's
    # 502 for a client that was only slow).
    large = request("/__rel/read-escape", CONTENT_LENGTH="200000") + b"x" * 100_000
    answer, escape_s = _stall(big.server, large)
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n")
    assert window[0] <= escape_s <= window[1]
    watch_big.one_line(
        "INFO",
        "stalled while the app read its body",
        f"timed out after {SOCKET_TIMEOUT:g}s; answered 408",
    )
    # An app that catches it sees an OSError, and answers.
    large = request("/__rel/read-catch", CONTENT_LENGTH="200000") + b"x" * 100_000
    answer, catch_s = _stall(big.server, large)
    info = json.loads(answer.partition(b"\r\n\r\n")[2])
    assert info["is_oserror"] and "ClientDisconnected" in info["mro"]
    watch_big.one_line(
        "INFO", "stalled while the app read its body", "the app caught it and went on: answered 200"
    )
    # Regression (found by the live fuzz): 17 nines with no limit-post and a short body is a
    # ClientDisconnected on EOF, not a MemoryError and a 500.
    packet = request("/__rel/read-catch", CONTENT_LENGTH="9" * 17) + b"x" * 10
    result = uwsgi_exchange(big.server.socket, packet, timeout=TIMEOUT)
    assert status_of(result) == 200
    assert body_of(result)["caught"] == "uwsgiapp.wsgi.input.ClientDisconnected"
    watch_big.one_line("INFO", "went away while the app read its body (10 of 999", "caught it")
    report.add(
        small_408_after_s=round(small_s, 2),
        large_closed_after_s=round(escape_s, 2),
        large_caught=info["caught"],
        large_answered_after_s=round(catch_s, 2),
    )


def test_content_length_zero_padded(default: Live, watch_default: Watch, report: Report) -> None:
    report(
        "Limits: a zero-padded CONTENT_LENGTH",
        "25 characters meaning 5 are a 5-byte body, not 'too large'",
    )
    packet = request("/zeros", b"12345", CONTENT_LENGTH="0" * 24 + "5")
    result = uwsgi_exchange(default.server.socket, packet, timeout=TIMEOUT)
    assert status_of(result) == 200 and body_of(result)["body_len"] == 5
    assert watch_default.new_lines() == []
