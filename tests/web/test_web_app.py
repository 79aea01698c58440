"""App-level odds and ends: run(), logger, packaging boundaries."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import typing as t
from pathlib import Path

import pytest

from uwsgiapp.web import App, devrun


def test_run_delegates_to_werkzeug_run_simple(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no .env here
    calls: list[tuple[t.Any, ...]] = []
    monkeypatch.setattr(devrun, "run_simple", lambda *args, **kwargs: calls.append((args, kwargs)))
    app = App(__name__)
    app.run()
    (args, kwargs), *_ = calls
    assert args == ("127.0.0.1", 5000, app)
    assert kwargs == {"use_reloader": False, "use_debugger": False, "threaded": True}
    calls.clear()
    app.run(host="0.0.0.0", port=8000, debug=True, threaded=False)
    (args, kwargs), *_ = calls
    assert args == ("0.0.0.0", 8000, app)
    assert kwargs == {"use_reloader": True, "use_debugger": True, "threaded": False}
    assert app.debug is True
    # As Flask's: load_dotenv is its own (it went to run_simple: TypeError), and the host and
    # port default to SERVER_NAME's.
    calls.clear()
    app.config["SERVER_NAME"] = "app.test:8123"
    app.run(load_dotenv=False)
    (args, kwargs), *_ = calls
    assert args == ("app.test", 8123, app) and "load_dotenv" not in kwargs
    calls.clear()
    app.run(port=0, load_dotenv=False)  # any free port, as Flask's (0 became 5000)
    app.run(port="8001", load_dotenv=False)  # type: ignore[arg-type]  # Flask takes it
    assert [args[:2] for args, _ in calls] == [("app.test", 0), ("app.test", 8001)]
    # .flaskenv's FLASK_DEBUG counts, as in Flask's run (the reloader stayed off).
    calls.clear()
    app.debug = False
    (tmp_path / ".flaskenv").write_text("FLASK_DEBUG=1\n")
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    pytest.importorskip("dotenv")
    app.run()
    ((_, kwargs),) = calls
    assert kwargs["use_reloader"] is True and app.debug is True
    os.environ.pop("FLASK_DEBUG")  # what load_dotenv set (not monkeypatch's: it would restore it)


def test_logger_is_named_after_the_app(caplog: pytest.LogCaptureFixture) -> None:
    app = App("some.module")
    assert app.logger is app.logger
    assert app.logger.name == "some.module"
    with caplog.at_level(logging.INFO, logger="some.module"):
        app.logger.info("hello from the app")
    assert "hello from the app" in caplog.text


def test_web_imports_only_werkzeug_and_stdlib() -> None:
    code = (
        "import sys, uwsgiapp.web\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'uwsgiproto', 'construct', "
        "'flask'} or (m.startswith('uwsgiapp.') and not m.startswith('uwsgiapp.web')"
        # the package's own __init__ imports it (uwsgiapp.postfork); it is stdlib-only
        " and m not in ('uwsgiapp.hooks', 'uwsgiapp.harakiri')))\n"
        "print(','.join(bad))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=30
    )
    assert result.stdout.strip() == ""


def test_test_client_keeps_cookies() -> None:
    app = App(__name__)

    @app.route("/set")
    def set_cookie() -> t.Any:
        from uwsgiapp.web import make_response

        response = make_response("set")
        response.set_cookie("name", "value")
        return response

    @app.route("/get")
    def get_cookie() -> str:
        from uwsgiapp.web import request

        return request.cookies.get("name", "none")

    client = app.test_client()
    client.get("/set")
    assert client.get("/get").data == b"value"
    assert app.test_client(use_cookies=False).get("/get").data == b"none"


def test_wsgi_app_can_be_wrapped_by_middleware() -> None:
    app = App(__name__)
    app.add_url_rule("/", "index", lambda: "inner")
    inner = app.wsgi_app

    def middleware(environ: t.Any, start_response: t.Any) -> t.Any:
        environ["PATH_INFO"] = "/"
        return inner(environ, start_response)

    app.wsgi_app = middleware  # type: ignore[method-assign]
    assert app.test_client().get("/anything").data == b"inner"


def test_max_content_length_is_applied_to_the_request() -> None:
    app = App(__name__)
    app.config["MAX_CONTENT_LENGTH"] = 10

    @app.post("/")
    def upload() -> str:
        from uwsgiapp.web import request

        return str(len(request.get_data()))

    client = app.test_client()
    assert client.post("/", data=b"x" * 5).data == b"5"
    assert client.post("/", data=b"x" * 50).status_code == 413


def test_request_object_is_only_built_when_used() -> None:
    from uwsgiapp.web import Request, request

    built: list[str] = []

    class CountingRequest(Request):
        def __init__(self, environ: t.Any, *args: t.Any, **kwargs: t.Any) -> None:
            built.append(environ["PATH_INFO"])
            super().__init__(environ, *args, **kwargs)

    app = App(__name__)
    app.request_class = CountingRequest
    app.add_url_rule("/lazy", "lazy", lambda: "no request needed")
    app.add_url_rule("/eager", "eager", lambda: request.path)
    client = app.test_client()
    assert client.get("/lazy").data == b"no request needed"
    assert built == []
    assert client.get("/eager").data == b"/eager"
    assert built == ["/eager"]


def test_url_adapter_cache_is_bounded_against_spoofed_hosts() -> None:
    app = App(__name__)
    app.add_url_rule("/", "index", lambda: "ok")
    client = app.test_client()
    for n in range(300):
        assert client.get("/", headers={"Host": f"h{n}.example"}).status_code == 200
    assert 0 < len(app._adapters) <= 128


def test_endpoint_decorator_gives_a_rule_added_without_a_view_its_view() -> None:
    app = App(__name__)
    app.add_url_rule("/", endpoint="index")
    app.add_url_rule("/item/<int:n>", endpoint="item")

    @app.endpoint("index")
    def index() -> str:
        return "index"

    @app.endpoint("item")
    def show(n: int) -> str:
        return f"item {n}"

    assert show(1) == "item 1"  # the function itself is returned
    with pytest.raises(ValueError, match="'index' is already mapped to"):
        app.endpoint("index")(lambda: "other")
    client = app.test_client()
    assert client.get("/").data == b"index"
    assert client.get("/item/4").data == b"item 4"
    with pytest.raises(RuntimeError, match="after the app handled its first request"):
        app.endpoint("late")(lambda: "late")


def test_app_extensions_is_a_dict_as_in_flask() -> None:
    # Extensions-style code (`app.extensions["notes"] = store` in create_app()) crashed with
    # an AttributeError at start (the web trial).
    app = App(__name__)
    app.extensions["notes"] = {"ready": True}
    assert app.extensions == {"notes": {"ready": True}}
    assert App(__name__).extensions == {}  # one per app
