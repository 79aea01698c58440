"""What an import of the app registers with ``atexit`` and ``os.register_at_fork`` in the
master, so that a ``HUP``'s re-import can undo the old code's.

Neither can be listed, and a fork hook cannot be removed: registered again by each re-import,
the old code's ran once more in every new worker per reload (a database pool opened N+1 times
after N reloads), and its exit functions once more at every exit. While the app is imported,
both registration functions are wrapped: an exit function is remembered (and
``atexit.unregister`` takes it out later); a fork hook is registered through a guard that
calls it only while its code is the current one, and lets go of it when it is replaced.

So is ``logging.Logger.addHandler``: a handler the app's module adds at import
(``getLogger(__name__).addHandler(FileHandler(...))``) stays on its logger, which ``logging``
keeps across the re-import: each HUP added one more, and each line was written once more per
reload. The old code's are taken off before the re-import (:meth:`Registrations.detach`), and
closed once the new code imported, or put back if it does not.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import sys
from collections.abc import Callable, Iterator
from typing import Any

__all__ = ["Registrations", "attach", "close_handlers", "fork_hooks_quiet"]

_Hook = Callable[[], object]
#: While true, no recorded fork hook runs (:func:`fork_hooks_quiet`).
_quiet = False


class _Guard:
    """A fork hook of one import: calls it until :meth:`Registrations.undo`."""

    __slots__ = ("hook",)

    def __init__(self, hook: _Hook) -> None:
        self.hook: _Hook | None = hook

    def __call__(self) -> None:
        hook = self.hook
        if hook is not None and not _quiet:
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
        #: The names of the modules that registered an ``after_in_child`` fork hook.
        self.child_hook_modules: set[str] = set()
        self.handlers: list[tuple[logging.Logger, logging.Handler, int]] = []
        #: The log record factory before the import (the app's may wrap it).
        self.record_factory: Callable[..., logging.LogRecord] | None = None
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
            if "after_in_child" in given:
                self.child_hook_modules.add(str(sys._getframe(1).f_globals.get("__name__")))
            real_at_fork(**guarded)

        real_add = logging.Logger.addHandler
        self.record_factory = logging.getLogRecordFactory()

        def add_handler(logger: logging.Logger, handler: logging.Handler) -> None:
            if self._open and handler not in logger.handlers:
                self.handlers.append((logger, handler, _caller()))
            real_add(logger, handler)

        atexit.register = register  # type: ignore[assignment]
        os.register_at_fork = register_at_fork
        logging.Logger.addHandler = add_handler  # type: ignore[method-assign,assignment]
        self._open = True
        try:
            yield
        finally:
            self._open = False
            atexit.register = real_register
            os.register_at_fork = real_at_fork
            logging.Logger.addHandler = real_add  # type: ignore[method-assign]

    def detach(
        self, replaced: Callable[[int], bool]
    ) -> list[tuple[logging.Logger, logging.Handler]]:
        """Take off their loggers the handlers a module ``replaced`` says added (by the id of
        its globals); those taken off, for :func:`close_handlers` or :func:`attach`."""
        taken = []
        for logger, handler, caller in self.handlers:
            if replaced(caller) and handler in logger.handlers:
                logger.removeHandler(handler)
                taken.append((logger, handler))
        return taken

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


@contextlib.contextmanager
def fork_hooks_quiet() -> Iterator[None]:
    """A fork in it runs none of the fork hooks an import of the app registered, in the master
    nor in the child (a HUP's trial import: the old code's set-up for a worker is not for it)."""
    global _quiet
    _quiet = True
    try:
        yield
    finally:
        _quiet = False


def attach(taken: list[tuple[logging.Logger, logging.Handler]]) -> None:
    """Put back the handlers :meth:`Registrations.detach` took off (the re-import failed)."""
    for logger, handler in taken:
        logger.addHandler(handler)


def close_handlers(taken: list[tuple[logging.Logger, logging.Handler]]) -> None:
    """Close the handlers the old code added (the new code has its own now)."""
    for _, handler in taken:
        with contextlib.suppress(Exception):  # the app's handler: its failure is not ours
            handler.close()


def _caller() -> int:
    """The id of the globals of the code that called the registration function (two frames
    up: past the wrapper)."""
    return id(sys._getframe(2).f_globals)
