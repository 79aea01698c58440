"""The Prometheus text, read back with prometheus_client's own parser."""

from __future__ import annotations

import math

import pytest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from stats_kit import durations, sample, server_stats, worker

from uwsgiapp.stats.model import DURATION_BOUNDS, CoreStats, SocketStats
from uwsgiapp.stats.prometheus import CONTENT_TYPE, render_metrics


def _families(stats: object) -> dict[str, tuple[str, list[Sample]]]:
    text = render_metrics(stats).decode("utf-8")  # type: ignore[arg-type]
    return {f.name: (f.type, f.samples) for f in text_string_to_metric_families(text)}


def _value(samples: list[Sample], name: str, **labels: str) -> float:
    found = [s.value for s in samples if s.name == name and s.labels == labels]
    assert len(found) == 1, (name, labels, samples)
    return found[0]


def test_every_family_has_help_type_and_prefix() -> None:
    text = render_metrics(sample()).decode()
    families = _families(sample())
    assert families
    for name in families:
        assert name.startswith("uwsgiapp_")
    for line in text.splitlines():
        if not line.startswith("#"):
            assert line.startswith("uwsgiapp_")
    assert text.count("# HELP ") == text.count("# TYPE ") == len(families)
    assert CONTENT_TYPE.startswith("text/plain; version=0.0.4")


def test_requests_by_status_class_match_the_snapshot() -> None:
    stats = sample()
    kind, samples = _families(stats)["uwsgiapp_requests"]
    assert kind == "counter"
    total = 0.0
    for w in stats.workers:
        wid = str(w.id)
        by_class = w.statuses.as_dict()
        for cls, n in by_class.items():
            assert _value(samples, "uwsgiapp_requests_total", worker=wid, status=cls) == n
        other = _value(samples, "uwsgiapp_requests_total", worker=wid, status="other")
        assert other == w.requests - sum(by_class.values())
        total += sum(s.value for s in samples if s.labels["worker"] == wid)
    assert total == stats.requests


def test_duration_histogram_is_cumulative_with_inf() -> None:
    w = worker(1, 0, durations=durations(0.001, 0.03, 0.03, 0.7, 12.0))
    kind, samples = _families(server_stats(w))["uwsgiapp_request_duration_seconds"]
    assert kind == "histogram"
    buckets = {
        float(s.labels["le"]): s.value
        for s in samples
        if s.name == "uwsgiapp_request_duration_seconds_bucket"
    }
    assert list(buckets) == [*DURATION_BOUNDS, math.inf]
    assert buckets[0.005] == 1 and buckets[0.05] == 3 and buckets[1.0] == 4
    assert buckets[10.0] == 4 and buckets[math.inf] == 5
    name = "uwsgiapp_request_duration_seconds"
    assert _value(samples, name + "_count", worker="1") == 5
    assert _value(samples, name + "_sum", worker="1") == pytest.approx(12.761)


def test_worker_states_and_gauges() -> None:
    stats = sample()
    families = _families(stats)
    _, states = families["uwsgiapp_workers"]
    assert {s.labels["state"]: s.value for s in states} == {
        "idle": 2,
        "busy": 1,
        "cheap": 0,
        "pause": 0,
    }
    _, busy = families["uwsgiapp_worker_busy"]
    assert [s.value for s in busy] == [0, 1, 0]
    for w in stats.workers:
        wid = str(w.id)
        checks = {
            "uwsgiapp_worker_rss_bytes": w.rss,
            "uwsgiapp_worker_vsz_bytes": w.vsz,
            "uwsgiapp_worker_spawns_total": w.respawn_count,
            "uwsgiapp_worker_harakiri_total": w.harakiri_count,
            "uwsgiapp_worker_exceptions_total": w.exceptions,
            "uwsgiapp_worker_transmitted_bytes_total": w.tx,
            "uwsgiapp_worker_busy_seconds_total": w.running_time / 1e6,
            "uwsgiapp_worker_avg_response_seconds": w.avg_rt / 1e6,
            "uwsgiapp_worker_pid": w.pid,
            "uwsgiapp_worker_busy_threads": int(w.status == "busy"),
            "uwsgiapp_worker_threads": 1,
        }
        for name, expected in checks.items():
            family = name.removesuffix("_total")
            assert _value(families[family][1], name, worker=wid) == pytest.approx(expected)


def test_a_threaded_workers_busy_threads_and_its_threads() -> None:
    # With --threads, "busy" says one request at least: how many of its threads serve is what
    # tells a saturated worker from one with room.
    cores = tuple(
        CoreStats(id=i, requests=5, in_request=i != 2, request_start=1_700_000_100 if i != 2 else 0)
        for i in range(4)
    )
    families = _families(server_stats(worker(1, 20, status="busy", cores=cores)))
    assert (
        _value(
            families["uwsgiapp_worker_busy_threads"][1], "uwsgiapp_worker_busy_threads", worker="1"
        )
        == 3
    )
    assert (
        _value(families["uwsgiapp_worker_threads"][1], "uwsgiapp_worker_threads", worker="1") == 4
    )


def test_numbers_cheaper_never_started_have_no_series() -> None:
    # An ini's processes = 128 with cheaper = 8 listed 128 workers a scrape (228 KB); a number
    # cheaper stopped keeps its series (its counters come back with it), and every cheap one
    # is counted in the states.
    never = worker(3, 0, status="cheap", pid=0, respawn_count=0)
    stopped = worker(2, 40, status="cheap", pid=0)
    families = _families(server_stats(worker(1, 20), stopped, never))
    for name in ("uwsgiapp_worker_pid", "uwsgiapp_worker_rss_bytes"):
        assert sorted(s.labels["worker"] for s in families[name][1]) == ["1", "2"], name
    requests = families["uwsgiapp_requests"][1]
    assert {s.labels["worker"] for s in requests} == {"1", "2"}
    durations = families["uwsgiapp_request_duration_seconds"][1]
    assert {s.labels["worker"] for s in durations} == {"1", "2"}
    states = families["uwsgiapp_workers"][1]
    assert {s.labels["state"]: s.value for s in states}["cheap"] == 2


def test_listen_queue_and_sockets() -> None:
    stats = server_stats(worker(1, 1), listen_queue=7)
    families = _families(stats)
    assert _value(families["uwsgiapp_listen_queue"][1], "uwsgiapp_listen_queue") == 7
    assert (
        _value(
            families["uwsgiapp_socket_max_queue"][1],
            "uwsgiapp_socket_max_queue",
            socket="/run/app.sock",
        )
        == 128
    )
    assert families["uwsgiapp_listen_queue_errors"][0] == "counter"


def test_label_values_are_escaped() -> None:
    stats = server_stats(worker(1, 1))
    odd = 'we"ird\\name\nwith newline'
    stats = type(stats)(
        version=stats.version,
        pid=1,
        uid=0,
        gid=0,
        cwd="/",
        sockets=(SocketStats(name=odd, queue=3),),
        workers=stats.workers,
    )
    _, samples = _families(stats)["uwsgiapp_socket_queue"]
    assert samples[0].labels == {"socket": odd}
    assert samples[0].value == 3


def test_no_workers_still_parses() -> None:
    families = _families(server_stats())
    assert families["uwsgiapp_requests"][1] == []
    assert {s.value for s in families["uwsgiapp_workers"][1]} == {0}
