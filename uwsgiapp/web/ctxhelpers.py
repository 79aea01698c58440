"""What views do with the current context: ask whether there is one, add a function to run
on the response, keep it for a streamed body or another thread."""

from __future__ import annotations

import functools
import typing as t

from .globals import _cv_app, _cv_request

__all__ = [
    "after_this_request",
    "copy_current_request_context",
    "has_app_context",
    "has_request_context",
    "stream_with_context",
]

_T = t.TypeVar("_T")
_F = t.TypeVar("_F", bound=t.Callable[..., t.Any])
_AfterFunc = t.Callable[[t.Any], t.Any]


def has_request_context() -> bool:
    """Whether a request context is active (``request`` and ``session`` are usable)."""
    return _cv_request.get(None) is not None


def has_app_context() -> bool:
    """Whether an application context is active (``current_app`` and ``g`` are usable)."""
    return _cv_app.get(None) is not None


def after_this_request(f: _AfterFunc) -> _AfterFunc:
    """Run ``f(response)`` after this request's view, before the ``after_request`` hooks."""
    ctx = _cv_request.get(None)
    if ctx is None:
        raise RuntimeError("after_this_request() can only be used while handling a request.")
    if ctx._after_funcs is None:
        ctx._after_funcs = []
    ctx._after_funcs.append(f)
    return f


def copy_current_request_context(f: _F) -> _F:
    """Decorator, in a view: ``f`` runs in a copy of this request's context (same ``request``
    and ``session``) wherever it is called, e.g. in a thread the view starts. See
    :meth:`RequestContext.copy` for what is shared."""
    ctx = _cv_request.get(None)
    if ctx is None:
        raise RuntimeError(
            "copy_current_request_context() can only be used while handling a request, e.g."
            " on a function defined in the view."
        )
    copied = ctx.copy()

    @functools.wraps(f)
    def wrapper(*args: t.Any, **kwargs: t.Any) -> t.Any:
        with copied:
            return f(*args, **kwargs)

    return t.cast(_F, wrapper)


@t.overload
def stream_with_context(
    generator_or_function: t.Iterator[_T] | t.Iterable[_T],
) -> t.Iterator[_T]: ...


@t.overload
def stream_with_context(
    generator_or_function: t.Callable[..., t.Iterator[_T]],
) -> t.Callable[..., t.Iterator[_T]]: ...


def stream_with_context(
    generator_or_function: t.Iterator[_T] | t.Iterable[_T] | t.Callable[..., t.Iterator[_T]],
) -> t.Iterator[_T] | t.Callable[..., t.Iterator[_T]]:
    """Keep the current request context alive for a streamed response.

    The server iterates a generator response after the view returned and the context was
    popped; wrapped with this, every step of the generator runs with ``request``, ``session``,
    ``g`` and ``current_app`` set again, and teardown waits until the generator is exhausted or
    closed. Also usable as a decorator on a generator function called inside the view.
    """
    if callable(generator_or_function) and not hasattr(generator_or_function, "__next__"):
        function = generator_or_function

        @functools.wraps(function)
        def decorated(*args: t.Any, **kwargs: t.Any) -> t.Iterator[_T]:
            return stream_with_context(function(*args, **kwargs))

        return decorated

    ctx = _cv_request.get(None)
    if ctx is None:
        raise RuntimeError(
            "stream_with_context() can only be used while handling a request: call it in the"
            " view, not where the response is iterated."
        )
    inner = iter(t.cast("t.Iterable[_T]", generator_or_function))

    def run() -> t.Iterator[_T]:
        ctx._hold()
        try:
            yield t.cast(_T, None)  # primed below, so the hold is taken before the view returns
            while True:
                tokens = ctx._activate()
                try:
                    item = next(inner)
                except StopIteration:
                    return
                finally:
                    ctx._deactivate(tokens)
                yield item
        finally:
            close = getattr(inner, "close", None)
            if close is not None:
                tokens = ctx._activate()
                try:
                    close()
                finally:
                    ctx._deactivate(tokens)
            ctx._release()

    wrapped = run()
    next(wrapped)
    return wrapped
