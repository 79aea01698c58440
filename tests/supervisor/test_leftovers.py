"""What the standard library's registries keep of the old code, taken out before a HUP's
re-import and put back if it fails (:mod:`uwsgiapp.supervisor.leftovers`), in-process."""

from __future__ import annotations

import contextvars
import copyreg
import logging
import sys
import types
import warnings
from collections.abc import Iterator

import pytest

from uwsgiapp.supervisor import leftovers
from uwsgiapp.supervisor.leftovers import of_old_code, put_back, take_out

OLD_CODE = """
import copyreg, logging, sys, warnings

class RequestIdFilter(logging.Filter):
    pass

class AppWarning(UserWarning):
    pass

class Finder:
    def find_spec(self, name, path, target=None):
        return None

class Money:
    pass

def reduce_money(money):
    return Money, ()

def hook(path):
    raise ImportError

def factory(*args, **kwargs):
    return made_by(*args, **kwargs)

made_by = logging.getLogRecordFactory()
logger = logging.getLogger("leftovers.test")
handler = logging.NullHandler()
logger.addHandler(handler)
logger.addFilter(RequestIdFilter())
handler.addFilter(lambda record: True)
warnings.filterwarnings("ignore", category=AppWarning)
sys.meta_path.append(Finder())
sys.path_hooks.append(hook)
copyreg.pickle(Money, reduce_money)
logging.setLogRecordFactory(factory)
"""


def _state() -> tuple[object, ...]:
    logger = logging.getLogger("leftovers.test")
    return (
        list(logger.filters),
        [list(h.filters) for h in logger.handlers],
        list(warnings.filters),
        list(sys.meta_path),
        list(sys.path_hooks),
        dict(copyreg.dispatch_table),
        logging.getLogRecordFactory(),
    )


@pytest.fixture
def old_code() -> Iterator[types.ModuleType]:
    """The app's old module, run as its import did; the registries as they were after."""
    before = _state()
    module = types.ModuleType("old_app")
    exec(compile(OLD_CODE, "old_app.py", "exec"), module.__dict__)
    yield module
    logger = logging.getLogger("leftovers.test")
    logger.filters[:], logger.handlers[:] = [], []
    warnings.filters[:] = before[2]  # type: ignore[index]
    warnings._filters_mutated()  # type: ignore[attr-defined]
    sys.meta_path[:], sys.path_hooks[:] = before[3], before[4]  # type: ignore[assignment]
    copyreg.dispatch_table.pop(module.Money, None)
    logging.setLogRecordFactory(before[6])  # type: ignore[arg-type]


def test_the_old_codes_registrations_are_taken_out_and_put_back(
    old_code: types.ModuleType,
) -> None:
    # Each HUP added them again, and the old ones went on working beside the new.
    registered = _state()
    taken = take_out({"old_app"}, old_code.made_by)
    assert logging.getLogger("leftovers.test").filters == []
    assert logging.getLogger("leftovers.test").handlers[0].filters == []
    assert not [f for f in warnings.filters if f[2] is old_code.AppWarning]
    assert not [f for f in sys.meta_path if type(f) is old_code.Finder]
    assert old_code.hook not in sys.path_hooks
    assert old_code.Money not in copyreg.dispatch_table
    assert logging.getLogRecordFactory() is old_code.made_by
    put_back(taken)  # the re-import failed: the old code stays, with all it had
    assert _state() == registered


def test_what_is_not_the_old_codes_stays(old_code: types.ModuleType) -> None:
    registered = _state()
    put_back(take_out({"other_app"}, logging.LogRecord))
    assert _state() == registered


class _Lazy:
    """Django's LazyObject: asking its class sets it up (imports the new code)."""

    @property
    def __class__(self) -> type:  # type: ignore[override]
        raise AssertionError("set up")


def test_whose_an_entry_is_is_asked_without_setting_a_lazy_object_up() -> None:
    assert of_old_code(_Lazy(), {__name__})
    assert of_old_code(lambda: None, {__name__}) and of_old_code(_Lazy, {__name__})
    assert not of_old_code(logging.Filter(), {__name__})


def test_old_context_variables_go_back_to_their_default_but_not_a_kept_module_s() -> None:
    # Cleared after the re-import: a kept module's variable the old code only imported (an
    # app's `from uwsgiapp.web.globals import ...`) holds the new code's value by then, and
    # was set to None; a variable with a default got None in place of it.
    kept = types.ModuleType("kept_ctx_lib")
    kept.SHARED = contextvars.ContextVar("shared")
    sys.modules["kept_ctx_lib"] = kept
    try:
        old = types.ModuleType("old_app_ctx")
        old.SHARED = kept.SHARED
        old.OWN = contextvars.ContextVar("own", default="the default")
        old.BARE = contextvars.ContextVar("bare")

        def run() -> tuple[object, object, object]:
            kept.SHARED.set("new code's")
            old.OWN.set("old scope")
            old.BARE.set("old scope")
            leftovers._clear_old_context_vars([old])
            return kept.SHARED.get(), old.OWN.get(), old.BARE.get()

        assert contextvars.Context().run(run) == ("new code's", "the default", None)
    finally:
        del sys.modules["kept_ctx_lib"]
