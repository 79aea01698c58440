"""load_app / parse_spec: every spec form, and errors that say which step failed."""

from __future__ import annotations

import logging
import os
import socket
import sys
import textwrap
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from uwsgiapp.importer import AppImportError, AppSpec, load_app, parse_spec
from uwsgiapp.server.logs import borrowed_gunicorn_logger


@pytest.fixture
def pkgdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[Path, str]]:
    """A directory holding a uniquely named module; sys.path, cwd and sys.modules restored."""
    name = f"appmod_{uuid.uuid4().hex[:8]}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path, name
    for mod in set(sys.modules) - before:
        del sys.modules[mod]


def write(path: Path, code: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(code))
    return path


APP_CODE = """
    def app(environ, start_response):
        return [b"app"]

    def application(environ, start_response):
        return [b"application"]

    class Holder:
        def wsgi(self, environ, start_response):
            return [b"sub"]

    holder = Holder()

    def make(greeting="hi", *, n=1):
        def inner(environ, start_response):
            return [f"{greeting}{n}".encode()]
        return inner

    not_callable = 42
"""


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ("{m}", AppSpec(module="{m}")),
        ("{m}:app", AppSpec(module="{m}", attrs=("app",))),
        ("{m}:holder.wsgi", AppSpec(module="{m}", attrs=("holder", "wsgi"))),
        ("{m}:make()", AppSpec(module="{m}", attrs=("make",), call=True)),
        (
            "{m}:make('x', n=2)",
            AppSpec(module="{m}", attrs=("make",), call=True, args=("x",), kwargs=(("n", 2),)),
        ),
        ("pkg.sub:app", AppSpec(module="pkg.sub", attrs=("app",))),
        ("dir/file.py:app", AppSpec(path="dir/file.py", attrs=("app",))),
        ("file.py", AppSpec(path="file.py")),
        ('{m}:make("a:b")', AppSpec(module="{m}", attrs=("make",), call=True, args=("a:b",))),
    ],
)
def test_parse_spec(spec: str, expected: AppSpec) -> None:
    spec = spec.replace("{m}", "mod")
    fix = {"module": expected.module.replace("{m}", "mod")} if expected.module else {}
    assert parse_spec(spec) == AppSpec(
        **{
            "path": expected.path,
            "attrs": expected.attrs,
            "call": expected.call,
            "args": expected.args,
            "kwargs": expected.kwargs,
            **fix,
        }
    )


@pytest.mark.parametrize(
    "spec",
    [
        "",
        ":app",
        "mod:",
        "not a module:app",
        "mod:app[0]",
        "mod:make(__import__('os'))",
        "mod:make(x)",
        "mod:make(*a)",
        "mod:make(**k)",
        "mod:1+1",
        "mod:make()()",
        "mod:(",
    ],
)
def test_parse_spec_refuses(spec: str) -> None:
    with pytest.raises(AppImportError) as info:
        parse_spec(spec)
    assert info.value.kind == "bad-spec"


def call(app: object) -> bytes:
    assert callable(app)
    return b"".join(app({}, lambda *a: None))


@pytest.mark.parametrize(
    ("attr", "body"),
    [
        ("", b"app"),
        (":app", b"app"),
        (":application", b"application"),
        (":holder.wsgi", b"sub"),
        (":make()", b"hi1"),
        (":make('yo', n=3)", b"yo3"),
    ],
)
def test_load_module_forms(pkgdir: tuple[Path, str], attr: str, body: bytes) -> None:
    root, name = pkgdir
    write(root / f"{name}.py", APP_CODE)
    assert call(load_app(name + attr)) == body


def test_default_falls_back_to_application(pkgdir: tuple[Path, str]) -> None:
    root, name = pkgdir
    write(root / f"{name}.py", "def application(e, s):\n    return [b'only']\n")
    assert call(load_app(name)) == b"only"


@pytest.mark.parametrize("attr", ["", ":app", ":make('f', n=0)"])
def test_load_file_forms(pkgdir: tuple[Path, str], attr: str) -> None:
    root, name = pkgdir
    write(root / "sub" / f"{name}.py", textwrap.dedent(APP_CODE) + f"\nimport helper_{name}\n")
    write(root / "sub" / f"helper_{name}.py", "X = 1\n")  # sibling import works
    got = call(load_app(f"sub/{name}.py{attr}"))
    assert got in (b"app", b"f0")


def test_chdir_and_pythonpath(pkgdir: tuple[Path, str], tmp_path: Path) -> None:
    root, name = pkgdir
    write(root / "proj" / f"{name}.py", APP_CODE)
    write(root / "libs" / f"lib_{name}.py", "VALUE = b'lib'\n")
    write(
        root / "proj" / f"w_{name}.py",
        f"from lib_{name} import VALUE\napp = lambda e, s: [VALUE]\n",
    )
    app = load_app(f"w_{name}", chdir=str(root / "proj"), pythonpath=[str(root / "libs")])
    assert call(app) == b"lib"
    assert os.getcwd() == str(root / "proj")


def test_missing_module(pkgdir: tuple[Path, str]) -> None:
    _, name = pkgdir
    with pytest.raises(AppImportError, match=f"No module named '{name}'") as info:
        load_app(f"{name}:app")
    assert info.value.kind == "missing-module"


def test_missing_file(pkgdir: tuple[Path, str]) -> None:
    with pytest.raises(AppImportError, match=r"No module named 'nope/x\.py'") as info:
        load_app("nope/x.py:app")
    assert info.value.kind == "missing-module"


def test_inner_missing_import_is_not_a_missing_module(pkgdir: tuple[Path, str]) -> None:
    root, name = pkgdir
    write(root / f"{name}.py", "import definitely_not_installed_xyz\napp = None\n")
    with pytest.raises(AppImportError) as info:
        load_app(f"{name}:app")
    assert info.value.kind == "import-failed"
    msg = str(info.value)
    assert f"error while importing module '{name}'" in msg
    assert "Traceback" in msg and "definitely_not_installed_xyz" in msg
    assert "<frozen importlib" not in msg
    # another virtualenv's package: which interpreter runs is said (it was not)
    assert msg.splitlines()[-1].startswith("ModuleNotFoundError: No module named")  # one line
    assert f"(this uwsgiapp runs {sys.executable}, prefix {sys.prefix}: is" in msg


def test_exception_inside_module_has_traceback(pkgdir: tuple[Path, str]) -> None:
    root, name = pkgdir
    write(root / f"{name}.py", "x = 1\n\ndef boom():\n    raise RuntimeError('kaput')\n\nboom()\n")
    with pytest.raises(AppImportError) as info:
        load_app(name)
    msg = str(info.value)
    assert "RuntimeError: kaput" in msg and f"{name}.py" in msg and "line 4" in msg


def test_syntax_error_in_file(pkgdir: tuple[Path, str]) -> None:
    root, name = pkgdir
    write(root / f"{name}.py", "def (:\n")
    with pytest.raises(AppImportError, match="SyntaxError") as info:
        load_app(f"./{name}.py:app")
    assert info.value.kind == "import-failed"
    assert name not in sys.modules


@pytest.mark.parametrize(
    ("attr", "kind", "text"),
    [
        (":nope", "missing-attribute", "has no attribute 'nope'"),
        (":holder.nope", "missing-attribute", "has no attribute 'holder.nope'"),
        (":not_callable", "not-callable", "not callable"),
        (":not_callable()", "not-callable", "cannot be a factory"),
        (":make(1, 2, 3)", "factory-failed", "TypeError"),
        # A factory named without its call would fail each request with a TypeError.
        (":make", "not-callable", r"looks like an app factory; call it: '\w+:make\(\)'"),
    ],
)
def test_attribute_errors(pkgdir: tuple[Path, str], attr: str, kind: str, text: str) -> None:
    root, name = pkgdir
    write(root / f"{name}.py", APP_CODE)
    with pytest.raises(AppImportError, match=text) as info:
        load_app(name + attr)
    assert info.value.kind == kind


def test_no_default_attribute(pkgdir: tuple[Path, str]) -> None:
    root, name = pkgdir
    write(root / f"{name}.py", "wsgi = 1\n")
    with pytest.raises(AppImportError, match="has no attribute 'app' or 'application'"):
        load_app(name)


def test_no_default_attribute_names_a_flask_style_factory(pkgdir: tuple[Path, str]) -> None:
    root, name = pkgdir
    write(root / f"{name}.py", "def create_app(config=None):\n    pass\n")
    with pytest.raises(AppImportError, match=rf"e\.g\. {name}:create_app\(\)"):
        load_app(name)


def test_a_wsgi_function_is_not_taken_for_a_factory(pkgdir: tuple[Path, str]) -> None:
    root, name = pkgdir
    write(root / f"{name}.py", "def app(environ, start_response, *rest):\n    return [b'f']\n")
    assert call(load_app(f"{name}:app")) == b"f"


@pytest.mark.parametrize(
    "code",
    [
        "async def app(scope, receive, send):\n    pass\n",
        # Starlette's, FastAPI's, Django's get_asgi_application(): an async __call__
        "class App:\n    async def __call__(self, scope, receive, send):\n        pass\n"
        "app = App()\ndef make():\n    return App()\n",
        # a partial of either (review: it passed)
        "import functools\nasync def asgi(scope, receive, send, x):\n    pass\n"
        "app = functools.partial(asgi, x=2)\n",
        "import functools\nclass App:\n    async def __call__(self, scope, receive, send):\n"
        "        pass\napp = functools.partial(App())\n",
    ],
)
def test_an_asgi_app_is_refused_at_its_import(pkgdir: tuple[Path, str], code: str) -> None:
    # It passed --check-config, and every request was a 500 ("missing 1 required positional
    # argument: 'send'"); a bare async function was taken for an app factory.
    root, name = pkgdir
    write(root / f"{name}.py", code)
    for spec in [f"{name}:app", *([f"{name}:make()"] if "make" in code else [])]:
        with pytest.raises(AppImportError, match=r"is an ASGI app .*serve it with an ASGI server"):
            load_app(spec)
    # A WSGI app whose class has a plain __call__ is one.
    write(
        root / f"{name}w.py",
        "class W:\n    def __call__(self, e, s):\n        return []\nw = W()\n",
    )
    assert load_app(f"{name}w:w") is not None


def test_bad_chdir(pkgdir: tuple[Path, str]) -> None:
    with pytest.raises(AppImportError, match="cannot change directory"):
        load_app("x:app", chdir="/nonexistent-dir-for-test")


def test_one_wsgi_app_type() -> None:
    """The importer's WSGIApp is the WSGI contract's, not a second definition of it."""
    import uwsgiapp.importer
    import uwsgiapp.wsgi.contract

    assert uwsgiapp.importer.WSGIApp is uwsgiapp.wsgi.contract.WSGIApp
    assert "StartResponse" not in vars(uwsgiapp.importer)


@pytest.mark.parametrize("filename", ["site.wsgi", "keystone-wsgi-public"])
def test_file_of_any_name_loads_as_python(pkgdir: tuple[Path, str], filename: str) -> None:
    """uWSGI's wsgi-file takes any file (indico.wsgi, keystone-wsgi-public), not only .py."""
    root, _ = pkgdir
    write(root / filename, "def application(environ, start_response):\n    return [b'w']\n")
    assert call(load_app(f"./{filename}")) == b"w"
    assert call(load_app(f"{root / filename}:application")) == b"w"
    assert not (root / "__pycache__").exists()  # no cache named after a guessed suffix


def test_file_of_any_name_shadowing_a_py_file_runs_its_own_code(pkgdir: tuple[Path, str]) -> None:
    root, _ = pkgdir
    write(root / "proj.py", "def application(environ, start_response):\n    return [b'py']\n")
    assert call(load_app("./proj.py")) == b"py"
    write(root / "proj.wsgi", "def application(environ, start_response):\n    return [b'w']\n")
    assert call(load_app("./proj.wsgi")) == b"w"


def test_a_wsgi_file_named_after_its_package_imports_the_package(pkgdir: tuple[Path, str]) -> None:
    # Flask's mod_wsgi recipe: yourapplication.wsgi does `from yourapplication import app`.
    root, name = pkgdir
    package = root / f"{name}_shop"
    package.mkdir()
    write(
        package / "__init__.py",
        "def app(environ, start_response):\n    return [b'pkg']\n",
    )
    write(root / f"{name}_shop.wsgi", f"from {name}_shop import app as application\n")
    assert call(load_app(f"./{name}_shop.wsgi")) == b"pkg"
    assert sys.modules[f"{name}_shop"].__file__ == str(package / "__init__.py")


def test_a_wsgi_file_never_stands_in_for_a_standard_module(pkgdir: tuple[Path, str]) -> None:
    root, _ = pkgdir
    site = sys.modules["site"]
    write(root / "site.wsgi", "def application(environ, start_response):\n    return [b's']\n")
    assert call(load_app("./site.wsgi")) == b"s"
    assert sys.modules["site"] is site


def test_a_port_taken_at_import_names_the_old_code_s_server(pkgdir: tuple[Path, str]) -> None:
    # prometheus_flask_exporter's start_http_server at import: at a HUP the old code's server
    # still holds the port, and the reload failed with a bare "Address already in use".
    root, name = pkgdir
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    port = taken.getsockname()[1]
    write(
        root / f"metrics_{name}.py",
        f"""
        import socket
        server = socket.socket()
        server.bind(("127.0.0.1", {port}))
        application = None
        """,
    )
    try:
        with pytest.raises(AppImportError) as info:
            load_app(f"metrics_{name}:application")
    finally:
        taken.close()
    assert "Address already in use" in str(info.value)
    assert "at a HUP, by the one the old code started" in str(info.value)
    assert "--lazy-apps" in str(info.value)


@pytest.mark.parametrize(
    ("line", "module", "said"),
    [
        (
            "from uwsgidecorators import postfork",
            "uwsgidecorators",
            "from uwsgiapp import postfork",
        ),
        ("import uwsgi", "uwsgi", "guard its uses"),
        # prometheus_flask_exporter's UWsgiPrometheusMetrics imports it: the observe trial
        ("import uwsgi", "uwsgi", "MultiprocessInternalPrometheusMetrics"),
    ],
)
def test_uwsgi_s_own_modules_name_what_to_use_instead(
    pkgdir: tuple[Path, str], line: str, module: str, said: str
) -> None:
    """An app importing uwsgidecorators (the @postfork idiom) failed with a bare
    ModuleNotFoundError: no pointer to uwsgiapp.postfork."""
    root, name = pkgdir
    write(root / f"deco_{name}.py", f"{line}\napplication = None\n")
    with pytest.raises(AppImportError) as info:
        load_app(f"deco_{name}:application")
    text = str(info.value)
    assert f"No module named {module!r}" in text
    assert f"{module!r} is uWSGI's own module" in text and said in text
    # From a file (wsgi-file) too.
    with pytest.raises(AppImportError, match="uwsgiapp has none"):
        load_app(str(root / f"deco_{name}.py"))


def test_an_app_taking_gunicorns_logger_is_told_it_has_no_handler_here(
    pkgdir: tuple[Path, str],
) -> None:
    # Flask's "use gunicorn's handlers" snippet left the app's INFO lines nowhere, unsaid.
    root, name = pkgdir
    code = (
        "import logging\n"
        "gunicorn_logger = logging.getLogger('gunicorn.error')\n"
        "handlers = gunicorn_logger.handlers\n"
        "def app(e, s):\n    return [b'g']\n"
    )
    write(root / f"{name}.py", code)
    said: list[str] = []
    catch = logging.Handler()
    catch.emit = lambda record: said.append(record.getMessage())  # type: ignore[method-assign]
    ours, top = logging.getLogger("uwsgiapp.error"), logging.getLogger()
    kept = top.handlers[:]
    top.handlers.clear()  # as where the app configured no logging (pytest's are put back)
    ours.addHandler(catch)
    try:
        assert call(load_app(name)) == b"g"
        (line,) = [s for s in said if "gunicorn.error" in s]
        assert "has no handler here" in line and "logging.getLogger('uwsgiapp')" in line
        top.addHandler(sink := logging.NullHandler())  # basicConfig's: its records reach it
        assert not borrowed_gunicorn_logger()
        top.removeHandler(sink)
        logging.getLogger("gunicorn.error").addHandler(logging.NullHandler())  # one it set up
        assert not borrowed_gunicorn_logger()
    finally:
        ours.removeHandler(catch)
        top.handlers[:] = kept
        del logging.root.manager.loggerDict["gunicorn.error"]


def _package_with_models(tmp: Path, name: str) -> Path:
    """The package ``name`` under ``tmp``, with a ``models`` module for relative imports."""
    write(tmp / name / "__init__.py", "")
    write(tmp / name / "models.py", "X = 1\n")
    return tmp / name


@pytest.mark.parametrize("spec", ["{name}app:app", "{name}app.py:app"])
def test_a_module_run_outside_its_package_is_told_its_package_name(
    pkgdir: tuple[Path, str], spec: str
) -> None:
    """flask run finds the package (mypkg.app); the error said only "attempted relative
    import with no known parent package"."""
    tmp, name = pkgdir
    package = _package_with_models(tmp, name)
    write(package / f"{name}app.py", "from . import models\napp = lambda e, s: []\n")
    with pytest.raises(AppImportError) as info:
        load_app(spec.format(name=name), chdir=str(package))
    said = str(info.value)
    assert f"is in the package {name!r} (its directory has __init__.py)" in said, said
    assert f"name the app by its package, {name}.{name}app:app, with {tmp} on the path" in said


def test_the_package_hint_names_the_apps_module_not_the_one_that_failed(
    pkgdir: tuple[Path, str],
) -> None:
    """wsgi.py imports views.py, whose relative import fails: the hint named views:app."""
    tmp, name = pkgdir
    package = _package_with_models(tmp, name)
    write(package / f"{name}views.py", "from . import models\n")
    write(package / f"{name}wsgi.py", f"import {name}views\napp = lambda e, s: []\n")
    with pytest.raises(AppImportError) as info:
        load_app(f"{name}wsgi:app", chdir=str(package))
    assert f"name the app by its package, {name}.{name}wsgi:app, with {tmp}" in str(info.value)


def test_the_package_hint_ends_at_the_root(monkeypatch: pytest.MonkeyPatch) -> None:
    """An __init__.py in / (a project copied to a container's root) looped for ever."""
    from uwsgiapp import importhints

    monkeypatch.setattr(importhints.os.path, "isfile", lambda path: True)
    hint = importhints.failure_hint(
        ImportError("attempted relative import with no known parent package"),
        lambda: ("/srv/app.py", "app"),
    )
    assert "name the app by its package, srv.app:app, with / on the path" in hint, hint


def test_a_package_that_raises_at_import_is_the_apps_error_once(pkgdir: tuple[Path, str]) -> None:
    """The hint's lookup imported the package again, whose RuntimeError then escaped as a
    raw traceback (exit 1, its code run twice)."""
    tmp, name = pkgdir
    write(tmp / name / "__init__.py", "import builtins\nbuiltins.RUNS = getattr(builtins, "
          "'RUNS', 0) + 1\nraise RuntimeError('no config')\n")  # fmt: skip
    write(tmp / name / "app.py", "app = lambda e, s: []\n")
    with pytest.raises(AppImportError, match="no config") as info:
        load_app(f"{name}.app:app")
    assert info.value.kind == "import-failed"
    import builtins

    assert getattr(builtins, "RUNS", 0) == 1
    del builtins.RUNS  # type: ignore[attr-defined]


def test_a_missing_app_name_is_told_the_one_the_module_has(pkgdir: tuple[Path, str]) -> None:
    """'wsgiapp:app' of a module defining 'application', a Flask app named 'server': no hint."""
    root, name = pkgdir
    write(root / f"{name}.py", "def application(environ, start_response):\n    return [b'a']\n")
    with pytest.raises(
        AppImportError, match=rf"has no attribute 'app': did you mean {name}:application\?"
    ):
        load_app(f"{name}:app")
    other = name + "_flask"
    # Flask's request proxy in the module too: looking it over raised RuntimeError (a review)
    write(
        root / f"{other}.py",
        "import flask\nfrom flask import g, request\nserver = flask.Flask(__name__)\n",
    )
    with pytest.raises(AppImportError, match=rf"name the app, e\.g\. {other}:server$"):
        load_app(other)
    with pytest.raises(AppImportError, match=rf"did you mean {other}:server\?"):
        load_app(f"{other}:app")


def test_a_class_whose_instances_are_the_app_is_told_to_make_one(pkgdir: tuple[Path, str]) -> None:
    """Named without its call, each request failed ('App() takes no arguments', a 500)."""
    root, name = pkgdir
    code = """
        class App:
            def __call__(self, environ, start_response):
                start_response("200 OK", [])
                return [b"instance"]

        class PerRequest:  # PEP 3333's class app: one instance per request
            def __init__(self, environ, start_response):
                start_response("200 OK", [])

            def __iter__(self):
                yield b"class"
    """
    write(root / f"{name}.py", code)
    with pytest.raises(AppImportError, match=rf"is a class .* call it: '{name}:App\(\)'"):
        load_app(f"{name}:App")
    assert call(load_app(f"{name}:App()")) == b"instance"
    assert call(load_app(f"{name}:PerRequest")) == b"class"


def test_flasks_app_run_left_at_import_is_skipped_under_dev(tmp_path: Path) -> None:
    """It served on its own port and dev's never answered; as under 'flask run', Flask skips
    it with its own line (not under serve: an app may read the variable)."""
    import subprocess

    write(
        tmp_path / "runapp.py",
        """
        import flask
        app = flask.Flask(__name__)
        app.run(port=1)  # port 1: never bound, were it run
        """,
    )
    code = (
        "import os\nfrom uwsgiapp.importer import load_app\n"
        f"load_app('runapp:app', pythonpath=[{str(tmp_path)!r}], as_flask_run=True)\n"
        "print('loaded', os.environ.get('FLASK_RUN_FROM_CLI'))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[-1] == "loaded None"  # not left in the app's environment
    assert "Ignoring a call to 'app.run()'" in done.stdout  # Flask's own line


def test_serve_s_import_leaves_flask_s_cli_variable_unset(pkgdir: tuple[Path, str]) -> None:
    """An app may read FLASK_RUN_FROM_CLI to tell 'flask run' (skipping its scheduler): set
    during serve's import, a production server looked like 'flask run' to it."""
    root, name = pkgdir
    code = "import os\nSEEN = os.environ.get('FLASK_RUN_FROM_CLI')\napp = lambda e, s: []\n"
    (root / f"{name}.py").write_text(code)
    load_app(f"{name}:app")
    assert sys.modules[name].SEEN is None


def test_a_missing_module_of_the_apps_own_package_is_no_virtualenv_matter(
    pkgdir: tuple[Path, str],
) -> None:
    """'is mypkg installed there?' for mypkg.views missing, though mypkg itself imported."""
    root, name = pkgdir
    write(root / name / "__init__.py", f"import {name}.views\n")
    with pytest.raises(AppImportError) as info:
        load_app(f"{name}:app")
    assert f"No module named '{name}.views'" in str(info.value)
    assert "this uwsgiapp runs" not in str(info.value)


def test_a_missing_module_of_a_namespace_package_is_a_virtualenv_matter(
    pkgdir: tuple[Path, str],
) -> None:
    """google.protobuf missing beside google-auth's google.auth: the shared namespace 'google'
    is found, yet the missing one is another distribution (the hint was lost)."""
    root, name = pkgdir
    write(root / f"{name}_ns" / "auth.py", "")  # no __init__.py: a namespace package
    write(root / f"{name}.py", f"import {name}_ns.protobuf\napp = None\n")
    with pytest.raises(AppImportError, match="this uwsgiapp runs"):
        load_app(f"{name}:app")
