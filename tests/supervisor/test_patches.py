"""What an import of the app patched in the modules a HUP keeps, undone before the re-import
(:mod:`uwsgiapp.supervisor.patches`), in-process."""

from __future__ import annotations

import functools
import importlib
import logging
import os
import sys
import types
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from uwsgiapp.config import make_config
from uwsgiapp.supervisor import reload
from uwsgiapp.supervisor.patches import MISSING, Patches, code_module

#: A library's module, as exec'd source (what its functions' globals say is its name).
LIBRARY = """
import functools, os

def hook():
    pass

@functools.wraps(os.getcwd)  # copies __module__ ('posix'): the globals tell the truth
def wrapped():
    pass

class Client:
    def send(self):
        pass

    @staticmethod
    def static():
        pass

    @property
    def prop(self):
        return 1

class FunctionWrapper:  # wrapt's: the wrapper it calls is its _self_wrapper
    _self_wrapper = None

    def __init__(self, wrapper):
        self._self_wrapper = wrapper
"""


def test_code_module_names_the_module_whose_code_a_value_is() -> None:
    lib: dict[str, Any] = {"__name__": "some_lib"}
    exec(LIBRARY, lib)
    client = lib["Client"]()
    for value in (
        lib["hook"],
        lib["wrapped"],
        client.send,
        functools.partial(lib["hook"], 1),
        vars(lib["Client"])["static"],
        vars(lib["Client"])["prop"],
        lib["Client"],
        client,
        lib["FunctionWrapper"](lib["hook"]),
    ):
        assert code_module(value) == "some_lib", value
    assert code_module(os.path.join) == "posixpath"
    for not_code in (1, "text", None, len, os, {"a": lib["hook"]}, [lib["hook"]]):
        assert code_module(not_code) is None, not_code


@pytest.fixture
def kept() -> Iterator[types.ModuleType]:
    """A module the HUP keeps (as the standard library), loaded before the app."""
    module = types.ModuleType("kept_std")
    exec(
        "class Thing:\n    def method(self): return 'real'\n\ndef hook(): return 'real'\n",
        vars(module),
    )
    sys.modules["kept_std"] = module
    yield module
    del sys.modules["kept_std"]


@pytest.fixture
def library(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    """Write modules to a directory on the path; yields ``write(name, source)``."""
    monkeypatch.syspath_prepend(str(tmp_path))
    names: list[str] = []

    def write(name: str, source: str) -> None:
        (tmp_path / f"{name}.py").write_text(source)
        names.append(name)

    yield write
    for name in names:
        sys.modules.pop(name, None)


PATCHER = """
import kept_std, os

def hook():
    return 'patched'

def method(self):
    return 'patched'

kept_std.hook = hook
kept_std.Thing.method = method
kept_std.added = hook
kept_std.flag = True        # not code, but beside the code's patches: its guard (undone too)
kept_std.joined = os.path.join  # the standard library's own code: left
"""


def test_what_an_import_patched_is_put_back_and_applied_again(
    kept: types.ModuleType, library: Callable[..., Any]
) -> None:
    library("patcher_lib", PATCHER)
    real_hook, real_method = kept.hook, kept.Thing.method
    patches = Patches()
    with patches.recording():
        importlib.import_module("patcher_lib")
    recorded = {(p.where, p.name, p.code) for p in patches.patches}
    assert recorded == {
        ("kept_std", "hook", "patcher_lib"),
        ("kept_std", "method", "patcher_lib"),
        ("kept_std", "added", "patcher_lib"),
        ("kept_std", "flag", "patcher_lib"),
    }
    undone = patches.undo(lambda name: name == "patcher_lib")
    assert (kept.hook, kept.Thing.method) == (real_hook, real_method)
    # nest_asyncio's `_nest_patched`: a guard left in place kept the new code from patching
    assert not hasattr(kept, "added") and not hasattr(kept, "flag")
    assert kept.joined is os.path.join
    patches.redo(undone)  # the re-import failed: the old code's patches again
    assert kept.hook() == kept.Thing().method() == kept.added() == "patched"
    assert kept.flag is True


def test_a_patch_something_replaced_since_is_left(
    kept: types.ModuleType, library: Callable[..., Any]
) -> None:
    library("patcher_lib", PATCHER)
    patches = Patches()
    with patches.recording():
        importlib.import_module("patcher_lib")
    kept.hook = later = lambda: "later"
    undone = patches.undo(lambda name: name == "patcher_lib")
    assert {p.name for p in undone} == {"method", "added", "flag"}
    assert kept.hook is later


def test_a_module_first_imported_by_the_library_is_noted_right_after_it_runs(
    library: Callable[..., Any],
) -> None:
    # http.client, first imported by urllib3 inside sentry-sdk and patched right after: noted
    # before the app's import, it was not there; noted after, its patch was its original.
    library("late_std", "class Connection:\n    def putrequest(self): return 'real'\n")
    library(
        "late_lib",
        "import late_std\n\ndef putrequest(self):\n    return 'patched'\n\n"
        "late_std.Connection.putrequest = putrequest\n",
    )
    patches = Patches()
    meta_path = list(sys.meta_path)
    with patches.recording():
        importlib.import_module("late_lib")
    late_std = sys.modules["late_std"]
    ((patch,),) = [patches.patches]
    assert (patch.owner, patch.name) == (late_std.Connection, "putrequest")
    assert patch.old is not MISSING and code_module(patch.old) == "late_std"
    # Left as they were: the finders, and the loader (its class's exec_module again).
    assert sys.meta_path == meta_path and "exec_module" not in vars(late_std.__loader__)
    patches.undo(lambda name: name == "late_lib")
    assert late_std.Connection().putrequest() == "real"


PATCHING_APP = """
import kept_std

real = kept_std.hook

def hook():
    return {version!r} + " over " + real()

kept_std.hook = hook
{more}

def app(environ, start_response):
    return []
"""


def test_a_hup_patches_a_clean_library_and_a_failed_one_leaves_the_old_patches(
    kept: types.ModuleType, library: Callable[..., Any], caplog: pytest.LogCaptureFixture
) -> None:
    # sentry-sdk wrapped its previous generation's wrappers at each HUP: after 3, one
    # exception was sent 4 times. A failed re-import must not leave its own behind either.
    library("patchme", PATCHING_APP.format(version="v1", more=""))
    config = make_config(app="patchme:app")
    before = set(sys.modules)
    try:
        reload.first_import(config)
        assert kept.hook() == "v1 over real"
        broken = "kept_std.Thing.method = hook\nimport no_such_module_here"
        library("patchme", PATCHING_APP.format(version="v2", more=broken))
        with caplog.at_level(logging.ERROR, logger="uwsgiapp.error"):
            assert reload.reimport(config, before) is None
        assert kept.hook() == "v1 over real" and kept.Thing().method() == "real"
        for version in ("v3", "v4"):
            library("patchme", PATCHING_APP.format(version=version, more=""))
            assert reload.reimport(config, before) is not None
            assert kept.hook() == f"{version} over real"
    finally:
        reload._patched.undo(lambda name: name == "patchme")


KEPT_WRAPPER = """
import functools, kept_std

real = kept_std.hook

@functools.wraps(real)
def kept_layer():  # a kept library's instrumentation (New Relic's, initialised once)
    return 'kept:' + real()

kept_std.hook = kept_layer
"""
DROPPED_WRAPPER = """
import functools, kept_std

inner = kept_std.hook

@functools.wraps(inner)
def outer():
    return 'dropped:' + inner()

kept_std.hook = outer
"""


def test_a_kept_library_s_layer_beneath_the_patch_stays(
    kept: types.ModuleType, library: Callable[..., Any]
) -> None:
    # New Relic (kept: C extensions) wraps at init, sentry (re-imported) wraps it again: the
    # undo put back the original, and New Relic's instrumentation was gone for good.
    library("kept_lib", KEPT_WRAPPER)
    library("dropped_lib", DROPPED_WRAPPER)
    patches = Patches()
    with patches.recording():
        importlib.import_module("kept_lib")
        importlib.import_module("dropped_lib")
    assert kept.hook() == "dropped:kept:real"
    patches.undo(lambda name: name == "dropped_lib")
    assert kept.hook() == "kept:real"


def test_a_finder_that_asks_the_others_does_not_recurse_through_ours(
    library: Callable[..., Any],
) -> None:
    # A hand-written post-import hook that asks every other finder (ours among them) for the
    # same name: a RecursionError stopped the app's start.
    class Asking:
        def find_spec(self, name: str, path: Any, target: Any = None) -> Any:
            for finder in list(sys.meta_path):
                if finder is not self and hasattr(finder, "find_spec"):
                    spec = finder.find_spec(name, path, target)
                    if spec is not None:
                        return spec
            return None

    library("asked_lib", "VALUE = 1\n")
    asking = Asking()
    sys.meta_path.insert(0, asking)
    try:
        with Patches().recording():
            assert importlib.import_module("asked_lib").VALUE == 1
    finally:
        sys.meta_path.remove(asking)
