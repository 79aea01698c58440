"""``--threads N`` keeps the worker's guarantees: the framework's contexts per request, one
access-log line per request, max-requests, kill -9, slow-client parking."""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import socket
import threading
import time
from pathlib import Path

import pytest
from support.load import Load
from support.procs import (
    RawResult,
    Server,
    stack,
    uwsgi_exchange,
    uwsgi_get,
    wait_for_workers,
    wait_until,
    worker_pids,
)

import uwsgiproto

pytestmark = pytest.mark.nginx


def test_web_g_request_and_session_are_per_request_across_threads(
    tmp_path: Path, nginx_available: None
) -> None:
    rounds, clients = 4, 8
    wrong: list[str] = []
    together: list[int] = []

    def client(c: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        cookie, previous = "", ""
        for r in range(rounds):
            tag = f"c{c}r{r}"
            headers = {"X-Tag": tag, **({"Cookie": cookie} if cookie else {})}
            conn.request("GET", f"/tag/{tag}?wait=0.05", headers=headers)
            resp = conn.getresponse()
            answer = json.loads(resp.read())
            together.append(answer.pop("together"))
            cookie = (resp.getheader("Set-Cookie") or cookie).split(";", 1)[0]
            want = {
                "path_tag": tag,
                "g_tag": tag,
                "header_tag": tag,
                "session_tag": tag,
                "seen_before": previous,
            }
            if answer != want:
                wrong.append(f"{tag}: {answer}")
            previous = tag
        conn.close()

    with stack(tmp_path, "threads_web_app:app", workers=1, threads=8) as (server, nginx):
        wait_for_workers(server, 1)
        port = nginx.port
        threads = [threading.Thread(target=client, args=(c,)) for c in range(clients)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
    assert wrong == []
    # 32 requests of 50 ms from 8 clients on one worker: in the app together, not one at a time.
    assert len(together) == rounds * clients and max(together) >= 2, together


ACCESS_LINE = re.compile(
    r"\[pid: \d+\|app: 0\|req: \d+/\d+\] 127\.0\.0\.1 \(\) \{\d+ vars in \d+ bytes\} "
    r"\[[^\]]+\] GET /(sleep\?0\.0\d|)"
    r" => generated \d+ bytes in \d+ msecs \(HTTP/1\.[01] 200\) \d+ headers in \d+ bytes"
    r" \(1 switches on core ([0-7])\)"
)


def test_access_log_has_one_whole_line_per_request(tmp_path: Path, nginx_available: None) -> None:
    access = tmp_path / "access.log"
    options = {"workers": 2, "threads": 8, "access_log": "uwsgi", "access_log_file": str(access)}
    with stack(tmp_path, "threads_app:app", **options) as (server, nginx):
        wait_for_workers(server, 2)
        paths = ["/", "/sleep?0.01", "/sleep?0.02"]
        with Load(nginx.port, lambda n: paths[n % 3], clients=24, limit=1500) as load:
            load.wait_for(1500, 60)
        result = load.stop()
    lines = access.read_text(encoding="latin-1").splitlines()
    assert result.failures == []
    assert len(lines) == result.ok == 1500
    bad = [line for line in lines if not ACCESS_LINE.fullmatch(line)]
    assert bad == [], bad[:5]
    # The core is the request thread that served it (it said core 0 for every request).
    cores = {m.group(2) for line in lines if (m := ACCESS_LINE.fullmatch(line))}
    assert len(cores) > 1, cores


def test_the_json_access_log_names_the_request_thread(
    tmp_path: Path, nginx_available: None
) -> None:
    # The uwsgi line had its core; a JSON line could not tell the threads apart (to match a
    # slow request with the harakiri line's "thread N").
    access = tmp_path / "access.log"
    options = {"workers": 1, "threads": 4, "access_log": "json", "access_log_file": str(access)}
    with stack(tmp_path, "threads_app:app", **options) as (server, nginx):
        wait_for_workers(server, 1)
        with Load(nginx.port, lambda n: "/sleep?0.01", clients=8, limit=200) as load:
            load.wait_for(200, 60)
        result = load.stop()
    records = [json.loads(line) for line in access.read_text().splitlines()]
    assert result.failures == [] and len(records) == result.ok
    cores = {record["core"] for record in records}
    assert len(cores) > 1 and cores <= {0, 1, 2, 3}, cores


def test_max_requests_counts_every_thread_and_recycles_without_failures(
    tmp_path: Path, nginx_available: None
) -> None:
    with stack(tmp_path, "threads_app:app", workers=1, threads=4, max_requests=60) as (
        server,
        nginx,
    ):
        wait_for_workers(server, 1)
        with Load(nginx.port, lambda n: "/sleep?0.01", clients=8, limit=400) as load:
            load.wait_for(400, 60)
        result = load.stop()
        errors = nginx.upstream_errors()
        log = server.log()
    assert result.failures == [], result.failures[:5]
    assert errors == []
    recycles = log.count("served 60 requests (max-requests), recycling")
    assert 400 // 60 - 1 <= recycles <= 400 // 60 + 1, log


def test_kill_9_loses_only_that_workers_requests_in_flight(
    tmp_path: Path, nginx_available: None
) -> None:
    with stack(tmp_path, "threads_app:app", workers=2, threads=4) as (server, nginx):
        pids = wait_for_workers(server, 2)
        with Load(nginx.port, lambda n: "/sleep?0.05", clients=8) as load:
            load.wait_for(100, 20)
            victim = min(pids)
            os.kill(victim, signal.SIGKILL)
            wait_until(lambda: len(worker_pids(server.pid) - {victim}) == 2, 5, "a replacement")
            load.wait_for(load.result.total + 100, 20)
        result = load.stop()
    assert result.ok > 150
    # At most one request per thread of the killed worker was in flight.
    assert len(result.failures) <= 4, result.failures


def test_a_slow_client_is_parked_while_the_threads_serve_others(
    tmp_path: Path, nginx_available: None
) -> None:
    packet = uwsgiproto.build_request(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "SERVER_NAME": "t",
            "SERVER_PORT": "80",
        }
    )
    with stack(tmp_path, "threads_app:app", workers=1, threads=2) as (server, nginx):
        wait_for_workers(server, 1)
        slow = [socket.socket(socket.AF_UNIX) for _ in range(4)]  # more than threads
        for sock in slow:
            sock.settimeout(20)
            sock.connect(server.socket)
            sock.sendall(packet[:10])
        with Load(nginx.port, lambda n: "/sleep?0.01", clients=4, limit=100) as load:
            load.wait_for(100, 20)
        result = load.stop()
        answers = []
        for sock in slow:
            sock.sendall(packet[10:])
            answers.append(sock.recv(65536).split(b"\r\n", 1)[0])
            sock.close()
    assert result.failures == [] and result.ok == 100
    assert answers == [b"HTTP/1.1 200 OK"] * 4


def test_a_worker_at_max_requests_is_replaced_while_another_thread_still_serves(
    tmp_path: Path,
) -> None:
    # One thread's max-requests while another serves a long request: the replacement waited
    # for that request (1 worker of 1: requests queued for as long; the stats said it
    # accepted). It starts at once now, and the long request is not cut (past even
    # --graceful-timeout: a recycle sets no deadline on it).
    server = Server(
        tmp_path, "threads_app:app", workers=1, threads=2, max_requests=2, graceful_timeout=1
    ).start()
    try:
        (first,) = wait_for_workers(server, 1)
        slow: list[RawResult] = []
        long = threading.Thread(
            target=lambda: slow.append(
                uwsgi_exchange(server.socket, uwsgi_get("/sleep", "4"), timeout=20)
            )
        )
        long.start()
        time.sleep(0.5)  # in the app on one thread
        began = time.monotonic()
        pids: list[int] = []
        while len(pids) < 4 and (not pids or pids[-1] == first):  # past its max-requests
            quick = uwsgi_exchange(server.socket, uwsgi_get("/sleep", "0"), timeout=20)
            pids.append(json.loads(quick.data.split(b"\r\n\r\n", 1)[1])["pid"])
        waited = time.monotonic() - began
        assert pids[-1] != first, pids
        assert not slow, "the next request waited for the long one"
        assert waited < 3.0, waited
        long.join(20)
    finally:
        server.stop()
    assert slow and slow[0].data.startswith(b"HTTP/1.1 200 OK"), slow
