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
        "print(old.undo(lambda func: True), atexit.register is not None)\n"
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
    (guard,) = reg.fork_hooks
    guard()
    assert calls == ["child"]
    reg.undo(lambda func: True)
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


def test_only_the_replaced_codes_registrations_are_undone() -> None:
    # A module of the standard library first imported by the app (concurrent.futures' fork
    # hooks, logging's exit function) is never re-imported: its registrations must stay.
    calls: list[str] = []
    reg = Registrations()
    with reg.recording():
        os.register_at_fork(after_in_child=lambda: calls.append("app"))
        os.register_at_fork(after_in_child=calls.clear)  # a builtin's method: not the app's
    app_hook, library_hook = reg.fork_hooks
    assert reg.undo(lambda func: func is app_hook.hook) == 1
    assert app_hook.hook is None and library_hook.hook is not None
