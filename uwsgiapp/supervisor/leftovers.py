"""What the standard library's registries keep of the old code across a ``HUP``'s re-import,
taken out before it (and put back if it fails).

The master runs nothing of the app but its import, and each re-import registers its own
anew; what the old import registered in a registry that lives as long as the process stays,
holds the old module (through a class's methods, a function's globals) and, most of the time,
goes on working beside the new one:

- a filter the app put on a logger (``getLogger().addFilter(RequestIdFilter())``), or on a
  handler it did not add itself: one more each HUP, each run on every record;
- ``logging.setLogRecordFactory``, whose documented pattern wraps the factory it finds: the
  new code wrapped the old one's, and each record was made through every generation;
- ``warnings.filterwarnings(..., category=AppWarning)``: one more filter each HUP;
- an import hook in ``sys.meta_path`` or ``sys.path_hooks``, asked before the new one;
- a ``copyreg.pickle`` reducer for a class of the app.

An entry is the old code's when its class, or its function, is defined in a module the
re-import replaces (by name: before the re-import, every module of that name is the old
one). ``codecs.register`` and ``sys.addaudithook`` cannot be listed or undone: what they
keep, the reload's log line counts.

Once the new code is imported, :func:`release_old_code` lets go of what the standard library
holds of the old code in registries that stay (``weakref.finalize``'s, ``typing``'s caches).
"""

from __future__ import annotations

import contextlib
import contextvars
import copyreg
import functools
import logging
import sys
import types
import typing
import warnings
import weakref
from collections.abc import Callable, Collection, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

__all__ = ["Taken", "of_old_code", "put_back", "release_old_code", "take_out"]


@dataclass
class Taken:
    """What :func:`take_out` took from the registries, each where it was."""

    #: (the list, its index, the entry): a logger's or handler's filters, warnings.filters,
    #: sys.meta_path, sys.path_hooks.
    entries: list[tuple[list[Any], int, Any]] = field(default_factory=list)
    reducers: dict[type, Any] = field(default_factory=dict)
    record_factory: Callable[..., logging.LogRecord] | None = None


def _defined_in(obj: object) -> str | None:
    """The module a function, a method, a class or an instance's class is defined in."""
    # type() only: isinstance or getattr on an old object may set up a lazy object (Django's
    # LazyObject), which would import the new code into the old one.
    while type(obj) is functools.partial:
        obj = obj.func
    if type(obj) is types.MethodType:
        obj = obj.__func__
    if type(obj) is not types.FunctionType and not issubclass(type(obj), type):
        obj = type(obj)
    name = getattr(obj, "__module__", None)
    return name if isinstance(name, str) else None


def of_old_code(obj: object, names: Collection[str]) -> bool:
    """Is ``obj`` (or its class) defined in one of the modules ``names``?"""
    return _defined_in(obj) in names


def _category(entry: object) -> object:
    """The category of a ``warnings.filters`` entry (action, message, category, module,
    lineno)."""
    return entry[2] if type(entry) is tuple and len(entry) == 5 else None


def _filterers() -> Iterator[logging.Filterer]:
    """Every logger and the handlers on them."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        logger
        for logger in list(logging.Logger.manager.loggerDict.values())
        if isinstance(logger, logging.Logger)
    ]
    seen: set[int] = set()
    for logger in loggers:
        for filterer in [logger, *logger.handlers]:
            if id(filterer) not in seen:
                seen.add(id(filterer))
                yield filterer


def _lists() -> Iterator[tuple[list[Any], Callable[[Any], object]]]:
    """The registries that are lists, each with what of an entry tells whose it is."""
    for filterer in _filterers():
        yield filterer.filters, lambda entry: entry
    yield cast("list[Any]", warnings.filters), _category
    yield sys.meta_path, lambda entry: entry
    yield sys.path_hooks, lambda entry: entry


def take_out(
    names: Collection[str], factory_before: Callable[..., logging.LogRecord] | None
) -> Taken:
    """Take out of the registries what the modules ``names`` (the old code) put there; the
    log record factory goes back to ``factory_before`` (the one before the old code's
    import) if the old code's is the one set."""
    taken = Taken()
    for registry, whose in _lists():
        for index, entry in reversed(list(enumerate(registry))):
            if of_old_code(whose(entry), names):
                del registry[index]
                taken.entries.append((registry, index, entry))
    taken.entries.reverse()  # put back from the first index up
    for cls in [cls for cls in list(copyreg.dispatch_table) if of_old_code(cls, names)]:
        taken.reducers[cls] = copyreg.dispatch_table.pop(cls)
    factory = logging.getLogRecordFactory()
    if factory_before is not None and of_old_code(factory, names):
        taken.record_factory = factory
        logging.setLogRecordFactory(factory_before)
    _warnings_changed()
    return taken


def put_back(taken: Taken) -> None:
    """Put back what :func:`take_out` took (the re-import failed: the old code stays)."""
    for registry, index, entry in taken.entries:
        registry.insert(index, entry)
    copyreg.dispatch_table.update(taken.reducers)
    if taken.record_factory is not None:
        logging.setLogRecordFactory(taken.record_factory)
    _warnings_changed()


def _warnings_changed() -> None:
    """warnings caches its filters' verdicts: a change of the list must say so."""
    with contextlib.suppress(AttributeError):  # a private function of warnings
        warnings._filters_mutated()  # type: ignore[attr-defined]


def _old_method(func: object, old_globals: set[int]) -> bool:
    """Is ``func`` a bound method (or a partial of one) defined in an old module?"""
    # type() only: isinstance or getattr on an old object may set up a lazy object (Django's
    # LazyObject), which would import the new code into the old one.
    while type(func) is functools.partial:
        func = func.func
    if type(func) is not types.MethodType:
        return False
    func = func.__func__
    return type(func) is types.FunctionType and id(func.__globals__) in old_globals


def _clear_old_context_vars(old_modules: Iterable[types.ModuleType]) -> None:
    """Set back to its default (None without one), in this thread's context, each variable of
    ``old_modules`` (module globals that are a ``ContextVar``) that has a value there, but
    one a loaded module also holds (a kept module's, which the old code only imported:
    ``uwsgiapp.web``'s, which the new code set again)."""
    current = contextvars.copy_context()
    loaded: set[int] = set()
    for module in list(sys.modules.values()):
        with contextlib.suppress(Exception):  # a lazy module loads as its dict is read
            space = vars(module) if isinstance(module, types.ModuleType) else {}
            loaded.update(id(v) for v in space.values() if type(v) is contextvars.ContextVar)
    for module in old_modules:
        for var in list(vars(module).values()):
            if type(var) is contextvars.ContextVar and var in current and id(var) not in loaded:
                try:
                    default = contextvars.Context().run(var.get)
                except LookupError:  # none declared
                    default = None
                var.set(default)


def release_old_code(old_modules: Iterable[types.ModuleType]) -> int:
    """Drop what the standard library holds of the replaced ``old_modules``, so that the
    collector can free them; returns how many finalizers were detached.

    - ``weakref.finalize`` keeps each finalizer's callback, in a registry that lives as long
      as the process, until its object dies. Django's ``Signal.connect`` registers one per
      receiver, a bound method of the signal: through it the old module's globals, and so the
      whole old Django with its receivers, which then never die. The finalizers whose
      callback is a method of old code are detached: they only tidy up the old objects'
      bookkeeping. A plain function's (``weakref.finalize(obj, shutil.rmtree, path)``, or
      the app's own cleanup function) is kept, to run at exit as it would have: what it
      holds stays, and the reload's log line counts it.
    - The master's context keeps the value of each context variable set at import (sentry-sdk
      keeps its scopes, hub and client in three): the old modules' own variables are set to
      None there, as nothing reads them any more (the new code has its own).
    - ``typing``'s caches (``Optional[X]``, ``List[X]``: 128 per function) keep the classes of
      the annotations evaluated at import (Flask's, werkzeug's): cleared, as ``typing``
      itself allows; they fill again on use. The old code's own caches made with typing's
      decorator (typing_extensions' ``Concatenate[...]``) are taken out of its list: each
      HUP kept one more old typing_extensions, "still held".

    (The old code's postfork functions, exit functions and fork hooks are taken out before:
    :func:`uwsgiapp.supervisor.reload.reimport`, and what it put in the registries:
    :func:`take_out`.)
    """
    modules = list(old_modules)
    _clear_old_context_vars(modules)
    old_globals = {id(module.__dict__) for module in modules}
    detached = 0
    registry = getattr(weakref.finalize, "_registry", {})
    for finalizer, info in list(registry.items()):
        if _old_method(getattr(info, "func", None), old_globals) and finalizer.detach():
            detached += 1
    cleanups = getattr(typing, "_cleanups", None)
    if type(cleanups) is list:  # a cache of the old code's (typing_extensions') goes with it
        cleanups[:] = [clear for clear in cleanups if not _old_cache(clear, old_globals)]
    caches = getattr(typing, "_caches", None)
    if type(caches) is dict:  # Python 3.12 on also keeps each cache by its function
        for func in [f for f in caches if _old_function(f, old_globals)]:
            del caches[func]
    for clear in cleanups or ():
        clear()
    return detached


def _old_cache(clear: object, old_globals: set[int]) -> bool:
    """Is ``clear`` the ``cache_clear`` of an ``lru_cache`` of a function of an old module?"""
    if type(clear) is not types.BuiltinMethodType:
        return False
    return _old_function(getattr(clear.__self__, "__wrapped__", None), old_globals)


def _old_function(func: object, old_globals: set[int]) -> bool:
    """Is ``func`` a function of an old module (its globals among ``old_globals``)?"""
    return type(func) is types.FunctionType and id(func.__globals__) in old_globals
