"""Routing: rules, converters, methods, slashes, url_for, automatic OPTIONS and HEAD."""

from __future__ import annotations

import typing as t

import flask
import pytest
from werkzeug.routing import BuildError

import uwsgiapp.web
from uwsgiapp.web import App, request, url_for


@pytest.fixture
def app() -> App:
    app = App(__name__)

    @app.route("/")
    def index() -> str:
        return "index"

    @app.route("/user/<name>")
    def user(name: str) -> str:
        return f"user {name}"

    @app.route("/post/<int:post_id>")
    def post(post_id: int) -> str:
        return f"post {post_id + 1}"

    @app.route("/price/<float:amount>")
    def price(amount: float) -> str:
        return f"price {amount * 2}"

    @app.route("/path/<path:subpath>")
    def path(subpath: str) -> str:
        return f"path {subpath}"

    @app.route("/id/<uuid:ident>")
    def ident(ident: t.Any) -> str:
        return f"uuid {ident.hex}"

    @app.route("/projects/")
    def projects() -> str:
        return "projects"

    @app.route("/about")
    def about() -> str:
        return "about"

    @app.route("/form", methods=["GET", "POST"])
    def form() -> str:
        return f"form {request.method}"

    @app.get("/item")
    def item_get() -> str:
        return "get item"

    @app.post("/item")
    def item_post() -> str:
        return "post item"

    @app.put("/item")
    def item_put() -> str:
        return "put item"

    @app.delete("/item")
    def item_delete() -> str:
        return "delete item"

    @app.patch("/item")
    def item_patch() -> str:
        return "patch item"

    @app.route("/named", endpoint="custom_name")
    def some_function() -> str:
        return url_for("custom_name")

    def added(x: str) -> str:
        return f"added {x}"

    app.add_url_rule("/added/<x>", view_func=added)
    app.add_url_rule("/added-ep/<x>", "added_ep", added)
    return app


REQUEST_TABLE = [
    ("GET", "/", 200, b"index"),
    ("GET", "/user/ada", 200, b"user ada"),
    ("GET", "/user/%C3%A9t%C3%A9", 200, "user été".encode()),
    ("GET", "/post/41", 200, b"post 42"),
    ("GET", "/post/x", 404, None),
    ("GET", "/price/1.5", 200, b"price 3.0"),
    ("GET", "/path/a/b/c.txt", 200, b"path a/b/c.txt"),
    ("GET", "/id/12345678-1234-5678-1234-567812345678", 200, b"uuid " + b"12345678" * 4),
    ("GET", "/id/nope", 404, None),
    ("GET", "/projects/", 200, b"projects"),
    ("GET", "/about", 200, b"about"),
    ("GET", "/about/", 404, None),
    ("GET", "/nowhere", 404, None),
    ("GET", "/form", 200, b"form GET"),
    ("POST", "/form", 200, b"form POST"),
    ("PUT", "/form", 405, None),
    ("GET", "/item", 200, b"get item"),
    ("POST", "/item", 200, b"post item"),
    ("PUT", "/item", 200, b"put item"),
    ("DELETE", "/item", 200, b"delete item"),
    ("PATCH", "/item", 200, b"patch item"),
    ("GET", "/named", 200, b"/named"),
    ("GET", "/added/1", 200, b"added 1"),
    ("GET", "/added-ep/2", 200, b"added 2"),
]


@pytest.mark.parametrize(("method", "path", "status", "body"), REQUEST_TABLE)
def test_request_table(app: App, method: str, path: str, status: int, body: bytes | None) -> None:
    response = app.test_client().open(path, method=method)
    assert response.status_code == status
    if body is not None:
        assert response.data == body


def test_the_table_answers_alike_when_each_match_comes_from_the_cache(app: App) -> None:
    # One app, the whole table three times, interleaved: the second and third answers of a
    # route without arguments come from the app's cache of matches (keyed by method too).
    client = app.test_client()
    for _ in range(3):
        for method, path, status, body in REQUEST_TABLE:
            response = client.open(path, method=method)
            assert response.status_code == status, (method, path)
            if body is not None:
                assert response.data == body, (method, path)
    assert client.get("/projects?page=3").headers["Location"].endswith("/projects/?page=3")


def test_cached_matches_are_bounded_and_hand_each_request_its_own_view_args() -> None:
    app = App(__name__)
    seen: list[dict[str, t.Any]] = []

    @app.route("/page")
    def page() -> str:
        view_args = t.cast("dict[str, t.Any]", request.view_args)
        seen.append(dict(view_args))
        view_args["n"] = 99  # the request's own dict: the next request must not see it
        return "page"

    @app.route("/paged", defaults={"n": 1})  # defaults are arguments: never cached
    def paged(n: int) -> str:
        return f"paged {n}"

    @app.route("/<name>")
    def named(name: str) -> str:
        return name

    client = app.test_client()
    assert [client.get("/page").data for _ in range(3)] == [b"page"] * 3
    assert seen == [{}] * 3
    assert [client.get("/paged").data for _ in range(2)] == [b"paged 1"] * 2
    # Paths a client picks (404s, converter routes) are never kept: memory stays bounded.
    for i in range(300):
        client.get(f"/n{i}")
        client.get(f"/missing/{i}")
    assert len(app._matches) == 1


def test_missing_trailing_slash_redirects_permanently_keeping_the_query(app: App) -> None:
    response = app.test_client().get("/projects?page=2")
    assert response.status_code == 308
    assert response.headers["Location"] == "http://localhost/projects/?page=2"


def test_method_not_allowed_lists_allowed_methods(app: App) -> None:
    response = app.test_client().put("/form")
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) == {"GET", "HEAD", "POST", "OPTIONS"}


def test_automatic_options_lists_methods_with_empty_body(app: App) -> None:
    response = app.test_client().options("/item")
    assert response.status_code == 200
    assert response.data == b""
    assert set(response.headers["Allow"].split(", ")) == {
        "GET",
        "HEAD",
        "POST",
        "PUT",
        "DELETE",
        "PATCH",
        "OPTIONS",
    }


def test_explicit_options_view_replaces_the_automatic_answer() -> None:
    app = App(__name__)

    @app.route("/", methods=["GET", "OPTIONS"])
    def index() -> str:
        return f"view saw {request.method}"

    assert app.test_client().options("/").data == b"view saw OPTIONS"


@pytest.mark.parametrize("fw", [flask, uwsgiapp.web], ids=["flask", "uwsgiapp.web"])
def test_provide_automatic_options_off_leaves_options_to_the_views(fw: t.Any) -> None:
    app = fw.Flask(__name__) if fw is flask else fw.App(__name__)
    app.config["PROVIDE_AUTOMATIC_OPTIONS"] = False  # before the routes, as in Flask 3.1
    app.add_url_rule("/plain", "plain", lambda: "plain")
    app.add_url_rule("/own", "own", lambda: "own", methods=["GET", "OPTIONS"])
    app.add_url_rule("/forced", "forced", lambda: "forced", provide_automatic_options=True)
    client = app.test_client()
    assert client.options("/plain").status_code == 405
    assert client.options("/own").text == "own"
    assert client.options("/forced").headers["Allow"]


def test_head_has_headers_but_no_body(app: App) -> None:
    response = app.test_client().head("/user/ada")
    assert response.status_code == 200
    assert response.headers["Content-Length"] == "8"
    assert response.data == b""


def test_methods_as_a_string_is_rejected() -> None:
    app = App(__name__)
    with pytest.raises(TypeError, match="list of strings"):
        app.add_url_rule("/", "x", lambda: "", methods="POST")


def test_shortcut_rejects_methods_argument() -> None:
    app = App(__name__)
    with pytest.raises(TypeError, match="route"):
        app.get("/", methods=["POST"])


def test_endpoint_clash_is_an_error() -> None:
    app = App(__name__)
    app.add_url_rule("/a", "same", lambda: "a")
    with pytest.raises(ValueError, match="already mapped"):
        app.add_url_rule("/b", "same", lambda: "b")


def test_routes_cannot_be_added_after_the_first_request() -> None:
    app = App(__name__)
    app.add_url_rule("/", "index", lambda: "x")
    app.test_client().get("/")
    with pytest.raises(RuntimeError, match="first request"):
        app.add_url_rule("/late", "late", lambda: "late")
    with pytest.raises(RuntimeError, match="first request"):
        app.before_request(lambda: None)


def test_url_for_relative_external_query_and_anchor(app: App) -> None:
    with app.test_request_context("/", base_url="https://example.org/prefix/"):
        assert url_for("index") == "/prefix/"
        assert url_for("user", name="John Doe") == "/prefix/user/John%20Doe"
        assert url_for("post", post_id=3, q="x y", page=2) == "/prefix/post/3?q=x+y&page=2"
        assert url_for("user", name="a", _anchor="top") == "/prefix/user/a#top"
        assert url_for("user", name="a", _anchor="it's b") == "/prefix/user/a#it's%20b"  # Flask's
        assert url_for("index", _external=True) == "https://example.org/prefix/"
        assert url_for("index", _external=True, _scheme="http") == "http://example.org/prefix/"
        with pytest.raises(ValueError, match="_external"):
            url_for("index", _scheme="http", _external=False)
        with pytest.raises(BuildError):
            url_for("no_such_endpoint")
        with pytest.raises(BuildError):
            url_for("post")


def test_url_for_picks_the_rule_for_the_method() -> None:
    app = App(__name__)
    app.add_url_rule("/read", "thing", lambda: "r", methods=["GET"])
    app.add_url_rule("/write", "thing", None, methods=["POST"])
    with app.test_request_context("/"):
        assert url_for("thing") == "/read"
        assert url_for("thing", _method="POST") == "/write"


def test_url_for_in_a_view_uses_the_host_of_that_request() -> None:
    app = App(__name__)

    @app.route("/")
    def index() -> str:
        return url_for("index", _external=True)

    client = app.test_client()
    # The second request reuses the cached adapter for its own host, not the first one's.
    assert client.get("/", base_url="http://one.example").data == b"http://one.example/"
    assert client.get("/", base_url="http://two.example").data == b"http://two.example/"
    assert client.get("/", base_url="http://one.example").data == b"http://one.example/"


def test_url_for_outside_a_request_needs_server_name() -> None:
    app = App(__name__)
    app.add_url_rule("/x/<int:n>", "x", lambda n: "")
    with app.app_context(), pytest.raises(RuntimeError, match="SERVER_NAME"):
        url_for("x", n=1)
    app.config.update(SERVER_NAME="example.com", PREFERRED_URL_SCHEME="https")
    with app.app_context():
        assert url_for("x", n=1) == "https://example.com/x/1"


def test_url_for_outside_any_context_says_why() -> None:
    with pytest.raises(RuntimeError, match="outside of application context"):
        url_for("index")


def test_non_ascii_path_is_decoded_like_werkzeug(app: App) -> None:
    # PEP 3333: PATH_INFO arrives as latin-1-decoded bytes; the router must see UTF-8 text.
    environ = {
        "REQUEST_METHOD": "GET",
        "PATH_INFO": "/user/été".encode().decode("latin-1"),
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "wsgi.url_scheme": "http",
    }
    captured: list[str] = []
    body = app(environ, lambda status, headers, exc_info=None: captured.append(status))  # type: ignore[arg-type,func-returns-value]
    assert captured == ["200 OK"]
    assert b"".join(body) == "user été".encode()
