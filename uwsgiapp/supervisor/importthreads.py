"""The threads an import of the app started in the master, and what the log says of them.

A fork copies only the thread that forks: a thread the app's import started in the master does
not run in the workers. Some libraries start theirs again in each child, from a hook they
register with ``os.register_at_fork(after_in_child=...)`` (OpenTelemetry's
``BatchSpanProcessor``): such a thread is said as started again, not as one to move into the
workers (the warning had users of a working exporter switch to ``--lazy-apps``). What the
import registered is recorded by :class:`~uwsgiapp.supervisor.registrations.Registrations`.
"""

from __future__ import annotations

import logging
import sys
import threading
import types
from collections.abc import Collection, Iterable

from uwsgiapp.supervisor.keptmodules import loaded_from, site_dirs
from uwsgiapp.supervisor.patches import code_module
from uwsgiapp.unpatched import OWN_THREADS

__all__ = ["restarted_after_fork", "say_import_threads", "thread_module", "threads_running"]

log = logging.getLogger("uwsgiapp.error")


def _thread_code(thread: threading.Thread) -> object:
    """What ``thread`` runs: its target, or its class's ``run``."""
    target = vars(thread).get("_target")
    return target if target is not None else type(thread).run


def thread_module(thread: threading.Thread) -> str | None:
    """The module whose code ``thread`` runs: its target's, or its class's ``run``'s."""
    return code_module(_thread_code(thread))


def restarted_after_fork(module: str | None, hook_modules: Collection[str]) -> bool:
    """Whether a thread running ``module``'s code is started again in each worker: that module,
    or for an installed library a module of its package (OpenTelemetry's thread runs
    ``opentelemetry.sdk.trace.export``, its hook is ``opentelemetry.sdk._shared_internal``'s),
    registered an after-fork hook (``hook_modules``) at import. Not a module of the standard
    library: ``concurrent.futures.thread``'s hook resets its lock, and a pool made at import
    has no thread in the workers (its tasks wait for ever); nor, for the app's own code,
    another module of its package (an ``engine.dispose`` hook restarts none of its threads)."""
    top = (module or "").partition(".")[0]
    if not module or top in sys.stdlib_module_names:
        return False
    if module in hook_modules:
        return True
    installed = loaded_from(sys.modules.get(module)).startswith(site_dirs())
    return installed and any(hooked.partition(".")[0] == top for hooked in hook_modules)


def threads_running(mark: str) -> list[str]:
    """The names of the live threads whose code's module has ``mark`` in its globals (the old
    modules a HUP's re-import could not free: a thread the old code started at import holds
    them; the new code's modules of the same names do not have it)."""
    found = []
    for thread in threading.enumerate():
        code = _thread_code(thread)
        if type(code) is types.MethodType:
            code = code.__func__
        if type(code) is types.FunctionType and mark in code.__globals__:
            found.append(thread.name)
    return found


def _names(threads: list[str]) -> str:
    return ", ".join(threads[:5]) + (", ..." if len(threads) > 5 else "")


def say_import_threads(
    before: Iterable[threading.Thread], what: str, hook_modules: Collection[str] = ()
) -> None:
    """Say which threads ``what`` (an import of the app in the master) started: a worker is
    forked without them, so a cache refresher or a metrics pusher started at import silently
    never runs where requests are served (a warning), unless its library starts it again after
    a fork, from a hook a module of its package registered (``hook_modules``: one line)."""
    known = set(before)
    # Not the calling thread: eventlet's patched threading stands for it with a new object.
    here = threading.get_ident()
    ours = {here, *OWN_THREADS}  # ours: a raw thread of the server's that logged meanwhile
    started = [t for t in threading.enumerate() if t not in known and t.ident not in ours]
    again: list[str] = []
    lost: list[str] = []
    for thread in started:
        restarted = restarted_after_fork(thread_module(thread), hook_modules)
        (again if restarted else lost).append(thread.name)
    if again:
        log.info(
            "%s started %d thread%s in the master (%s), which %s library starts again in each "
            "worker after the fork (an os.register_at_fork hook)",
            what,
            len(again),
            "" if len(again) == 1 else "s",
            _names(again),
            "its" if len(again) == 1 else "their",
        )
    if lost:
        log.warning(
            "%s started %d thread%s in the master (%s): the workers are forked without them; "
            "unless their library starts them again after a fork (sentry-sdk's do), start them "
            "in each worker (--lazy-apps, or at the first request)",
            what,
            len(lost),
            "" if len(lost) == 1 else "s",
            _names(lost),
        )
