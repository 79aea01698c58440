"""The test client: ``with client:`` keeps the last request's context, ``session_transaction()``,
requests made where Flask's client makes them."""

from __future__ import annotations

import json
import typing as t
import uuid
from collections.abc import Iterator
from datetime import date
from decimal import Decimal

import flask
import pytest
from werkzeug.test import Client

import uwsgiapp.web
from uwsgiapp.web import (
    App,
    AppClient,
    NullSession,
    Response,
    g,
    has_request_context,
    redirect,
    request,
    session,
    stream_with_context,
)


def _app(log: list[t.Any]) -> App:
    app = App(__name__)
    app.secret_key = "test key"

    @app.before_request
    def before() -> None:
        log.append(("before", request.path))

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        log.append(("teardown", request.path, exc))

    @app.route("/a")
    def a() -> str:
        g.seen = request.args.get("q")
        session["n"] = session.get("n", 0) + 1
        return "a"

    @app.route("/go")
    def go() -> Response:
        return redirect("/a?q=redirected")

    @app.route("/fail")
    def fail() -> str:
        raise KeyError("boom")

    return app


def test_with_client_keeps_the_last_request_context_until_the_block_ends() -> None:
    log: list[t.Any] = []
    client = _app(log).test_client()
    with client:
        assert client.get("/a?q=1").data == b"a"
        assert request.path == "/a" and request.args["q"] == "1"
        assert g.seen == "1" and session["n"] == 1
        assert log == [("before", "/a")]  # not torn down yet
        client.get("/a?q=2")  # the first request's context goes now, the second stays
        assert log == [("before", "/a"), ("teardown", "/a", None), ("before", "/a")]
        assert request.args["q"] == "2" and g.seen == "2" and session["n"] == 2
    assert log[-1] == ("teardown", "/a", None) and len(log) == 4
    assert not has_request_context()


def test_without_with_nothing_is_kept() -> None:
    log: list[t.Any] = []
    client = _app(log).test_client()
    client.get("/a")
    assert not has_request_context()
    assert log == [("before", "/a"), ("teardown", "/a", None)]
    with client:
        pass  # a block with no request pops nothing
    assert not has_request_context()


def test_only_the_last_request_of_a_followed_redirect_is_kept() -> None:
    log: list[t.Any] = []
    client = _app(log).test_client()
    with client:
        response = client.get("/go", follow_redirects=True)
        assert response.data == b"a"
        assert request.path == "/a" and request.args["q"] == "redirected"
        assert log == [("before", "/go"), ("teardown", "/go", None), ("before", "/a")]
    assert len(log) == 4


def test_a_propagated_error_keeps_the_context_and_reaches_teardown_at_the_end() -> None:
    log: list[t.Any] = []
    app = _app(log)
    app.testing = True
    client = app.test_client()
    with client:
        with pytest.raises(KeyError):
            client.get("/fail")
        assert request.path == "/fail"
        assert log == [("before", "/fail")]
    assert log[-1][:2] == ("teardown", "/fail") and isinstance(log[-1][2], KeyError)


def test_with_client_does_not_nest() -> None:
    client = _app([]).test_client()
    with client, pytest.raises(RuntimeError, match="cannot nest"), client:
        pass


def test_a_streamed_response_in_the_block_is_torn_down_once_both_are_done() -> None:
    log: list[t.Any] = []
    app = _app(log)

    @app.route("/stream")
    def stream() -> Response:
        def body() -> Iterator[str]:
            yield request.path

        return Response(stream_with_context(body()))

    client = app.test_client()
    with client:
        response = client.get("/stream")
        assert request.path == "/stream"
    assert log == [("before", "/stream")]  # the body still holds the context
    assert response.data == b"/stream"
    response.close()
    assert log == [("before", "/stream"), ("teardown", "/stream", None)]


def test_the_client_is_a_werkzeug_client_and_the_class_can_be_replaced() -> None:
    class MyClient(AppClient):
        pass

    app = _app([])
    assert isinstance(app.test_client(), Client)
    app.test_client_class = MyClient
    assert type(app.test_client()) is MyClient


def test_session_transaction_reads_the_cookie_and_saves_changes_back() -> None:
    log: list[t.Any] = []
    client = _app(log).test_client()
    with client.session_transaction() as sess:
        assert sess == {} and sess.new
        sess["n"] = 10
        sess["user"] = "ann"
    assert log == []  # no request hook runs for a transaction
    client.get("/a")
    with client.session_transaction() as sess:
        assert sess == {"n": 11, "user": "ann"}
        del sess["user"]
    with client:
        client.get("/a")
        assert session == {"n": 12}
    with client.session_transaction() as sess:
        sess.clear()  # an emptied session deletes the cookie
    assert client.get_cookie("session") is None


def test_session_transaction_takes_the_request_arguments() -> None:
    client = _app([]).test_client()
    with client.session_transaction(base_url="http://other.test/") as sess:
        sess["where"] = "other"
    assert client.get_cookie("session", domain="other.test") is not None
    assert client.get_cookie("session") is None  # not sent to localhost
    with client.session_transaction(base_url="http://other.test/") as sess:
        assert sess == {"where": "other"}


def test_session_transaction_needs_cookies_and_a_secret_key() -> None:
    app = _app([])
    client = app.test_client(use_cookies=False)
    with pytest.raises(TypeError, match="use_cookies=True"), client.session_transaction():
        pass
    app.secret_key = None
    with app.test_client().session_transaction() as sess:
        assert isinstance(sess, NullSession)
        with pytest.raises(RuntimeError, match="no secret key"):
            sess["x"] = 1


def test_a_client_cannot_keep_a_request_context_through_the_environ() -> None:
    # The test client's hook was an environ key, which any uwsgi client can send: a string
    # there raised before the context was popped, and every later request saw its g.
    app = App(__name__)

    @app.before_request
    def who() -> None:
        if "user" in request.args:
            g.user = request.args["user"]

    @app.route("/")
    def index() -> str:
        return str(g.get("user"))

    client = app.test_client()
    hostile = {"uwsgiapp.web.preserve_context": "x", "uwsgiapp.web.preserve": "x"}
    assert client.get("/?user=alice", environ_base=hostile).text == "alice"
    assert [client.get("/").text for _ in range(3)] == ["None"] * 3


def _where_app(fw: t.Any, **config: t.Any) -> t.Any:
    app = fw.Flask(__name__) if fw is flask else fw.App(__name__)
    app.config.update(SECRET_KEY="k", **config)

    @app.route("/where")
    def where() -> str:
        r = fw.request
        return f"{r.url} {r.script_root} {r.remote_addr} {r.user_agent.string.split('/')[0]}"

    @app.route("/login")
    def login() -> t.Any:
        fw.session["user"] = "ann"
        return fw.redirect(fw.url_for("me"))

    @app.route("/me")
    def me() -> str:
        return str(fw.session.get("user"))

    return app


@pytest.mark.parametrize("fw", [flask, uwsgiapp.web], ids=["flask", "uwsgiapp.web"])
def test_requests_are_made_on_the_apps_server_name_root_and_scheme(fw: t.Any) -> None:
    app = _where_app(
        fw, SERVER_NAME="app.test:8080", APPLICATION_ROOT="/app", PREFERRED_URL_SCHEME="https"
    )
    client = app.test_client()
    where = "https://app.test:8080/app/where /app"
    assert client.get("/where").text == f"{where} 127.0.0.1 Werkzeug"
    assert client.get("/where", environ_base={"REMOTE_ADDR": "10.0.0.9"}).text.split()[2] == (
        "10.0.0.9"
    )
    assert client.get("http://other.test/where").text.startswith("http://other.test/app/where ")
    assert client.get("/where", url_scheme="http").text.startswith("http://app.test:8080/app/")
    assert client.get("/where", base_url="http://b.test/").text.startswith("http://b.test/where ")
    # The session cookie's path is APPLICATION_ROOT: the next requests must be under it.
    response = client.get("/login", follow_redirects=True)
    assert response.text == "ann"
    assert response.request.url == "https://app.test:8080/app/me"
    with client.session_transaction() as sess:
        assert sess["user"] == "ann"
    with app.test_request_context("/where"):
        assert fw.request.url == "https://app.test:8080/app/where"
    with app.test_request_context("http://other.test/x?q=1"):
        assert fw.request.url == "http://other.test/app/x?q=1"


@pytest.mark.parametrize("fw", [flask, uwsgiapp.web], ids=["flask", "uwsgiapp.web"])
def test_a_json_body_takes_what_a_json_response_takes(fw: t.Any) -> None:
    app = _where_app(fw)

    @app.post("/echo")
    def echo() -> t.Any:
        return {"got": fw.request.get_json(), "raw": fw.request.get_data(as_text=True)}

    body = {"price": Decimal("1.50"), "id": uuid.UUID(int=3), "day": date(2024, 1, 2)}
    got = {
        "day": "Tue, 02 Jan 2024 00:00:00 GMT",
        "id": "00000000-0000-0000-0000-000000000003",
        "price": "1.50",
    }
    response = app.test_client().post("/echo", json=body)
    assert response.json == {"got": got, "raw": json.dumps(got)}  # Flask's bytes (a signed hook)
    with app.test_request_context("/echo", method="POST", json=body):
        assert fw.request.get_json()["price"] == "1.50"
    with pytest.raises(TypeError):
        app.test_client().post("/echo", json=body, data="x")
