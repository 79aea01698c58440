"""``uwsgiapp dev``: a real werkzeug server in a subprocess, answering and reloading."""

from __future__ import annotations

import http.client
import io
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cli.cli_testkit import run_cli

from uwsgiapp import devenv
from uwsgiapp.cli import build_parser
from uwsgiapp.devcheck import status_of
from uwsgiapp.devenv import read_dotenv
from uwsgiapp.devserver import (
    DevOptions,
    DevServerError,
    bounded_input,
    check_app_found,
    check_options,
    enable_debug,
    is_loopback,
)
from uwsgiapp.exitcodes import ServeExit
from uwsgiapp.importer import AppImportError
from uwsgiapp.wsgi.response import HeaderError, render_head

APP = """\
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"{text}"]
"""

#: How long the server may take to announce itself or to answer as expected. Generous: each
#: start is two interpreters (the reloader and its child), on a machine that may be busy running
#: other tests. Nothing waits for a fixed time: every wait ends as soon as its condition holds.
DEADLINE = 120.0


class DevServer:
    """A running ``uwsgiapp dev``: its output as it comes (read by a thread), and its URL."""

    def __init__(self, proc: subprocess.Popen[bytes]) -> None:
        self.proc = proc
        self._output = bytearray()
        self._done = False
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in iter(self.proc.stdout.readline, b""):
            with self._changed:
                self._output += line
                self._changed.notify_all()
        with self._changed:
            self._done = True
            self._changed.notify_all()

    @property
    def output(self) -> bytes:
        with self._changed:
            return bytes(self._output)

    def wait_output(self, pattern: bytes, deadline: float = DEADLINE) -> re.Match[bytes]:
        """Wait until the output matches ``pattern``; fail at once if the server exits."""
        regex = re.compile(pattern)
        end = time.monotonic() + deadline
        with self._changed:
            while (found := regex.search(self._output)) is None:
                left = end - time.monotonic()
                if self._done or left <= 0:
                    why = "exited" if self._done else f"said nothing like it within {deadline}s"
                    raise AssertionError(
                        f"no {pattern!r}: the dev server {why}; output:\n"
                        + self._output.decode(errors="replace")
                    )
                self._changed.wait(left)
            return found

    def url(self) -> str:
        """The URL the server announced (it was started with --port 0: no port is guessed)."""
        return self.wait_output(rb"Running on (http://127\.0\.0\.1:\d+)").group(1).decode()

    def wait_for(self, want: bytes, deadline: float = DEADLINE) -> tuple[int, bytes]:
        """Poll the URL until the body contains ``want``: the server answers, and answers
        with the current code (fail after ``deadline`` seconds, or as soon as it exits)."""
        url = self.url()
        end = time.monotonic() + deadline
        last: object = None
        while (left := end - time.monotonic()) > 0:
            if self.proc.poll() is not None:
                break
            try:
                status, body = get(url, timeout=min(left, 10))
                if want in body:
                    return status, body
                last = body
            except (OSError, http.client.HTTPException) as exc:  # restarting: try again
                last = exc
            time.sleep(0.05)  # between polls only; never the thing waited for
        raise AssertionError(
            f"no {want!r} from {url} within {deadline}s (exit status {self.proc.poll()});"
            f" last: {last!r}; output:\n{self.output.decode(errors='replace')}"
        )

    def stop(self) -> bytes:
        """TERM the whole process group, wait for it to exit, and return all its output."""
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(DEADLINE)
        self._reader.join(DEADLINE)
        return self.output


StartDev = Callable[..., DevServer]


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


@pytest.fixture
def start_dev(tmp_path: Path) -> Iterator[StartDev]:
    """Start ``python -m uwsgiapp dev --port 0 ...`` in its own session (the port is the one it
    announces, so no other process can take it first); kill that group afterwards."""
    servers: list[DevServer] = []

    def start(*args: str) -> DevServer:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "uwsgiapp", "dev", "--port", "0", *args],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its reloader child shares this group: killed with it
        )
        server = DevServer(proc)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
        if server.proc.stdout:
            server.proc.stdout.close()


def _bump(path: Path, text: str) -> None:
    path.write_text(text)
    later = time.time() + 2  # a clearly newer mtime, whatever the file system's resolution
    os.utime(path, (later, later))


def test_dev_serves_and_reloads(tmp_path: Path, start_dev: StartDev) -> None:
    app = tmp_path / "site.py"
    app.write_text(APP.format(text="first"))
    server = start_dev("site.py:app")
    assert server.wait_for(b"first") == (200, b"first")
    _bump(app, APP.format(text="second"))
    assert server.wait_for(b"second") == (200, b"second")
    out = server.stop()
    assert f"* Running on {server.url()}".encode() in out
    assert b"Debugger is active" in out
    assert b"\x1b[" not in out, out  # werkzeug's colours only on a terminal


def test_dev_static_map_serves_a_directory_ahead_of_the_app(
    tmp_path: Path, start_dev: StartDev
) -> None:
    # What nginx's location /static/ serves in production (examples/app.py's page was
    # unstyled under dev: its static_folder=None leaves /static/ to nginx).
    (tmp_path / "statics.py").write_text(APP.format(text="from the app"))
    (tmp_path / "assets").mkdir()
    (tmp_path / "assets" / "style.css").write_text("body { color: red }")
    (tmp_path / "app").mkdir()  # --chdir elsewhere: the map is taken from where dev started
    server = start_dev("statics:app", "--chdir", "app", "--pythonpath", ".",
                       "--static-map", "/static/=assets")  # fmt: skip
    assert server.wait_for(b"from the app") == (200, b"from the app")
    assert get(server.url() + "/static/style.css") == (200, b"body { color: red }")
    assert get(server.url() + "/static/none.css") == (200, b"from the app")  # as uWSGI's
    assert get(server.url() + "/other") == (200, b"from the app")
    server.stop()
    # A / map hid every route of the app (404); one file (uWSGI maps files too) was refused.
    server = start_dev("statics:app", "--static-map", "/=assets",
                       "--static-map", "/robots.txt=assets/style.css")  # fmt: skip
    assert server.wait_for(b"from the app") == (200, b"from the app")
    assert get(server.url() + "/style.css") == (200, b"body { color: red }")
    assert get(server.url() + "/robots.txt") == (200, b"body { color: red }")
    assert get(server.url() + "/other") == (200, b"from the app")
    bad = run_cli("dev", "statics:app", "--static-map", "/s=nowhere", cwd=tmp_path)
    said = f"--static-map /s=nowhere: no such directory or file in {tmp_path}, where dev started"
    assert bad.returncode == 2 and said.encode() in bad.stderr, bad.stderr
    bad = run_cli("dev", "statics:app", "--static-map", "assets", cwd=tmp_path)
    assert bad.returncode == 2 and b"expects /URL-PREFIX=DIRECTORY" in bad.stderr


READ_APP = """\
def app(environ, start_response):
    stream, how = environ["wsgi.input"], environ["QUERY_STRING"]
    if how == "all":
        body = stream.read()
    elif how == "past":  # more than was sent: the body, at once
        body = stream.read(int(environ.get("CONTENT_LENGTH") or 0) + 1000)
    else:  # small reads until b""
        body = b"".join(iter(lambda: stream.read(7000), b""))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d:%s" % (len(body), body[-5:])]
"""


def _post(
    url: str, query: str, body: bytes | Iterable[bytes] | None, chunked: bool = False
) -> tuple[int, bytes]:
    """``body`` sent with a Content-Length (or chunked); a server that waits for more than
    was sent fails the test at the timeout."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=20)
    try:
        method = "GET" if body is None else "POST"
        conn.request(method, f"/?{query}", body=body, encode_chunked=chunked)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_dev_wsgi_input_ends_with_the_body(tmp_path: Path, start_dev: StartDev) -> None:
    """A plain WSGI app reads ``wsgi.input`` to its end in dev as under serve (werkzeug's
    server gives it the connection itself; read() would wait for the client to close)."""
    (tmp_path / "reader.py").write_text(READ_APP)
    server = start_dev("reader:app")
    url = server.url()
    body = b"x" * 199_995 + b"-end!"
    for how in ("all", "past", "steps"):
        assert _post(url, how, body) == (200, b"200000:-end!"), how
    assert _post(url, "all", None) == (200, b"0:")
    assert _post(url, "all", iter([b"chunked", b"-end!"]), chunked=True) == (200, b"12:-end!")


def test_bounded_input_in_process() -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [])
        return [environ["wsgi.input"].read()]

    def run(environ: dict[str, Any]) -> bytes:
        environ["wsgi.input"] = io.BytesIO(b"body+more")
        return b"".join(bounded_input(app)(environ, print))

    assert run({"CONTENT_LENGTH": "4"}) == b"body"
    assert run({}) == run({"CONTENT_LENGTH": "x"}) == b""
    assert run({"CONTENT_LENGTH": "4", "wsgi.input_terminated": True}) == b"body+more"


@pytest.mark.parametrize(
    "headers",
    [
        [("X-Bad", "a\r\nSet-Cookie: pwn=1")],
        [("X-Name", "caf\u00e9 \u20ac")],
        [("Content-Length", "1"), ("Content-Length", "2")],
    ],
    ids=["crlf", "not-latin-1", "content-length"],
)
def test_dev_refuses_the_heads_serve_refuses(headers: list[tuple[str, str]]) -> None:
    # werkzeug sent a CR/LF header on to the browser and hung on a non-latin-1 one: under
    # serve each is a 500 and a line; dev raises where its debugger shows it.
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", headers)
        return [b"x"]

    sent: list[object] = []
    with pytest.raises(HeaderError):
        list(bounded_input(app)({"wsgi.input": io.BytesIO()}, lambda *a: sent.append(a)))
    assert sent == []
    environ = {"wsgi.input": io.BytesIO()}
    assert list(bounded_input(hello_app)(environ, lambda *a: sent.append(a))) == [b"up"] and sent


def hello_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"up"]


RULE_BREAKER = """\
import io

def app(environ, start_response):
    how = environ["PATH_INFO"].strip("/")
    head = [("Content-Type", "text/plain")]
    if how == "stream":
        start_response("200 OK", head + [("Content-Length", "12")])
        return iter([b"head body!!!"])
    if how in ("204", "304"):
        start_response(how + " Nothing", [])
        return [b"dropped"]
    if how == "over":
        start_response("200 OK", head + [("Content-Length", "3")])
        return [b"0123456789"]
    if how == "short":
        start_response("200 OK", head + [("Content-Length", "10")])
        return [b"012"]
    if how == "exact":  # filled exactly: not resumed (PEP 3333)
        start_response("200 OK", head + [("Content-Length", "3")])
        def exact():
            yield b"abc"
            print("resumed past its length", flush=True)
            yield b"more"
        return exact()
    if how == "file":
        start_response("200", head)  # a bare code: serve adds the reason
        return environ["wsgi.file_wrapper"](io.BytesIO(b"from a file"))
    if how == "str":
        start_response("200 OK", head)
        return ["not bytes"]
    if how == "twice":
        start_response("200 OK", head)
        start_response("200 OK", head)
    elif how == "crlf":
        start_response("200 OK", [("X-Bad", "a\\r\\nSet-Cookie: pwn=1")])
    elif how == "lengths":
        start_response("200 OK", [("Content-Length", "1"), ("Content-Length", "2")])
    elif how == "early":
        start_response("101 Switching", [])
    return [b"x"]
"""


def _raw(url: str, method: str, path: str) -> bytes:
    """The whole response as it came: werkzeug closes each connection after its response."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=20) as sock:
        sock.sendall(f"{method} {path} HTTP/1.1\r\nHost: dev\r\n\r\n".encode())
        return b"".join(iter(lambda: sock.recv(65536), b""))


def test_dev_sends_what_serve_sends(tmp_path: Path, start_dev: StartDev) -> None:
    """werkzeug sent a body after HEAD, 204 and 304, past its Content-Length, a bare "200"
    as "200 " and answered 200 then cut for a str body; dev now answers as serve does."""
    (tmp_path / "rules.py").write_text(RULE_BREAKER)
    server = start_dev("rules:app", "--no-debugger", "--no-reload")
    url = server.url()
    for method, path in [("HEAD", "/stream"), ("GET", "/204"), ("GET", "/304")]:
        assert _raw(url, method, path).endswith(b"\r\n\r\n"), path  # the head alone
    assert _raw(url, "GET", "/over").endswith(b"\r\n\r\n012")
    assert _raw(url, "GET", "/exact").endswith(b"\r\n\r\nabc")
    file = _raw(url, "GET", "/file")
    assert file.startswith(b"HTTP/1.1 200 OK\r\n") and b"from a file" in file
    for path in ("/str", "/twice", "/crlf", "/lengths", "/early"):
        answer = _raw(url, "GET", path)
        assert answer.startswith(b"HTTP/1.1 500 Internal Server Error\r\n"), (path, answer)
        assert answer.endswith(b"\r\n\r\nInternal Server Error\n") and b"pwn" not in answer
    assert _raw(url, "GET", "/short").endswith(b"\r\n\r\n012")
    server.wait_output(rb"ERROR\] app sent 7 bytes fewer than its Content-Length \(GET /short\)")
    out = server.stop()
    for said in [
        b"app sent more body than its head allows (GET /over)",
        b"app sent more body than its head allows (GET /204)",
        b"bad response (response body must be bytes, got str) (GET /str): answering 500",
        b"bad response (start_response() called a second time without exc_info) (GET /twice)",
        b"contains CR or LF) (GET /crlf): answering 500",
        b"bad response (two Content-Lengths, 1 and 2) (GET /lengths)",
        b"a response's status is 200 or more) (GET /early)",
    ]:
        assert said in out, said
    assert b"Traceback" not in out
    assert b"resumed past its length" not in out and b"(GET /exact)" not in out


def test_dev_debugger_shows_what_serve_refuses(tmp_path: Path, start_dev: StartDev) -> None:
    (tmp_path / "rules.py").write_text(RULE_BREAKER)
    server = start_dev("rules:app", "--no-reload")
    status, page = get(server.url() + "/str")
    assert status == 500 and b'<div class="debugger">' in page
    assert b"AppError: response body must be bytes, got str" in page
    assert get(server.url() + "/over") == (200, b"012")


def test_status_of_a_rendered_head() -> None:
    assert status_of(render_head("HTTP/1.1", "204", [("A", "b")])) == "204 No Content"
    assert status_of(b"HTTP/1.0 599 My Own\r\n\r\n") == "599 My Own"


FLASK_APP = """\
from flask import Flask

app = Flask(__name__)


@app.route("/")
def index():
    return "up"


@app.route("/boom")
def boom():
    secret_local = "visible in the debugger"
    raise ValueError("boom from the view")
"""

WEB_APP = FLASK_APP.replace("from flask import Flask", "from uwsgiapp.web import App as Flask")


@pytest.mark.parametrize("source", [FLASK_APP, WEB_APP], ids=["flask", "uwsgiapp.web"])
def test_dev_error_in_a_view_opens_the_debugger(
    tmp_path: Path, start_dev: StartDev, source: str
) -> None:
    """The framework's own error handling lets the exception through to werkzeug's debugger
    (as ``flask run --debug``), not its plain 500 page; and nothing is coloured in a pipe."""
    if "from flask" in source:
        pytest.importorskip("flask")
    (tmp_path / "views.py").write_text(source)
    server = start_dev("views:app")
    assert server.wait_for(b"up") == (200, b"up")
    status, page = get(server.url() + "/boom")
    assert status == 500
    # werkzeug's interactive debugger: its page, its console's resources, the view's frame.
    assert b'<div class="debugger">' in page, page[:500]
    assert b"__debugger__" in page and b"Traceback <em>(most recent call last)</em>" in page
    assert b"ValueError: boom from the view" in page
    assert b'<div class="frame" id="frame-' in page  # frames the console can open
    assert b'in <code class="function">boom</code>' in page  # the view's own frame
    server.wait_output(rb"ValueError: boom from the view")  # the console has it too
    out = server.stop()
    assert b"app.debug = True" in out
    assert b"\x1b[" not in out, out


LOGGING_APP = """\
from flask import Flask

app = Flask(__name__)
app.logger.info("import-time info, debug %s", app.debug)


@app.route("/")
def index():
    app.logger.debug("a view's debug line")
    return "up"
"""


@pytest.mark.parametrize("flask", [True, False], ids=["flask", "uwsgiapp.web"])
def test_dev_makes_the_app_in_debug_mode_as_flask_run_debug(
    tmp_path: Path, start_dev: StartDev, flask: bool
) -> None:
    # FLASK_DEBUG=1 before the import, as `flask run --debug`: an app that touched its logger
    # at import kept its level at WARNING, and dev showed none of its info or debug lines.
    if flask:
        pytest.importorskip("flask")
    source = (
        LOGGING_APP
        if flask
        else LOGGING_APP.replace("flask import Flask", "uwsgiapp.web import App as Flask")
    )
    (tmp_path / "logs.py").write_text(source)
    server = start_dev("logs:app")
    assert server.wait_for(b"up") == (200, b"up")
    server.wait_output(rb"a view's debug line")
    assert b"import-time info, debug True" in server.stop()


def test_dev_no_debugger_keeps_the_apps_debug_mode(tmp_path: Path, start_dev: StartDev) -> None:
    """As ``flask run --debug --no-debugger``: no debugger, but the app in debug mode (Flask's
    templates reload in it: they were served stale)."""
    (tmp_path / "views.py").write_text(WEB_APP + "\n\n@app.route('/mode')\ndef mode():\n"
                                       "    return str(app.debug)\n")  # fmt: skip
    server = start_dev("views:app", "--no-debugger")
    assert server.wait_for(b"up") == (200, b"up")
    status, page = get(server.url() + "/boom")
    assert status == 500 and b"__debugger__" not in page
    assert get(server.url() + "/mode") == (200, b"True")
    server.wait_output(rb"ValueError: boom from the view")  # logged after the answer
    assert b"app.debug = True: an error in a view prints its traceback here" in server.stop()


def test_dev_no_debugger_on_every_interface_is_not_debug_mode(
    tmp_path: Path, start_dev: StartDev
) -> None:
    """Where the debugger is refused (a host others reach), so is debug mode: an extension
    on in it (Flask-DebugToolbar) shows the config, SECRET_KEY too, to whoever asks."""
    (tmp_path / "views.py").write_text(WEB_APP + "\n\n@app.route('/mode')\ndef mode():\n"
                                       "    return str(app.debug)\n")  # fmt: skip
    server = start_dev("views:app", "--no-debugger", "--host", "0.0.0.0")
    assert server.wait_for(b"up") == (200, b"up")
    assert get(server.url() + "/mode") == (200, b"False")
    assert b"app.debug = True" not in server.stop()


def test_dev_takes_flask_app_as_flask_run_does(
    tmp_path: Path, start_dev: StartDev, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "views.py").write_text(WEB_APP)
    monkeypatch.setenv("FLASK_APP", "views:app")
    server = start_dev()  # no APP: "the following arguments are required: APP" before
    assert server.wait_for(b"up") == (200, b"up")


def test_dev_takes_flask_app_from_flaskenv_as_flask_run_does(
    tmp_path: Path, start_dev: StartDev
) -> None:
    pytest.importorskip("dotenv")
    (tmp_path / "views.py").write_text(WEB_APP)
    (tmp_path / ".flaskenv").write_text("FLASK_APP=views:app\n")
    server = start_dev()  # read after the check for APP: "APP is required"
    assert server.wait_for(b"up") == (200, b"up")


def test_flask_run_target_reads_flask_runs_variables(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from uwsgiapp.devenv import flask_run_target

    monkeypatch.chdir(tmp_path)
    for name in ("FLASK_APP", "FLASK_RUN_HOST", "FLASK_RUN_PORT"):
        monkeypatch.delenv(name, raising=False)
    assert flask_run_target(None, None, None) == ("", "127.0.0.1", 5000)
    assert flask_run_target("a:app", None, 0) == ("a:app", "127.0.0.1", 0)  # --port 0 stays
    monkeypatch.setenv("FLASK_RUN_HOST", "0.0.0.0")
    monkeypatch.setenv("FLASK_RUN_PORT", "8001")
    assert flask_run_target("a:app", None, None) == ("a:app", "0.0.0.0", 8001)
    assert flask_run_target("a:app", "::1", 9) == ("a:app", "::1", 9)  # the options win
    monkeypatch.setenv("FLASK_RUN_PORT", "http")
    with pytest.raises(ValueError, match="FLASK_RUN_PORT: expected a port number, got 'http'"):
        flask_run_target("a:app", None, None)


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["dev", "a:app", "--debug"], b"--debug: 'uwsgiapp dev' runs in debug mode, with the"),
        (["dev", "a:app", "-p", "8000"], b"-p: use --port PORT"),
        (["dev"], b"the following arguments are required: APP (or FLASK_APP)"),
    ],
)
def test_dev_tells_flask_run_users_its_spellings(args: list[str], said: bytes) -> None:
    done = run_cli(*args, env={"FLASK_APP": ""})
    assert done.returncode == 2 and said in done.stderr, done.stderr


def test_enable_debug_only_touches_flask_style_apps() -> None:
    web = pytest.importorskip("uwsgiapp.web")
    ours = web.App("x")
    assert enable_debug(ours) and ours.debug and ours.config["DEBUG"] is True
    ours = web.App("x")
    ours.config["PROPAGATE_EXCEPTIONS"] = False
    assert "PROPAGATE_EXCEPTIONS = False" in enable_debug(ours)

    def plain(environ: object, start_response: object) -> list[bytes]:
        return []

    assert enable_debug(plain) == ""

    class Lookalike:  # a config but no debug property: not touched
        config: dict[str, object] = {"PROPAGATE_EXCEPTIONS": None}

    assert enable_debug(Lookalike()) == ""


def test_dev_broken_app_shows_error_then_recovers(tmp_path: Path, start_dev: StartDev) -> None:
    (tmp_path / "pkgapp.py").write_text("raise RuntimeError('not yet')\n")
    server = start_dev("pkgapp", "--no-debugger")
    status, body = server.wait_for(b"not yet")
    assert status == 500 and b"RuntimeError" in body
    _bump(tmp_path / "pkgapp.py", APP.format(text="fixed").replace("def app", "def application"))
    assert server.wait_for(b"fixed")[0] == 200


def test_dev_on_every_interface_keeps_the_import_error_in_the_terminal(
    tmp_path: Path, start_dev: StartDev
) -> None:
    # --no-debugger is what lets dev bind 0.0.0.0: any client that reached it read the import
    # traceback, source lines and a connection string's password (Flask shows a plain 500).
    (tmp_path / "pkgapp.py").write_text("DB = 'pg://admin:S3cret@db'\nraise RuntimeError(DB)\n")
    server = start_dev("pkgapp", "--no-debugger", "--host", "0.0.0.0")
    status, body = server.wait_for(b"could not be loaded")
    assert status == 500 and b"S3cret" not in body and b"pkgapp" not in body, body
    assert b"S3cret" in server.stop()  # the terminal has it


def test_dev_no_reload_import_error_exits(tmp_path: Path) -> None:
    r = run_cli(
        "dev", "missing_mod_xyz:app", "--no-reload", "--port", "0", cwd=tmp_path, timeout=DEADLINE
    )
    assert r.returncode == ServeExit.APP_LOAD == 4  # as serve, and as the help says
    assert b"No module named 'missing_mod_xyz'" in r.stderr
    assert b"Traceback (most recent call last)" not in r.stderr.split(b"\n")[0]


@pytest.mark.parametrize(
    ("spec", "more", "said"),
    [
        ("missing_mod_xyz:app", [], b"No module named 'missing_mod_xyz' in "),
        ("nofile.py:app", [], b"No module named 'nofile.py': file not found"),
        ("pkgapp:app", ["--chdir", "nowhere"], b"cannot change directory to"),
    ],
)
def test_dev_with_the_reloader_exits_where_no_save_could_load_the_app(
    tmp_path: Path, spec: str, more: list[str], said: bytes
) -> None:
    # It served an error page saying "fix it and save, the server reloads", but werkzeug's
    # reloader watches no file created later: only a restart helped (flask run exits there).
    (tmp_path / "pkgapp.py").write_text(APP.format(text="x"))
    r = run_cli("dev", spec, "--port", "0", *more, cwd=tmp_path, timeout=DEADLINE)
    assert r.returncode == ServeExit.APP_LOAD, r.stderr
    assert said in r.stderr, r.stderr


def test_a_module_only_a_finder_of_sys_meta_path_knows_is_found(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # After review: an editable install (PEP 660) is found by a finder of sys.meta_path, not
    # on sys.path: the check refused the app that --no-reload served.
    import importlib.machinery

    class Editable:
        @staticmethod
        def find_spec(name: str, path: object = None, target: object = None) -> object:
            if name != "edpkg_xyz":
                return None
            return importlib.machinery.ModuleSpec(name, None, origin=str(tmp_path / "x.py"))

    monkeypatch.setattr(sys, "meta_path", [*sys.meta_path, Editable()])
    check_app_found("edpkg_xyz:app", str(tmp_path), [])
    check_app_found("edpkg_xyz.wsgi:app", str(tmp_path), [])
    with pytest.raises(AppImportError, match="No module named 'nothere_xyz' in "):
        check_app_found("nothere_xyz:app", str(tmp_path), [])
    assert str(tmp_path) not in sys.path  # put back as it was


POSTFORK_APP = """\
import os
from uwsgiapp import postfork

ready = []

@postfork
def connect():
    if os.environ.get("DB") == "down":
        raise ConnectionError("db down")
    ready.append(os.getpid())

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [f"ready in {ready}".encode()]
"""


def test_dev_runs_the_postfork_functions_once_before_serving(
    tmp_path: Path, start_dev: StartDev
) -> None:
    (tmp_path / "pf.py").write_text(POSTFORK_APP)
    server = start_dev("pf:app", "--no-debugger")
    status, body = server.wait_for(b"ready in [")
    assert status == 200 and body.count(b",") == 0 and body != b"ready in []", body
    env = {**os.environ, "DB": "down"}
    r = run_cli(
        "dev", "pf:app", "--no-reload", "--port", "0", cwd=tmp_path, timeout=DEADLINE, env=env
    )
    assert r.returncode == ServeExit.APP_LOAD
    assert b"postfork function pf.connect raised ConnectionError('db down')" in r.stderr
    assert b"raise ConnectionError" in r.stderr  # the traceback, to find the line


@pytest.mark.parametrize(
    "args",
    [
        ["app:app", "--host", "0.0.0.0"],
        ["app:app", "--host", "::"],
        ["app:app", "--host", "192.0.2.1"],
    ],
)
def test_dev_refuses_remote_debugger(tmp_path: Path, args: list[str]) -> None:
    r = run_cli("dev", *args, cwd=tmp_path, timeout=DEADLINE)
    assert r.returncode == 2
    assert b"refusing to serve the interactive debugger" in r.stderr
    assert b"--allow-remote-debugger" in r.stderr


def test_check_options() -> None:
    check_options(DevOptions(app="a:b", host="0.0.0.0", debugger=False))
    check_options(DevOptions(app="a:b", host="0.0.0.0", allow_remote_debugger=True))
    check_options(DevOptions(app="a:b", host="localhost"))
    check_options(DevOptions(app="a:b", host="::1"))
    with pytest.raises(DevServerError):
        check_options(DevOptions(app="a:b", host="10.1.2.3"))
    with pytest.raises(DevServerError, match="--port"):
        check_options(DevOptions(app="a:b", port=70000))
    # A name that does not resolve was refused the debugger ("anyone who can reach it"), or,
    # with --no-debugger, "cannot serve on" it with a hint to pick another port.
    for debugger in (True, False):
        with pytest.raises(DevServerError, match=r"--host nosuchhost\.invalid: cannot resolve"):
            check_options(DevOptions(app="a:b", host="nosuchhost.invalid", debugger=debugger))
    # Said as what they are (review): "cannot resolve", and a bind's "Name or service not known".
    with pytest.raises(DevServerError, match=r"port apart: --host 127\.0\.0\.1 --port 5000"):
        check_options(DevOptions(app="a:b", host="127.0.0.1:5000"))
    with pytest.raises(DevServerError, match="without brackets: --host ::1"):
        check_options(DevOptions(app="a:b", host="[::1]"))


@pytest.mark.parametrize(
    ("host", "expected"),
    [("127.0.0.1", True), ("127.3.4.5", True), ("::1", True), ("[::1]", True),
     ("localhost", True), ("0.0.0.0", False), ("::", False), ("8.8.8.8", False)],
)  # fmt: skip
def test_is_loopback(host: str, expected: bool) -> None:
    assert is_loopback(host) is expected


@pytest.mark.parametrize("reload", [True, False], ids=["reload", "no-reload"])
def test_dev_port_in_use_exits_3_with_a_clear_message(tmp_path: Path, reload: bool) -> None:
    # werkzeug says so too, but exits 1 ("internal error"); the table says 3 (cannot start).
    (tmp_path / "imported.py").write_text(
        "import sys\nprint('APP IMPORTED', file=sys.stderr)\n" + APP.format(text="x")
    )
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = str(taken.getsockname()[1])
        args = ["imported:app", "--port", port, *([] if reload else ["--no-reload"])]
        args += ["--extra-files", "imported.py", "--extra-files", "settings.tmol"]
        r = run_cli("dev", *args, cwd=tmp_path, timeout=DEADLINE)
    assert r.returncode == ServeExit.START_FAILED == 3, r.stderr
    # A watched file that is not there was silent (a typo watched nothing); said once.
    (said,) = [line for line in r.stderr.splitlines() if b"warning: --extra-files" in line]
    assert said.endswith(b"warning: --extra-files settings.tmol: no such file"), said
    assert f"cannot serve on 127.0.0.1:{port}: Address already in use".encode() in r.stderr
    assert b"pick another --port" in r.stderr
    assert b"APP IMPORTED" not in r.stderr  # refused before the app is imported
    help_text = b" ".join(run_cli("dev", "--help").stdout.split())
    assert (
        b"exit status: 0 " in help_text
        and b" 3 the address cannot be bound" in help_text
        and b"--print-config" not in help_text  # serve's, not dev's
    )


@pytest.mark.parametrize("spec", ["pkg:create_app(", ":app", "pkg:"])
def test_dev_malformed_app_spec_is_a_usage_error_as_in_serve(tmp_path: Path, spec: str) -> None:
    r = run_cli("dev", spec, "--port", "0", cwd=tmp_path, timeout=DEADLINE)
    assert r.returncode == ServeExit.USAGE == 2, r.stderr
    assert b"invalid app spec" in r.stderr
    serve = run_cli("serve", spec, "--socket", str(tmp_path / "s.sock"), cwd=tmp_path)
    assert serve.returncode == r.returncode


def test_the_reload_interval_takes_a_fraction_and_refuses_zero() -> None:
    # werkzeug's is a float: 0.5 was refused ("invalid int value"), and 0 silently became 1.
    args = build_parser().parse_args(["dev", "a:app", "--reload-interval", "0.5"])
    assert args.reload_interval == 0.5
    check_options(DevOptions(app="a:b", reload_interval=0.5))
    with pytest.raises(
        DevServerError, match="--reload-interval must be over 0 and under 3600 s, got 0"
    ):
        check_options(DevOptions(app="a:b", reload_interval=0))


def _serving_child(server: DevServer) -> int:
    """The pid of the process that serves (the reloader's child of the watching one)."""
    pid = server.proc.pid
    end = time.monotonic() + DEADLINE
    while not (children := Path(f"/proc/{pid}/task/{pid}/children").read_text().split()):
        assert time.monotonic() < end, "no serving process"
        time.sleep(0.05)  # polling its start, never the thing measured
    assert len(children) == 1, children
    return int(children[0])


def test_dev_says_its_serving_process_was_killed(tmp_path: Path, start_dev: StartDev) -> None:
    """It ended with status 247 (256 - 9) and no word."""
    (tmp_path / "site.py").write_text(APP.format(text="up"))
    server = start_dev("site.py:app")
    assert server.wait_for(b"up") == (200, b"up")
    os.kill(_serving_child(server), signal.SIGKILL)
    assert server.proc.wait(DEADLINE) == 128 + signal.SIGKILL
    assert b"uwsgiapp dev: the serving process was killed by SIGKILL" in server.stop()


@pytest.mark.parametrize("when", ["serving", "importing"])
def test_dev_serving_process_ends_with_the_watching_one(
    tmp_path: Path, start_dev: StartDev, when: str
) -> None:
    """A HUP (serve's reload) to the watching process ended it alone: the serving one went
    on with its port, and a new dev could not bind it; also while it imported the app."""
    slow = "import time\ntime.sleep(3)\n" if when == "importing" else ""
    (tmp_path / "site.py").write_text(slow + APP.format(text="up"))
    server = start_dev("site.py:app")
    if when == "serving":
        assert server.wait_for(b"up") == (200, b"up")
    child = _serving_child(server)
    # SIGKILL: the parent's end without a word of its own (a HUP, which killed it, may be
    # ignored by what started the tests: nohup)
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(DEADLINE)
    end = time.monotonic() + DEADLINE
    while _alive(child) and time.monotonic() < end:
        time.sleep(0.05)  # polling its exit, never the thing measured
    assert not _alive(child)


def _alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return False
    return stat.rpartition(b")")[2].split()[0] != b"Z"


ENV_APP = """\
import os

SEEN_AT_IMPORT = os.environ.get("DATABASE_URL", "<unset>")


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    names = ("DATABASE_URL", "FROM_FLASKENV", "SET_BEFORE")
    return [" ".join(f"{n}={os.environ.get(n, '<unset>')}" for n in names).encode()
            + f" import={SEEN_AT_IMPORT}".encode()]
"""


def test_dev_reads_dotenv_files_as_flask_run_does(
    tmp_path: Path, start_dev: StartDev, monkeypatch: pytest.MonkeyPatch
) -> None:
    """They were ignored without a word (flask run reads them with python-dotenv)."""
    pytest.importorskip("dotenv")
    (tmp_path / "envapp.py").write_text(ENV_APP)
    (tmp_path / ".env").write_text("DATABASE_URL=sqlite:///dev.db\nSET_BEFORE=from-file\n")
    (tmp_path / ".flaskenv").write_text("FROM_FLASKENV=yes\nDATABASE_URL=not-this-one\n")
    monkeypatch.setenv("SET_BEFORE", "from-shell")  # set already: kept
    server = start_dev("envapp:app")
    want = (
        b"DATABASE_URL=sqlite:///dev.db FROM_FLASKENV=yes SET_BEFORE=from-shell"
        b" import=sqlite:///dev.db"
    )
    assert server.wait_for(b"DATABASE_URL") == (200, want)


def test_dev_without_python_dotenv_gives_flask_runs_tip(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / ".env").write_text("A=1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setitem(sys.modules, "dotenv", None)  # not installed: its import fails
    monkeypatch.setattr(devenv, "_tip_said", False)
    read_dotenv()
    assert "tip: .env present: install python-dotenv to use them" in capsys.readouterr().err
    read_dotenv()  # once a process (the dev command reads them twice before serving)
    assert "tip" not in capsys.readouterr().err
    assert "A" not in os.environ or os.environ["A"] != "1"


@pytest.mark.parametrize(
    ("result", "said"),
    [
        (b"hello", "app returned bytes, not an iterable of bytes: return [body]"),
        ("hello", "app returned str, not an iterable of bytes: return [text.encode()]"),
        ({"a": 1}, "app returned dict, not an iterable of bytes (its items are its keys)"),
    ],
)
def test_dev_says_a_mistaken_return_as_serve_does(
    result: object, said: str, caplog: pytest.LogCaptureFixture
) -> None:
    """'return b"hello"' was said as "response body must be bytes, got int": pointing away."""
    import logging

    from werkzeug.test import create_environ

    from uwsgiapp.devcheck import as_served

    def app(environ: dict[str, object], start_response: Any) -> object:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return result

    heads: list[str] = []
    served = as_served(app, debugger=False)
    with caplog.at_level(logging.ERROR, logger="uwsgiapp.error"):
        body = b"".join(served(create_environ("/"), lambda s, h, e=None: heads.append(s)))
    assert heads == ["500 Internal Server Error"] and body
    assert any(said in r.getMessage() for r in caplog.records), caplog.text


def test_a_uwsgi_packet_sent_to_dev_is_told_what_to_use() -> None:
    """nginx's uwsgi_pass pointed at dev: werkzeug's 400 line showed the packet, nothing more."""
    import logging

    from uwsgiapp.devlogs import _UwsgiSentHere

    packet = "Bad request version ('\\x00HTTP_ACCEPT\\x03\\x00*/*')"
    record = logging.makeLogRecord({"msg": "code %d, message %s", "args": (400, packet)})
    assert _UwsgiSentHere().filter(record)
    assert record.getMessage().endswith(
        "(the uwsgi protocol, nginx's uwsgi_pass, sent to uwsgiapp dev, which speaks HTTP: "
        "proxy_pass http://HOST:PORT to dev, or uwsgi_pass to uwsgiapp serve)"
    )
    other = logging.makeLogRecord({"msg": "code %d, message %s", "args": (400, "Bad syntax")})
    _UwsgiSentHere().filter(other)
    assert other.getMessage() == "code 400, message Bad syntax"


def test_dev_sends_the_head_serve_sends() -> None:
    """dev forwarded the app's live header list: a header added after start_response went
    out, and a 204's Content-Length (serve sends neither)."""
    from werkzeug.test import create_environ

    from uwsgiapp.devcheck import as_served

    def app(environ: dict[str, object], start_response: Any) -> list[bytes]:
        headers = [("X-A", "1"), ("Content-Length", "5")]
        start_response("204 No Content", headers)
        headers.append(("X-Late", "1"))
        return [b"12345"]

    got: list[tuple[str, list[tuple[str, str]]]] = []
    served = as_served(app, debugger=False)
    body = b"".join(served(create_environ("/"), lambda s, h, e=None: got.append((s, h))))
    assert got == [("204 No Content", [("X-A", "1")])] and body == b""
