"""Soak: many mixed requests through nginx to two workers; memory and descriptors stay flat.

Worker RSS (``VmRSS`` in /proc/PID/status) and open descriptors (/proc/PID/fd) are read while the
load is paused (the workers idle, holding no connection): after a warm-up, at checkpoints, at the
end. Every response body is checked, not just its status.
"""

from __future__ import annotations

import os
import random
import time
from pathlib import Path

import pytest
from reliability.conftest import LONG, Report, sized
from support.load import Call, Load
from support.procs import stack, wait_until, worker_pids

pytestmark = pytest.mark.nginx

APP = "bad_apps:app"
_rng = random.Random(9)
#: POST bodies (up to 8 KB: nginx keeps them in memory rather than in temp files).
BODIES = [_rng.randbytes(_rng.randint(1, 8000)) for _ in range(16)]
FILE = (Path(__file__).parents[1] / "apps" / "bad_apps.py").read_bytes()
STREAMED = b"".join(b"%04d" % i + b"s" * 1019 + b"\n" for i in range(16))


def call_for(n: int) -> Call:
    """Small GET, POST echo, streamed 16 KB, a file (sendfile), write() + return, in turn."""
    kind = n % 5
    if kind == 0:
        return Call("GET", "/hello", expect=b"Hello World!")
    if kind == 1:
        body = BODIES[n % len(BODIES)]
        return Call("POST", "/echo", body=body, expect=body)
    if kind == 2:
        return Call("GET", "/stream", expect=STREAMED)
    if kind == 3:
        return Call("GET", "/file", expect=FILE)
    return Call("GET", "/write", expect=b"written, then returned")


def rss_kb(pid: int) -> int:
    """Resident set size of ``pid`` in kB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def fd_count(pid: int) -> int:
    """Open descriptors of ``pid``."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def test_soak_mixed_requests_memory_and_fds_stay_flat(
    tmp_path: Path, nginx_available: None, report: Report
) -> None:
    total = sized(5_000, 200_000)
    warmup = sized(1_000, 20_000)
    checkpoints = sized(4, 10)
    # kB of RSS growth allowed per worker after the warm-up: 1 MB per 100k requests in the long
    # run; the short run is too brief for allocator noise to average out, so it gets a floor.
    per_100k_kb = 1024
    allowed_kb = max(per_100k_kb * (total - warmup) // 100_000, 0 if LONG else 2048)
    report(
        f"soak: {total:,} mixed requests through nginx, 2 workers (GET, POST echo, streamed, "
        "file_wrapper, write())",
        f"0 failures (every body checked); the same 2 workers throughout; open fds unchanged "
        f"after the warm-up; RSS growth after the warm-up < {allowed_kb} kB per worker "
        f"({per_100k_kb} kB per 100k requests{'' if LONG else ', 2 MB floor in CI'})",
    )
    started = time.monotonic()
    with stack(tmp_path, APP, workers=2) as (server, nginx):
        wait_until(lambda: len(worker_pids(server.pid)) == 2, 10, "2 workers")
        workers = sorted(worker_pids(server.pid))
        sent = 0
        failures: list[str] = []

        def run(requests: int) -> None:
            nonlocal sent
            first = sent
            with Load(nginx.port, lambda n: call_for(first + n), clients=4, limit=requests) as load:
                load.wait_for(requests, 60 + requests / 20)  # a hang guard, not a speed claim
            sent += load.result.total
            failures.extend(load.result.failures)

        def sample() -> dict[int, tuple[int, int]]:
            return {pid: (rss_kb(pid), fd_count(pid)) for pid in [server.pid, *workers]}

        run(warmup)
        series = [sample()]
        step = (total - warmup) // checkpoints
        for i in range(checkpoints):
            run(step if i < checkpoints - 1 else total - warmup - step * (checkpoints - 1))
            series.append(sample())
        still = sorted(worker_pids(server.pid))
        errors = nginx.upstream_errors()
        log = server.log()
    seconds = time.monotonic() - started
    growth = {pid: series[-1][pid][0] - series[0][pid][0] for pid in workers}
    report.add(
        requests=sent,
        failed=len(failures),
        seconds=round(seconds, 1),
        requests_per_second=round(sent / seconds),
        rss_after_warmup_kb=[series[0][p][0] for p in workers],
        rss_end_kb=[series[-1][p][0] for p in workers],
        rss_growth_kb=[growth[p] for p in workers],
        rss_growth_kb_per_100k=round(max(growth.values()) * 100_000 / (total - warmup)),
        fds_after_warmup=[series[0][p][1] for p in workers],
        fds_end=[series[-1][p][1] for p in workers],
        master_rss_kb=[series[0][server.pid][0], series[-1][server.pid][0]],
        master_fds=[series[0][server.pid][1], series[-1][server.pid][1]],
        allowed_growth_kb=allowed_kb,
    )
    assert sent == total
    assert failures == [], failures[:10]
    assert errors == [], errors[:5]
    assert still == workers  # no worker died or was replaced
    log = "\n".join(line for line in log.splitlines() if "running as root" not in line)
    assert "[ERROR]" not in log and "[WARNING]" not in log
    for pid in [server.pid, *workers]:
        assert {s[pid][1] for s in series} == {series[0][pid][1]}, (pid, series)
    for pid, kb in growth.items():
        assert kb < allowed_kb, (pid, [s[pid][0] for s in series])
