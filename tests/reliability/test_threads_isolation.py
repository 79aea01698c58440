"""``--threads N``: concurrent POSTs with different bodies (parked, preread and streamed sizes),
queries and headers through nginx to 2 workers x 8 threads each get exactly their own back (a
seeded mix: 1,500 requests in CI, 10,000 with RELIABILITY_SIZE=long)."""

from __future__ import annotations

import hashlib
import http.client
import json
import random
import threading
from pathlib import Path

import pytest
from reliability.conftest import Report, sized
from support.load import Call
from support.procs import stack, wait_for_workers

pytestmark = pytest.mark.nginx


def isolation_mix(seed: int, count: int) -> list[Call]:
    """POSTs of random bodies (empty to 200 KiB: parked, preread and streamed) with a tag header
    and query; the expected answer of each is computed here, from what was sent."""
    rng = random.Random(seed)
    calls = []
    for n in range(count):
        size = rng.choice([0, 1, rng.randrange(2, 4096), rng.randrange(4096, 70000), 200_000])
        body = rng.randbytes(size)
        tag = f"t{n}-{rng.getrandbits(32):08x}"
        calls.append(Call("POST", f"/echo?n={n}&tag={tag}", body, expect=None))
    return calls


def check_echo(call: Call, body: bytes) -> str:
    """'' if ``body`` is the echo of ``call``'s own request, else what is wrong."""
    answer = json.loads(body)
    query = call.path.split("?", 1)[1]
    expected = {
        "tag": query.rsplit("tag=", 1)[1],
        "query": query,
        "sha256": hashlib.sha256(call.body or b"").hexdigest(),
        "length": len(call.body or b""),
    }
    got = {key: answer[key] for key in expected}
    return "" if got == expected else f"{call.path}: got {got}"


def run_isolation(port: int, calls: list[Call], clients: int) -> tuple[int, list[str]]:
    """Send ``calls`` from ``clients`` threads, each with its X-Tag header; (ok, failures)."""
    failures: list[str] = []
    ok = 0
    lock = threading.Lock()
    queue = list(reversed(calls))

    def client() -> None:
        nonlocal ok
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        while True:
            with lock:
                if not queue:
                    break
                call = queue.pop()
            tag = call.path.rsplit("tag=", 1)[1]
            try:
                conn.request("POST", call.path, body=call.body, headers={"X-Tag": tag})
                resp = conn.getresponse()
                body = resp.read()
                wrong = f"HTTP {resp.status}" if resp.status != 200 else check_echo(call, body)
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                wrong = f"{call.path}: {exc!r}"
            with lock:
                if wrong:
                    failures.append(wrong)
                else:
                    ok += 1
        conn.close()

    threads = [threading.Thread(target=client) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(300)
    return ok, failures


def test_concurrent_posts_each_get_their_own_environ_and_input_back(
    tmp_path: Path, nginx_available: None, report: Report
) -> None:
    calls = isolation_mix(seed=19, count=sized(1500, 10_000))
    report(
        "threads: concurrent POSTs on 2 workers x 8 threads each get their own input back",
        "every answer echoes its own body hash, length, query and X-Tag header",
        requests=len(calls),
    )
    with stack(tmp_path, "threads_app:app", workers=2, threads=8) as (server, nginx):
        wait_for_workers(server, 2)
        ok, failures = run_isolation(nginx.port, calls, clients=24)
        errors = nginx.upstream_errors()
    report.add(ok=ok, mixed_up=len(failures))
    assert failures == [], failures[:5]
    assert ok == len(calls)
    assert errors == []
