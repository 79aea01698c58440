"""What an import of the app registers with ``atexit`` and ``os.register_at_fork`` in the
master, so that a ``HUP``'s re-import can undo the old code's.

Neither can be listed, and a fork hook cannot be removed: registered again by each re-import,
the old code's ran once more in every new worker per reload (a database pool opened N+1 times
after N reloads), and its exit functions once more at every exit. While the app is imported,
both registration functions are wrapped: an exit function is remembered (and
``atexit.unregister`` takes it out later); a fork hook is registered through a guard that
calls it only while its code is the current one, and lets go of it when it is replaced.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Registrations"]

_Hook = Callable[[], object]


class _Guard:
    """A fork hook of one import: calls it until :meth:`Registrations.undo`."""

    __slots__ = ("hook",)

    def __init__(self, hook: _Hook) -> None:
        self.hook: _Hook | None = hook

    def __call__(self) -> None:
        hook = self.hook
        if hook is not None:
            hook()


class Registrations:
    """The exit functions and fork hooks one import of the app registered, each with the
    module that registered it (the id of its globals): a registration is the old code's when
    the old code made it, whatever it registered (``engine.dispose``, a method of a library's
    class, is undone too; what a module of the standard library registers at its first import
    is not: it is never imported again)."""

    def __init__(self) -> None:
        self.exit_functions: list[tuple[Callable[..., Any], int]] = []
        self.fork_hooks: list[tuple[_Guard, int]] = []
        self._open = False

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """While the app is imported: what it registers is remembered here. A module that
        kept the wrapped function (``from atexit import register``) reaches the real one
        through it afterwards, unrecorded."""
        real_register = atexit.register
        real_at_fork = os.register_at_fork

        def register(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
            if self._open:
                self.exit_functions.append((func, _caller()))
            return real_register(func, *args, **kwargs)

        def register_at_fork(**hooks: _Hook | None) -> None:
            given = {when: hook for when, hook in hooks.items() if hook is not None}
            if not self._open or not given or not all(callable(h) for h in given.values()):
                real_at_fork(**hooks)  # its own error: none given, or one not callable
                return
            guarded = {when: _Guard(hook) for when, hook in given.items()}
            caller = _caller()
            self.fork_hooks.extend((guard, caller) for guard in guarded.values())
            real_at_fork(**guarded)

        atexit.register = register  # type: ignore[assignment]
        os.register_at_fork = register_at_fork
        self._open = True
        try:
            yield
        finally:
            self._open = False
            atexit.register = real_register
            os.register_at_fork = real_at_fork

    def undo(self, replaced: Callable[[int], bool]) -> int:
        """Take out the exit functions and silence the fork hooks registered by a module for
        which ``replaced(id of its globals)`` is true; how many. The record is emptied."""
        count = 0
        for func, caller in self.exit_functions:
            if replaced(caller):
                atexit.unregister(func)
                count += 1
        for guard, caller in self.fork_hooks:
            if replaced(caller):
                guard.hook = None
                count += 1
        self.exit_functions.clear()
        self.fork_hooks.clear()
        return count


def _caller() -> int:
    """The id of the globals of the code that called the registration function (two frames
    up: past the wrapper)."""
    return id(sys._getframe(2).f_globals)
