"""Which modules a ``HUP``'s re-import takes out of ``sys.modules`` to import afresh, and
which it keeps (:func:`app_modules`): the standard library, uwsgiapp's own, packages with an
extension module loaded, and the pure-Python packages these use. What a package loaded before
the app (a tracer's launcher's) holds of the app's packages is not kept, but said
(:func:`held_by_earlier`): kept, a framework with process-wide state (Django's settings)
served the old code after a HUP.
"""

from __future__ import annotations

import functools
import importlib.machinery
import os
import site
import sys
import sysconfig
import types
from collections.abc import Iterable

from uwsgiapp.supervisor.patches import code_module
from uwsgiproto import Limits

__all__ = [
    "app_modules",
    "held_by_earlier",
    "library_dirs",
    "loaded_from",
    "site_dirs",
    "used_by_kept",
]

_EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)
#: Compiled into the interpreter: of the standard library, though no file says so.
_BUILT_IN = frozenset(sys.builtin_module_names)
#: Top-level packages that belong to the server itself (and its codec), not to the app.
_OURS = frozenset({__name__.partition(".")[0], Limits.__module__.partition(".")[0]})


@functools.cache
def library_dirs() -> tuple[str, ...]:
    """Where the standard library is (with a trailing slash). Asked once, before a ``--uid``
    drop (:func:`uwsgiapp.supervisor.boot`): sysconfig imports its data module on first use,
    which the dropped user may not be able to read (a Python under /root)."""
    paths = sysconfig.get_paths()
    found = {paths[key] for key in ("stdlib", "platstdlib") if key in paths}
    return tuple(os.path.join(os.path.realpath(p), "") for p in found if p)


@functools.cache
def site_dirs() -> tuple[str, ...]:
    """Where installed packages are (inside the standard library's directory in a venv)."""
    paths = sysconfig.get_paths()
    found = {paths[key] for key in ("purelib", "platlib") if key in paths}
    found.update(site.getsitepackages() if hasattr(site, "getsitepackages") else ())
    found.add(site.getusersitepackages())
    return tuple(os.path.join(os.path.realpath(p), "") for p in found if p)


def loaded_from(module: object) -> str:
    """The file a module was loaded from, or a namespace package's first directory ('')."""
    path = getattr(module, "__file__", None)
    if not isinstance(path, str):
        paths = list(getattr(module, "__path__", None) or ())
        path = paths[0] if paths and isinstance(paths[0], str) else ""
    return os.path.realpath(path) if path else ""


def app_modules(
    loaded: Iterable[str],
    before: set[str],
    stdlib: tuple[str, ...] | None = None,
    installed: tuple[str, ...] | None = None,
) -> list[str]:
    """The names in ``loaded`` (``sys.modules``) to import afresh: not there ``before`` the
    app, not uwsgiapp's own, not of the standard library (``stdlib`` but not ``installed``
    directories, or compiled into the interpreter), not of a top-level package with an
    extension module loaded (by the extension's own name), nor of one these use
    (:func:`used_by_kept`), and not a second name of a module
    loaded before (multiprocessing's ``__mp_main__`` is ``__main__``) or of one that stays
    (requests' ``requests.packages.chardet`` is charset_normalizer, kept for its C parts:
    taken as old code, it was counted as "still held"), nor a top-level module no import
    made (:func:`_made_by_code`).

    A module compiled in, imported afresh, left the old one to the kept module of the
    standard library that imported it first (``gzip`` its ``zlib``): held for good, and its
    exceptions no longer the ones the app's new code catches."""
    stdlib = library_dirs() if stdlib is None else stdlib
    installed = site_dirs() if installed is None else installed
    earlier = {id(sys.modules[name]) for name in before if name in sys.modules}
    candidates: list[tuple[str, str]] = []
    native: set[str] = set()
    for name in loaded:
        top = name.partition(".")[0]
        module = sys.modules.get(name)
        if name in before or top in _OURS or id(module) in earlier or name in _BUILT_IN:
            continue
        where = loaded_from(module)
        if not where and _made_by_code(name, module):
            continue
        if where.endswith(_EXTENSIONS):
            native.add(_own_top(module, top))
        elif not where.startswith(stdlib) or where.startswith(installed):
            candidates.append((name, top))
    kept = native | used_by_kept({top for _, top in candidates}, native)
    going = {name for name, top in candidates if top not in kept}
    staying = {id(sys.modules.get(name)) for name in loaded if name not in going}
    return [
        name for name, _ in candidates if name in going and id(sys.modules[name]) not in staying
    ]


def held_by_earlier(
    before: set[str], going: Iterable[str], installed: tuple[str, ...] | None = None
) -> list[tuple[str, str]]:
    """(installed package loaded ``before`` the app, top-level package of ``going`` it uses):
    what a tracer's launcher (ddtrace-run) patched as the app first imported it, which the
    re-import takes afresh without the patches. Not kept for it: a kept Django (which
    ddtrace's integration holds) kept its settings and URL resolver, and served the old
    code; nor is a package of the app's own directory one of these (a launcher script that
    imports the app's config first)."""
    installed = site_dirs() if installed is None else installed
    tops = {name.partition(".")[0] for name in going}
    earlier = {
        name
        for name in before
        if name.partition(".")[0] not in _OURS
        and loaded_from(sys.modules.get(name)).startswith(installed)
    }
    held = set()
    for name in earlier:
        module = sys.modules.get(name)
        if isinstance(module, types.ModuleType):
            for used in _tops_used(module) & tops:
                held.add((name.partition(".")[0], used))
    return sorted(held)


def _made_by_code(name: str, module: object) -> bool:
    """A top-level module no import made (no spec, no file): Cython's ``cython_runtime`` and
    ``_cython_3_x_y``, which each Cython extension finds there to share its types. Taken out,
    the kept extension that made it still held it ("still held" at the first HUP), and the
    next one imported made another."""
    if "." in name or not issubclass(type(module), types.ModuleType):
        return False
    return vars(module).get("__spec__") is None


def _own_top(module: object, top: str) -> str:
    """The top-level package a module is of by its own name, not by the name it has in
    ``sys.modules`` (``top``): requests puts charset_normalizer's compiled ``md`` there as
    ``requests.packages.chardet.md`` too, and requests was kept as a package with C parts,
    with the old urllib3 it holds, while the new code imported a new one (a ``Retry`` of the
    new one, given to requests' ``HTTPAdapter``, raised ``TypeError`` at its first retry)."""
    name = vars(module).get("__name__") if issubclass(type(module), types.ModuleType) else None
    return name.partition(".")[0] if isinstance(name, str) and name else top


def used_by_kept(tops: set[str], roots: set[str]) -> set[str]:
    """Of the top-level packages ``tops``, those uwsgiapp's own modules or the kept packages
    ``roots`` (with C parts) use, and those these use in turn: kept, as they are. Imported
    afresh, they left the kept code with the old copy and the app with a new one: an
    ``errorhandler(NotFound)`` of the new werkzeug's class never saw the one ``uwsgiapp.web``
    raised."""
    kept: set[str] = set()
    scan = set(_OURS) | roots
    while scan:
        found: set[str] = set()
        for name, module in list(sys.modules.items()):
            if name.partition(".")[0] in scan and isinstance(module, types.ModuleType):
                found.update(_tops_used(module) & tops)
        scan = found - kept
        kept |= found
    return kept


def _tops_used(module: types.ModuleType) -> set[str]:
    """The top-level packages of what ``module``'s globals are: modules, and the code or
    instances :func:`~uwsgiapp.supervisor.patches.code_module` names (it asks ``type()`` and
    dicts only: a proxy, ``uwsgiapp.web.request``, would look for a request)."""
    used = set()
    for value in list(vars(module).values()):
        if issubclass(type(value), types.ModuleType):
            named = vars(value).get("__name__")
        else:
            named = code_module(value)
        if isinstance(named, str):
            used.add(named.partition(".")[0])
    return used
