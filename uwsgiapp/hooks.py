"""Per-worker set-up: :func:`postfork`, the place of uWSGI's ``uwsgidecorators.postfork`` and
gunicorn's ``post_fork`` hook.

An app loaded once in the master (the default) is shared by every worker forked from it;
what must not be shared (a database pool, a client with its own socket, a random seed) is
made again in each worker by a function decorated with :func:`postfork`. Unlike
``os.register_at_fork``, whose functions can never be unregistered, the functions of the old
code are dropped when a ``HUP`` re-imports the app, so that each worker runs the new code's
function once, not one for each reload since the start.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TypeVar

__all__ = ["PostforkError", "postfork", "run_postfork"]

_F = TypeVar("_F", bound=Callable[[], object])
#: Each function with the module that decorated it (the id of its globals).
_registered: list[tuple[Callable[[], object], int]] = []


class PostforkError(Exception):
    """A :func:`postfork` function raised (the exception is the ``__cause__``)."""


def postfork(func: _F) -> _F:
    """Decorator: call ``func()`` (no arguments) in each worker after it is forked and the app
    is loaded, before it serves (with ``--lazy-apps``, after the worker's own import; in
    ``uwsgiapp dev``, once before serving). Functions run in the order they were decorated.

    A function that raises stops its worker from starting, as an app that cannot be imported
    does: at start-up the server stops, in a ``HUP`` the reload is called off.
    """
    _registered.append((func, id(sys._getframe(1).f_globals)))
    return func


def run_postfork() -> None:
    """Call the :func:`postfork` functions; raise :class:`PostforkError` at the first that
    raises."""
    for func, _ in list(_registered):
        try:
            func()
        except Exception as exc:
            name = getattr(func, "__qualname__", repr(func))
            where = getattr(func, "__module__", "?")
            raise PostforkError(f"postfork function {where}.{name} raised {exc!r}") from exc


def functions() -> list[Callable[[], object]]:
    """The functions registered, in order."""
    return [func for func, _ in _registered]


def forget(replaced: Callable[[int], bool]) -> int:
    """Drop the functions decorated in a module for which ``replaced(id of its globals)`` is
    true (the replaced code's, whatever the function is: a library's bound method too); how
    many."""
    kept = [(func, caller) for func, caller in _registered if not replaced(caller)]
    dropped = len(_registered) - len(kept)
    _registered[:] = kept
    return dropped
