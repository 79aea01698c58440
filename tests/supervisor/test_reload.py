"""The master's re-import for a HUP (:func:`uwsgiapp.supervisor.reload.reimport`), in-process."""

from __future__ import annotations

import logging
import os
import sys
import typing
import weakref
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from uwsgiapp import hooks
from uwsgiapp.config import Config, make_config
from uwsgiapp.importer import load_app
from uwsgiapp.supervisor import keptmodules, reload


def test_a_failure_before_the_import_calls_the_reload_off(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # As a dropped user, sysconfig's lazily imported data module may be unreadable (a Python
    # under /root): that raised out of the master's loop and ended the server on a HUP.
    def unreadable() -> tuple[str, ...]:
        raise ModuleNotFoundError("No module named '_sysconfigdata__linux_x86_64-linux-gnu'")

    monkeypatch.setattr(keptmodules, "library_dirs", unreadable)
    modules = dict(sys.modules)
    with caplog.at_level(logging.ERROR, logger="uwsgiapp.error"):
        app = reload.reimport(make_config(app="no_such_module_here:app"), set(sys.modules))
    assert app is None
    assert dict(sys.modules) == modules
    (line,) = [r.getMessage() for r in caplog.records if r.name == "uwsgiapp.error"]
    assert line.startswith("reload: cannot re-import the app, keeping the old code: ")
    assert "_sysconfigdata" in line


def test_where_the_library_is_is_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Asked before a --uid drop, answered from then on: the dropped user may not be able to
    # import sysconfig's data module (every HUP was called off under Python 3.13).
    expected = (keptmodules.library_dirs(), keptmodules.site_dirs())

    def unreadable() -> dict[str, str]:
        raise ModuleNotFoundError("No module named '_sysconfigdata__linux_x86_64-linux-gnu'")

    monkeypatch.setattr(keptmodules.sysconfig, "get_paths", unreadable)
    assert (keptmodules.library_dirs(), keptmodules.site_dirs()) == expected


#: Django's pattern (``Signal.connect``): a finalizer per receiver whose callback is a bound
#: method of the module's signal, so the stdlib's registry holds the old module's globals;
#: and an annotation in typing's cache (Flask's, werkzeug's), keyed by an old class.
SIGNALS_APP = """
import typing
import weakref


class Signal:
    def __init__(self):
        self.receivers = []

    def connect(self, receiver):
        self.receivers.append(weakref.ref(receiver))
        weakref.finalize(receiver, self._remove_receiver)

    def _remove_receiver(self):
        pass


def on_request():
    pass


request_started = Signal()
request_started.connect(on_request)


class Model:
    def save(self):
        pass


OPTIONAL_MODEL = typing.Optional[Model]


def app(environ, start_response):
    return []
"""


@pytest.fixture
def preloaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Write an app module, load it as the master does; yields ``load(source)`` → the held
    app (a dict the install callback updates) and the config."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def load(name: str, source: str) -> tuple[dict[str, Any], Config, set[str]]:
        (tmp_path / f"{name}.py").write_text(source)
        names.append(name)
        before = set(sys.modules)
        config = make_config(app=f"{name}:app", pythonpath=(str(tmp_path),))
        held = {"app": load_app(config.app, pythonpath=config.pythonpath)}
        return held, config, before

    yield load
    for name in names:
        sys.modules.pop(name, None)


def _reload_line(caplog: pytest.LogCaptureFixture) -> str:
    (line,) = [r.getMessage() for r in caplog.records if "re-imported" in r.getMessage()]
    caplog.clear()
    return line


def test_a_hup_frees_the_old_code(
    preloaded: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    # A Django project kept 13.7 MB more in the master (and every worker forked after) at
    # each HUP; a Flask app 3 MB for a few HUPs: the old modules stayed alive.
    held, config, before = preloaded("signals_app", SIGNALS_APP)
    first = weakref.ref(sys.modules["signals_app"].Signal)
    with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
        for _ in range(2):
            new = reload.reimport(config, before, lambda app: held.update(app=app))
            assert new is not None and held["app"] is new
            del new  # the arbiter keeps the app only where install puts it
            assert _reload_line(caplog).endswith(" s")  # nothing said to be held
    assert first() is None  # the first code is gone


@pytest.mark.skipif(not hasattr(typing, "_tp_cache"), reason="typing has no _tp_cache here")
def test_a_cache_the_old_code_made_with_typings_decorator_does_not_hold_it(
    preloaded: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    # typing_extensions (which OpenTelemetry, pydantic... import) caches its special forms
    # with typing's decorator, which lists each cache's cache_clear in typing._cleanups: the
    # list kept each old typing_extensions, and every HUP said it was "still held".
    source = "import typing\n@typing._tp_cache\ndef special(x):\n    return x\n" + SIGNALS_APP
    held, config, before = preloaded("cache_app", source)
    first = weakref.ref(sys.modules["cache_app"].special)
    with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
        assert reload.reimport(config, before, lambda app: held.update(app=app)) is not None
        assert _reload_line(caplog).endswith(" s")  # nothing said to be held
    assert first() is None


def test_old_code_something_still_holds_is_said(
    preloaded: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    # A registration the master cannot undo (atexit here): the log says so at each HUP.
    source = "import atexit\natexit.register(lambda: None)\n" + SIGNALS_APP
    held, config, before = preloaded("held_app", source)
    with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
        assert reload.reimport(config, before, lambda app: held.update(app=app)) is not None
        line = _reload_line(caplog)
    assert line.endswith(
        "; 1 of the old modules are still held (held_app: by something the master cannot let "
        "go of, such as a connection the old code's import left open (a database's: close it "
        "at the end of the import), a registration of the old code (codecs.register, "
        "sys.addaudithook), a "
        "module loaded before the app that keeps them (a tracer's), or a standard library "
        "thread or timer the old code started: kept in the master and the workers forked "
        "after; --lazy-apps reloads without it)"
    ), line
    import atexit

    atexit._clear()  # type: ignore[attr-defined]  # the test's own registrations


def test_old_code_a_thread_of_its_import_still_runs_is_said_to_be_held_by_it(
    preloaded: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    # An outside trial (OpenTelemetry's SDK set up at the app's import): the old code's
    # exporter thread ran on in the master and held 78 old modules, and the line blamed "a
    # registration ..., such as codecs.register or sys.addaudithook".
    source = (
        "import threading\n"
        "stop = threading.Event()\n"
        "def export():\n"
        "    stop.wait()\n"
        "threading.Thread(target=export, name='Exporter', daemon=True).start()\n"
    ) + SIGNALS_APP
    held, config, before = preloaded("thread_app", source)
    old = sys.modules["thread_app"]
    try:
        with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
            assert reload.reimport(config, before, lambda app: held.update(app=app)) is not None
            line = _reload_line(caplog)
    finally:
        old.stop.set()
        sys.modules["thread_app"].stop.set()
    assert line.endswith(
        "; 1 of the old modules are still held (thread_app: by the old code's thread Exporter, "
        "still running in the master: kept there and in the workers forked after; start it in "
        "a postfork function, or use --lazy-apps)"
    ), line


def test_the_reload_line_names_the_old_modules_still_held() -> None:
    # It said only how many: which ones (and so whose registration) took a gc session to find.
    assert reload.held_words([]) == ""
    words = reload.held_words([f"app.m{i}" for i in range(7, 0, -1)])
    assert words.startswith("; 7 of the old modules are still held (app.m1, app.m2, app.m3, ")
    assert "app.m4, app.m5, ...: by something the master" in words


def test_only_the_old_codes_method_finalizers_are_let_go_of(tmp_path: Path) -> None:
    # A method's (Django's signals) only tidies the old objects; a plain function's may
    # release a resource (a scratch directory) at exit, as it would have: it is kept.
    import types

    module = types.ModuleType("old_code")
    exec(
        "import weakref\n"
        "class Signal:\n"
        "    def _remove(self): pass\n"
        "def cleanup(path): pass\n"
        "class Thing: pass\n"
        "signal, thing, other = Signal(), Thing(), Thing()\n"
        "by_method = weakref.finalize(thing, signal._remove)\n"
        "by_function = weakref.finalize(other, cleanup, 'scratch')\n",
        module.__dict__,
    )
    assert reload.release_old_code([module]) == 1
    assert not module.by_method.alive and module.by_function.alive
    module.by_function.detach()


POSTFORK_APP = """
from uwsgiapp import postfork

@postfork
def open_pool():
    pass

def app(environ, start_response):
    return []
"""


@pytest.fixture
def postforks(monkeypatch: pytest.MonkeyPatch) -> None:
    """An empty registry of postfork functions for the test, the real one after it."""
    monkeypatch.setattr(hooks, "_registered", [])


def _postfork_modules() -> list[str]:
    return [func.__module__ for func in hooks.functions()]


def test_a_hup_keeps_only_the_new_codes_postfork_function(
    preloaded: Callable[..., Any], postforks: None
) -> None:
    # os.register_at_fork cannot be undone: after two HUPs each worker ran three pools' set-up.
    held, config, before = preloaded("postfork_app", POSTFORK_APP)
    first = hooks.functions()
    assert _postfork_modules() == ["postfork_app"]
    for _ in range(2):
        assert reload.reimport(config, before, lambda app: held.update(app=app)) is not None
    (kept,) = hooks.functions()
    assert kept is sys.modules["postfork_app"].open_pool and kept is not first[0]


def test_a_failed_reimport_keeps_the_old_postfork_and_none_of_the_failed_one(
    preloaded: Callable[..., Any], postforks: None, tmp_path: Path
) -> None:
    held, config, before = preloaded("postfork_fail", POSTFORK_APP)
    first = hooks.functions()
    # The new code registers its function, then fails further down its import.
    (tmp_path / "postfork_fail.py").write_text(POSTFORK_APP + "\nraise RuntimeError('half')\n")
    assert reload.reimport(config, before, lambda app: held.update(app=app)) is None
    assert hooks.functions() == first


def test_postfork_functions_run_in_order_and_a_failure_names_the_function(
    postforks: None,
) -> None:
    calls: list[str] = []

    @hooks.postfork
    def first() -> None:
        calls.append("first")

    hooks.postfork(lambda: calls.append("second"))
    hooks.run_postfork()
    assert calls == ["first", "second"]

    @hooks.postfork
    def broken() -> None:
        raise ConnectionError("db down")

    with pytest.raises(hooks.PostforkError) as info:
        hooks.run_postfork()
    assert str(info.value) == (
        f"postfork function {__name__}.{broken.__qualname__} raised ConnectionError('db down')"
    )
    assert isinstance(info.value.__cause__, ConnectionError)


def test_a_failed_reimport_leaves_no_fork_hook_behind(
    preloaded: Callable[..., Any], tmp_path: Path
) -> None:
    # The half-imported code's os.register_at_fork hook stayed: every later worker ran it.
    mark = tmp_path / "forked"
    held, config, before = preloaded("half_app", POSTFORK_APP)
    (tmp_path / "half_app.py").write_text(
        "import os\n"
        f"os.register_at_fork(after_in_child=lambda: open({str(mark)!r}, 'a').write('x'))\n"
        "raise RuntimeError('half written')\n"
    )
    assert reload.reimport(config, before, lambda app: held.update(app=app)) is None
    pid = os.fork()
    if pid == 0:
        os._exit(0)  # the fork hooks ran (or not) before this
    os.waitpid(pid, 0)
    assert not mark.exists()


def test_a_hup_drops_a_library_method_the_old_code_registered(
    preloaded: Callable[..., Any], postforks: None
) -> None:
    # postfork(engine.dispose): a method of a class from a package never re-imported (it has C
    # parts, or is the stdlib's) stayed registered at each HUP, and its old engine alive.
    source = "import random\nfrom uwsgiapp import postfork\nr = random.Random()\npostfork(r.seed)\n"
    held, config, before = preloaded("library_hook_app", source + "def app(e, s):\n    return []\n")
    for _ in range(3):
        assert reload.reimport(config, before, lambda app: held.update(app=app)) is not None
    (kept,) = hooks.functions()
    assert kept.__self__ is sys.modules["library_hook_app"].r  # type: ignore[attr-defined]


FILTER_APP = """
import logging

class RequestIdFilter(logging.Filter):
    pass

logging.getLogger("filter_app").addFilter(RequestIdFilter())

def app(environ, start_response):
    return []
"""


def test_a_failed_reimport_puts_the_old_codes_log_filter_back(
    preloaded: Callable[..., Any], tmp_path: Path
) -> None:
    # Taken out before the re-import (each HUP added one more); the failed code's goes, the
    # old code's comes back: the old workers' code goes on as it was.
    held, config, before = preloaded("filter_app", FILTER_APP)
    logger = logging.getLogger("filter_app")
    first = list(logger.filters)
    (tmp_path / "filter_app.py").write_text(FILTER_APP + "\nraise RuntimeError('half')\n")
    assert reload.reimport(config, before, lambda app: held.update(app=app)) is None
    assert logger.filters == first
    (tmp_path / "filter_app.py").write_text(FILTER_APP)
    assert reload.reimport(config, before, lambda app: held.update(app=app)) is not None
    (kept,) = logger.filters
    assert type(kept) is sys.modules["filter_app"].RequestIdFilter
    logger.filters.clear()
