"""Slow clients: 100 connections each holding half a packet head or half a body open.

Straight on the uwsgi socket of ``serve --workers 2 --socket-timeout 2``, a connection whose head
(or small body) has not fully arrived must not occupy a worker: others are served at once, and
the held connections are closed by the server after about the socket timeout, one log line
each. Through nginx the same slow HTTP clients are nginx's to buffer: they never reach the
server, and everyone else's requests go through.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from reliability.conftest import Report, sized
from support.procs import (
    LogCursor,
    Server,
    closed_after,
    http_request,
    stack,
    uwsgi_exchange,
    wait_for_workers,
    worker_pids,
)

from uwsgiproto import build_request

pytestmark = pytest.mark.nginx

SOCKET_TIMEOUT = 2.0
HELD = 100
#: Requests sent by other clients while the 100 are held (in parallel).
OTHERS = sized(10, 40)
#: "Promptly": each other request answered within this while the held ones wait.
PROMPT = 1.0
#: Held connections must be closed between these bounds (seconds after their last byte).
CLOSE_AFTER = (SOCKET_TIMEOUT * 0.5, SOCKET_TIMEOUT + 2.5)

VARS = {
    "QUERY_STRING": "",
    "REQUEST_METHOD": "POST",
    "CONTENT_TYPE": "application/octet-stream",
    "REQUEST_URI": "/held",
    "PATH_INFO": "/held",
    "SERVER_PROTOCOL": "HTTP/1.1",
    "REMOTE_ADDR": "127.0.0.1",
    "SERVER_PORT": "80",
    "SERVER_NAME": "localhost",
    "HTTP_HOST": "localhost",
    "HTTP_USER_AGENT": "slow-client/1.0 " + "x" * 300,
}


def held_packet(i: int) -> bytes:
    """Even ``i``: the first half of a head. Odd: a whole head and half of a 2,000-byte body."""
    if i % 2 == 0:
        packet = build_request({**VARS, "REQUEST_METHOD": "GET", "CONTENT_LENGTH": ""})
        return packet[: len(packet) // 2]
    return build_request({**VARS, "CONTENT_LENGTH": "2000"}, b"h" * 1000)


def in_parallel(count: int, one: Callable[[int], str]) -> list[tuple[str, float]]:
    """Run ``one(i)`` for i in range(count) in threads: [(problem or '', seconds)]."""
    results: list[tuple[str, float]] = [("not run", 0.0)] * count

    def run(i: int) -> None:
        started = time.monotonic()
        try:
            problem = one(i)
        except Exception as exc:  # a timeout or a refused connection is an outcome here
            problem = f"{type(exc).__name__}: {exc}"
        results[i] = (problem, time.monotonic() - started)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return results


def summary(values: list[float]) -> dict[str, Any]:
    done = sorted(v for v in values if v != float("inf"))
    return {
        "closed": len(done),
        "still_open": len(values) - len(done),
        "min_s": round(done[0], 2) if done else None,
        "max_s": round(done[-1], 2) if done else None,
    }


def test_held_uwsgi_connections_do_not_block_others(tmp_path: Path, report: Report) -> None:
    report(
        "Slow clients on the uwsgi socket",
        f"{HELD} connections holding half a head or half a body on `serve --workers 2 "
        f"--socket-timeout {SOCKET_TIMEOUT:g}`: others answered within {PROMPT:g} s, the held "
        "ones closed after about the socket timeout, one log line each",
        held=HELD,
        others=OTHERS,
        socket_timeout=SOCKET_TIMEOUT,
    )
    server = Server(
        tmp_path / "server", "fuzz_app:app", workers=2, socket_timeout=SOCKET_TIMEOUT
    ).start()
    held: list[socket.socket] = []
    try:
        workers = wait_for_workers(server, 2)
        cursor = LogCursor(server.log_path)
        sent_at = []
        for i in range(HELD):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(server.socket)
            sock.sendall(held_packet(i))
            sent_at.append(time.monotonic())
            held.append(sock)

        def other(i: int) -> str:
            body = b"o%d" % i * (i % 3)
            variables = {**VARS, "PATH_INFO": f"/other/{i}", "CONTENT_LENGTH": str(len(body))}
            result = uwsgi_exchange(
                server.socket, build_request(variables, body), timeout=PROMPT + 2
            )
            head, _, payload = result.data.partition(b"\r\n\r\n")
            if not head.startswith(b"HTTP/1.1 200 OK"):
                return f"{result.end}: {result.data[:80]!r}"
            info = json.loads(payload)
            return (
                "" if (info["path"], info["body_len"]) == (f"/other/{i}", len(body)) else str(info)
            )

        # The others run while we watch the held connections close (so close times are exact).
        results: list[list[tuple[str, float]]] = []
        others_thread = threading.Thread(
            target=lambda: results.append(in_parallel(OTHERS, other)), daemon=True
        )
        others_thread.start()
        closed, _ = closed_after(held, sent_at, sent_at[-1] + CLOSE_AFTER[1])
        others_thread.join()
        others = results[0]
        lines = [line for line in cursor.new_lines() if not line.endswith(") started")]
        report.add(
            others_ok=sum(1 for p, _ in others if not p),
            others_max_s=round(max(s for _, s in others), 2),
            held_close=summary(closed),
            log_lines=len(lines),
        )
        slow = [(i, p, round(s, 2)) for i, (p, s) in enumerate(others) if p or s > PROMPT]
        assert slow == [], f"{len(slow)} of {OTHERS} other requests failed or were slow: {slow[:3]}"
        early = [round(c, 2) for c in closed if c < CLOSE_AFTER[0]]
        late = [c for c in closed if c > CLOSE_AFTER[1]]
        assert not early, f"held connections closed before the socket timeout: {early[:5]}"
        assert not late, f"{len(late)} held connections not closed {CLOSE_AFTER[1]:g}s after"
        # One line per held connection at most; no traceback, nothing at ERROR.
        assert len(lines) <= HELD, lines[:5]
        assert not [line for line in lines if "[INFO]" not in line], lines[:5]
        assert worker_pids(server.pid) == workers
    finally:
        for sock in held:
            sock.close()
        server.stop()
    assert "Traceback" not in server.log()


def test_slow_http_clients_are_nginx_buffering(
    tmp_path: Path, report: Report, nginx_available: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    report(
        "Slow clients through nginx",
        f"{HELD} HTTP clients holding half a request head or half a body: nginx buffers them "
        f"(they never reach the server), others answered within {PROMPT:g} s",
        held=HELD,
        others=OTHERS,
    )
    app_report = tmp_path / "app-report.jsonl"
    monkeypatch.setenv("FUZZ_APP_REPORT", str(app_report))
    held: list[socket.socket] = []
    with stack(tmp_path, "fuzz_app:app", workers=2, socket_timeout=SOCKET_TIMEOUT) as (
        server,
        nginx,
    ):
        workers = wait_for_workers(server, 2)
        cursor = LogCursor(server.log_path)
        try:
            for i in range(HELD):
                sock = socket.create_connection(("127.0.0.1", nginx.port), timeout=5)
                if i % 2 == 0:
                    sock.sendall(b"GET /held HTTP/1.1\r\nHost: localhost\r\nX-Half: aaaa")
                else:
                    sock.sendall(
                        b"POST /held HTTP/1.1\r\nHost: localhost\r\nContent-Length: 2000\r\n\r\n"
                        + b"h" * 1000
                    )
                held.append(sock)

            def other(i: int) -> str:
                body = b"o%d" % i * (i % 3)
                status, _, payload = http_request(
                    nginx.port, "POST", f"/other/{i}", body, timeout=PROMPT + 2
                )
                if status != 200:
                    return f"HTTP {status}: {payload[:80]!r}"
                info = json.loads(payload)
                return "" if info["body_len"] == len(body) else str(info)

            others = in_parallel(OTHERS, other)
            # Past the server's socket timeout: had nginx passed a half request on, the server
            # would have timed it out and logged it by now.
            time.sleep(SOCKET_TIMEOUT + 0.5)
            lines = cursor.new_lines()
            seen = [json.loads(line)["path"] for line in app_report.read_text().splitlines()]
            report.add(
                others_ok=sum(1 for p, _ in others if not p),
                others_max_s=round(max(s for _, s in others), 2),
                server_log_lines=len(lines),
                held_reaching_app=seen.count("/held"),
            )
            slow = [(i, p, round(s, 2)) for i, (p, s) in enumerate(others) if p or s > PROMPT]
            assert slow == [], f"{len(slow)} other requests failed or were slow: {slow[:3]}"
            assert sorted(seen) == sorted(f"/other/{i}" for i in range(OTHERS))
            assert lines == []
            # nginx still holds them open (its client timeouts are 60 s).
            assert (
                closed_after(held, [time.monotonic()] * HELD, time.monotonic() + 0.2)[0]
                == [float("inf")] * HELD
            )
            assert worker_pids(server.pid) == workers
        finally:
            for sock in held:
                sock.close()
    assert not nginx.upstream_errors()
    assert "Traceback" not in server.log()
