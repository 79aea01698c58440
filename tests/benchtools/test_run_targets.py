"""bench/run.py: the targets' ratios, of medians and within each round (no server runs here)."""

from __future__ import annotations

from types import ModuleType
from typing import Any

import pytest
from support.scripts import load_script


@pytest.fixture(scope="module")
def run() -> ModuleType:
    return load_script("bench/run.py")


def row(server_us: float) -> dict[str, Any]:
    """One run's record as run_one makes it (only server_us matters here)."""
    numbers = ("rps", "p50_ms", "p99_ms", "server_sys_us", "nginx_us", "wrk_us", "busy_pct")
    counts = {"non2xx": 0, "sock_errors": 0, "rss_growth_kb": 0, "requests": 1000, "procs": 2}
    return {**dict.fromkeys(numbers, 1.0), **counts, "rss_worker_kb": 1024, "server_us": server_us}


def rows(*values: float | None) -> list[dict[str, Any]]:
    return [{"error": "failed"} if v is None else row(v) for v in values]


def test_the_ratio_within_each_round_pairs_rows_of_the_same_round(run: ModuleType) -> None:
    results = {
        "uwsgiapp-hello-1w-unix": rows(18.0, 15.0, None, 20.0),
        "uwsgi-hello-1w-unix": rows(16.0, 20.0, 19.0, 20.0),
    }
    ratios = run.round_ratios(results, "uwsgiapp-hello-1w-unix", "uwsgi-hello-1w-unix", "server_us")
    assert ratios == [18.0 / 16.0, 15.0 / 20.0, 1.0]  # the failed round is left out
    hello = run.targets(run.summarize(results), results)[0]
    assert hello.text == "hello 1w unix: server CPU/req vs uWSGI"
    assert hello.value == pytest.approx(18.0 / 19.5)  # the ratio of the medians, as before
    assert hello.rounds == ratios
    assert hello.spread == "1.00 (0.75..1.12) of 3"


def test_without_rows_a_target_has_no_spread(run: ModuleType) -> None:
    results = {"uwsgiapp-hello-1w-unix": rows(18.0), "uwsgi-hello-1w-unix": rows(16.0)}
    assert run.targets(run.summarize(results))[0].spread == "-"
    assert run.targets({}, {})[0].value is None
