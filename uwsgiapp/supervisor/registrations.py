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
    """The exit functions and fork hooks one import of the app registered."""

    def __init__(self) -> None:
        self.exit_functions: list[Callable[..., Any]] = []
        self.fork_hooks: list[_Guard] = []

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """While the app is imported: what it registers is remembered here."""
        real_register = atexit.register
        real_at_fork = os.register_at_fork

        def register(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Callable[..., Any]:
            self.exit_functions.append(func)
            return real_register(func, *args, **kwargs)

        def register_at_fork(**hooks: _Hook | None) -> None:
            given = {when: hook for when, hook in hooks.items() if hook is not None}
            if not given or not all(callable(hook) for hook in given.values()):
                real_at_fork(**hooks)  # its own error: none given, or one not callable
                return
            guarded = {when: _Guard(hook) for when, hook in given.items()}
            self.fork_hooks.extend(guarded.values())
            real_at_fork(**guarded)

        atexit.register = register  # type: ignore[assignment]
        os.register_at_fork = register_at_fork
        try:
            yield
        finally:
            atexit.register = real_register
            os.register_at_fork = real_at_fork

    def undo(self, replaced: Callable[[object], bool]) -> int:
        """Take out the exit functions and silence the fork hooks for which ``replaced`` is
        true (the replaced code's: a module of the standard library imported for the first
        time by the app keeps its own); how many. The record is emptied."""
        count = 0
        for func in self.exit_functions:
            if replaced(func):
                atexit.unregister(func)
                count += 1
        for guard in self.fork_hooks:
            if replaced(guard.hook):
                guard.hook = None
                count += 1
        self.exit_functions.clear()
        self.fork_hooks.clear()
        return count
