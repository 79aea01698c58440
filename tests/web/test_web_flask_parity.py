"""The Flask quickstart, written once and run on Flask and on uwsgiapp.web.

``build_quickstart`` receives the framework as a parameter, so the two apps share every line of
source; only what is imported differs. Each row of the request table goes to both apps (each
with its own cookie-keeping client, so session and cookie rows build on earlier rows) and must
give the same status, the same headers that matter, and the same body.
"""

from __future__ import annotations

import io
import types
import typing as t
from collections.abc import Iterator
from pathlib import Path

import flask
import pytest
from markupsafe import escape

import uwsgiapp.web

_NAMES = (
    "abort",
    "g",
    "jsonify",
    "make_response",
    "redirect",
    "request",
    "session",
    "stream_with_context",
    "url_for",
)


def framework(module: types.ModuleType, app_class: type) -> types.SimpleNamespace:
    """The names the quickstart imports, from ``module``."""
    return types.SimpleNamespace(App=app_class, **{name: getattr(module, name) for name in _NAMES})


FRAMEWORKS = {
    "flask": framework(flask, flask.Flask),
    "uwsgiapp.web": framework(uwsgiapp.web, uwsgiapp.web.App),
}


def build_quickstart(fw: types.SimpleNamespace, root: Path) -> t.Any:
    """The Flask quickstart examples (templates replaced by strings), against ``fw``."""
    request, session, url_for = fw.request, fw.session, fw.url_for
    app = fw.App(__name__, root_path=str(root))
    app.secret_key = b'_5#y2L"F4Q8z\n\xec]/'

    # A minimal application; routing; variable rules.
    @app.route("/")
    def index() -> str:
        if "username" in session:
            return f"Logged in as {session['username']}"
        return "You are not logged in"

    @app.route("/hello")
    def hello_world() -> str:
        return "<p>Hello, World!</p>"

    @app.route("/hello/<name>")
    def hello(name: str) -> str:
        return f"Hello, {escape(name)}!"

    @app.route("/user/<username>")
    def profile(username: str) -> str:
        return f"User {escape(username)}"

    @app.route("/post/<int:post_id>")
    def show_post(post_id: int) -> str:
        return f"Post {post_id}"

    @app.route("/path/<path:subpath>")
    def show_subpath(subpath: str) -> str:
        return f"Subpath {escape(subpath)}"

    # Unique URLs / redirection behaviour.
    @app.route("/projects/")
    def projects() -> str:
        return "The project page"

    @app.route("/about")
    def about() -> str:
        return "The about page"

    # URL building.
    @app.route("/urls")
    def urls() -> str:
        return "\n".join(
            [
                url_for("index"),
                url_for("login"),
                url_for("login", next="/"),
                url_for("profile", username="John Doe"),
                url_for("static", filename="style.css"),
                url_for("index", _external=True),
            ]
        )

    # HTTP methods, the request object, sessions.
    @app.route("/login", methods=["GET", "POST"])
    def login() -> t.Any:
        if request.method == "POST":
            if not request.form.get("username"):
                return "Invalid username/password", 401
            session["username"] = request.form["username"]
            return fw.redirect(url_for("index"))
        return '<form method="post"><p><input type=text name=username></form>'

    @app.get("/logout")
    def logout() -> t.Any:
        session.pop("username", None)
        return fw.redirect(url_for("index"))

    @app.post("/items")
    def create_item() -> t.Any:
        return {"created": request.get_json()["name"]}, 201

    @app.route("/search")
    def search() -> str:
        return f"searching for {request.args.get('key', '')!r}"

    # File uploads.
    @app.route("/upload", methods=["POST"])
    def upload_file() -> str:
        f = request.files["the_file"]
        return f"{f.filename}: {len(f.read())} bytes"

    # Cookies.
    @app.route("/cookie/read")
    def read_cookie() -> str:
        return f"username cookie: {request.cookies.get('username')}"

    @app.route("/cookie/set")
    def set_cookie() -> t.Any:
        resp = fw.make_response("cookie set")
        resp.set_cookie("username", "the username")
        return resp

    # Redirects and errors.
    @app.route("/go")
    def go() -> t.Any:
        return fw.redirect(url_for("login"))

    @app.route("/denied")
    def denied() -> str:
        fw.abort(401)

    @app.errorhandler(404)
    def page_not_found(error: t.Any) -> t.Any:
        return f"page not found: {request.path}", 404

    # About responses: dict/list become JSON, tuples, make_response, jsonify.
    @app.route("/me")
    def me_api() -> dict[str, t.Any]:
        return {"username": "ada", "theme": "dark", "image": url_for("static", filename="a.png")}

    @app.route("/users")
    def users_api() -> list[dict[str, t.Any]]:
        return [{"id": 1, "name": "ada"}, {"id": 2, "name": "grace"}]

    @app.route("/jsonify")
    def jsonify_view() -> t.Any:
        return fw.jsonify(ok=True, items=[1, 2])

    @app.route("/tuple")
    def tuple_view() -> t.Any:
        return "teapot", 418, {"X-Tea": "earl grey"}

    @app.route("/made")
    def made() -> t.Any:
        resp = fw.make_response("error text", 404)
        resp.headers["X-Something"] = "A value"
        return resp

    # Hooks and g.
    @app.before_request
    def load_user() -> None:
        fw.g.user = request.args.get("as")

    @app.after_request
    def add_header(response: t.Any) -> t.Any:
        response.headers["X-Served-By"] = "quickstart"
        return response

    @app.route("/whoami")
    def whoami() -> str:
        return f"user={fw.g.user}"

    # Streaming contents.
    @app.route("/stream")
    def stream() -> t.Any:
        def generate() -> Iterator[str]:
            for row in range(3):
                yield f"row {row} for {request.args.get('who', 'nobody')}\n"

        return app.response_class(fw.stream_with_context(generate()), mimetype="text/csv")

    # Logging.
    @app.route("/log")
    def log() -> str:
        app.logger.debug("A value for debugging")
        return "logged"

    return app


# (method, path, extra client kwargs). Rows run in order against one client per framework.
REQUESTS: list[tuple[str, str, dict[str, t.Any]]] = [
    ("GET", "/", {}),
    ("GET", "/hello", {}),
    ("GET", "/hello/<script>alert(1)</script>", {}),
    ("GET", "/user/John%20Doe", {}),
    ("GET", "/post/42", {}),
    ("GET", "/post/forty-two", {}),
    ("GET", "/path/a/b/c", {}),
    ("GET", "/projects", {}),
    ("GET", "/projects?x=1", {}),
    ("GET", "/projects/", {}),
    ("GET", "/about", {}),
    ("GET", "/about/", {}),
    ("POST", "/about", {}),
    ("HEAD", "/about", {}),
    ("OPTIONS", "/about", {}),
    ("OPTIONS", "/login", {}),
    ("GET", "/urls", {}),
    ("GET", "/login", {}),
    ("POST", "/login", {"data": {"username": ""}}),
    ("POST", "/login", {"data": {"username": "ada"}}),
    ("GET", "/", {}),
    ("GET", "/logout", {}),
    ("GET", "/", {}),
    ("POST", "/logout", {}),
    ("POST", "/items", {"json": {"name": "widget"}}),
    ("POST", "/items", {"data": "not json", "content_type": "application/json"}),
    ("GET", "/search?key=flask+web", {}),
    ("GET", "/search", {}),
    ("POST", "/upload", {"data": {"the_file": (io.BytesIO(b"12345"), "notes.txt")}}),
    ("GET", "/cookie/read", {}),
    ("GET", "/cookie/set", {}),
    ("GET", "/cookie/read", {}),
    ("GET", "/go", {}),
    ("GET", "/denied", {}),
    ("GET", "/no/such/page", {}),
    ("GET", "/me", {}),
    ("GET", "/users", {}),
    ("GET", "/jsonify", {}),
    ("GET", "/tuple", {}),
    ("GET", "/made", {}),
    ("GET", "/whoami?as=grace", {}),
    ("GET", "/whoami", {}),
    ("GET", "/stream?who=ada", {}),
    ("GET", "/log", {}),
    ("GET", "/static/style.css", {}),
    ("GET", "/static/missing.css", {}),
]

#: Headers whose value must match exactly; Set-Cookie only in presence (the signatures differ).
COMPARED_HEADERS = (
    "Content-Type",
    "Content-Length",
    "Location",
    "Allow",
    "Vary",
    "X-Something",
    "X-Tea",
    "X-Served-By",
    "Content-Disposition",
)


def _observe(response: t.Any) -> dict[str, t.Any]:
    seen: dict[str, t.Any] = {"status": response.status, "body": response.get_data()}
    for name in COMPARED_HEADERS:
        seen[name] = response.headers.get(name)
    seen["Set-Cookie names"] = sorted(
        value.split("=", 1)[0] for value in response.headers.getlist("Set-Cookie")
    )
    return seen


@pytest.fixture(scope="module")
def observations(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, t.Any]]]:
    root = tmp_path_factory.mktemp("quickstart")
    (root / "static").mkdir()
    (root / "static" / "style.css").write_text("body { color: #333 }\n")
    seen: dict[str, list[dict[str, t.Any]]] = {}
    for name, fw in FRAMEWORKS.items():
        app = build_quickstart(fw, root)
        client = app.test_client()
        rows = []
        for method, path, kwargs in REQUESTS:
            kwargs = dict(kwargs)
            if "data" in kwargs and isinstance(kwargs["data"], dict):
                # File objects are consumed by a request: give each framework fresh ones.
                kwargs["data"] = {
                    k: (io.BytesIO(v[0].getvalue()), v[1]) if isinstance(v, tuple) else v
                    for k, v in kwargs["data"].items()
                }
            rows.append(_observe(client.open(path, method=method, **kwargs)))
        seen[name] = rows
    return seen


@pytest.mark.parametrize("index", range(len(REQUESTS)), ids=[f"{m} {p}" for m, p, _ in REQUESTS])
def test_same_answer_as_flask(observations: dict[str, list[dict[str, t.Any]]], index: int) -> None:
    assert observations["uwsgiapp.web"][index] == observations["flask"][index]


def test_the_table_exercises_what_it_claims(
    observations: dict[str, list[dict[str, t.Any]]],
) -> None:
    # Guard against a table where both frameworks agree because nothing interesting happens.
    rows = {f"{m} {p}": row for (m, p, _), row in zip(REQUESTS, observations["flask"], strict=True)}
    assert rows["GET /projects"]["status"] == "308 PERMANENT REDIRECT"
    assert rows["OPTIONS /about"]["Allow"] is not None
    assert rows["POST /about"]["status"].startswith("405")
    assert rows["GET /no/such/page"]["body"] == b"page not found: /no/such/page"
    assert rows["GET /stream?who=ada"]["body"].count(b"for ada") == 3
    assert rows["GET /cookie/set"]["Set-Cookie names"] == ["username"]
    assert rows["GET /cookie/read"]["body"] == b"username cookie: the username"
    logged_in = [r["body"] for r in observations["uwsgiapp.web"] if r["body"].startswith(b"Logged")]
    assert logged_in == [b"Logged in as ada"]
