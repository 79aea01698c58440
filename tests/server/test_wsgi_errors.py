"""``wsgi.errors`` is the server's error log (PEP 3333; gunicorn's is): where that log is a file,
what the app writes there (Flask's default handler, during a request) lands in it, not on the
process's stderr."""

from __future__ import annotations

import io
import json
import logging
import re
from pathlib import Path

import pytest
from support.procs import Server, wait_until

from uwsgiapp.client import parse_address, request
from uwsgiapp.server.logformat import JsonErrorFormatter
from uwsgiapp.server.logs import QuietStreamHandler
from uwsgiapp.server.wsgierrors import ErrorLogStream

FLASK_APP = """
from flask import Flask

app = Flask("flaskerr")


@app.route("/boom")
def boom():
    return str(1 // 0)


@app.route("/note")
def note():
    app.logger.warning("a note from the view")
    return "ok"

"""


def _note_and_boom(tmp_path: Path, **options: object) -> tuple[str, str]:
    """Serve the Flask app with its error log in a file, ask /note and /boom: the file's text
    and the server's own stderr."""
    pytest.importorskip("flask")
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "flaskerr.py").write_text(FLASK_APP)
    error_log = tmp_path / "error.log"
    server = Server(
        tmp_path, "flaskerr:app", workers=1, pythonpath=[str(apps)],
        error_log_file=str(error_log), **options,
    )  # fmt: skip
    server.start()
    try:
        address = parse_address(server.socket)
        assert request(address, "/note").status == 200
        assert request(address, "/boom").status == 500
        wait_until(lambda: "ZeroDivisionError" in error_log.read_text(), 10, "the traceback")
    finally:
        server.stop()
    return error_log.read_text(), server.log()


@pytest.mark.parametrize("log_master", [False, True], ids=["direct", "log-master"])
def test_flasks_errors_reach_the_error_log_file_without_capture_output(
    tmp_path: Path, log_master: bool
) -> None:
    text, stderr = _note_and_boom(tmp_path, log_master=log_master)
    assert re.search(r"^\[[^]]+\] WARNING in flaskerr: a note from the view$", text, re.M), text
    assert re.search(r"^\[[^]]+\] ERROR in app: Exception on /boom \[GET\]\nTraceback", text, re.M)
    assert "Exception on /boom" not in stderr and "a note from" not in stderr, stderr


def test_with_the_json_error_log_each_flask_record_is_one_json_record(tmp_path: Path) -> None:
    # Plain lines (a traceback's twenty) among the JSON ones would be twenty broken records.
    text, _ = _note_and_boom(tmp_path, error_log_format="json")
    records = [json.loads(line) for line in text.splitlines()]
    app = [r for r in records if r["logger"] in ("flaskerr", "app")]
    assert [(r["level"], r["logger"], r["message"]) for r in app] == [
        ("WARNING", "flaskerr", "a note from the view"),
        ("ERROR", "app", "Exception on /boom [GET]"),
    ]
    assert app[1]["traceback"].startswith("Traceback (most recent call last):")
    assert app[1]["traceback"].endswith("ZeroDivisionError: integer division or modulo by zero")


def test_each_write_not_in_flasks_format_is_an_error_record_of_its_own() -> None:
    # Held up to a newline, a partial write was glued onto the next request's record (a
    # Flask WARNING relabelled an ERROR of wsgi.errors), or lost.
    errors = ErrorLogStream()
    logger = logging.getLogger("uwsgiapp")
    saved = logger.handlers[:]
    sink = io.StringIO()
    handler = QuietStreamHandler(sink)
    handler.setFormatter(JsonErrorFormatter())
    logger.handlers[:] = [handler]
    try:
        errors.write("req1: no newline")
        errors.flush()
        errors.write("[2026-12-07 04:00:00,000] WARNING in views: req2's warning\n")
        errors.writelines([" ", "\n", "a line\nand more\n"])
    finally:
        logger.handlers[:] = saved
    records = [json.loads(line) for line in sink.getvalue().splitlines()]
    assert [(r["level"], r["logger"], r["message"]) for r in records] == [
        ("ERROR", "wsgi.errors", "req1: no newline"),
        ("WARNING", "views", "req2's warning"),
        ("ERROR", "wsgi.errors", "a line\nand more"),
    ]


def test_the_stream_writes_under_the_error_logs_handler_else_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    errors = ErrorLogStream()
    logger = logging.getLogger("uwsgiapp")
    saved = logger.handlers[:]
    logger.handlers.clear()
    try:
        errors.write("no server log\n")
        assert capsys.readouterr().err == "no server log\n"
        sink = io.StringIO()
        logger.addHandler(QuietStreamHandler(sink))
        errors.writelines(["a ", "b\n"])
        assert sink.getvalue() == "a b\n" and capsys.readouterr().err == ""
    finally:
        logger.handlers[:] = saved
