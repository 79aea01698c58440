"""The snapshot model: values are checked on creation; the histogram's arithmetic."""

from __future__ import annotations

import dataclasses

import pytest
from stats_kit import durations, worker

from uwsgiapp.stats.model import (
    DURATION_BOUNDS,
    Histogram,
    ServerStats,
    SocketStats,
    StatusCounts,
    WorkerStats,
)


def test_values_are_frozen() -> None:
    w = worker(1, 10)
    with pytest.raises(dataclasses.FrozenInstanceError):
        w.requests = 11  # type: ignore[misc]


@pytest.mark.parametrize(
    "field, value",
    [("requests", -1), ("rss", -5), ("pid", 1.5), ("tx", True), ("avg_rt", None)],
)
def test_worker_counts_must_be_non_negative_ints(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=field):
        WorkerStats(**{"id": 1, "pid": 2, field: value})  # type: ignore[arg-type]


def test_worker_status_is_one_of_uwsgis() -> None:
    with pytest.raises(ValueError, match="status"):
        WorkerStats(id=1, pid=2, status="sleeping")  # type: ignore[arg-type]


def test_server_and_socket_validate() -> None:
    with pytest.raises(ValueError, match="listen_queue"):
        ServerStats(version="x", pid=1, uid=0, gid=0, cwd="/", listen_queue=-1)
    with pytest.raises(ValueError, match="max_queue"):
        SocketStats(name="s", max_queue=-1)


def test_histogram_buckets_are_upper_bounds_inclusive() -> None:
    # 0.005 is in the first bucket (le=0.005), just above it in the second.
    assert Histogram.bucket_index(0.005) == 0
    assert Histogram.bucket_index(0.0051) == 1
    assert Histogram.bucket_index(0.0) == 0
    assert Histogram.bucket_index(10.0) == len(DURATION_BOUNDS) - 1
    assert Histogram.bucket_index(10.01) == len(DURATION_BOUNDS)  # +Inf


def test_histogram_counts_cumulative_and_sum() -> None:
    h = durations(0.001, 0.02, 0.02, 3.0, 60.0)
    assert h.count == 5
    assert h.sum == pytest.approx(63.041)
    cumulative = h.cumulative()
    assert cumulative[-1] == 5
    assert list(cumulative) == sorted(cumulative)
    assert cumulative[DURATION_BOUNDS.index(0.025)] == 3
    assert cumulative[DURATION_BOUNDS.index(5.0)] == 4


@pytest.mark.parametrize(
    "kwargs",
    [
        {"counts": (0,) * len(DURATION_BOUNDS)},  # +Inf bucket missing
        {"bounds": (1.0, 0.5), "counts": (0, 0, 0)},
        {"bounds": (0.0, 1.0), "counts": (0, 0, 0)},
        {"bounds": (float("inf"),), "counts": (0, 0)},
        {"counts": (-1,) + (0,) * len(DURATION_BOUNDS)},
        {"counts": (0,) * (len(DURATION_BOUNDS) + 1), "sum": float("nan")},
    ],
)
def test_histogram_rejects_bad_shapes(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        Histogram(**kwargs)  # type: ignore[arg-type]


def test_status_counts_other() -> None:
    s = StatusCounts(c2xx=5, c3xx=1, c4xx=2, c5xx=1)
    assert s.as_dict() == {"2xx": 5, "3xx": 1, "4xx": 2, "5xx": 1}
    assert s.other(10) == 1
    assert s.other(3) == 0  # never negative, whatever a racy read gave
