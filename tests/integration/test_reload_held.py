"""What a HUP's re-import keeps of the old code: nothing, once the old modules are replaced.
Real processes, real signals, a real nginx in front."""

from __future__ import annotations

import re
import signal
from pathlib import Path

import pytest
from support.procs import stack, wait_until, worker_pids

#: The reload's line: the app's file, its module count, the time, what is held.
REIMPORTED = r"reload: app re-imported (?:from \S+ )?\((\d+) modules\) in [0-9.]+ s(.*)"

pytestmark = pytest.mark.nginx

#: symtable is of the standard library (kept); its C part, _symtable, is compiled into every
#: CPython (as zlib, _csv, _heapq, _locale... are into Debian's and Ubuntu's python3).
BUILTIN_APP = """
import sys
import symtable

def app(environ, start_response):
    same = sys.modules["_symtable"] is symtable._symtable
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"one _symtable" if same else b"two _symtables"]
"""


def test_hup_keeps_the_modules_compiled_into_the_interpreter(
    tmp_path: Path, nginx_available: None
) -> None:
    # A module compiled into the interpreter has no file, so it was taken for the app's and
    # imported afresh, while the kept stdlib module that imported it first held the old one:
    # a Django project under Debian's python3 logged "3 of the old modules are still held",
    # and an app's `except zlib.error` no longer caught what the kept gzip raised.
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "builtinapp.py").write_text(BUILTIN_APP)
    options = {"workers": 1, "pythonpath": [str(appdir)]}
    with stack(tmp_path, "builtinapp:app", **options) as (server, nginx):
        assert nginx.request("GET", "/")[2] == b"one _symtable"
        for reloads in (1, 2):
            server.signal(signal.SIGHUP)
            wait_until(lambda n=reloads: server.log().count("ready, stopping") == n, 10, "a reload")
            wait_until(lambda: nginx.request("GET", "/")[2] == b"one _symtable", 10, "new code")
    found = re.findall(REIMPORTED, server.log())
    assert found == [("1", "")] * 2, found  # the app alone; nothing of the old code held


#: Registrations in the standard library's registries at import, each a pattern of the docs:
#: a logging filter on the root logger, the logging cookbook's record factory wrapping the one
#: it finds, a warnings filter for the app's own category, an import hook.
REGISTRIES_APP = """
import logging
import sys
import warnings


class RequestIdFilter(logging.Filter):
    def filter(self, record):
        return True


logging.getLogger().addFilter(RequestIdFilter())

_made_by = logging.getLogRecordFactory()


def record_factory(*args, **kwargs):
    record = _made_by(*args, **kwargs)
    record.wraps = getattr(record, "wraps", 0) + 1
    return record


logging.setLogRecordFactory(record_factory)


class AppWarning(UserWarning):
    def __str__(self):
        return "app"


warnings.filterwarnings("ignore", category=AppWarning)


class Finder:
    def find_spec(self, name, path, target=None):
        return None


sys.meta_path.append(Finder())


def app(environ, start_response):
    counts = (
        sum(type(f).__name__ == "RequestIdFilter" for f in logging.getLogger().filters),
        logging.makeLogRecord({}).wraps,
        sum(getattr(f[2], "__name__", "") == "AppWarning" for f in warnings.filters),
        sum(type(f).__name__ == "Finder" for f in sys.meta_path),
    )
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [" ".join(map(str, counts)).encode()]
"""


def test_hup_takes_the_old_codes_registrations_out_of_the_stdlib(
    tmp_path: Path, nginx_available: None
) -> None:
    # Each HUP added one more of each, and the old ones went on working (every log record
    # went through every generation's factory) and held the old code: "still held" each HUP.
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "regapp.py").write_text(REGISTRIES_APP)
    options = {"workers": 1, "pythonpath": [str(appdir)]}
    with stack(tmp_path, "regapp:app", **options) as (server, nginx):
        assert nginx.request("GET", "/")[2] == b"1 1 1 1"
        for reloads in (1, 2):
            server.signal(signal.SIGHUP)
            wait_until(lambda n=reloads: server.log().count("ready, stopping") == n, 10, "a reload")
        assert nginx.request("GET", "/")[2] == b"1 1 1 1"
    found = re.findall(REIMPORTED, server.log())
    assert found == [("1", "")] * 2, found


#: A context variable set at import, holding an object of the app's own class (sentry-sdk keeps
#: its scopes, hub and client so): the master's context kept each generation's.
CONTEXT_APP = """
import contextvars

SCOPE = contextvars.ContextVar("scope")


class Scope:
    def name(self):  # a function: through its globals, the module
        return "Scope"


SCOPE.set(Scope())


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [type(SCOPE.get(None)).__name__.encode()]
"""


def test_hup_lets_go_of_the_old_code_s_context_variables(
    tmp_path: Path, nginx_available: None
) -> None:
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "ctxapp.py").write_text(CONTEXT_APP)
    with stack(tmp_path, "ctxapp:app", workers=1, pythonpath=[str(appdir)]) as (server, nginx):
        for reloads in (1, 2):
            server.signal(signal.SIGHUP)
            wait_until(lambda n=reloads: server.log().count("ready, stopping") == n, 10, "a reload")
        # The new code's own variable keeps its value in the workers forked after.
        wait_until(lambda: nginx.request("GET", "/")[2] == b"Scope", 10, "the new code")
    found = re.findall(REIMPORTED, server.log())
    assert found == [("1", "")] * 2, found  # without it: "1 of the old modules are still held"


#: A uwsgiapp.web app that catches werkzeug's own exception class.
WEB_APP = """
from werkzeug.exceptions import NotFound

from uwsgiapp.web import App, abort


app = App(__name__)


@app.errorhandler(NotFound)
def not_found(error):
    return "ours", 404


@app.route("/")
def index():
    abort(404)
"""


def test_hup_keeps_what_uwsgiapp_web_uses(tmp_path: Path, nginx_available: None) -> None:
    # werkzeug came in with the app's import of uwsgiapp.web, so a HUP imported it afresh:
    # the kept uwsgiapp.web raised the old NotFound, the app's handler caught the new one (a
    # plain 404 page after the HUP), and 35 old werkzeug modules were held.
    appdir = tmp_path / "app"
    appdir.mkdir()
    (appdir / "webheld.py").write_text(WEB_APP)
    with stack(tmp_path, "webheld:app", workers=1, pythonpath=[str(appdir)]) as (server, nginx):
        assert nginx.request("GET", "/")[2] == b"ours"
        server.signal(signal.SIGHUP)
        wait_until(lambda: "ready, stopping" in server.log(), 10, "the reload")
        wait_until(lambda: len(worker_pids(server.pid)) == 1, 10, "the old worker's exit")
        assert nginx.request("GET", "/")[2] == b"ours"
    found = re.findall(REIMPORTED, server.log())
    assert found == [("1", "")], found
