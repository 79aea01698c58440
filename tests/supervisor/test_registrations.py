"""What an import of the app registers with atexit and os.register_at_fork, undone for a HUP."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from uwsgiapp.supervisor.registrations import Registrations


def test_the_exit_functions_an_import_registered_are_taken_out() -> None:
    # In a process of its own: what runs at its exit is the point.
    script = (
        "import atexit\n"
        "from uwsgiapp.supervisor.registrations import Registrations\n"
        "old, new = Registrations(), Registrations()\n"
        "with old.recording():\n"
        "    @atexit.register\n"
        "    def bye(): print('old code exits')\n"
        "with new.recording():\n"
        "    atexit.register(print, 'new code exits')\n"
        "print(old.undo(lambda caller: True), atexit.register is not None)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert out == "1 True\nnew code exits\n"


def test_a_fork_hook_runs_until_its_code_is_replaced() -> None:
    calls: list[str] = []
    reg = Registrations()
    real = os.register_at_fork
    with reg.recording():
        os.register_at_fork(after_in_child=lambda: calls.append("child"), before=None)
    assert os.register_at_fork is real  # put back after the import
    ((guard, _),) = reg.fork_hooks
    guard()
    assert calls == ["child"]
    reg.undo(lambda caller: True)
    guard()  # what os.fork would call in a worker forked after the HUP
    assert calls == ["child"] and guard.hook is None  # and the old code is let go of


def test_registrations_os_refuses_are_refused_as_before() -> None:
    reg = Registrations()
    with reg.recording():
        with pytest.raises(TypeError):
            os.register_at_fork()  # none given
        with pytest.raises(TypeError):
            os.register_at_fork(before="not callable")  # type: ignore[arg-type]
    assert reg.fork_hooks == []


def test_what_the_replaced_code_registered_is_undone_whatever_it_registered() -> None:
    # A library's bound method registered by the app (engine.dispose) stayed for good: it was
    # judged by the function's module, not by the code that registered it.
    calls: list[str] = []
    reg = Registrations()
    library = {"os": os}  # a module of the standard library, imported by the app's import
    with reg.recording():
        os.register_at_fork(after_in_child=calls.clear)  # the app's, a builtin's method
        exec("os.register_at_fork(after_in_child=lambda: None)", library)
    (app_hook, app_caller), (library_hook, library_caller) = reg.fork_hooks
    assert app_caller == id(globals()) and library_caller == id(library)
    assert reg.undo(lambda caller: caller == id(globals())) == 1
    assert app_hook.hook is None and library_hook.hook is not None


def test_a_wrapper_kept_past_the_import_registers_unrecorded() -> None:
    # `from atexit import register` at import kept the wrapper: later calls were recorded
    # into a record never undone again, which grew.
    reg = Registrations()
    with reg.recording():
        kept_at_fork = os.register_at_fork
    kept_at_fork(after_in_child=lambda: None)
    assert reg.fork_hooks == []
