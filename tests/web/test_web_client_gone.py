"""A client that stalls or leaves while a ``uwsgiapp.web`` view reads the body, under a real
``uwsgiapp serve``: werkzeug's stream turned the server's failed read into its own 400, which
went out as the app's answer (in the access log too) with no line of the server's. The server
now says it as for any app (a stall: 408 and its line; a close: its line), and the teardown
functions get the exception. Outside the server, werkzeug's 400 stays (Flask's)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

from support.procs import Server, wait_until
from werkzeug.exceptions import ClientDisconnected as BodyCut

from uwsgiapp.web.clientgone import server_gone
from uwsgiapp.wsgi.errors import ClientDisconnected
from uwsgiproto import build_request

APP = """
from uwsgiapp.web import App, request

app = App("goneapp")


@app.route("/upload", methods=["POST"])
def upload():
    return f"{len(request.files)} files, {len(request.form)} fields"


@app.teardown_request
def said(exc):
    if exc is not None:
        app.logger.warning("teardown saw %s", type(exc).__name__)
"""

BOUNDARY = "b0undary"


def _upload(length: int) -> bytes:
    variables = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/upload",
        "REQUEST_URI": "/upload",
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "HTTP_HOST": "localhost",
        "CONTENT_TYPE": f"multipart/form-data; boundary={BOUNDARY}",
        "CONTENT_LENGTH": str(length),
    }
    start = (
        f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="f"; filename="a.bin"\r\n'
        "Content-Type: application/octet-stream\r\n\r\n"
    ).encode()
    return build_request(variables, start + b"x" * 200_000)  # of `length`: the rest never comes


def _exchange(server: Server, packet: bytes, close: bool) -> bytes:
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(20)
        s.connect(server.socket)
        s.sendall(packet)
        if close:
            s.shutdown(socket.SHUT_WR)
        return b"".join(iter(lambda: s.recv(65536), b""))


def test_a_stall_or_a_close_mid_upload_is_the_servers_not_an_apps_400(tmp_path: Path) -> None:
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "goneapp.py").write_text(APP)
    options = {"socket_timeout": 1, "access_log": "combined"}
    server = Server(tmp_path, "goneapp:app", workers=1, pythonpath=[str(apps)], **options)
    server.start()
    try:
        started = time.monotonic()
        stalled = _exchange(server, _upload(5_000_000), close=False)
        assert stalled.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), stalled[:200]
        assert time.monotonic() - started < 15
        wait_until(lambda: "stalled while the app read its body" in server.log(), 10, "stall")
        closed = _exchange(server, _upload(5_000_000), close=True)
        assert not closed.startswith(b"HTTP/1.1 400"), closed[:200]
        wait_until(lambda: "went away while the app read its body" in server.log(), 10, "gone")
        log = server.log()
        assert "teardown saw ClientTimeout" in log and "teardown saw ClientDisconnected" in log
        assert '"POST /upload HTTP/1.1" 400' not in log, log  # the access log's: an app's 400
        assert '"POST /upload HTTP/1.1" 408' in log and '"POST /upload HTTP/1.1" 499' in log
    finally:
        server.stop()


def test_outside_the_server_werkzeugs_400_stays() -> None:
    """Only the server's own exception is raised on: another server's read error (an OSError
    of its own) stays werkzeug's 400, as under Flask."""
    try:
        try:
            raise ClientDisconnected("gone")
        except ClientDisconnected:
            raise BodyCut() from None
    except BodyCut as cut:
        assert isinstance(server_gone(cut), ClientDisconnected)  # its context: the server's
    try:
        try:
            raise OSError("another server's")
        except OSError:
            raise BodyCut() from None
    except BodyCut as cut:
        assert server_gone(cut) is None
    assert server_gone(ValueError()) is None
