"""The supervisor's shape: the pure policy loads without the server; one table of exit codes;
signals dispatch by table; a re-import's error is one line."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import types

import pytest

from uwsgiapp.exitcodes import COMMAND_EXIT_CODES, ClientExit, ServeExit, WorkerExit, help_text
from uwsgiapp.supervisor import mastersignals
from uwsgiapp.supervisor.actions import Log, LogLevel
from uwsgiapp.supervisor.keptmodules import app_modules, held_by_earlier, library_dirs
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.trial import one_line


def _modules_after(statement: str) -> set[str]:
    code = f"import sys\n{statement}\nprint('\\n'.join(sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "statement",
    ["import uwsgiapp.supervisor.policy", "import uwsgiapp.supervisor"],
)
def test_the_policy_imports_without_the_server(statement: str) -> None:
    loaded = _modules_after(statement)
    assert "uwsgiapp.supervisor.policy" in loaded or statement.endswith("supervisor")
    assert not {m for m in loaded if m.startswith(("uwsgiapp.server", "uwsgiapp.supervisor.boot"))}


def test_serve_stays_importable_from_the_package() -> None:
    from uwsgiapp.supervisor import EXIT_APP_LOAD, EXIT_BIND, EXIT_BOOT_LOOP, serve
    from uwsgiapp.supervisor.boot import serve as boot_serve

    assert serve is boot_serve
    assert (EXIT_BIND, EXIT_APP_LOAD, EXIT_BOOT_LOOP) == (3, 4, 5)


def test_each_number_has_one_meaning_per_table() -> None:
    for table in (ServeExit, ClientExit, WorkerExit):
        assert len({int(code) for code in table}) == len(table)
        assert all(code.description for code in table)
    assert set(COMMAND_EXIT_CODES) == {"serve", "request", "ping"}
    # The codes shared by every command mean the same.
    assert (ServeExit.OK, ServeExit.USAGE) == (ClientExit.OK, ClientExit.USAGE) == (0, 2)
    # The master reports a lazy worker's failed import with the same number.
    assert WorkerExit.APP_LOAD == ServeExit.APP_LOAD


def test_help_text_lists_every_code_of_the_command() -> None:
    text = help_text(ServeExit)
    assert text.startswith("exit status: 0 ")
    assert "4 the app cannot be imported" in text and "3 cannot start" in text
    ping = help_text(ClientExit, only="ping")
    assert "5 " not in ping and "1 " not in ping and "3 cannot connect" in ping
    request = help_text(ClientExit, only="request")
    assert "5 no complete response within --max-time" in request


def test_every_signal_the_master_catches_has_a_handler() -> None:
    assert set(mastersignals.MASTER_SIGNALS) == {*Policy.SIGNAL_HANDLERS, "CHLD"}
    for name in mastersignals.MASTER_SIGNALS:
        assert isinstance(getattr(signal, f"SIG{name}"), signal.Signals)
    policy = Policy(workers=1)
    assert policy.on_signal("WINCH", 0.0) == []  # the upgrade's (asked first), not the policy's


def test_log_actions_carry_logging_levels() -> None:
    actions = Policy(workers=1).on_signal("TTOU", 0.0)
    assert actions == [Log(LogLevel.INFO, "SIGTTOU: already at one worker")]
    assert actions[0].level == 20  # logging.INFO, passed as is to Logger.log


def test_a_reimport_error_is_one_line_naming_the_file_and_line() -> None:
    message = (
        "error while importing module 'preapp' for app 'preapp:app':\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/app/preapp.py", line 9\n'
        "    def broken(:\n"
        "               ^\n"
        "SyntaxError: invalid syntax\n"
    )
    assert one_line(message) == (
        "error while importing module 'preapp' for app 'preapp:app': "
        "SyntaxError: invalid syntax (/srv/app/preapp.py, line 9)"
    )
    assert one_line("No module named 'x'") == "No module named 'x'"
    # A hint after the traceback (importer's): the exception still named, the hint after it.
    hinted = (
        "error while importing module 'm' for app 'm:app':\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/app/m.py", line 3, in <module>\n'
        "    server.bind(('127.0.0.1', 9100))\n"
        "OSError: [Errno 98] Address already in use\n"
        "the app's import starts a server whose port is taken\n"
    )
    assert one_line(hinted) == (
        "error while importing module 'm' for app 'm:app': OSError: [Errno 98] Address already "
        "in use (/srv/app/m.py, line 3) the app's import starts a server whose port is taken"
    )


def test_a_reimport_error_names_the_apps_line_not_the_standard_librarys() -> None:
    # os.environ["DB_URL"] in a module the app imports: the line named <frozen os>, line 679.
    frames = (
        "error while importing module 'wsgi' for app 'wsgi:app':\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/app/wsgi.py", line 3, in <module>\n'
        "    import mypkg.helper\n"
        '  File "/srv/app/mypkg/helper.py", line 2, in <module>\n'
        '    MSG = os.environ["DB_URL"]\n'
        '  File "<frozen os>", line 679, in __getitem__\n'
        "KeyError: 'DB_URL'\n"
    )
    assert one_line(frames).endswith("KeyError: 'DB_URL' (/srv/app/mypkg/helper.py, line 2)")
    # Raised in a library's function (a file, not frozen): there, from the app's module.
    library = frames.replace("<frozen os>", "/usr/lib/python3.11/os.py")
    assert one_line(library).endswith(
        "KeyError: 'DB_URL' (/usr/lib/python3.11/os.py, line 679 in __getitem__, "
        "from /srv/app/mypkg/helper.py, line 2)"
    )


def test_a_reimport_error_in_an_imported_modules_syntax_or_in_frozen_frames_alone() -> None:
    # A SyntaxError's frame has no name ("line 2 in , from ..."); frozen frames alone left a
    # stray ")".
    syntax = (
        "error while importing module 'wsgi' for app 'wsgi:app':\n"
        "Traceback (most recent call last):\n"
        '  File "/srv/app/wsgi.py", line 3, in <module>\n'
        "    import helper\n"
        '  File "/srv/app/helper.py", line 2\n'
        "    def (:\n"
        "SyntaxError: invalid syntax\n"
    )
    assert one_line(syntax).endswith("SyntaxError: invalid syntax (/srv/app/helper.py, line 2)")
    frozen = (
        "error while importing module 'w' for app 'w:app':\n"
        "Traceback (most recent call last):\n"
        '  File "<frozen os>", line 679, in __getitem__\n'
        "KeyError: 'X'\n"
    )
    assert one_line(frozen) == "error while importing module 'w' for app 'w:app': KeyError: 'X'"


def test_a_reimport_keeps_extension_modules_and_our_own() -> None:
    before = {"sys", "os"}
    candidates = ["sys", "os", "_decimal", "uwsgiapp.web", "uwsgiapp.supervisor.reload"]
    import _decimal  # noqa: F401 - an extension module with a shared library file

    assert getattr(sys.modules["_decimal"], "__file__", "").endswith(".so")
    assert app_modules(candidates, before) == []


def test_a_reimport_keeps_the_modules_compiled_into_the_interpreter() -> None:
    # No file says they are the stdlib's (Debian's python3 builds zlib, _csv, _heapq... in):
    # imported afresh, the old one stayed with the kept module that imported it (symtable).
    import symtable  # noqa: F401 - imports _symtable, compiled into every CPython

    assert "_symtable" in sys.builtin_module_names
    assert app_modules(["_symtable"], set(), ("/usr/lib/",), ()) == []


def test_a_reimport_leaves_a_second_name_of_a_module_loaded_before(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # multiprocessing names __main__ __mp_main__ too: taken out, it was "still held" by
    # __main__ at the first HUP (and gone from sys.modules after it).
    main = types.ModuleType("__main__")
    main.__file__ = "/srv/app/run.py"
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setitem(sys.modules, "__mp_main__", main)
    assert app_modules(["__mp_main__"], {"__main__"}, ("/usr/lib/",), ()) == []


def test_a_reimport_takes_a_package_by_its_own_extension_modules_not_by_a_second_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # requests puts charset_normalizer's compiled md in sys.modules as
    # requests.packages.chardet.md too (and urllib3 as requests.packages.urllib3): requests
    # looked like a package with C parts and stayed, holding the old urllib3, while the new
    # code's `from urllib3.util.retry import Retry` imported a new one (an outside trial with
    # OpenTelemetry's OTLP exporter: the HTTPAdapter's retry then raised TypeError). Nor is
    # a second name of a module that stays (charset_normalizer) taken out as old code.
    site_packages = "/venv/lib/python3.11/site-packages"
    fake = {
        "views": "/srv/app/views.py",
        "reqlike": f"{site_packages}/reqlike/__init__.py",
        "reqlike.adapters": f"{site_packages}/reqlike/adapters.py",
        "urllib3like": f"{site_packages}/urllib3like/__init__.py",
        "charlike": f"{site_packages}/charlike/__init__.py",
        "charlike.md": f"{site_packages}/charlike/md.cpython-311-x86_64-linux-gnu.so",
    }
    for name, path in fake.items():
        module = types.ModuleType(name)
        module.__file__ = path
        monkeypatch.setitem(sys.modules, name, module)
    aliases = {
        "reqlike.packages.charlike": "charlike",
        "reqlike.packages.charlike.md": "charlike.md",
        "reqlike.packages.urllib3like": "urllib3like",
    }
    for alias, name in aliases.items():
        monkeypatch.setitem(sys.modules, alias, sys.modules[name])
    stdlib = ("/usr/lib/python3.11/",)
    assert app_modules([*fake, *aliases], set(), stdlib, (f"{site_packages}/",)) == [
        "views",
        "reqlike",
        "reqlike.adapters",
        "urllib3like",
        "reqlike.packages.urllib3like",
    ]


def test_a_reimport_leaves_the_modules_no_import_made(monkeypatch: pytest.MonkeyPatch) -> None:
    # Each Cython 3 extension (charset_normalizer's, which requests imports) finds
    # cython_runtime and _cython_3_x_y in sys.modules, or puts them there, to share its types:
    # no file, no spec. Taken out, the kept extension still held them ("still held" at the
    # first HUP of an app using requests), and the next Cython extension made new ones.
    for name in ("cython_runtime", "_cython_3_1_2"):
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    app = types.ModuleType("views")
    app.__file__ = "/srv/app/views.py"
    monkeypatch.setitem(sys.modules, "views", app)
    loaded = ["cython_runtime", "_cython_3_1_2", "views"]
    assert app_modules(loaded, set(), ("/usr/lib/python3.11/",), ()) == ["views"]


def test_a_reimport_keeps_what_a_package_with_c_parts_uses_and_says_what_a_launcher_holds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What a package with C parts uses stays with it (pandas' dateutil). What a module loaded
    # before the app holds (ddtrace-run's integration holds flask or Django, patched as the app
    # first imported it) is imported afresh, and said: kept, Django kept its settings and URL
    # resolver and served the old code after a HUP. The app's own package, partly imported
    # before the app (a launcher script's `import mypkg.config`), is imported afresh too.
    site_packages = "/venv/lib/python3.11/site-packages"
    fake = {
        "views": "/srv/app/views.py",
        "mypkg": "/srv/app/mypkg/__init__.py",
        "mypkg.config": "/srv/app/mypkg/config.py",
        "mypkg.views": "/srv/app/mypkg/views.py",
        "tracerlib": f"{site_packages}/tracerlib/__init__.py",
        "tracerlib.contrib": f"{site_packages}/tracerlib/contrib.py",
        "weblib": f"{site_packages}/weblib/__init__.py",
        "weblib.app": f"{site_packages}/weblib/app.py",
        "templating": f"{site_packages}/templating/__init__.py",
        "frames": f"{site_packages}/frames/__init__.py",
        "frames._lib": f"{site_packages}/frames/_lib.cpython-311-x86_64-linux-gnu.so",
        "dates": f"{site_packages}/dates/__init__.py",
        "metrics": f"{site_packages}/metrics/__init__.py",
    }
    modules = {}
    for name, path in fake.items():
        modules[name] = types.ModuleType(name)
        modules[name].__file__ = path
        monkeypatch.setitem(sys.modules, name, modules[name])
    modules["tracerlib.contrib"].weblib = modules["weblib"]  # its integration: import weblib
    modules["weblib.app"].templating = modules["templating"]
    modules["mypkg.config"].weblib = modules["weblib"]  # the app's own, loaded first
    modules["frames"].dates = modules["dates"]
    modules["views"].metrics = modules["metrics"]
    stdlib = ("/usr/lib/python3.11/",)
    installed = (f"{site_packages}/",)
    before = {"tracerlib", "tracerlib.contrib", "mypkg", "mypkg.config"}
    loaded = [name for name in fake if name not in before]
    going = app_modules(loaded, before, stdlib, installed)
    assert going == ["views", "mypkg.views", "weblib", "weblib.app", "templating", "metrics"]
    assert held_by_earlier(before, going, installed) == [("tracerlib", "weblib")]


def test_a_reimport_keeps_the_stdlib_and_packages_with_c_parts(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A second copy of a package's Python beside the C parts it keeps breaks it (SQLAlchemy,
    # numpy; stdlib zoneinfo): those stay. Pure packages, installed ones too, are imported
    # afresh: their registries (prometheus_client, Django's settings) must start empty.
    site_packages = "/venv/lib/python3.11/site-packages"
    fake = {
        "views": "/srv/app/views.py",
        "shop": "/srv/app/shop/__init__.py",
        "shop.models": "/srv/app/shop/models.py",
        "fastpkg": "/srv/app/fastpkg/__init__.py",
        "fastpkg._speedups": "/srv/app/fastpkg/_speedups.cpython-311-x86_64-linux-gnu.so",
        "sqlalchemy_like": f"{site_packages}/sqlalchemy_like/__init__.py",
        "sqlalchemy_like.orm": f"{site_packages}/sqlalchemy_like/orm.py",
        "sqlalchemy_like._cy": f"{site_packages}/sqlalchemy_like/_cy.cpython-311.so",
        "prometheus_like": f"{site_packages}/prometheus_like/__init__.py",
        "zoneinfo_like": "/usr/lib/python3.11/zoneinfo_like/__init__.py",
    }
    for name, path in fake.items():
        module = types.ModuleType(name)
        module.__file__ = path
        monkeypatch.setitem(sys.modules, name, module)
    stdlib = ("/usr/lib/python3.11/", "/venv/lib/python3.11/")  # a venv's platstdlib
    installed = (f"{site_packages}/",)
    assert app_modules(list(fake), set(), stdlib, installed) == [
        "views",
        "shop",
        "shop.models",
        "prometheus_like",
    ]
    assert json.__file__ and os.path.realpath(json.__file__).startswith(library_dirs())
