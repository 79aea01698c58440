"""``--max-worker-lifetime`` on a real ``uwsgiapp serve`` behind a real nginx: every worker is
recycled after its lifetime, one at a time, and no request fails meanwhile."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.load import Load
from support.procs import stack, wait_for_workers, wait_until

pytestmark = pytest.mark.nginx


def test_workers_are_recycled_after_their_lifetime_without_a_failed_request(
    tmp_path: Path, nginx_available: None
) -> None:
    options = {"workers": 2, "max_worker_lifetime": 1.5, "max_worker_lifetime_delta": 0.5}
    with stack(tmp_path, "nginx_app:app", **options) as (server, nginx):
        first = wait_for_workers(server, 2)
        with Load(nginx.port, lambda n: "/sleep?0.02", clients=4, timeout=30) as load:
            wait_until(lambda: server.log().count("max-worker-lifetime") >= 4, 20, "recycles")
            load.wait_for(load.result.total + 20, 10)
        log = server.log()
    assert load.result.failures == [], load.result.failures[:5]
    recycled = re.findall(
        r"worker (\d) \(pid (\d+)\) has run \d+s, over --max-worker-lifetime", log
    )
    assert {int(pid) for _, pid in recycled[:2]} == first, log  # the first pool went, each once
    assert {number for number, _ in recycled[:2]} == {"1", "2"}
    assert "over --max-worker-lifetime 1.5s" in log and "over --max-worker-lifetime 2s" in log
