"""Faults under load, through a real nginx: kill -9 of random workers, HUP reloads, TERM.

The load is the bounded loopback loop of ``support.load`` (keep-alive clients to nginx), a mix of
instant requests and 50-200 ms ones. Every request carries a unique id in its query string, so a
failed request can be matched with nginx's error-log line about it: that line says whether the
request ever reached the server (``connect() ... failed``) or was lost on the way back.
"""

from __future__ import annotations

import os
import random
import re
import signal
import socket
import time
from pathlib import Path

import pytest
from reliability.conftest import Report, sized
from support.load import Load, LoadResult
from support.procs import Nginx, Server, never_reached_server, stack, wait_until, worker_pids

import uwsgiproto

pytestmark = pytest.mark.nginx

APP = "bad_apps:app"
SLEEPS = ("0.05", "0.1", "0.2")


def mixed_path(n: int) -> str:
    """Seven instant requests, then one that sleeps 50, 100 or 200 ms; each with its id."""
    if n % 8 == 0:
        return f"/sleep?s={SLEEPS[(n // 8) % 3]}&n={n}"
    return f"/pid?n={n}"


def served_by(result: LoadResult) -> set[int]:
    """Worker pids seen in the answers (``/pid`` bodies and ``slept pid N``)."""
    pids = set()
    for key in list(result.bodies):
        match = re.fullmatch(r"(?:slept pid )?(\d+)", key)
        if match:
            pids.add(int(match.group(1)))
    return pids


def failed_paths(result: LoadResult) -> list[str]:
    """The paths (with their unique ids) of the failed requests."""
    return [failure.split(":", 1)[0] for failure in result.failures]


def nginx_lines(nginx: Nginx) -> dict[str, str]:
    """nginx's upstream error lines by the request path they are about."""
    lines = {}
    for line in nginx.upstream_errors():
        match = re.search(r'request: "GET (\S+) HTTP/1.1"', line)
        if match:
            lines[match.group(1)] = line
    return lines


@pytest.mark.parametrize("workers", sized([3], [2, 4]))
def test_kill_9_random_worker_every_second_under_load(
    tmp_path: Path, nginx_available: None, report: Report, workers: int
) -> None:
    seconds = sized(5, 30)
    rng = random.Random(workers)
    report(
        f"kill -9 a random worker every second for {seconds} s under load ({workers} workers)",
        "failed requests <= kills (only a killed worker's in-flight request can fail, and it "
        "fails as a 502 whose nginx line says the upstream closed or reset); every replacement "
        "worker serves; the master logs each death",
    )
    kills = 0
    replacements: list[int] = []
    with stack(tmp_path, APP, workers=workers) as (server, nginx):
        wait_until(lambda: len(worker_pids(server.pid)) == workers, 10, f"{workers} workers")
        first = worker_pids(server.pid)
        with Load(nginx.port, mixed_path, clients=workers * 2 + 2) as load:
            load.wait_for(200, 20)
            next_kill = time.monotonic() + 1
            for _ in range(seconds):
                time.sleep(max(0.0, next_kill - time.monotonic()))
                next_kill += 1
                before = worker_pids(server.pid)
                victim = rng.choice(sorted(before))
                os.kill(victim, signal.SIGKILL)
                kills += 1
                wait_until(
                    lambda v=victim: (
                        v not in (now := worker_pids(server.pid)) and len(now) == workers
                    ),
                    5,
                    "a replacement worker",
                )
                (new,) = worker_pids(server.pid) - before
                replacements.append(new)
                # The replacement takes traffic (the load saturates every worker).
                wait_until(lambda p=new: p in served_by(load.result), 5, f"worker {new} serving")
            load.wait_for(load.result.total + 200, 20)
        result = load.result
        by_path = nginx_lines(nginx)
        lines = {path: by_path.get(path, "") for path in failed_paths(result)}
        alive = worker_pids(server.pid)
        log = server.log()
    report.add(
        workers=workers,
        seconds=seconds,
        requests=result.total,
        failed=len(result.failures),
        kills=kills,
        replacements_serving=len(replacements),
    )
    assert result.ok >= 200 * 2
    assert len(result.failures) <= kills, result.failures
    for failure in result.failures:
        assert "HTTP 502" in failure, failure
    for path, line in lines.items():
        # Lost on the way back from a killed worker, not refused at connect.
        assert line and not never_reached_server(line), (path, line)
    assert log.count("killed by signal 9 (SIGKILL)") == kills
    assert "Traceback" not in log
    assert len(alive) == workers
    assert set(replacements) | first >= alive


@pytest.mark.parametrize("workers", sized([2], [2, 3]))
def test_hup_every_two_seconds_under_load_drops_nothing(
    tmp_path: Path, nginx_available: None, report: Report, workers: int
) -> None:
    reloads = sized(3, 15)
    report(
        f"HUP every 2 s under load ({reloads} reloads, {workers} workers, lazy-apps)",
        "0 failed requests and no upstream error in nginx's log while every reload replaces "
        "every worker (slow requests in flight at each HUP finish in the old workers)",
    )
    generations: list[set[int]] = []
    with stack(tmp_path, APP, workers=workers, lazy_apps=True) as (server, nginx):
        wait_until(lambda: len(worker_pids(server.pid)) == workers, 10, f"{workers} workers")
        generations.append(worker_pids(server.pid))
        with Load(nginx.port, mixed_path, clients=workers * 3) as load:
            load.wait_for(200, 20)
            for _ in range(reloads):
                started = time.monotonic()
                old = generations[-1]
                server.signal(signal.SIGHUP)
                wait_until(
                    lambda o=old: not (now := worker_pids(server.pid)) & o and len(now) == workers,
                    15,
                    "the old generation to be replaced",
                )
                generations.append(worker_pids(server.pid))
                time.sleep(max(0.0, 2.0 - (time.monotonic() - started)))
            # Every worker of the last generation takes traffic.
            wait_until(lambda: generations[-1] <= served_by(load.result), 10, "the new workers")
        result = load.result
        errors = nginx.upstream_errors()
        log = server.log()
    report.add(
        workers=workers,
        reloads=reloads,
        requests=result.total,
        failed=len(result.failures),
        nginx_upstream_errors=len(errors),
        worker_pids=len(set().union(*generations)),
    )
    assert result.failures == [], result.failures[:10]
    assert errors == [], errors[:5]
    assert log.count("SIGHUP: graceful reload") == reloads
    assert "Traceback" not in log
    assert len(set().union(*generations)) == workers * (reloads + 1)


def test_term_under_load_loses_no_request_that_reached_the_server(
    tmp_path: Path, nginx_available: None, report: Report
) -> None:
    workers, clients = 2, 8
    seconds = sized(2, 10)
    report(
        f"TERM under load ({clients} clients, {workers} workers, up to 200 ms requests)",
        "every request nginx delivered to the server (in a worker or waiting in the listen "
        "backlog) completes with 200; the only failures are requests sent after the socket file "
        "was removed, each a 502 whose nginx line is a connect() failure ('while connecting to "
        "upstream': it never reached the server); exit code 0; the socket file is gone",
    )
    server = Server(tmp_path / "server", APP, workers=workers).start()
    nginx = Nginx(tmp_path / "nginx", server.upstream)
    try:
        nginx.start()
        wait_until(lambda: len(worker_pids(server.pid)) == workers, 10, f"{workers} workers")

        def path_for(n: int) -> str:
            # Mostly slow requests: with 4x more clients than workers, the backlog fills.
            return f"/pid?n={n}" if n % 3 == 0 else f"/sleep?s=0.2&n={n}"

        with Load(nginx.port, path_for, clients=clients, timeline=True) as load:
            load.wait_for(clients * 4, 20)
            time.sleep(seconds)
            term_at = time.monotonic()
            server.signal(signal.SIGTERM)
            code = server.wait(60)
            stopped_at = time.monotonic()
            # A few requests after the stop, to see how they fail.
            load.wait_for(load.result.total + clients, 5)
        timeline = load.result.timeline
        lines = nginx_lines(nginx)
        errors = nginx.upstream_errors()
    finally:
        nginx.stop()
        server.stop()
    in_flight = [t for t in timeline if t[0] < term_at < t[1]]
    before = [t for t in timeline if t[0] < term_at]
    lost = [(path, outcome, lines.get(path, "")) for _, _, path, outcome in timeline if outcome]
    lost = [entry for entry in lost if not never_reached_server(entry[2])]
    refused = [t for t in timeline if t[3]]
    report.add(
        requests=len(timeline),
        sent_before_term=len(before),
        in_flight_at_term=len(in_flight),
        completed_after_term=sum(1 for t in in_flight if not t[3]),
        refused_after_stop=len(refused),
        refused_sent_before_term=sum(1 for t in before if t[3]),
        lost=len(lost),
        exit_code=code,
        stop_seconds=round(stopped_at - term_at, 2),
    )
    # The test means something: requests were running and queued when TERM came.
    assert len(in_flight) >= workers + 1
    assert lost == [], lost[:5]
    for t in refused:
        assert "HTTP 502" in t[3], t
    # Every upstream error nginx logged is a refused connect: nothing was cut or reset.
    assert all(never_reached_server(line) for line in errors), errors[:5]
    assert code == 0
    assert not os.path.exists(server.socket)
    assert "Traceback" not in server.log()


def test_chaos_kill_hup_ttin_ttou_under_load(
    tmp_path: Path, nginx_available: None, report: Report
) -> None:
    seconds = sized(6, 30)
    rng = random.Random(4)
    report(
        f"chaos under load for {seconds} s: kill -9, HUP, TTIN, TTOU at random 50-600 ms apart",
        "failed requests <= kills, each one in flight on a killed worker (nginx: upstream closed "
        "or reset, never a refused connect); the worker count converges to the asked-for one; "
        "no traceback",
    )
    desired = workers = 3
    ops = {"kill": 0, "hup": 0, "ttin": 0, "ttou": 0}
    with stack(tmp_path, APP, workers=workers) as (server, nginx):
        wait_until(lambda: len(worker_pids(server.pid)) == desired, 10, f"{desired} workers")
        with Load(nginx.port, mixed_path, clients=8) as load:
            load.wait_for(200, 20)
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                time.sleep(rng.uniform(0.05, 0.6))
                op = rng.choice(["kill", "kill", "hup", "ttin", "ttou"])
                if op == "kill" and (pids := sorted(worker_pids(server.pid))):
                    try:
                        os.kill(rng.choice(pids), signal.SIGKILL)
                    except ProcessLookupError:  # it left since it was listed (a reload's)
                        continue
                elif op == "hup":
                    server.signal(signal.SIGHUP)
                    desired = workers  # a reload goes back to --workers
                elif op == "ttin" and desired < 5:
                    server.signal(signal.SIGTTIN)
                    desired += 1
                elif op == "ttou" and desired > 1:
                    server.signal(signal.SIGTTOU)
                    desired -= 1
                else:
                    continue
                ops[op] += 1
            wait_until(lambda: len(worker_pids(server.pid)) == desired, 30, f"{desired} workers")
            final = worker_pids(server.pid)
            wait_until(lambda: final <= served_by(load.result), 10, "every worker serving")
        result = load.result
        by_path = nginx_lines(nginx)
        lines = {path: by_path.get(path, "") for path in failed_paths(result)}
        log = server.log()
    report.add(
        seconds=seconds,
        requests=result.total,
        failed=len(result.failures),
        kills=ops["kill"],
        hups=ops["hup"],
        ttin=ops["ttin"],
        ttou=ops["ttou"],
        final_workers=desired,
    )
    assert len(result.failures) <= ops["kill"], result.failures
    for path, line in lines.items():
        assert line and not never_reached_server(line), (path, line)
    assert "Traceback" not in log


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` so far."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_hup_while_a_slow_client_is_mid_request_under_load(
    tmp_path: Path, nginx_available: None, report: Report
) -> None:
    report(
        "HUP under load while a slow client has sent half its request to the only worker",
        "the old worker stops accepting but finishes the slow request once the rest arrives "
        "(200 from the old pid), without busy-looping meanwhile (it sleeps in epoll: < 0.3 CPU-s "
        "over 2 s; a ready listening socket it no longer accepts from must not wake it); the new "
        "worker serves the load: 0 failed requests",
    )
    packet = uwsgiproto.build_request(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/pid",
            "QUERY_STRING": "",
            "SERVER_NAME": "t",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
        }
    )
    with stack(tmp_path, APP, workers=1, socket_timeout=20) as (server, nginx):
        wait_until(lambda: len(worker_pids(server.pid)) == 1, 10, "1 worker")
        (old,) = worker_pids(server.pid)
        slow = socket.socket(socket.AF_UNIX)
        slow.settimeout(30)
        slow.connect(server.socket)
        slow.sendall(packet[:10])  # half a head: the worker parks it
        with Load(nginx.port, mixed_path, clients=4) as load:
            load.wait_for(100, 20)
            server.signal(signal.SIGHUP)
            # After the child that imports the new code first (a child of the master too).
            wait_until(lambda: "app re-imported" in server.log(), 10, "the master's re-import")
            wait_until(lambda: len(worker_pids(server.pid) - {old}) == 1, 10, "the new worker")
            (new,) = worker_pids(server.pid) - {old}
            wait_until(lambda: new in served_by(load.result), 10, "the new worker serving")
            before = cpu_seconds(old)
            time.sleep(2)
            spent = cpu_seconds(old) - before
            slow.sendall(packet[10:])
            answer = b""
            while chunk := slow.recv(65536):
                answer += chunk
            slow.close()
            wait_until(lambda: old not in worker_pids(server.pid), 10, "the old worker to exit")
            load.wait_for(load.result.total + 100, 20)
        result = load.result
        errors = nginx.upstream_errors()
    report.add(old_worker_cpu_seconds=round(spent, 2), requests=result.total)
    assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
    assert answer.endswith(str(old).encode())
    assert spent < 0.3
    assert result.failures == [], result.failures[:5]
    assert errors == []
