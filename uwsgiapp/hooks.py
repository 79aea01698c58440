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

from collections.abc import Callable
from typing import TypeVar

__all__ = ["PostforkError", "postfork", "run_postfork"]

_F = TypeVar("_F", bound=Callable[[], object])
_registered: list[Callable[[], object]] = []


class PostforkError(Exception):
    """A :func:`postfork` function raised (the exception is the ``__cause__``)."""


def postfork(func: _F) -> _F:
    """Decorator: call ``func()`` (no arguments) in each worker after it is forked and the app
    is loaded, before it serves (with ``--lazy-apps``, after the worker's own import; in
    ``uwsgiapp dev``, once before serving). Functions run in the order they were decorated.

    A function that raises stops its worker from starting, as an app that cannot be imported
    does: at start-up the server stops, in a ``HUP`` the reload is called off.
    """
    _registered.append(func)
    return func


def run_postfork() -> None:
    """Call the :func:`postfork` functions; raise :class:`PostforkError` at the first that
    raises."""
    for func in list(_registered):
        try:
            func()
        except Exception as exc:
            name = getattr(func, "__qualname__", repr(func))
            where = getattr(func, "__module__", "?")
            raise PostforkError(f"postfork function {where}.{name} raised {exc!r}") from exc


def registered() -> list[Callable[[], object]]:
    """A copy of the functions registered so far (to :func:`restore` after a failed import)."""
    return list(_registered)


def restore(functions: list[Callable[[], object]]) -> None:
    """Make ``functions`` the registered ones again."""
    _registered[:] = functions


def forget(old: Callable[[Callable[[], object]], bool]) -> int:
    """Drop the functions for which ``old`` is true (the replaced code's); how many."""
    kept = [func for func in _registered if not old(func)]
    dropped = len(_registered) - len(kept)
    _registered[:] = kept
    return dropped
