"""The stats JSON document: uWSGI 2.0's exact keys, order and units."""

from __future__ import annotations

import json

from stats_kit import sample, server_stats, worker

from uwsgiapp.stats.document import build_document, http_response, render_json

# Keys in the order uWSGI 2.0.31 writes them (core/master_utils.c, and a real `uwsgi --stats`).
TOP_KEYS = [
    "version",
    "listen_queue",
    "listen_queue_errors",
    "signal_queue",
    "load",
    "pid",
    "uid",
    "gid",
    "cwd",
    "locks",
    "sockets",
    "workers",
]
SOCKET_KEYS = ["name", "proto", "queue", "max_queue", "shared", "can_offload"]
WORKER_KEYS = [
    "id",
    "pid",
    "accepting",
    "requests",
    "delta_requests",
    "exceptions",
    "harakiri_count",
    "signals",
    "signal_queue",
    "status",
    "rss",
    "vsz",
    "running_time",
    "last_spawn",
    "respawn_count",
    "tx",
    "avg_rt",
    "apps",
    "cores",
]
APP_KEYS = ["id", "modifier1", "mountpoint", "startup_time", "requests", "exceptions", "chdir"]
CORE_KEYS = [
    "id",
    "requests",
    "static_requests",
    "routed_requests",
    "offloaded_requests",
    "write_errors",
    "read_errors",
    "in_request",
    "vars",
    "req_info",
]


def test_keys_and_order_are_uwsgis() -> None:
    doc = json.loads(render_json(sample(), extended=False))
    assert list(doc) == TOP_KEYS
    assert list(doc["sockets"][0]) == SOCKET_KEYS
    for w in doc["workers"]:
        assert list(w) == WORKER_KEYS
        assert list(w["apps"][0]) == APP_KEYS
        assert list(w["cores"][0]) == CORE_KEYS


def test_extended_adds_one_object_after_uwsgis_keys() -> None:
    doc = json.loads(render_json(sample()))
    w = doc["workers"][0]
    assert list(w) == [*WORKER_KEYS, "uwsgiapp"]
    assert w["uwsgiapp"]["statuses"] == {"2xx": 741, "3xx": 0, "4xx": 370, "5xx": 123}
    h = w["uwsgiapp"]["durations"]
    assert sum(h["counts"]) == 1234
    assert len(h["counts"]) == len(h["bounds"]) + 1


def test_values_and_units() -> None:
    stats = sample()
    doc = build_document(stats)
    assert doc["pid"] == 4000 and doc["uid"] == 1000 and doc["cwd"] == "/srv/app"
    assert doc["locks"] == []
    w1, w2, w3 = doc["workers"]
    assert (w1["id"], w1["pid"], w1["requests"], w1["status"]) == (1, 4001, 1234, "idle")
    assert w2["status"] == "busy"
    assert w3["respawn_count"] == 3
    # µs, epoch seconds, bytes: integers as uWSGI writes them
    assert w1["avg_rt"] == 1500 and w1["running_time"] == 1234 * 1500
    assert w1["last_spawn"] == 1_700_000_001
    assert w1["rss"] == 21 * 1024 * 1024
    assert w1["accepting"] == 1
    # a busy core has req_info with its start, an idle one an empty object
    assert w2["cores"][0]["in_request"] == 1
    assert w2["cores"][0]["req_info"] == {"request_start": 1_700_000_100}
    assert w1["cores"][0]["req_info"] == {}
    assert w1["cores"][0]["vars"] == []


def test_layout_is_uwsgis_tabs_and_compact_pairs() -> None:
    text = render_json(server_stats(worker(1, 2))).decode()
    assert text.startswith('{\n\t"version":"0.1.0",\n\t"listen_queue":0,\n')
    minified = render_json(server_stats(worker(1, 2)), minified=True)
    assert b"\n" not in minified and b'"version":"0.1.0","listen_queue":0,' in minified
    assert json.loads(minified) == json.loads(text)


def test_non_utf8_cwd_stays_valid_ascii_json() -> None:
    stats = server_stats(worker(1, 0))
    odd = type(stats)(**{**_fields(stats), "cwd": "/srv/caf\udce9"})
    raw = render_json(odd)
    raw.decode("ascii")
    assert json.loads(raw)["cwd"] == "/srv/caf\udce9"


def test_http_response_head() -> None:
    raw = http_response(b"{}")
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    assert lines[0] == b"HTTP/1.0 200 OK"
    assert b"Content-Type: application/json" in lines
    assert b"Connection: close" in lines
    assert b"Access-Control-Allow-Origin: *" in lines
    assert b"Content-Length: 2" in lines
    assert body == b"{}"
    assert http_response(b"{}", head_only=True).endswith(b"\r\n\r\n")


def _fields(obj: object) -> dict[str, object]:
    import dataclasses

    return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}  # type: ignore[arg-type]
