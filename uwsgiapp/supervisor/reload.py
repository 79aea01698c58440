"""HUP's re-import of a preloaded app in the master, so that the new workers run new code.

The modules the app brought in (those imported after the master's own) are taken out of
``sys.modules`` and the app is imported afresh; the new workers are forked from it. When the
new code does not import, the old modules go back and the old app keeps serving: one log line
says why. Kept loaded, never re-imported: extension modules (a shared library cannot be
loaded twice into one process; some refuse a second initialisation) and uwsgiapp's own.
The master loop waits while this runs: as long as the app's import takes (logged).
"""

from __future__ import annotations

import importlib
import importlib.machinery
import logging
import re
import sys
import time
from collections.abc import Iterable

from uwsgiapp.config import Config
from uwsgiapp.importer import AppImportError, WSGIApp, load_app
from uwsgiapp.supervisor.actions import ReloadKind
from uwsgiproto import Limits

log = logging.getLogger("uwsgiapp.error")

_EXTENSIONS = tuple(importlib.machinery.EXTENSION_SUFFIXES)
#: Top-level packages that belong to the server itself (and its codec), not to the app.
_OURS = frozenset({__name__.partition(".")[0], Limits.__module__.partition(".")[0]})
_FILE_LINE = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)')


def app_modules(loaded: Iterable[str], before: set[str]) -> list[str]:
    """The names in ``loaded`` (``sys.modules``) to import afresh: not there ``before`` the
    app, not an extension module, not uwsgiapp's own."""
    fresh = []
    for name in loaded:
        if name in before or name.partition(".")[0] in _OURS:
            continue
        module = sys.modules.get(name)
        path = getattr(module, "__file__", None) or ""
        if isinstance(path, str) and path.endswith(_EXTENSIONS):
            continue
        fresh.append(name)
    return fresh


def one_line(message: str) -> str:
    """An import error's message (the inner traceback on the lines after the first) as one
    line: the first line, the exception, and the last file and line the traceback names."""
    lines = [line for line in message.splitlines() if line.strip()]
    if len(lines) < 2:
        return message.strip()
    where = ""
    for line in lines[1:]:
        match = _FILE_LINE.match(line)
        if match:
            where = f" ({match['file']}, line {match['line']})"
    return f"{lines[0].rstrip(':')}: {lines[-1].strip()}{where}"


def reimport(config: Config, before: set[str]) -> WSGIApp | None:
    """Import the app afresh; None (the old modules restored, one line logged) if it fails."""
    started = time.monotonic()
    saved = {name: sys.modules.pop(name) for name in app_modules(list(sys.modules), before)}
    importlib.invalidate_caches()  # new files since the first import are found
    try:
        app = load_app(config.app, chdir=config.chdir, pythonpath=config.pythonpath)
    except AppImportError as exc:
        for name in app_modules(list(sys.modules), before):
            del sys.modules[name]  # what the failed import loaded must not mix with the old
        sys.modules.update(saved)
        log.error("reload: cannot re-import the app, keeping the old code: %s", one_line(str(exc)))
        return None
    log.info(
        "reload: app re-imported (%d modules) in %.2f s",
        len(saved),
        time.monotonic() - started,
    )
    return app


def reload_kind(config: Config, *, preloaded: bool) -> ReloadKind:
    """What a HUP does about the code, from the options."""
    if not preloaded:
        return ReloadKind.LAZY
    return ReloadKind.REIMPORT if config.reload_preloaded else ReloadKind.RECYCLE
