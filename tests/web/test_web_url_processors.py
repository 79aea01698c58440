"""url_value_preprocessor and url_defaults, at app and blueprint level; each test runs the same
app on Flask and on uwsgiapp.web and asserts the same results for both."""

from __future__ import annotations

import types
import typing as t

import flask
import pytest

import uwsgiapp.web

FRAMEWORKS = {
    "flask": types.SimpleNamespace(App=flask.Flask, module=flask),
    "uwsgiapp.web": types.SimpleNamespace(App=uwsgiapp.web.App, module=uwsgiapp.web),
}


@pytest.fixture(params=sorted(FRAMEWORKS))
def fw(request: pytest.FixtureRequest) -> types.SimpleNamespace:
    return FRAMEWORKS[request.param]


def test_the_language_code_in_every_url_of_a_blueprint(fw: types.SimpleNamespace) -> None:
    # Flask's documented pattern: the blueprint takes <lang_code> out of the view arguments
    # into g, and url_for puts it back for the blueprint's own endpoints.
    g, url_for, request = fw.module.g, fw.module.url_for, fw.module.request
    app = fw.App(__name__)
    bp = fw.module.Blueprint("lang", __name__, url_prefix="/<lang_code>")
    calls: list[t.Any] = []

    @bp.url_defaults
    def add_language_code(endpoint: str, values: dict[str, t.Any]) -> None:
        calls.append(("defaults", endpoint))
        if "lang_code" in g:
            values.setdefault("lang_code", g.lang_code)

    @bp.url_value_preprocessor
    def pull_lang_code(endpoint: str | None, values: dict[str, t.Any] | None) -> None:
        calls.append(("preprocess", endpoint, request.endpoint))
        assert values is not None
        g.lang_code = values.pop("lang_code")

    @bp.before_request
    def before() -> None:
        calls.append(("before", g.lang_code))

    @bp.route("/about/<int:page>")
    def about(page: int) -> str:  # no lang_code argument: the preprocessor took it
        return f"{g.lang_code} {page} {url_for('.about', page=page + 1)} {url_for('plain')}"

    @app.route("/plain")
    def plain() -> str:
        return url_for("lang.about", page=1, lang_code="fr")

    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get("/de/about/3").data == b"de 3 /de/about/4 /plain"
    assert calls == [
        ("preprocess", "lang.about", "lang.about"),
        ("before", "de"),
        ("defaults", "lang.about"),  # not for "plain": the blueprint's are its own
    ]
    calls.clear()
    assert client.get("/plain").data == b"/fr/about/1"
    assert calls == [("defaults", "lang.about")]  # its preprocessor is not the app's


def test_app_level_functions_see_every_request_and_run_first(fw: types.SimpleNamespace) -> None:
    url_for = fw.module.url_for
    app = fw.App(__name__)
    app.config["SERVER_NAME"] = "example.test"
    bp = fw.module.Blueprint("bp", __name__, url_prefix="/bp")
    calls: list[t.Any] = []

    @app.url_value_preprocessor
    def app_pre(endpoint: str | None, values: dict[str, t.Any] | None) -> None:
        calls.append(("app", endpoint, None if values is None else dict(values)))

    @bp.url_value_preprocessor
    def bp_pre(endpoint: str | None, values: dict[str, t.Any] | None) -> None:
        calls.append(("bp", endpoint))

    @bp.app_url_value_preprocessor
    def bp_app_pre(endpoint: str | None, values: dict[str, t.Any] | None) -> None:
        calls.append(("bp-app", endpoint))

    @app.before_request
    def before() -> None:
        calls.append(("before",))

    @app.url_defaults
    def version(endpoint: str, values: dict[str, t.Any]) -> None:
        values.setdefault("v", "1")

    @bp.app_url_defaults
    def theme(endpoint: str, values: dict[str, t.Any]) -> None:
        values.setdefault("theme", "dark")

    @bp.route("/<int:n>")
    def item(n: int) -> str:
        return url_for("item_top", n=n)

    @app.route("/<int:n>")
    def item_top(n: int) -> str:
        return url_for("bp.item", n=n, v="2")

    app.register_blueprint(bp)
    client = app.test_client()
    assert client.get("/bp/5").data == b"/5?v=1&theme=dark"
    assert calls == [
        ("app", "bp.item", {"n": 5}),
        ("bp-app", "bp.item"),
        ("bp", "bp.item"),
        ("before",),
    ]
    calls.clear()
    assert client.get("/7").data == b"/bp/7?v=2&theme=dark"
    assert calls == [("app", "item_top", {"n": 7}), ("bp-app", "item_top"), ("before",)]
    calls.clear()
    assert client.get("/nowhere/").status_code == 404  # called with no endpoint and no values
    assert calls == [("app", None, None), ("bp-app", None), ("before",)]
    with app.app_context():  # outside a request too
        assert url_for("item_top", n=1) == "http://example.test/1?v=1&theme=dark"
