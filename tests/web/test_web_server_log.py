"""``app.logger`` follows the error log of the ``uwsgiapp serve`` running the app (its format,
text or JSON, and its file), and keeps Flask's plain stderr lines everywhere else."""

from __future__ import annotations

import io
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.procs import Server, wait_until

from uwsgiapp.client import parse_address, request
from uwsgiapp.web import App
from uwsgiapp.web.applog import SERVER_ERROR_LOG

APP = """
from uwsgiapp.web import App

app = App("weblogapp")


@app.route("/boom")
def boom():
    return str(1 // 0)


@app.route("/hello")
def hello():
    app.logger.warning("hello from the app")
    return "hi"


@app.route("/echo")
def echo():
    from uwsgiapp.web import request

    app.logger.warning("asked for %s", request.args["x"])
    return "ok"
"""


def _serve(tmp_path: Path, **options: object) -> Server:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "weblogapp.py").write_text(APP)
    return Server(tmp_path, "weblogapp:app", workers=1, pythonpath=[str(apps)], **options)


def _exchange(server: Server, log: Path, wait_for: str) -> str:
    server.start()
    try:
        address = parse_address(server.socket)
        assert request(address, "/hello").status == 200
        assert request(address, "/boom").status == 500
        wait_until(lambda: wait_for in log.read_text(), 10, "the app's traceback")
    finally:
        server.stop()
    return log.read_text()


def test_under_serve_with_json_a_views_exception_is_one_record(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("UWSGIAPP_ERROR_LOG_FORMAT", "json")
    server = _serve(tmp_path)
    text = _exchange(server, server.log_path, '"traceback"')
    lines = text.splitlines()
    others = [line for line in lines if not line.startswith("{")]
    assert others == [], others  # no plain line, no traceback line of its own
    records = [json.loads(line) for line in lines]
    ours = [r for r in records if r["logger"] == "weblogapp"]
    assert [r["message"] for r in ours] == ["hello from the app", "Exception on /boom [GET]"]
    assert ours[0]["level"] == "WARNING" and "traceback" not in ours[0]
    assert ours[1]["level"] == "ERROR"
    assert ours[1]["traceback"].startswith("Traceback (most recent call last):")
    assert ours[1]["traceback"].endswith("ZeroDivisionError: integer division or modulo by zero")


def test_under_serve_with_text_the_lines_are_the_servers_and_go_to_its_file(
    tmp_path: Path,
) -> None:
    server = _serve(tmp_path, error_log_file="error.log")
    text = _exchange(server, tmp_path / "error.log", "ZeroDivisionError")
    head = r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [+-]\d{4} \[\d+\]"
    assert re.search(rf"^{head} \[WARNING\] hello from the app$", text, re.M), text
    match = re.search(rf"^{head} \[ERROR\] Exception on /boom \[GET\]\nTraceback ", text, re.M)
    assert match, text
    assert " in weblogapp: " not in text  # not the plain format
    assert "Exception on /boom" not in server.log()  # nor on stderr


def test_under_serve_with_text_a_request_cannot_forge_a_line_through_the_apps_logger(
    tmp_path: Path,
) -> None:
    """app.logger's message went into the text log as written: a request's CR/LF started a
    line that looked like the server's (a logger with no handler was escaped)."""
    server = _serve(tmp_path, error_log_file="error.log")
    server.start()
    forged = "\n2026-12-07 09:00:00,000 [1] [ERROR] forged"
    try:
        query = "x=" + forged.replace("\n", "%0A").replace(" ", "%20")
        assert request(parse_address(server.socket), "/echo?" + query).status == 200
        wait_until(lambda: "asked for" in (tmp_path / "error.log").read_text(), 10, "the line")
    finally:
        server.stop()
    text = (tmp_path / "error.log").read_text()
    assert "[ERROR] forged" in text and not re.search(r"^2026-12-07 09:00:00", text, re.M), text
    assert "asked for \\x0A2026-12-07 09:00:00,000 [1] [ERROR] forged" in text, text


@pytest.fixture
def server_log() -> Iterator[io.StringIO]:
    """A handler named as the server names its error log, on the ``uwsgiapp`` logger, as
    ``uwsgiapp serve`` leaves it (removed afterwards)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.set_name(SERVER_ERROR_LOG)
    handler.setFormatter(logging.Formatter("SERVER %(levelname)s %(name)s %(message)s"))
    logger = logging.getLogger("uwsgiapp")
    logger.addHandler(handler)
    try:
        yield stream
    finally:
        logger.removeHandler(handler)


def _failing_app(name: str) -> App:
    """An app whose /boom raises, with a logger that sees no handler (as where the app
    configured no logging): ``app.logger`` gets its default handler."""
    logger = logging.getLogger(name)
    logger.propagate = False  # pytest's handler on the root logger (and those it puts on
    logger.handlers.clear()  # non-propagating loggers) would count as configured logging
    app = App(name)

    @app.route("/boom")
    def boom() -> str:
        raise ValueError("boom")

    return app


def test_a_record_goes_to_the_servers_error_log_when_there_is_one(
    server_log: io.StringIO, capsys: pytest.CaptureFixture[str]
) -> None:
    app = _failing_app("weblog.served")
    assert app.test_client().get("/boom").status_code == 500
    assert server_log.getvalue().startswith(
        "SERVER ERROR weblog.served Exception on /boom [GET]\nTraceback"
    )
    assert "Exception" not in capsys.readouterr().err


def test_without_a_server_the_plain_lines_go_to_stderr(
    capsys: pytest.CaptureFixture[str],
) -> None:
    app = _failing_app("weblog.plain")
    assert app.test_client().get("/boom").status_code == 500
    err = capsys.readouterr().err
    assert re.match(r"\[[^]]+\] ERROR in app: Exception on /boom \[GET\]\nTraceback", err), err
    assert err.rstrip().endswith("ValueError: boom")
