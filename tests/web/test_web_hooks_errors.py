"""Request hooks and error handling."""

from __future__ import annotations

import logging
import typing as t

import flask
import pytest
from werkzeug.exceptions import Forbidden, HTTPException, InternalServerError, NotFound

import uwsgiapp.web
from uwsgiapp.web import App, Response, abort, g, request


def test_hook_order_and_teardown() -> None:
    app = App(__name__)
    events: list[str] = []

    @app.before_request
    def before_1() -> None:
        events.append("before 1")

    @app.before_request
    def before_2() -> None:
        events.append("before 2")

    @app.after_request
    def after_1(response: Response) -> Response:
        events.append("after 1")
        response.headers["X-After"] = "1"
        return response

    @app.after_request
    def after_2(response: Response) -> Response:
        events.append("after 2")
        return response

    @app.teardown_request
    def teardown_1(exc: BaseException | None) -> None:
        events.append(f"teardown 1 {exc!r}")

    @app.teardown_request
    def teardown_2(exc: BaseException | None) -> None:
        events.append(f"teardown 2 {exc!r}")

    @app.route("/")
    def index() -> str:
        events.append("view")
        return "ok"

    response = app.test_client().get("/")
    assert response.headers["X-After"] == "1"
    assert events == [
        "before 1",
        "before 2",
        "view",
        "after 2",
        "after 1",
        "teardown 2 None",
        "teardown 1 None",
    ]


def test_before_request_return_short_circuits_but_after_hooks_run() -> None:
    app = App(__name__)
    events: list[str] = []

    @app.before_request
    def gate() -> t.Any:
        if request.args.get("deny"):
            return "denied", 403
        return None

    @app.before_request
    def second() -> None:
        events.append("second")

    @app.after_request
    def after(response: Response) -> Response:
        events.append(f"after {response.status_code}")
        return response

    @app.route("/")
    def index() -> str:
        events.append("view")
        return "ok"

    client = app.test_client()
    denied = client.get("/?deny=1")
    assert (denied.status_code, denied.data) == (403, b"denied")
    assert events == ["after 403"]
    events.clear()
    assert client.get("/").data == b"ok"
    assert events == ["second", "view", "after 200"]


def test_errorhandler_by_code_and_by_class() -> None:
    app = App(__name__)

    @app.errorhandler(404)
    def not_found(e: NotFound) -> t.Any:
        return f"missing {request.path}", 404

    @app.errorhandler(Forbidden)
    def forbidden(e: Forbidden) -> t.Any:
        return {"error": e.code}, 403

    @app.route("/forbid")
    def forbid() -> str:
        abort(403)

    client = app.test_client()
    assert client.get("/nope").data == b"missing /nope"
    assert client.get("/nope").status_code == 404
    response = client.get("/forbid")
    assert (response.status_code, response.json) == (403, {"error": 403})


def test_code_handler_wins_over_a_generic_class_handler() -> None:
    app = App(__name__)

    @app.errorhandler(HTTPException)
    def any_http(e: HTTPException) -> t.Any:
        return f"generic {e.code}", e.code

    @app.errorhandler(404)
    def not_found(e: NotFound) -> t.Any:
        return "specific", 404

    client = app.test_client()
    assert client.get("/nope").data == b"specific"
    assert client.post("/nope").data == b"specific"
    app2 = App(__name__)
    app2.register_error_handler(HTTPException, any_http)
    app2.add_url_rule("/", "index", lambda: "x")
    assert app2.test_client().post("/").data == b"generic 405"


class AppError(Exception):
    pass


class SpecificError(AppError):
    pass


def test_exception_handlers_follow_the_mro() -> None:
    app = App(__name__)

    @app.errorhandler(AppError)
    def app_error(e: AppError) -> t.Any:
        return f"app error {type(e).__name__}", 400

    @app.errorhandler(LookupError)
    def lookup(e: LookupError) -> t.Any:
        return "lookup", 404

    @app.route("/specific")
    def specific() -> str:
        raise SpecificError

    @app.route("/key")
    def key() -> str:
        raise KeyError("x")  # KeyError -> LookupError

    client = app.test_client()
    assert client.get("/specific").data == b"app error SpecificError"
    assert client.get("/specific").status_code == 400
    assert client.get("/key").data == b"lookup"


def test_unhandled_exception_is_logged_and_becomes_500(caplog: pytest.LogCaptureFixture) -> None:
    app = App(__name__)
    torn_down: list[BaseException | None] = []

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        torn_down.append(exc)

    @app.route("/")
    def index() -> str:
        raise ValueError("boom")

    with caplog.at_level(logging.ERROR, logger=app.name):
        response = app.test_client().get("/")
    assert response.status_code == 500
    assert b"Internal Server Error" in response.data
    assert "Exception on / [GET]" in caplog.text
    assert "ValueError: boom" in caplog.text
    assert len(torn_down) == 1 and isinstance(torn_down[0], ValueError)


def test_an_exception_on_a_path_with_a_line_break_is_logged_on_one_line(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # nginx decodes %0A in PATH_INFO: the client's path must not forge a line of the log.
    app = App(__name__)

    @app.before_request
    def fails() -> None:
        raise ValueError("any path")

    with caplog.at_level(logging.ERROR, logger=app.name):
        app.test_client().get("/x%0A2026-12-05 [ERROR] forged")
    (record,) = caplog.records
    assert record.getMessage() == "Exception on /x\\x0a2026-12-05 [ERROR] forged [GET]"


def test_500_handler_gets_the_original_exception() -> None:
    app = App(__name__)
    app.logger.disabled = True

    @app.errorhandler(500)
    def server_error(e: InternalServerError) -> t.Any:
        return f"sorry: {e.original_exception!r}", 500

    @app.route("/")
    def index() -> str:
        raise ValueError("boom")

    response = app.test_client().get("/")
    assert response.status_code == 500
    assert response.data == b"sorry: ValueError('boom')"


def test_exception_in_after_request_is_a_500() -> None:
    app = App(__name__)
    app.logger.disabled = True
    app.add_url_rule("/", "index", lambda: "ok")

    @app.after_request
    def broken(response: Response) -> Response:
        raise RuntimeError("after hook broke")

    assert app.test_client().get("/").status_code == 500


@pytest.mark.parametrize("setting", ["DEBUG", "TESTING", "PROPAGATE_EXCEPTIONS"])
def test_debug_and_testing_reraise_for_the_debugger(setting: str) -> None:
    app = App(__name__)
    app.config[setting] = True

    @app.route("/")
    def index() -> str:
        raise ValueError("boom")

    with pytest.raises(ValueError, match="boom"):
        app.test_client().get("/")


def test_propagate_false_overrides_debug() -> None:
    app = App(__name__)
    app.logger.disabled = True
    app.config.update(DEBUG=True, PROPAGATE_EXCEPTIONS=False)
    app.add_url_rule("/", "index", lambda: 1 / 0)
    assert app.test_client().get("/").status_code == 500


def test_routing_redirects_are_not_passed_to_error_handlers() -> None:
    app = App(__name__)
    app.add_url_rule("/dir/", "d", lambda: "dir")

    @app.errorhandler(HTTPException)
    def swallow(e: HTTPException) -> t.Any:
        return "handled", 200

    response = app.test_client().get("/dir")
    assert response.status_code == 308


def test_errorhandler_registration_errors() -> None:
    app = App(__name__)
    with pytest.raises(ValueError, match="HTTPException"):
        app.errorhandler(299)(lambda e: "")
    with pytest.raises(TypeError, match="instance"):
        app.errorhandler(ValueError("x"))(lambda e: "")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        app.errorhandler(str)(lambda e: "")  # type: ignore[arg-type]


def test_errors_raised_in_before_request_reach_handlers() -> None:
    app = App(__name__)

    @app.before_request
    def check() -> None:
        g.checked = True
        raise AppError

    @app.errorhandler(AppError)
    def handle(e: AppError) -> t.Any:
        return "from handler", 409

    app.add_url_rule("/", "index", lambda: "view")
    response = app.test_client().get("/")
    assert (response.status_code, response.data) == (409, b"from handler")


def _trap_app(fw: t.Any, **config: t.Any) -> t.Any:
    app = fw.Flask(__name__) if fw is flask else fw.App(__name__)
    app.config.update(config)

    @app.route("/form", methods=["POST"])
    def form() -> str:
        return str(fw.request.form["usename"])  # the typo the debugger should show

    @app.route("/abort/<int:code>")
    def aborts(code: int) -> str:
        fw.abort(code)

    @app.errorhandler(403)
    def forbidden(e: HTTPException) -> tuple[str, int]:
        return "handled 403", 403

    return app


@pytest.mark.parametrize("fw", [flask, uwsgiapp.web], ids=["flask", "uwsgiapp.web"])
def test_debug_mode_raises_a_missing_form_key_for_the_debugger(fw: t.Any) -> None:
    client = _trap_app(fw, DEBUG=True).test_client()
    with pytest.raises(KeyError, match="usename"):
        client.post("/form", data={"username": "ann"})
    assert client.get("/abort/400").status_code == 400  # only the missing key is raised
    client = _trap_app(fw, DEBUG=True, TRAP_BAD_REQUEST_ERRORS=False).test_client()
    response = client.post("/form", data={"username": "ann"})
    assert response.status_code == 400
    assert b"usename" in response.data  # not raised, but named in debug mode
    response = _trap_app(fw).test_client().post("/form", data={"username": "ann"})
    assert response.status_code == 400
    assert b"usename" not in response.data


@pytest.mark.parametrize("fw", [flask, uwsgiapp.web], ids=["flask", "uwsgiapp.web"])
def test_trap_settings_turn_http_errors_into_exceptions(fw: t.Any) -> None:
    client = _trap_app(fw, TRAP_BAD_REQUEST_ERRORS=True).test_client()
    assert client.get("/abort/400").status_code == 500
    assert client.get("/abort/404").status_code == 404
    client = _trap_app(fw, TRAP_HTTP_EXCEPTIONS=True).test_client()
    assert client.get("/abort/404").status_code == 500
    assert client.get("/abort/403").data == b"handled 403"  # a handler for the code still runs
    client = _trap_app(fw, TRAP_HTTP_EXCEPTIONS=True, TESTING=True).test_client()
    with pytest.raises(NotFound):
        client.get("/abort/404")
