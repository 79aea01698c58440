"""Return values of views and the response helpers."""

from __future__ import annotations

import io
import typing as t
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import flask
import pytest
from werkzeug.datastructures import Headers
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Response as WerkzeugResponse

import uwsgiapp.web as web
from uwsgiapp.web import (
    App,
    Response,
    abort,
    jsonify,
    make_response,
    redirect,
    send_file,
    url_for,
)

Check = tuple[int, str | None, bytes]

VIEWS: dict[str, tuple[t.Callable[[], t.Any], Check]] = {
    "str": (lambda: "héllo", (200, "text/html; charset=utf-8", "héllo".encode())),
    "bytes": (lambda: b"\x00raw", (200, "text/html; charset=utf-8", b"\x00raw")),
    "dict": (lambda: {"b": 1, "a": [1, 2]}, (200, "application/json", b'{"a":[1,2],"b":1}\n')),
    "list": (lambda: [1, "x", None], (200, "application/json", b'[1,"x",null]\n')),
    "response": (
        lambda: Response("made", status=201, mimetype="text/plain"),
        (201, "text/plain; charset=utf-8", b"made"),
    ),
    "werkzeug-response": (
        lambda: WerkzeugResponse("wz", status=202),
        (202, "text/plain; charset=utf-8", b"wz"),
    ),
    "generator": (
        lambda: (part for part in ["a", "b", "c"]),
        (200, "text/html; charset=utf-8", b"abc"),
    ),
    "body-status": (lambda: ("created", 201), (201, "text/html; charset=utf-8", b"created")),
    "body-status-str": (lambda: ("teapot", "418 I'm a teapot"), (418, None, b"teapot")),
    "body-headers": (
        lambda: ("h", {"X-A": "1", "Content-Type": "text/plain"}),
        (200, "text/plain", b"h"),
    ),
    "body-headers-list": (lambda: ("h", [("X-A", "1")]), (200, None, b"h")),
    "body-status-headers": (
        lambda: ({"ok": True}, 202, Headers({"X-A": "1"})),
        (202, "application/json", b'{"ok":true}\n'),
    ),
    "response-status-override": (
        lambda: (Response("r"), 203, {"X-A": "1"}),
        (203, "text/html; charset=utf-8", b"r"),
    ),
    "jsonify-kwargs": (
        lambda: jsonify(name="x", n=1),
        (200, "application/json", b'{"n":1,"name":"x"}\n'),
    ),
    "jsonify-args": (lambda: jsonify(1, 2), (200, "application/json", b"[1,2]\n")),
    "jsonify-one": (lambda: jsonify([3]), (200, "application/json", b"[3]\n")),
    "jsonify-nothing": (lambda: jsonify(), (200, "application/json", b"null\n")),  # as Flask's
    "make-response": (
        lambda: make_response("m", 404),
        (404, "text/html; charset=utf-8", b"m"),
    ),
    "wsgi-app": (
        lambda: WerkzeugResponse("from a wsgi app", status=206),
        (206, "text/plain; charset=utf-8", b"from a wsgi app"),
    ),
}


@pytest.fixture
def app() -> App:
    app = App(__name__)
    for name, (view, _) in VIEWS.items():
        app.add_url_rule(f"/{name}", name, view)
    return app


@pytest.mark.parametrize("name", VIEWS)
def test_view_return_values(app: App, name: str) -> None:
    status, content_type, body = VIEWS[name][1]
    response = app.test_client().get(f"/{name}")
    assert response.status_code == status
    if content_type is not None:
        assert response.headers["Content-Type"] == content_type
    assert response.data == body
    if name.startswith(("body-headers", "body-status-headers", "response-status")):
        assert response.headers["X-A"] == "1"


def test_generator_response_is_streamed_not_buffered() -> None:
    app = App(__name__)
    produced: list[str] = []

    def generate() -> Iterator[str]:
        for part in ("one", "two"):
            produced.append(part)
            yield part

    app.add_url_rule("/", "stream", lambda: generate())
    heads: list[t.Any] = []
    environ = EnvironBuilder(path="/").get_environ()
    body = app(environ, lambda status, headers, exc_info=None: heads.append(headers))  # type: ignore[arg-type,func-returns-value]
    assert produced == []  # the app returned before the generator ran
    assert "Content-Length" not in dict(heads[0])
    iterator = iter(body)
    assert next(iterator) == b"one"
    assert produced == ["one"]
    assert list(iterator) == [b"two"]


def test_returning_none_is_a_clear_error() -> None:
    app = App(__name__)
    app.testing = True
    app.add_url_rule("/", "nothing", lambda: None)
    with pytest.raises(TypeError, match="returned None"):
        app.test_client().get("/")


def test_returning_an_unknown_type_is_a_clear_error() -> None:
    app = App(__name__)
    app.testing = True
    app.add_url_rule("/", "number", lambda: 42)
    with pytest.raises(TypeError, match="int"):
        app.test_client().get("/")


def test_bad_tuple_size_is_a_clear_error() -> None:
    app = App(__name__)
    app.testing = True
    app.add_url_rule("/", "t", lambda: ("a", 200, {}, "extra"))
    with pytest.raises(TypeError, match="tuple"):
        app.test_client().get("/")


def test_abort_renders_the_http_error() -> None:
    app = App(__name__)

    @app.route("/")
    def index() -> str:
        abort(403)

    @app.route("/custom")
    def custom() -> str:
        abort(Response("nope", status=418))

    client = app.test_client()
    response = client.get("/")
    assert response.status_code == 403
    assert b"Forbidden" in response.data
    assert response.headers["Content-Type"] == "text/html; charset=utf-8"
    assert client.get("/custom").data == b"nope"
    assert client.get("/custom").status_code == 418


def test_redirect_and_url_for() -> None:
    app = App(__name__)

    @app.route("/old")
    def old() -> Response:
        return redirect(url_for("new", page=2))

    @app.route("/moved")
    def moved() -> Response:
        return redirect("/new", code=301)

    @app.route("/new")
    def new() -> str:
        return "new"

    client = app.test_client()
    response = client.get("/old")
    assert response.status_code == 302
    assert response.headers["Location"] == "/new?page=2"
    assert isinstance(response.data, bytes) and b"/new?page=2" in response.data
    assert client.get("/moved").status_code == 301
    assert client.get("/old", follow_redirects=True).data == b"new"


def test_after_request_can_change_a_fast_path_response() -> None:
    # Responses built on the cheap path must stay ordinary werkzeug responses.
    app = App(__name__)
    app.add_url_rule("/", "index", lambda: "short")

    @app.after_request
    def change(response: Response) -> Response:
        response.set_data("a longer body")
        response.headers["Location"] = "/é"
        response.status_code = 201
        return response

    response = app.test_client().get("/")
    assert response.status_code == 201
    assert response.data == b"a longer body"
    assert response.headers["Content-Length"] == "13"
    assert response.headers["Location"] == "/%C3%A9"  # werkzeug's IRI -> URI rewrite still ran


@pytest.mark.parametrize("status", [204, 304])
def test_bodiless_statuses_drop_the_body(status: int) -> None:
    app = App(__name__)
    app.add_url_rule("/", "index", lambda: ("ignored", status))
    response = app.test_client().get("/")
    assert response.status_code == status
    assert response.data == b""
    assert "Content-Length" not in response.headers


def test_fast_response_matches_werkzeug_defaults() -> None:
    fast = Response("hé")
    slow = Response("hé", status=200)
    assert fast.status == slow.status == "200 OK"
    assert list(fast.headers) == list(slow.headers)
    assert fast.get_data() == slow.get_data() == "hé".encode()
    assert Response(b"x").headers["Content-Length"] == "1"


class _FileWrapper:
    """A server-provided wsgi.file_wrapper that records what it was given."""

    used: t.ClassVar[list[t.Any]] = []

    def __init__(self, filelike: t.IO[bytes], block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size
        _FileWrapper.used.append(filelike)

    def __iter__(self) -> Iterator[bytes]:
        while chunk := self.filelike.read(self.block_size):
            yield chunk

    def close(self) -> None:
        self.filelike.close()


def test_send_file_uses_the_servers_file_wrapper(tmp_path: Path) -> None:
    (tmp_path / "data.txt").write_bytes(b"file contents")
    app = App(__name__, root_path=str(tmp_path))

    @app.route("/file")
    def file() -> Response:
        return send_file("data.txt")

    environ = EnvironBuilder(path="/file").get_environ()
    environ["wsgi.file_wrapper"] = _FileWrapper
    _FileWrapper.used.clear()
    captured: list[t.Any] = []
    body = app(environ, lambda status, headers, exc_info=None: captured.append((status, headers)))  # type: ignore[arg-type,func-returns-value]
    assert isinstance(body, _FileWrapper)
    assert b"".join(body) == b"file contents"
    body.close()
    status, headers = captured[0]
    assert status == "200 OK"
    assert dict(headers)["Content-Type"] == "text/plain; charset=utf-8"
    assert dict(headers)["Content-Length"] == "13"
    assert len(_FileWrapper.used) == 1


def test_send_file_object_conditional_and_range(tmp_path: Path) -> None:
    (tmp_path / "data.bin").write_bytes(b"0123456789")
    app = App(__name__, root_path=str(tmp_path))

    @app.route("/path")
    def by_path() -> Response:
        return send_file("data.bin", as_attachment=True, download_name="d.bin")

    @app.route("/object")
    def by_object() -> Response:
        return send_file(io.BytesIO(b"in memory"), mimetype="text/plain")

    client = app.test_client()
    first = client.get("/path")
    assert first.data == b"0123456789"
    assert first.headers["Content-Disposition"] == "attachment; filename=d.bin"
    etag = first.headers["ETag"]
    assert client.get("/path", headers={"If-None-Match": etag}).status_code == 304
    ranged = client.get("/path", headers={"Range": "bytes=2-4"})
    assert ranged.status_code == 206 and ranged.data == b"234"
    assert client.get("/object").data == b"in memory"


def test_static_folder_is_served(tmp_path: Path) -> None:
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "style.css").write_text("body{}")
    app = App(__name__, root_path=str(tmp_path))
    client = app.test_client()
    response = client.get("/static/style.css")
    assert response.data == b"body{}"
    assert response.headers["Content-Type"].startswith("text/css")
    assert client.get("/static/../secret").status_code == 404
    with app.test_request_context():
        assert url_for("static", filename="style.css") == "/static/style.css"


def test_static_url_builds_without_a_static_folder(tmp_path: Path) -> None:
    # nginx serves /static/ from elsewhere, or a build step creates the folder after import.
    app = App(__name__, root_path=str(tmp_path))
    custom = App(__name__, root_path=str(tmp_path), static_folder="assets", static_url_path="/s")
    none = App(__name__, root_path=str(tmp_path), static_folder=None)
    with app.test_request_context():
        assert url_for("static", filename="app.css") == "/static/app.css"
    with custom.test_request_context():
        assert url_for("static", filename="app.css") == "/s/app.css"
    assert "static" not in none.view_functions
    client = app.test_client()
    assert client.get("/static/app.css").status_code == 404
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "app.css").write_text("late")
    assert client.get("/static/app.css").data == b"late"


def test_json_is_indented_in_debug_mode() -> None:
    app = App(__name__)
    app.debug = True
    app.add_url_rule("/", "index", lambda: {"a": 1})
    assert app.test_client().get("/").data == b'{\n  "a": 1\n}\n'


def test_invalid_json_body_hides_parser_details_unless_debugging() -> None:
    app = App(__name__)

    @app.post("/")
    def echo() -> t.Any:
        from uwsgiapp.web import request

        return request.get_json()

    client = app.test_client()
    kwargs: dict[str, t.Any] = {"data": "{not json", "content_type": "application/json"}
    assert client.post("/", json={"a": 1}).json == {"a": 1}
    quiet = client.post("/", **kwargs)
    assert quiet.status_code == 400 and b"Failed to decode" not in quiet.data
    app.debug = True
    assert b"Failed to decode JSON" in client.post("/", **kwargs).data


def test_response_subclass_defaults_are_respected_by_the_fast_path() -> None:
    class Plain(Response):
        default_mimetype = "text/plain"

    class Untyped(Response):
        default_mimetype = None

    class Accepted(Response):
        default_status = 202

    assert Plain("x").headers["Content-Type"] == "text/plain; charset=utf-8"
    assert "Content-Type" not in Untyped("x").headers
    assert Accepted("x").status == "202 ACCEPTED"


def test_fast_path_still_rejects_header_injection_in_mimetype() -> None:
    assert Response("x", mimetype="application/json").headers["Content-Type"] == (
        "application/json"
    )
    with pytest.raises(ValueError, match="newline"):
        Response("x", mimetype="text/plain\r\nSet-Cookie: evil=1")


@pytest.mark.parametrize("framework", ["flask", "uwsgiapp.web"])
@pytest.mark.parametrize(
    ("config", "cache_control"),
    [
        ({}, "no-cache"),
        ({"SEND_FILE_MAX_AGE_DEFAULT": 3600}, "public, max-age=3600"),
        ({"SEND_FILE_MAX_AGE_DEFAULT": timedelta(hours=12)}, "public, max-age=43200"),
    ],
    ids=["default", "seconds", "timedelta"],
)
def test_send_file_max_age_default_is_honoured_as_in_flask(
    tmp_path: Path, framework: str, config: dict[str, t.Any], cache_control: str
) -> None:
    # SEND_FILE_MAX_AGE_DEFAULT was ignored: every file went out no-cache, whatever the config.
    fw: t.Any = flask if framework == "flask" else web
    (tmp_path / "static").mkdir()
    (tmp_path / "static" / "app.css").write_text("body {}")
    app = (flask.Flask if fw is flask else fw.App)(__name__, root_path=str(tmp_path))
    app.config.update(config)

    @app.route("/file")
    def file() -> t.Any:
        return fw.send_file("static/app.css")

    @app.route("/dir")
    def from_dir() -> t.Any:
        return fw.send_from_directory("static", "app.css")

    @app.route("/own")
    def own() -> t.Any:
        return fw.send_file("static/app.css", max_age=60)

    client = app.test_client()
    for path in ("/file", "/dir", "/static/app.css"):
        assert client.get(path).headers["Cache-Control"] == cache_control, path
    assert client.get("/own").headers["Cache-Control"] == "public, max-age=60"


def test_get_send_file_max_age_may_be_overridden_per_file(tmp_path: Path) -> None:
    (tmp_path / "static").mkdir()
    for name in ("app.css", "index.html"):
        (tmp_path / "static" / name).write_text("x")

    class CachedAssets(App):
        def get_send_file_max_age(self, filename: str | None) -> int | None:
            return 86400 if filename and filename.endswith(".css") else None

    client = CachedAssets(__name__, root_path=str(tmp_path)).test_client()
    assert client.get("/static/app.css").headers["Cache-Control"] == "public, max-age=86400"
    assert client.get("/static/index.html").headers["Cache-Control"] == "no-cache"
