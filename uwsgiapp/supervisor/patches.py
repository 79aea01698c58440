"""What an import of the app patched in the modules a ``HUP`` keeps, so that the re-import
starts from them as they were.

The re-import loads the app's pure-Python packages afresh, but the standard library stays
loaded: what a library patched into it at init (sentry-sdk's ``logging.Logger.callHandlers``,
``threading.Thread.start``, ``sys.excepthook``, ``http.client.HTTPConnection.putrequest``;
OpenTelemetry's and other tracers' wrappers) stayed in place, and the new code wrapped the old
code's wrapper: after N reloads each log record went through N+1 generations of the library,
each old client still sent its own copy of every error, and every old module was held.

While the app is imported, :meth:`Patches.recording` notes every attribute of a loaded module
(and of each class a module defines) as it was, and afterwards keeps those the import replaced
or added with *code of a module the import brought in*: a function, a method, a class, a
``functools.partial``, ``staticmethod``/``classmethod``/``property``, a wrapt-style wrapper
(its ``_self_wrapper``) or an instance of such a class. A module first imported during the
import (``http.client``, by urllib3) is noted right after it executes: a finder put first on
``sys.meta_path`` while recording makes its loader note it after ``exec_module``. Before a
re-import, :meth:`Patches.renewing` puts back the originals of what the code being dropped
patched (the new code then patches a clean standard library, once); if the re-import fails or
is called off, :meth:`Patches.call_off` undoes the new import's patches and applies the old
code's again.

Not undone: what the standard library itself set (a patch whose value is the standard
library's own code, its caches), the patches of a package the reload keeps (one with an
extension module: it is not imported again), values that are not code (a flag such as
``_patched = True``, numbers, dicts; a dict or list changed in place, as ``logging._handlers``,
``sys.path`` or ``sys.meta_path``), an attribute of an instance (``logging.root.handle = ...``),
an attribute that something replaced again after the import (left as it is), a patch made after
the import (at the first request), and the attributes of a module loaded as built-in or frozen
during the import.
"""

from __future__ import annotations

import contextlib
import functools
import sys
import types
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["Patch", "Patches", "code_module"]

#: An attribute that was not there.
MISSING: Any = type("Missing", (), {"__repr__": lambda self: "MISSING"})()
_UNWRAP_DEPTH = 8


def code_module(value: object) -> str | None:
    """The name of the module whose code ``value`` is, or None for what is not code.

    Only ``type()`` and the objects' own dicts are asked (no ``getattr`` on an arbitrary
    object, but a wrapper's whose class defines ``_self_wrapper``: a lazy object, Django's,
    would set itself up)."""
    for _ in range(_UNWRAP_DEPTH):
        kind = type(value)
        if kind is types.FunctionType:
            name = value.__globals__.get("__name__")  # type: ignore[attr-defined]
            return name if type(name) is str else None
        if kind is types.MethodType or kind is staticmethod or kind is classmethod:
            value = value.__func__  # type: ignore[attr-defined]
        elif kind is functools.partial:
            value = value.func  # type: ignore[attr-defined]
        elif kind is property:
            value = value.fget  # type: ignore[attr-defined]
        elif issubclass(kind, type):
            name = vars(value).get("__module__")
            return name if type(name) is str else None
        elif any("_self_wrapper" in vars(k) for k in kind.__mro__):
            value = getattr(value, "_self_wrapper", None)  # wrapt's FunctionWrapper
        else:
            return _instance_module(kind)
    return None


def _instance_module(kind: type) -> str | None:
    """An object's class's module; None for the interpreter's own types (an int, a builtin
    function, a module), which have none in their dict."""
    name = vars(kind).get("__module__")
    return name if type(name) is str and name != "builtins" else None


@dataclass(eq=False)
class Patch:
    """``owner.name`` was ``old`` (:data:`MISSING`: not there) and the import set ``new``,
    code of the module ``code``; ``where``: the module ``owner`` is or belongs to."""

    owner: object
    name: str
    old: object
    new: object
    code: str
    where: str

    def current(self) -> object:
        """What ``owner.name`` is now (:data:`MISSING` if not there)."""
        return vars(self.owner).get(self.name, MISSING)


class _Notes:
    """Each noted module's and class's attributes as they were, by the id of the owner."""

    def __init__(self) -> None:
        self.owners: dict[int, tuple[object, str, dict[str, object]]] = {}

    def note(self, module: object) -> None:
        """Note ``module``'s attributes and those of the classes it defines (once each); a
        module that cannot be read (a lazy module whose load fails) is skipped."""
        if not issubclass(type(module), types.ModuleType):
            return
        try:
            space = vars(module)
        except Exception:  # LazyLoader's module loads here, and may fail
            return
        where = space.get("__name__")
        if type(where) is not str or id(module) in self.owners:
            return
        self.owners[id(module)] = (module, where, dict(space))
        for value in list(space.values()):
            defined_here = issubclass(type(value), type) and vars(value).get("__module__") == where
            if defined_here and id(value) not in self.owners:
                self.owners[id(value)] = (value, where, dict(vars(value)))

    def changes(self, kept: Callable[[str], bool]) -> list[Patch]:
        """What was replaced or added since, with code of a module ``kept`` says is not."""
        found = []
        for owner, where, before in self.owners.values():
            patched: list[Patch] = []
            other: list[tuple[str, object, object]] = []
            for name, new in list(vars(owner).items()):
                old = before.get(name, MISSING)
                if new is old:
                    continue
                code = code_module(new)
                if code is None:
                    other.append((name, old, new))
                elif not kept(code):
                    patched.append(Patch(owner, name, old, new, code, where))
            found += patched
            if patched:  # the flags the same code set beside its patches: nest_asyncio's
                # `_nest_patched` guard, left alone, kept the new code from patching again
                found += [
                    Patch(owner, n, old, new, patched[0].code, where) for n, old, new in other
                ]
        return found


class _AfterExec:
    """First on ``sys.meta_path`` while recording: finds as the finders after it do, and has
    each found loader note its module right after ``exec_module``."""

    def __init__(self, notes: _Notes) -> None:
        self.notes = notes
        self.loaders: list[object] = []
        #: The names being looked up: an app's finder that asks the others (ours among them)
        #: for the same name gets None from us, not a recursion.
        self.in_progress: set[str] = set()

    def find_spec(
        self, name: str, path: Sequence[str] | None, target: types.ModuleType | None = None
    ) -> Any:
        """The spec the other finders give, its loader made to note what it executes."""
        if name in self.in_progress:
            return None
        self.in_progress.add(name)
        try:
            for finder in list(sys.meta_path):
                find = getattr(finder, "find_spec", None)
                if finder is self or find is None:
                    continue
                spec = find(name, path, target)
                if spec is not None:
                    self._watch(spec.loader)
                    return spec
            return None
        finally:
            self.in_progress.discard(name)

    def _watch(self, loader: object) -> None:
        # An instance's own attribute, taken off after the import: its class and what
        # isinstance says of it stay (a class, as the built-in and frozen importers are, is
        # shared by every module: left alone).
        space = getattr(loader, "__dict__", None)
        if isinstance(loader, type) or type(space) is not dict or "exec_module" in space:
            return
        real = getattr(loader, "exec_module", None)
        if real is None:
            return

        def exec_module(module: types.ModuleType) -> None:
            real(module)
            self.notes.note(module)

        space["exec_module"] = exec_module
        self.loaders.append(loader)

    def close(self) -> None:
        """Out of ``sys.meta_path``; the loaders as they were."""
        with contextlib.suppress(ValueError):
            sys.meta_path.remove(self)
        for loader in self.loaders:
            vars(loader).pop("exec_module", None)
        self.loaders.clear()


class Patches:
    """The patches one import of the app made in the modules a ``HUP`` keeps; during a
    re-import, also the old code's that it undid and the new import's."""

    def __init__(self) -> None:
        self.patches: list[Patch] = []
        self._undone: list[Patch] = []
        self._next: Patches | None = None

    @contextlib.contextmanager
    def recording(self) -> Iterator[None]:
        """While the app is imported: what it patches is recorded here."""
        notes = _Notes()
        loaded = dict(sys.modules)
        for module in loaded.values():
            notes.note(module)
        finder = _AfterExec(notes)
        sys.meta_path.insert(0, finder)
        try:
            yield
        finally:
            finder.close()
            self.patches = notes.changes(loaded.__contains__)

    @contextlib.contextmanager
    def renewing(self, dropped: Callable[[str], bool]) -> Iterator[None]:
        """A re-import: the patches of the code ``dropped`` says are undone first (the new
        code patches a clean library), and the new import is recorded apart, for
        :meth:`commit` or :meth:`call_off`."""
        self._undone = self.undo(dropped)
        self._next = Patches()
        with self._next.recording():
            yield

    def commit(self) -> None:
        """The re-import is the current code: its patches are the ones to undo next."""
        if self._next is not None:
            self.patches = self._next.patches
        self._next, self._undone = None, []

    def call_off(self, dropped: Callable[[str], bool]) -> None:
        """The re-import failed: its patches of code ``dropped`` says are undone, and the old
        code's applied again."""
        if self._next is not None:
            self._next.undo(dropped)
        self.redo(self._undone)
        self._next, self._undone = None, []

    def undo(self, dropped: Callable[[str], bool]) -> list[Patch]:
        """Put back the originals of the patches whose code is of a module ``dropped`` says
        (by its name), in a module that stays; those undone. A patch something replaced since
        is left as it is."""
        undone = []
        for patch in reversed(self.patches):
            if dropped(patch.code) and not dropped(patch.where) and patch.current() is patch.new:
                _set(patch.owner, patch.name, _beneath(patch, dropped))
                undone.append(patch)
        return undone

    def redo(self, undone: list[Patch]) -> None:
        """Apply again the patches :meth:`undo` took out."""
        for patch in reversed(undone):
            _set(patch.owner, patch.name, patch.new)


def _beneath(patch: Patch, dropped: Callable[[str], bool]) -> object:
    """What to put back for ``patch``: what it wraps, through ``__wrapped__``, down to the first
    layer that is not the dropped code's (a kept library's own wrapper, New Relic's, stays:
    its init does not run again), else what was there before the import."""
    value = patch.new
    for _ in range(_UNWRAP_DEPTH):
        if value is patch.old:
            break
        code = code_module(value)
        if code is None:
            break
        if not dropped(code):
            return value
        inner = _wrapped(value)
        if inner is None:
            break
        value = inner
    return patch.old


def _wrapped(value: object) -> object | None:
    """What ``value`` says it wraps (``functools.wraps``' ``__wrapped__``, a proxy's), asked of
    dicts only where it is no class attribute: None for none."""
    kind = type(value)
    if kind is types.MethodType:
        value = value.__func__  # type: ignore[attr-defined]
        kind = type(value)
    if kind is types.FunctionType:
        return vars(value).get("__wrapped__")
    if any("__wrapped__" in vars(k) for k in kind.__mro__[:-1]):
        return getattr(value, "__wrapped__", None)
    return None


def _set(owner: object, name: str, value: object) -> None:
    with contextlib.suppress(AttributeError, TypeError):  # a class that refuses: left
        if value is MISSING:
            delattr(owner, name)
        else:
            setattr(owner, name, value)
