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
"""

from __future__ import annotations

import contextlib
import copyreg
import functools
import logging
import sys
import types
import warnings
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from typing import Any, cast

__all__ = ["Taken", "of_old_code", "put_back", "take_out"]


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
