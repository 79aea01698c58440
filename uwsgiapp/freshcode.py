"""A module's bytecode cache is not used when its source was written after it.

CPython takes a ``.pyc`` as current when the source's modification time, in whole seconds, and
its size are the ones recorded in it. A deploy that rewrites a file with a text of the same size
(a version string, a flag, one digit of a setting) in the second of the previous import's cache
then gets the old code: after the ``HUP`` the new workers serve it, until a later change moves
the time or the size (CPython issue 75953, still open). The import of the app
(the master's, each ``HUP``'s and a ``--lazy-apps`` worker's), and every import after it in the
process (a view Django imports at its first request), is checked here as well: a cache not
written after its source's last change is compiled again from the source.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Callable
from types import CodeType
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # importlib.abc pulls in importlib.resources, pathlib and tempfile
    from importlib.abc import PathEntryFinder

__all__ = ["CheckedSourceLoader", "check_bytecode_caches", "may_be_stale"]


def may_be_stale(source_mtime_ns: int, cache_mtime_ns: int, cache_flags: int) -> bool:
    """Whether a cache may hold an older text than its source: it was written (its file's
    time) before the source last changed, and it is checked by time (``cache_flags`` 0, the
    header's; a hash-based one, PEP 552, is checked by CPython against the text itself, or is
    meant to be used as it is). Equal times are no sign: a reproducible build or a Nix store
    gives every file the same one, in read-only directories this check must not make CPython
    compile from source each time."""
    return cache_flags == 0 and source_mtime_ns > cache_mtime_ns


class CheckedSourceLoader(importlib.machinery.SourceFileLoader):
    """The standard source loader, which first drops a cache older than its source; where it
    cannot (a read-only directory), the source is compiled without the cache."""

    def get_code(self, fullname: str) -> CodeType | None:
        """The module's code, from a cache only if it was written after the source."""
        source = self.get_filename(fullname)
        if _stale_cache(source):
            try:
                os.unlink(importlib.util.cache_from_source(source))
            except FileNotFoundError:
                pass  # another worker's import took it away first
            except OSError:
                return self.source_to_code(self.get_data(source), source)
        return super().get_code(fullname)


def _stale_cache(source: str) -> bool:
    try:
        cache = importlib.util.cache_from_source(source)
        source_mtime, cache_mtime = os.stat(source).st_mtime_ns, os.stat(cache).st_mtime_ns
        if source_mtime <= cache_mtime:
            return False  # the usual case, told without opening the cache
        with open(cache, "rb") as f:
            flags = int.from_bytes(f.read(16)[4:8], "little")
    except (OSError, NotImplementedError, ValueError):
        return False  # no cache (or none possible): CPython compiles the source anyway
    return may_be_stale(source_mtime, cache_mtime, flags)


def _hook() -> Callable[[str], PathEntryFinder]:
    return importlib.machinery.FileFinder.path_hook(
        (importlib.machinery.ExtensionFileLoader, importlib.machinery.EXTENSION_SUFFIXES),
        (CheckedSourceLoader, importlib.machinery.SOURCE_SUFFIXES),
        (importlib.machinery.SourcelessFileLoader, importlib.machinery.BYTECODE_SUFFIXES),
    )


_installed = False


def check_bytecode_caches() -> None:
    """From now on, in this process and the ones it forks, a directory on ``sys.path`` loads
    its ``.py`` files with :class:`CheckedSourceLoader` (once; later calls do nothing).

    The hook goes first: a path that is no directory (a zip file, an editable install's
    placeholder) is refused by it and left to the hooks after it, as before.
    """
    global _installed
    if _installed:
        return
    _installed = True
    sys.path_hooks.insert(0, _hook())
    # The finders made before know the standard loader; they are made again on use.
    sys.path_importer_cache.clear()
