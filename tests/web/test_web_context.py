"""Context locals: request, session, g, current_app; threads; streaming; app contexts."""

from __future__ import annotations

import contextlib
import gc
import io
import subprocess
import sys
import threading
import typing as t
import weakref
from collections.abc import Iterator
from pathlib import Path

import pytest
from werkzeug.test import EnvironBuilder

from uwsgiapp.web import (
    App,
    Response,
    abort,
    after_this_request,
    copy_current_request_context,
    current_app,
    g,
    has_app_context,
    has_request_context,
    request,
    session,
    stream_with_context,
)


@pytest.mark.parametrize(
    ("name", "proxy", "message"),
    [
        ("request", lambda: request.path, "outside of request context"),
        ("session", lambda: session.get("x"), "outside of request context"),
        ("g", lambda: g.x, "outside of application context"),
        ("current_app", lambda: current_app.name, "outside of application context"),
    ],
)
def test_proxies_outside_a_request_raise_and_say_why(
    name: str, proxy: t.Callable[[], t.Any], message: str
) -> None:
    with pytest.raises(RuntimeError, match=message):
        proxy()


def test_request_context_binds_everything_and_unwinds() -> None:
    app = App(__name__)
    app.secret_key = "k"
    assert not has_request_context() and not has_app_context()
    with app.test_request_context("/a?x=1", method="POST"):
        assert has_request_context() and has_app_context()
        assert request.path == "/a" and request.args["x"] == "1" and request.method == "POST"
        assert current_app.name == app.name
        g.value = 1
        assert g.get("value") == 1 and "value" in g
        assert session == {}
    assert not has_request_context() and not has_app_context()


def test_the_debuggers_console_runs_in_the_failed_requests_context() -> None:
    # werkzeug's debugger takes the contexts the app hands it (environ's
    # "werkzeug.debug.preserve_context", as Flask's wsgi_app does) and enters them around each
    # console command: request.path there was "working outside of request context".
    app = App("debugged")
    app.config["PROPAGATE_EXCEPTIONS"] = True

    @app.route("/boom")
    def boom() -> str:
        g.user = "ann"
        raise ZeroDivisionError

    kept: list[t.Any] = []
    environ = EnvironBuilder(path="/boom").get_environ()
    environ["werkzeug.debug.preserve_context"] = kept.append
    with pytest.raises(ZeroDivisionError):
        app.wsgi_app(environ, lambda *args: lambda data: None)
    assert not has_request_context()
    with contextlib.ExitStack() as stack:
        for context in kept:
            stack.enter_context(context)
        assert (request.path, current_app.name, g.user) == ("/boom", "debugged", "ann")


def test_app_context_alone_gives_g_but_not_request() -> None:
    app = App(__name__)
    with app.app_context():
        g.x = 1
        assert current_app.import_name == __name__
        with pytest.raises(RuntimeError, match="request context"):
            request.args  # noqa: B018
        # A request pushed inside the same app's context shares its g.
        with app.test_request_context("/"):
            assert g.x == 1
    with app.app_context():
        assert "x" not in g  # a new app context starts with an empty g


def test_g_is_per_request() -> None:
    app = App(__name__)

    @app.route("/")
    def index() -> str:
        seen = g.get("mark", "unset")
        g.mark = "set"
        return seen

    client = app.test_client()
    assert client.get("/").data == b"unset"
    assert client.get("/").data == b"unset"


def test_request_attributes_from_routing() -> None:
    app = App(__name__)

    @app.before_request
    def check() -> None:
        # Matching happens on push, so hooks already know the endpoint.
        g.endpoint_in_hook = request.endpoint

    @app.route("/u/<int:n>")
    def user(n: int) -> dict[str, t.Any]:
        return {
            "endpoint": request.endpoint,
            "rule": request.url_rule.rule if request.url_rule else None,
            "args": request.view_args,
            "hook": g.endpoint_in_hook,
        }

    assert app.test_client().get("/u/5").json == {
        "endpoint": "user",
        "rule": "/u/<int:n>",
        "args": {"n": 5},
        "hook": "user",
    }


def test_threads_see_their_own_request() -> None:
    app = App(__name__)
    barrier = threading.Barrier(8)

    @app.route("/<int:n>")
    def echo(n: int) -> str:
        g.n = n
        barrier.wait(timeout=5)  # every thread is inside its request at the same time
        return f"{request.view_args['n'] if request.view_args else '?'}:{g.n}:{request.path}"

    results: dict[int, bytes] = {}

    def worker(n: int) -> None:
        results[n] = app.test_client().get(f"/{n}").data

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=10)
    assert results == {n: f"{n}:{n}:/{n}".encode() for n in range(8)}


def _call(app: App, path: str) -> tuple[list[t.Any], t.Iterable[bytes]]:
    heads: list[t.Any] = []
    environ = EnvironBuilder(path=path).get_environ()
    body = app(environ, lambda status, headers, exc_info=None: heads.append(status))  # type: ignore[arg-type,func-returns-value]
    return heads, body


def test_stream_with_context_keeps_request_and_defers_teardown() -> None:
    app = App(__name__)
    events: list[str] = []

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        events.append(f"teardown {request.path}")

    @app.route("/stream")
    def stream() -> Response:
        g.greeting = "hi"

        @stream_with_context
        def generate() -> Iterator[str]:
            events.append("start")
            yield f"{g.greeting} {request.args.get('name', 'anon')}"
            yield f" at {request.path}"
            events.append("end")

        return Response(generate())

    heads, body = _call(app, "/stream?name=ada")
    assert heads == ["200 OK"]
    assert events == []  # neither the generator nor teardown ran yet
    assert not has_request_context()  # the server iterates outside the request...
    chunks = []
    for chunk in body:
        chunks.append(chunk)
        assert not has_request_context()  # ...and each step leaves it unbound again
    getattr(body, "close", lambda: None)()
    assert b"".join(chunks) == b"hi ada at /stream"
    assert events == ["start", "end", "teardown /stream"]


def test_stream_with_context_teardown_runs_when_closed_early() -> None:
    app = App(__name__)
    events: list[str] = []

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        events.append("teardown")

    @app.route("/")
    def index() -> t.Any:
        def generate() -> Iterator[str]:
            try:
                yield "a"
                yield "b"
            finally:
                events.append(f"closed in {request.path}")

        return stream_with_context(generate())

    _, body = _call(app, "/")
    iterator = iter(body)
    assert next(iterator) == b"a"
    getattr(body, "close")()  # noqa: B009 - the WSGI server closes it
    assert events == ["closed in /", "teardown"]


def test_plain_generator_reading_request_fails_clearly() -> None:
    app = App(__name__)

    @app.route("/")
    def index() -> t.Any:
        def generate() -> Iterator[str]:
            yield request.path

        return generate()

    _, body = _call(app, "/")
    with pytest.raises(RuntimeError, match="stream_with_context"):
        list(body)


def test_stream_with_context_outside_a_request_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="while handling a request"):
        stream_with_context(iter(["x"]))


def test_after_this_request() -> None:
    app = App(__name__)

    @app.route("/")
    def index() -> str:
        @after_this_request
        def add_header(response: Response) -> Response:
            response.headers["X-Once"] = "yes"
            return response

        return "ok"

    @app.route("/other")
    def other() -> str:
        return "other"

    client = app.test_client()
    assert client.get("/").headers["X-Once"] == "yes"
    assert "X-Once" not in client.get("/other").headers
    with pytest.raises(RuntimeError):
        after_this_request(lambda r: r)


def test_context_is_popped_even_when_the_app_raises() -> None:
    app = App(__name__)
    app.testing = True

    @app.route("/")
    def index() -> str:
        raise KeyError("boom")

    with pytest.raises(KeyError):
        app.test_client().get("/")
    assert not has_request_context() and not has_app_context()


# -- request lifetime: freed by reference counting, not by the cycle collector -----------------


@contextlib.contextmanager
def _gc_disabled() -> Iterator[None]:
    """Only reference counting frees objects inside: a reference cycle would keep them alive."""
    gc.collect()
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _upload_app() -> tuple[App, list[weakref.ref[t.Any]]]:
    app = App(__name__)
    app.secret_key = "k"
    refs: list[weakref.ref[t.Any]] = []

    @app.route("/upload", methods=["POST"])
    def upload() -> str:
        refs.append(weakref.ref(request._get_current_object()))  # type: ignore[attr-defined]
        refs.append(weakref.ref(request.stream))
        session["seen"] = True
        return str(len(request.get_data()))

    @app.route("/stream", methods=["POST"])
    def stream() -> Response:
        refs.append(weakref.ref(request._get_current_object()))  # type: ignore[attr-defined]

        @stream_with_context
        def generate() -> Iterator[str]:
            yield str(len(request.get_data()))

        return Response(generate())

    @app.route("/abort", methods=["POST"])
    def abort_after_reading() -> str:
        refs.append(weakref.ref(request._get_current_object()))  # type: ignore[attr-defined]
        request.get_data()
        abort(400)

    @app.route("/boom", methods=["POST"])
    def boom() -> str:
        refs.append(weakref.ref(request._get_current_object()))  # type: ignore[attr-defined]
        request.get_data()
        raise RuntimeError("boom")

    return app, refs


@pytest.mark.parametrize("path", ["/upload", "/stream"])
def test_request_and_body_are_freed_when_the_test_client_response_closes(path: str) -> None:
    app, refs = _upload_app()
    client = app.test_client()
    with _gc_disabled():
        response = client.post(path, data=b"x" * 100_000)
        assert response.data == b"100000"
        response.close()
        del response
        assert refs and [ref() for ref in refs] == [None] * len(refs)


@pytest.mark.parametrize("path", ["/upload", "/stream"])
def test_request_and_body_are_freed_when_the_server_drops_the_environ(path: str) -> None:
    app, refs = _upload_app()
    with _gc_disabled():
        environ = EnvironBuilder(path=path, method="POST", data=b"y" * 100_000).get_environ()
        input_ref = weakref.ref(environ["wsgi.input"])  # the body as the server hands it over
        heads: list[str] = []
        body = app(environ, lambda status, headers, exc_info=None: heads.append(status))  # type: ignore[arg-type,func-returns-value]
        assert b"".join(body) == b"100000" and heads == ["200 OK"]
        getattr(body, "close", lambda: None)()
        # The request no longer refers to itself through the environ (as after Flask's pop()).
        assert environ["werkzeug.request"] is None
        del body, environ  # what a WSGI server does once the response is closed
        assert refs and [ref() for ref in refs] == [None] * len(refs)
        assert input_ref() is None


@pytest.mark.parametrize(
    ("path", "method", "status"),
    [
        ("/abort", "POST", "400 BAD REQUEST"),  # an HTTPException raised by the view
        ("/boom", "POST", "500 INTERNAL SERVER ERROR"),  # an unhandled error, logged
        ("/nowhere", "POST", "404 NOT FOUND"),  # a routing error, raised again at dispatch
        ("/upload", "GET", "405 METHOD NOT ALLOWED"),
    ],
)
def test_request_and_body_are_freed_after_an_error_response(
    path: str, method: str, status: str
) -> None:
    """Tracebacks hold frames that hold the context: none of them may outlive the response."""
    app, refs = _upload_app()
    logged: list[str] = []
    # pytest's log capture would keep the record, and so the traceback: note the message only.
    app.log_exception = lambda e: logged.append(repr(e))  # type: ignore[method-assign]
    with _gc_disabled():
        environ = EnvironBuilder(path=path, method=method, data=b"e" * 100_000).get_environ()
        input_ref = weakref.ref(environ["wsgi.input"])
        heads: list[str] = []
        body = app(environ, lambda status, headers, exc_info=None: heads.append(status))  # type: ignore[arg-type,func-returns-value]
        b"".join(body)
        getattr(body, "close", lambda: None)()
        assert heads == [status]
        del body, environ
        assert [ref() for ref in refs] == [None] * len(refs)
        assert input_ref() is None
    assert logged == (["RuntimeError('boom')"] if path == "/boom" else [])


def test_request_is_freed_when_an_error_propagates() -> None:
    app, refs = _upload_app()
    app.config["PROPAGATE_EXCEPTIONS"] = True
    with _gc_disabled():
        environ = EnvironBuilder(path="/boom", method="POST", data=b"p" * 1000).get_environ()
        with pytest.raises(RuntimeError, match="boom"):
            app(environ, lambda status, headers, exc_info=None: None)  # type: ignore[arg-type,func-returns-value]
        del environ
        assert refs and refs[0]() is None


_G_USES = """
from uwsgiapp.web import App, g

app = App(__name__)


@app.before_request
def load_user() -> None:
    g.user = "ann"
    g.start = 1.5


@app.route("/")
def index() -> str:
    del g.start
    user: str = g.user
    return f"{user} {g.get('user')} {'user' in g} {g.pop('user', None)}"
"""


def test_g_attributes_type_check_under_mypy_strict(tmp_path: Path) -> None:
    # Flask's g passes mypy --strict for any attribute; every g.x was an attr-defined error.
    source = tmp_path / "uses_g.py"
    source.write_text(_G_USES)
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--strict",
            "--cache-dir",
            str(tmp_path / "cache"),
            str(source),
        ],
        cwd=Path(__file__).resolve().parents[2],  # finds this checkout's uwsgiapp
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_g_attributes_at_run_time() -> None:
    app = App(__name__)
    with app.app_context():
        g.user = "ann"
        assert g.user == "ann" and "user" in g
        del g.user
        with pytest.raises(AttributeError, match="user"):
            g.user  # noqa: B018


def test_copy_current_request_context_runs_a_function_in_another_thread() -> None:
    app = App(__name__)
    app.secret_key = "k"
    log: list[t.Any] = []

    @app.teardown_request
    def teardown(exc: BaseException | None) -> None:
        log.append(("teardown", threading.current_thread().name, g.get("mark")))

    @app.route("/work", methods=["POST"])
    def work() -> str:
        session["user"] = "ann"
        g.mark = "view"

        @copy_current_request_context
        def in_thread(n: int) -> str:
            session["seen"] = n  # the same session object: saved with this response
            g.mark = "thread"  # a g of the thread's own
            name = request.files["f"].filename
            return f"{request.path} {request.args['x']} {session['user']} {name}"

        results: list[str] = []
        thread = threading.Thread(target=lambda: results.append(in_thread(3)), name="worker")
        thread.start()
        thread.join()
        # The copy's teardown left the request (and its uploaded file) open.
        return f"{results[0]} {g.mark} {request.files['f'].read().decode()}"

    client = app.test_client()
    with client:
        upload = {"f": (io.BytesIO(b"data"), "a.txt")}
        assert client.post("/work?x=1", data=upload).data == b"/work 1 ann a.txt view data"
        assert session == {"user": "ann", "seen": 3}
    assert log == [("teardown", "worker", "thread"), ("teardown", "MainThread", "view")]
    with client.session_transaction() as sess:
        assert sess == {"user": "ann", "seen": 3}
    with pytest.raises(RuntimeError, match="only be used while handling a request"):
        copy_current_request_context(lambda: None)
