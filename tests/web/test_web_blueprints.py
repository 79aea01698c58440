"""Blueprints: prefixes, endpoint names, scoped hooks and error handlers."""

from __future__ import annotations

import functools
import typing as t

import pytest

from uwsgiapp.web import App, Blueprint, Response, abort, request, url_for


def build() -> tuple[App, list[str]]:
    events: list[str] = []
    app = App(__name__)
    admin = Blueprint("admin", __name__, url_prefix="/admin")
    api = Blueprint("api", __name__)

    @app.before_request
    def app_before() -> None:
        events.append(f"app before {request.endpoint}")

    @app.after_request
    def app_after(response: Response) -> Response:
        events.append("app after")
        return response

    @app.teardown_request
    def app_teardown(exc: BaseException | None) -> None:
        events.append("app teardown")

    @admin.before_request
    def admin_before() -> t.Any:
        events.append("admin before")
        if request.args.get("login") == "no":
            return "login required", 401
        return None

    @admin.after_request
    def admin_after(response: Response) -> Response:
        events.append("admin after")
        response.headers["X-Admin"] = "1"
        return response

    @admin.teardown_request
    def admin_teardown(exc: BaseException | None) -> None:
        events.append("admin teardown")

    @admin.before_app_request
    def everywhere() -> None:
        events.append("admin-registered app-wide hook")

    @admin.route("/", endpoint="index")
    def admin_index() -> str:
        return f"admin index {url_for('.users')} {url_for('index')}"

    @admin.route("/users")
    def users() -> str:
        return "users"

    @admin.get("/missing")
    def missing() -> str:
        abort(404)

    @admin.errorhandler(404)
    def admin_not_found(e: t.Any) -> t.Any:
        return "admin 404", 404

    @admin.app_errorhandler(418)
    def teapot(e: t.Any) -> t.Any:
        return "app-wide teapot", 418

    @api.route("/v1/things", endpoint="things")
    def list_things() -> list[int]:
        return [1, 2]

    @api.route("/v1/tea")
    def tea() -> str:
        abort(418)

    @api.errorhandler(ValueError)
    def api_value_error(e: ValueError) -> t.Any:
        return {"error": str(e)}, 400

    @api.route("/v1/bad")
    def bad() -> str:
        raise ValueError("bad input")

    @app.route("/")
    def index() -> str:
        return f"app index {url_for('admin.users')}"

    @app.route("/raise")
    def app_raise() -> str:
        raise ValueError("app-level")

    app.register_blueprint(admin)
    app.register_blueprint(api, url_prefix="/api")
    app.logger.disabled = True
    return app, events


def test_routes_get_prefix_and_dotted_endpoints() -> None:
    app, _ = build()
    endpoints = {rule.rule: rule.endpoint for rule in app.url_map.iter_rules()}
    assert endpoints["/admin/"] == "admin.index"
    assert endpoints["/admin/users"] == "admin.users"
    assert endpoints["/api/v1/things"] == "api.things"
    client = app.test_client()
    assert client.get("/admin/").data == b"admin index /admin/users /"
    assert client.get("/").data == b"app index /admin/users"
    assert client.get("/api/v1/things").json == [1, 2]
    assert client.get("/v1/things").status_code == 404


def test_blueprint_hooks_only_run_for_its_requests_in_order() -> None:
    app, events = build()
    client = app.test_client()
    client.get("/admin/users")
    assert events == [
        "app before admin.users",
        "admin-registered app-wide hook",
        "admin before",
        "admin after",
        "app after",
        "admin teardown",
        "app teardown",
    ]
    events.clear()
    response = client.get("/")
    assert "X-Admin" not in response.headers
    assert events == [
        "app before index",
        "admin-registered app-wide hook",
        "app after",
        "app teardown",
    ]


def test_blueprint_before_request_can_short_circuit() -> None:
    app, _ = build()
    response = app.test_client().get("/admin/users?login=no")
    assert (response.status_code, response.data) == (401, b"login required")
    assert response.headers["X-Admin"] == "1"


def test_blueprint_error_handlers_are_scoped() -> None:
    app, _ = build()
    client = app.test_client()
    assert client.get("/admin/missing").data == b"admin 404"
    # An unmatched URL has no blueprint, so the app-level (default) page renders.
    assert b"Not Found" in client.get("/admin/nope").data
    assert client.get("/api/v1/bad").json == {"error": "bad input"}
    assert client.get("/raise").status_code == 500  # api's ValueError handler is not app-wide
    assert client.get("/api/v1/tea").data == b"app-wide teapot"


def test_registering_twice_needs_a_new_name() -> None:
    app = App(__name__)
    bp = Blueprint("bp", __name__)
    bp.add_url_rule("/", "index", lambda: "x")
    app.register_blueprint(bp, url_prefix="/one")
    with pytest.raises(ValueError, match=r"already registered: .*\(register_blueprint\(bp, name="):
        app.register_blueprint(bp, url_prefix="/two")
    app.register_blueprint(bp, url_prefix="/two", name="bp2")
    client = app.test_client()
    assert client.get("/one/").data == client.get("/two/").data == b"x"
    with app.test_request_context():
        assert url_for("bp2.index") == "/two/"


def test_names_with_dots_are_rejected() -> None:
    with pytest.raises(ValueError):
        Blueprint("a.b", __name__)
    bp = Blueprint("ok", __name__)
    with pytest.raises(ValueError):
        bp.add_url_rule("/", "x.y", lambda: "")


def _late_setups(bp: Blueprint) -> dict[str, t.Callable[[], object]]:
    """Each way of adding to a blueprint, done once more (after it was registered)."""

    def view() -> str:
        return "late"

    def hook(*args: object) -> None:
        return None

    return {
        "route": lambda: bp.route("/late")(view),
        "get": lambda: bp.get("/late")(view),
        "add_url_rule": lambda: bp.add_url_rule("/late", "late", view),
        "before_request": lambda: bp.before_request(hook),
        "after_request": lambda: bp.after_request(hook),
        "teardown_request": lambda: bp.teardown_request(hook),
        "errorhandler": lambda: bp.errorhandler(404)(hook),
        "before_app_request": lambda: bp.before_app_request(hook),
        "after_app_request": lambda: bp.after_app_request(hook),
        "teardown_app_request": lambda: bp.teardown_app_request(hook),
        "app_errorhandler": lambda: bp.app_errorhandler(500)(hook),
    }


@pytest.mark.parametrize("setup", sorted(_late_setups(Blueprint("x", __name__))))
def test_setup_after_registration_fails_loudly(setup: str) -> None:
    # The circular-import mistake: the package registers the blueprint, then imports the
    # module that adds its routes. Silently dropping them gave 404s; Flask refuses too.
    app = App(__name__)
    api = Blueprint("api", __name__, url_prefix="/api")
    api.add_url_rule("/early", "early", lambda: "early")
    app.register_blueprint(api)
    with pytest.raises(RuntimeError, match=r"blueprint 'api' after it was registered"):
        _late_setups(api)[setup]()
    assert app.test_client().get("/api/early").data == b"early"


def test_blueprint_registered_twice_runs_its_app_wide_hooks_once() -> None:
    # API versioning: one blueprint at /v1 and, renamed, at /v2 (Flask adds app-wide hooks on
    # the first registration only).
    calls: list[str] = []
    app = App(__name__)
    auth = Blueprint("auth", __name__)

    @auth.before_app_request
    def load_user() -> None:
        calls.append("app-wide before")

    @auth.after_app_request
    def stamp(response: Response) -> Response:
        response.headers.add("X-Stamp", "1")
        return response

    @auth.teardown_app_request
    def app_teardown(exc: BaseException | None) -> None:
        calls.append("app-wide teardown")

    @auth.before_request
    def scoped() -> None:
        calls.append(f"scoped before {request.blueprint}")

    @auth.route("/me")
    def me() -> str:
        return "me"

    @app.route("/")
    def index() -> str:
        return "index"

    app.register_blueprint(auth, url_prefix="/v1")
    app.register_blueprint(auth, url_prefix="/v2", name="auth_v2")
    client = app.test_client()
    expected = {
        "/": [],
        "/v1/me": ["scoped before auth"],
        "/v2/me": ["scoped before auth_v2"],
    }
    for path, scoped_calls in expected.items():
        calls.clear()
        response = client.get(path)
        assert response.headers.getlist("X-Stamp") == ["1"], path
        assert calls == ["app-wide before", *scoped_calls, "app-wide teardown"], path


@pytest.mark.parametrize("option", ["subdomain", "host"])
def test_a_route_that_would_match_on_the_host_is_refused(option: str) -> None:
    # Routing is on the path only: a subdomain= rule silently answered on every host (or, on
    # the app, never), so a port from Flask would expose an admin subdomain's routes.
    app = App(__name__)
    bp = Blueprint("admin", __name__)
    for scaffold in (app, bp):
        with pytest.raises(TypeError, match=f"{option}= is not supported by uwsgiapp.web"):
            scaffold.route("/", **{option: "admin"})(lambda: "admin area")
    assert not any(rule.rule == "/" for rule in app.url_map.iter_rules())


def test_an_async_view_is_refused_when_added_not_at_each_request() -> None:
    # Flask runs an async def view (with asgiref); here it was accepted, then every request
    # to it was a 500 ("returned a coroutine") in production.
    app = App(__name__)
    bp = Blueprint("api", __name__)

    async def fetch() -> str:
        return "x"

    for scaffold in (app, bp):
        with pytest.raises(TypeError, match=r"'fetch' \(a view\) is an async def, which uwsgiapp"):
            scaffold.route("/fetch")(fetch)
        with pytest.raises(TypeError, match="async def"):
            scaffold.add_url_rule("/fetch2", view_func=fetch)
        with pytest.raises(TypeError, match=r"'functools\.partial\(<.*\(a view\) is an async"):
            scaffold.add_url_rule("/fetch3", view_func=functools.partial(fetch))
        # The hooks too: an async before_request's coroutine was taken for the response.
        hooks = ["before_request", "after_request", "teardown_request", "url_defaults"]
        if isinstance(scaffold, Blueprint):
            hooks += ["before_app_request", "app_url_defaults"]
        for hook in hooks:
            with pytest.raises(TypeError, match=f"'fetch' \\({hook}\\) is an async def"):
                getattr(scaffold, hook)(fetch)
        with pytest.raises(TypeError, match=r"\(errorhandler\) is an async def"):
            scaffold.errorhandler(404)(fetch)
    with pytest.raises(TypeError, match=r"\(app_errorhandler\) is an async def"):
        bp.app_errorhandler(500)(fetch)
    with pytest.raises(TypeError, match=r"\(endpoint\) is an async def"):
        app.endpoint("e")(fetch)
    assert not any(rule.rule.startswith("/fetch") for rule in app.url_map.iter_rules())
    assert not app.before_request_funcs and "e" not in app.view_functions


@pytest.mark.parametrize(
    ("option", "value"), [("subdomain", "admin"), ("url_defaults", {"page": 7})]
)
def test_a_registration_option_uwsgiapp_web_does_not_take_is_refused(
    option: str, value: object
) -> None:
    app = App(__name__)
    parent = Blueprint("parent", __name__)
    child = Blueprint("child", __name__)

    @child.route("/users")
    def users() -> str:
        return "users"

    for target in (app, parent):
        with pytest.raises(TypeError, match=f"register_blueprint\\(\\) option {option}= "):
            target.register_blueprint(child, **{option: value})
    assert "child" not in app.blueprints
    # What it takes still works; what changes no rule is ignored, as Flask ignores it.
    app.register_blueprint(child, url_prefix="/c", name="kid", cli_group=None)
    assert app.test_client().get("/c/users").text == "users"
