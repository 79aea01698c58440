"""``--error-log-format json``: every line of the error log is one JSON object, a traceback
inside its record (a collector that splits on newlines keeps it whole)."""

from __future__ import annotations

import datetime
import json
import logging
import re
import signal
import sys
import threading
from pathlib import Path

import pytest
from support.procs import Server, wait_until

from uwsgiapp.client import parse_address, request
from uwsgiapp.config import ConfigError, make_config
from uwsgiapp.server.logformat import ErrorFormatter, JsonErrorFormatter


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


def test_a_traceback_written_into_the_message_is_the_records_traceback() -> None:
    # A failed import's error carries its traceback as text: the JSON record had it in
    # "message", where a collector indexing "traceback" missed the start-up's failure.
    text = (
        "cannot load app 'a:app': error while importing module 'a' for app 'a:app':\n"
        'Traceback (most recent call last):\n  File "/app/a.py", line 1\nValueError: x'
    )
    record = logging.makeLogRecord({"msg": "%s", "args": (text,), "levelname": "ERROR"})
    data = json.loads(JsonErrorFormatter().format(record))
    assert (
        data["message"]
        == "cannot load app 'a:app': error while importing module 'a' for app 'a:app':"
    )
    assert data["traceback"].startswith("Traceback (most recent call last):\n  File")
    assert data["traceback"].endswith("ValueError: x")


def test_the_traceback_a_line_stands_for_follows_it_in_text_and_is_the_records_in_json() -> None:
    # A HUP's failed import: its line names the file and line; the text log had nothing more
    # (grep Traceback: 0), where the start-up's failure prints the whole traceback.
    detail = "Traceback (most recent call last):\n  File \"/app/h.py\", line 2\nKeyError: 'X'\n"
    record = logging.makeLogRecord(
        {"msg": "reload: cannot re-import the app: KeyError: 'X' (/app/h.py, line 2)",
         "levelname": "ERROR", "traceback": detail}
    )  # fmt: skip
    text = ErrorFormatter().format(record)
    assert text.endswith(f"(/app/h.py, line 2)\n{detail.rstrip()}"), text
    assert json.loads(JsonErrorFormatter().format(record))["traceback"] == detail
    # An app's record's own "traceback" extra stays out of the text (its text could forge a
    # line of ours); ours is escaped line by line.
    forged = dict(record.__dict__, name="app", traceback="x\n2026 [1] [ERROR] forged")
    assert ErrorFormatter().format(logging.makeLogRecord(forged)).count("\n") == 0
    ours = dict(record.__dict__, name="uwsgiapp.error", traceback="Tb\n  bad\x1b[31m\n")
    assert ErrorFormatter().format(logging.makeLogRecord(ours)).endswith("\nTb\n  bad\\x1B[31m")
    plain = logging.makeLogRecord({"msg": "one line", "levelname": "INFO"})
    assert ErrorFormatter().format(plain) == "one line"


def test_a_records_extra_fields_are_fields_of_the_line_and_do_not_replace_its_own() -> None:
    # python-json-logger's users log logger.info("paid", extra={"order": 7}): the field was
    # dropped, so a collector could not index it.
    class Order:
        def __str__(self) -> str:
            return "order #7"

    record = logging.getLogger("shop").makeRecord(
        "shop", logging.INFO, __file__, 1, "paid", (), None,
        extra={"order": 7, "items": ["a", "b"], "obj": Order(), "level": "not ours"},
    )  # fmt: skip
    data = json.loads(JsonErrorFormatter().format(record))
    assert (data["message"], data["level"]) == ("paid", "INFO")
    assert (data["order"], data["items"], data["obj"]) == (7, ["a", "b"], "order #7")
    # A plain record has only the line's own fields (none of LogRecord's other attributes).
    plain = json.loads(JsonErrorFormatter().format(logging.makeLogRecord({"msg": "x"})))
    assert set(plain) == {"time", "level", "pid", "logger", "message"}


def _format_in_a_request(record: logging.LogRecord, environ: dict[str, str]) -> str:
    """The line as a handler makes it while a WSGI call with ``environ`` is on the stack."""
    assert environ  # the frame's ``environ`` is what the server finds
    return JsonErrorFormatter().format(record)


def test_a_record_made_while_a_request_is_served_names_the_request_and_the_worker() -> None:
    from uwsgiapp.server import inflight

    # Not named environ: the server finds a request by a frame's local of that name.
    sent = {
        "REQUEST_METHOD": "POST",
        "REQUEST_URI": "/caf\xc3\xa9?a=1",  # as nginx sends it: the bytes, as latin-1 text
        "PATH_INFO": "/caf\xc3\xa9",
        "HTTP_X_REQUEST_ID": "abc123",
    }
    record = logging.makeLogRecord({"msg": "slow query", "levelname": "WARNING"})
    inflight.set_worker_number(3)
    try:
        data = json.loads(_format_in_a_request(record, sent))
        outside = json.loads(JsonErrorFormatter().format(record))
    finally:
        inflight.set_worker_number(0)
    assert (data["method"], data["uri"], data["request_id"]) == ("POST", "/caf\u00e9?a=1", "abc123")
    assert data["worker"] == 3
    assert "method" not in outside and "request_id" not in outside  # no request: none said
    del sent["REQUEST_URI"], sent["HTTP_X_REQUEST_ID"]
    data = json.loads(_format_in_a_request(record, sent))
    assert (data["uri"], data["request_id"]) == ("/caf\u00e9", "")
    assert "worker" not in data  # not in a worker (the master's own lines)


def test_an_extra_json_cannot_hold_is_its_text_and_the_record_is_kept() -> None:
    # json.dumps raised (a dict keyed by tuples, a cycle) and logging dropped the record, an
    # ERROR's traceback with it; a NaN made a line strict parsers refuse.
    cycle: list[object] = []
    cycle.append(cycle)
    extra = {"by_pair": {(1, 2): 3}, "cycle": cycle, "ratio": float("nan"), "fine": {"a": 1}}
    record = logging.makeLogRecord({"msg": "kept", **extra})
    record.__dict__[7] = "a key that is no text"
    line = JsonErrorFormatter().format(record)
    data = json.loads(line)  # strict: no NaN
    assert "NaN" not in line and data["message"] == "kept"
    assert (data["by_pair"], data["ratio"], data["fine"]) == ("{(1, 2): 3}", "nan", {"a": 1})
    assert data["cycle"] == "[[...]]"


def test_an_apps_own_request_id_fills_the_one_a_request_came_without() -> None:
    # django-log-request-id and the like make an id when nginx sent none: it was "" here.
    def log_in_request(environ: dict[str, str], record: logging.LogRecord) -> dict[str, str]:
        assert environ
        return json.loads(JsonErrorFormatter().format(record))  # type: ignore[no-any-return]

    from uwsgiapp.server import inflight  # noqa: F401  (the formatter looks for requests)

    record = logging.makeLogRecord({"msg": "x", "request_id": "app-made"})
    plain = {"REQUEST_METHOD": "GET", "PATH_INFO": "/"}
    assert log_in_request(plain, record)["request_id"] == "app-made"
    sent = {**plain, "HTTP_X_REQUEST_ID": "nginx-made"}
    assert log_in_request(sent, record)["request_id"] == "nginx-made"  # the request's wins


def test_only_the_serving_thread_of_a_one_thread_worker_is_in_its_request() -> None:
    # The worker says its request where no frame holds it (a compiled build's streamed
    # response): an app's background thread logging meanwhile was said to be in it too.
    from uwsgiapp.server import inflight

    serving = {"REQUEST_METHOD": "GET", "REQUEST_URI": "/slow", "HTTP_X_REQUEST_ID": "r1"}
    record = logging.makeLogRecord({"msg": "tick"})
    inflight.set_request_source(lambda: serving)
    try:
        here = json.loads(JsonErrorFormatter().format(record))
        there: list[dict[str, object]] = []
        thread = threading.Thread(
            target=lambda: there.append(json.loads(JsonErrorFormatter().format(record)))
        )
        thread.start()
        thread.join(10)
    finally:
        inflight._current = None
    assert (here["uri"], here["request_id"]) == ("/slow", "r1")
    assert there and "uri" not in there[0] and "request_id" not in there[0]


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


PRINTING_APP = """
import os, sys

def app(environ, start_response):
    if environ["PATH_INFO"] == "/raise":
        raise RuntimeError("boom")
    for i in range(20):
        print("app line %d %d" % (os.getpid(), i), "x" * 150, file=sys.stderr)
        print("app line %d %d" % (os.getpid(), i), "y" * 150)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"printed"]
"""


def test_the_apps_prints_stay_whole_lines_under_pythonunbuffered(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # PYTHONUNBUFFERED=1 (the image sets it; most Dockerfiles do) makes a print two writes,
    # its text and then its newline: between them another worker's line or JSON record got in
    # (docker logs: "app line ...{"time": ...}" and empty lines, records lost to a parser).
    monkeypatch.setenv("PYTHONUNBUFFERED", "1")
    (tmp_path / "app").mkdir()
    (tmp_path / "app" / "printing_app.py").write_text(PRINTING_APP)
    server = Server(
        tmp_path / "s", "printing_app:app", workers=3, error_log_format="json",
        pythonpath=[str(tmp_path / "app")],
    ).start()  # fmt: skip
    address = parse_address(server.socket)

    def client(path: str) -> None:
        for _ in range(40):
            request(address, path)

    try:
        clients = [threading.Thread(target=client, args=(p,)) for p in ["/", "/", "/raise"]]
        for thread in clients:
            thread.start()
        for thread in clients:
            thread.join(60)
    finally:
        server.stop()
    torn = [
        line
        for line in server.log().splitlines()
        if not (line.startswith("{") and line.endswith("}"))
        and not re.fullmatch(r"app line \d+ \d+ (x{150}|y{150})", line)
    ]
    assert torn == [], torn[:5]


@pytest.mark.parametrize("check_timeout", [60, 0], ids=["child-first", "in-the-master"])
def test_a_hups_failed_import_has_its_traceback_in_the_record(
    tmp_path: Path, check_timeout: int
) -> None:
    # The text line is one line by design; the JSON record had no "traceback" either (a
    # start's failed import has it), though the README said a HUP's is there.
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "hupapp.py").write_text("from huphelper import app\n")
    helper = apps / "huphelper.py"
    helper.write_text("def app(environ, start_response):\n    start_response('200 OK', [])\n"
                      "    return [b'v1']\n")  # fmt: skip
    server = Server(
        tmp_path, "hupapp:app", workers=1, pythonpath=[str(apps)], error_log_format="json",
        reload_check_timeout=check_timeout,
    ).start()  # fmt: skip
    try:
        wait_until(lambda: "started" in server.log(), 10, "the worker")  # the import done
        helper.write_text("def deep():\n    raise RuntimeError('deep failure')\n\n\ndeep()\n")
        server.signal(signal.SIGHUP)
        wait_until(lambda: "reload failed" in server.log(), 15, "the reload called off")
    finally:
        server.stop()
    records = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    (failed,) = [r for r in records if "cannot re-import the app" in r["message"]]
    assert "RuntimeError: deep failure" in failed["message"]  # the one line, as in text
    assert failed["traceback"].startswith("Traceback (most recent call last):")
    assert 'huphelper.py", line 2, in deep\n    raise RuntimeError' in failed["traceback"]
    assert failed["traceback"].endswith("RuntimeError: deep failure")


UNCONFIGURED_APP = """
import logging

def app(environ, start_response):
    try:
        1 / 0
    except ZeroDivisionError:
        logging.getLogger("myapp.views").exception("could not divide for %s", "/x")
    logging.getLogger("myapp.views").info("an info line no handler takes")
    start_response("200 OK", [])
    return [b"ok"]
"""


def test_an_apps_logging_with_no_handler_is_a_record_of_the_error_log(tmp_path: Path) -> None:
    # logging's last resort wrote it to stderr as a bare line (its traceback as twenty more):
    # the README sent JSON users to "log through logging", which then broke their records.
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "nolog.py").write_text(UNCONFIGURED_APP)
    server = Server(
        tmp_path, "nolog:app", workers=1, pythonpath=[str(apps)], error_log_format="json"
    ).start()
    try:
        headers = [("X-Request-Id", "rid-1")]
        assert request(parse_address(server.socket), "/x", headers=headers).status == 200
        wait_until(lambda: "could not divide" in server.log(), 10, "the app's record")
    finally:
        server.stop()
    lines = server.log().splitlines()
    assert [line for line in lines if not line.startswith("{")] == []
    (record,) = [json.loads(line) for line in lines if "myapp" in line]
    assert (record["level"], record["logger"]) == ("ERROR", "myapp.views")
    # The request it was made in, as its JSON access line names it, and the worker.
    assert (record["method"], record["uri"], record["request_id"]) == ("GET", "/x", "rid-1")
    assert record["worker"] == 1
    assert record["message"] == "could not divide for /x"
    assert record["traceback"].endswith("ZeroDivisionError: division by zero")


SURROGATE_APP = """
import logging, os

def app(environ, start_response):
    name = os.fsdecode(b"report-\\xff.csv")  # a file name os.listdir gives: a lone surrogate
    logging.getLogger("sapp").warning("cannot read %s", name)
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


@pytest.mark.parametrize("funnel", [False, True], ids=["", "log-master"])
@pytest.mark.parametrize("fmt", ["text", "json"])
def test_a_lone_surrogate_in_a_record_is_written_escaped_to_the_log_file(
    tmp_path: Path, fmt: str, funnel: bool
) -> None:
    """The file's strict UTF-8 lost the record to logging's "--- Logging error ---" dump on
    stderr (stderr wrote it escaped)."""
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "surr.py").write_text(SURROGATE_APP)
    log = tmp_path / "error.log"
    server = Server(
        tmp_path,
        "surr:app",
        workers=1,
        pythonpath=[str(apps)],
        error_log_format=fmt,
        error_log_file=str(log),
        **({"log_master": True} if funnel else {}),
    ).start()
    try:
        assert request(parse_address(server.socket), "/x").status == 200
        wait_until(lambda: "cannot read" in log.read_text(errors="replace"), 10, "the record")
    finally:
        server.stop()
    (line,) = [line for line in log.read_text().splitlines() if "cannot read" in line]
    if fmt == "json":
        assert json.loads(line)["message"] == "cannot read report-\udcff.csv"  # JSON's escape
    else:
        assert line.endswith("cannot read report-\\udcff.csv")
    assert "Logging error" not in server.log() + log.read_text()
