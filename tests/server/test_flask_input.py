"""Flask and werkzeug reading a body the client cuts short: a 400, as under uWSGI, not a 500
with a traceback in the app's log (and in Sentry) for every mobile client that drops an upload.

werkzeug reads ``wsgi.input`` through its LimitedStream, which turns the server's OSError into
its ClientDisconnected (a 400), unless the environ has ``wsgi.input_terminated``.
"""

from __future__ import annotations

import logging

from flask import Flask, request
from handler_kit import Logs, make_handler, packet, problems, run

from uwsgiapp.server.intake import PREREAD


def upload_app() -> Flask:
    app = Flask(__name__)

    @app.post("/data")
    def data() -> str:
        return f"got {len(request.get_data())}"

    @app.post("/form")
    def form() -> str:
        return f"fields {sorted(request.form)} files {sorted(request.files)}"

    return app


def test_a_whole_body_is_read() -> None:
    body = b"x" * (PREREAD + 10_000)  # over the read-ahead: the view reads it as it comes
    out = run(make_handler(upload_app()), packet("POST", "/data", body))
    assert (out.status, out.body) == (200, b"got %d" % len(body))


def test_a_body_cut_short_is_a_400_and_no_traceback(logs: Logs) -> None:
    data = packet("POST", "/data", bytes(PREREAD + 100_000))
    out = run(make_handler(upload_app()), data[: PREREAD + 20_000], shut_wr=True)
    assert out.status == 400, out.raw[:200]
    assert not problems(logs, logging.ERROR)


def test_a_multipart_upload_cut_short_is_a_400_not_an_empty_form(logs: Logs) -> None:
    boundary = "b0undary"
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + bytes(PREREAD + 100_000)
        + f"\r\n--{boundary}--\r\n".encode()
    )
    data = packet(
        "POST",
        "/form",
        body,
        CONTENT_TYPE=f"multipart/form-data; boundary={boundary}",
    )
    whole = run(make_handler(upload_app()), data)
    assert (whole.status, whole.body) == (200, b"fields [] files ['f']")
    out = run(make_handler(upload_app()), data[: PREREAD + 20_000], shut_wr=True)
    assert out.status == 400, out.raw[:200]
    assert not problems(logs, logging.ERROR)


def test_a_stalled_body_is_a_400_after_the_socket_timeout(logs: Logs) -> None:
    data = packet("POST", "/data", bytes(PREREAD + 100_000))
    out = run(make_handler(upload_app(), timeout=0.3), b"", preload=data[: PREREAD + 20_000])
    assert out.status == 400, out.raw[:200]
    assert not problems(logs, logging.ERROR)
