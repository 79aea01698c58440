"""``--error-log-format json``: every line of the error log is one JSON object, a traceback
inside its record (a collector that splits on newlines keeps it whole)."""

from __future__ import annotations

import datetime
import json
import logging
import sys
from pathlib import Path

import pytest
from support.procs import Server, wait_until

from uwsgiapp.client import parse_address, request
from uwsgiapp.config import ConfigError, make_config
from uwsgiapp.server.logs import JsonErrorFormatter


def test_a_record_with_a_traceback_is_one_line() -> None:
    try:
        raise ValueError("bad path /x\nInjected: 1")
    except ValueError:
        record = logging.getLogger("uwsgiapp.error").makeRecord(
            "uwsgiapp.error", logging.ERROR, __file__, 1, "app raised (%s)", ("GET /x",), None
        )
        record.exc_info = sys.exc_info()
    line = JsonErrorFormatter().format(record)
    assert "\n" not in line
    data = json.loads(line)
    assert data["level"] == "ERROR" and data["logger"] == "uwsgiapp.error"
    assert data["message"] == "app raised (GET /x)"
    assert data["traceback"].startswith("Traceback (most recent call last):")
    assert "ValueError: bad path /x\\x0AInjected: 1" in data["traceback"]  # escaped, as in text
    when = datetime.datetime.fromisoformat(data["time"])
    assert when.utcoffset() is not None  # the offset is said


def test_a_bad_format_names_the_option() -> None:
    with pytest.raises(ConfigError, match="--error-log-format: must be one of text, json"):
        make_config(app="a:b", error_log_format="yaml")


def test_a_live_servers_error_log_is_json_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UWSGIAPP_NO_SUCH_OPTION", "1")  # a start-up warning, before the log
    server = Server(tmp_path, "bad_apps:app", workers=1, error_log_format="json").start()
    try:
        response = request(parse_address(server.socket), "/raise")
        assert response.status == 500
        wait_until(lambda: '"traceback"' in server.log(), 10, "the app's traceback")
    finally:
        server.stop()
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    assert any(r["message"].startswith("listening on") for r in records)
    assert any("UWSGIAPP_NO_SUCH_OPTION" in r["message"] for r in records)
    (raised,) = [r for r in records if "traceback" in r]
    assert "app raised (GET /raise)" in raised["message"]
    assert "bad_apps.py" in raised["traceback"]
    others = [line for line in server.log().splitlines() if not line.startswith("{")]
    assert others == [], others  # nothing of ours outside a record
