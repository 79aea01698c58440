"""Nested blueprints (``Blueprint.register_blueprint``): one app built on Flask and on
uwsgiapp.web from the same source, and the same names, URLs, hook order and error handlers
asserted for both."""

from __future__ import annotations

import types
import typing as t

import flask
import pytest
from werkzeug.exceptions import NotFound

import uwsgiapp.web

FRAMEWORKS = {
    "flask": types.SimpleNamespace(App=flask.Flask, module=flask),
    "uwsgiapp.web": types.SimpleNamespace(App=uwsgiapp.web.App, module=uwsgiapp.web),
}


class Refused(Exception):
    pass


def build(fw: types.SimpleNamespace) -> tuple[t.Any, list[str]]:
    """app > shop (/shop) > admin (/admin) > users (/users); shop > cart (prefix given at
    registration); the hooks log their scope."""
    m = fw.module
    request, url_for = m.request, m.url_for
    events: list[str] = []
    app = fw.App(__name__)
    shop = m.Blueprint("shop", __name__, url_prefix="/shop")
    admin = m.Blueprint("admin", __name__, url_prefix="/admin")
    users = m.Blueprint("users", __name__, url_prefix="/users")
    cart = m.Blueprint("cart", __name__)

    for name, scope in (("app", app), ("shop", shop), ("admin", admin), ("users", users)):

        def hooks(name: str = name, scope: t.Any = scope) -> None:
            @scope.url_value_preprocessor
            def pre(endpoint: str | None, values: t.Any) -> None:
                events.append(f"{name} preprocess")

            @scope.before_request
            def before() -> None:
                events.append(f"{name} before")

            @scope.after_request
            def after(response: t.Any) -> t.Any:
                events.append(f"{name} after")
                return response

            @scope.teardown_request
            def teardown(exc: BaseException | None) -> None:
                events.append(f"{name} teardown")

        hooks()

    @users.route("/<int:uid>")
    def show(uid: int) -> str:
        return " ".join(
            (
                request.endpoint,
                request.blueprint,
                ",".join(request.blueprints),
                url_for(".show", uid=uid + 1),
                url_for("shop.cart.view"),
                url_for("shop.index"),
            )
        )

    @users.route("/refused")
    def refused() -> str:
        raise Refused()

    @users.route("/missing")
    def missing() -> str:
        m.abort(404)

    @admin.route("/refused")
    def admin_refused() -> str:
        raise Refused()

    @shop.route("/")
    def index() -> str:
        return "shop"

    @cart.route("/view")
    def view() -> str:
        return request.blueprint

    @shop.errorhandler(Refused)
    def shop_refused(e: Refused) -> tuple[str, int]:
        return "refused by shop", 403

    @admin.errorhandler(Refused)
    def admin_refused_handler(e: Refused) -> tuple[str, int]:
        return "refused by admin", 403

    @shop.errorhandler(404)
    def shop_404(e: NotFound) -> tuple[str, int]:
        return "not in the shop", 404

    admin.register_blueprint(users)
    shop.register_blueprint(admin)
    shop.register_blueprint(cart, url_prefix="/cart")
    app.register_blueprint(shop)
    return app, events


@pytest.fixture(params=sorted(FRAMEWORKS))
def fw(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    return FRAMEWORKS[request.param]


def test_names_prefixes_and_url_for(fw: types.SimpleNamespace) -> None:
    app, _ = build(fw)
    assert sorted(app.blueprints) == ["shop", "shop.admin", "shop.admin.users", "shop.cart"]
    client = app.test_client()
    assert client.get("/shop/admin/users/7").data == (
        b"shop.admin.users.show shop.admin.users shop.admin.users,shop.admin,shop"
        b" /shop/admin/users/8 /shop/cart/view /shop/"
    )
    assert client.get("/shop/cart/view").data == b"shop.cart"


def test_the_hooks_of_every_enclosing_blueprint_run_outermost_first(
    fw: types.SimpleNamespace,
) -> None:
    app, events = build(fw)
    app.test_client().get("/shop/admin/users/7")
    scopes = ["app", "shop", "admin", "users"]
    assert events == (
        [f"{s} preprocess" for s in scopes]
        + [f"{s} before" for s in scopes]
        + [f"{s} after" for s in reversed(scopes)]
        + [f"{s} teardown" for s in reversed(scopes)]
    )
    events.clear()
    app.test_client().get("/shop/cart/view")  # a sibling: only the shop's and the app's
    assert events == [
        "app preprocess",
        "shop preprocess",
        "app before",
        "shop before",
        "shop after",
        "app after",
        "shop teardown",
        "app teardown",
    ]


def test_error_handlers_innermost_blueprint_first(fw: types.SimpleNamespace) -> None:
    app, _ = build(fw)
    client = app.test_client()
    response = client.get("/shop/admin/users/refused")  # users has none: admin's
    assert (response.status_code, response.data) == (403, b"refused by admin")
    response = client.get("/shop/admin/users/missing")  # admin has no 404 handler: shop's
    assert (response.status_code, response.data) == (404, b"not in the shop")
    assert client.get("/shop/admin/refused").data == b"refused by admin"


def test_the_same_blueprint_nested_twice_under_other_names(fw: types.SimpleNamespace) -> None:
    m = fw.module
    app = fw.App(__name__)
    parent = m.Blueprint("parent", __name__, url_prefix="/p")
    child = m.Blueprint("child", __name__, url_prefix="/c")

    @child.route("/")
    def index() -> str:
        return m.request.blueprint

    parent.register_blueprint(child)
    parent.register_blueprint(child, name="again", url_prefix="/again")
    app.register_blueprint(parent)
    app.register_blueprint(parent, name="other", url_prefix="/o")
    client = app.test_client()
    assert client.get("/p/c/").data == b"parent.child"
    assert client.get("/p/again/").data == b"parent.again"
    assert client.get("/o/c/").data == b"other.child"
    assert client.get("/o/again/").data == b"other.again"


def test_nesting_mistakes_are_refused() -> None:
    app = uwsgiapp.web.App(__name__)
    bp = uwsgiapp.web.Blueprint("bp", __name__)
    child = uwsgiapp.web.Blueprint("child", __name__)
    with pytest.raises(ValueError, match="cannot be registered on itself"):
        bp.register_blueprint(bp)
    bp.register_blueprint(child)
    app.register_blueprint(bp)
    with pytest.raises(RuntimeError, match="after it was registered"):
        bp.register_blueprint(uwsgiapp.web.Blueprint("late", __name__))
    with pytest.raises(RuntimeError, match="after it was registered"):
        child.route("/late")(lambda: "late")  # the nested one was registered with its parent
