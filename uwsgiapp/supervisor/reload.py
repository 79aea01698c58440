"""HUP's re-import of a preloaded app in the master, so that the new workers run new code.

The modules the app brought in (those imported after the master's own) are taken out of
``sys.modules`` and the app is imported afresh; the new workers are forked from it. When the
new code does not import, the old modules go back and the old app keeps serving: one log line
says why. Kept loaded, never re-imported:

- any package of which an extension module is loaded, and extension modules themselves: a
  shared library cannot be loaded twice into one process, and a second copy of the package's
  Python beside the C parts it keeps breaks it (SQLAlchemy's ORM, numpy);
- the standard library (``zoneinfo`` raises its exceptions from ``_zoneinfo``: re-imported,
  its ``except`` clauses no longer matched); it does not change between two HUPs. So are the
  modules compiled into the interpreter, which have no file to tell them by (Debian's
  ``python3`` builds ``zlib``, ``_csv``, ``_heapq``... in);
- uwsgiapp's own, the modules loaded before the app (what a tracer's launcher loads:
  ddtrace-run, opentelemetry-instrument), and the pure-Python packages uwsgiapp's own or the
  packages with C parts use. What a module loaded before the app holds of the packages the
  re-import takes out (ddtrace's integration holds flask, which it patched as the app first
  imported it) is said in a warning, not kept: a kept Django kept its settings and URL
  resolver, and served the old code.

Pure-Python packages, installed or not, are imported afresh with the app: a library that
keeps the app's registrations (Django's settings, prometheus_client's registry) must start
empty for the new code. A child process has imported the new code first, while the master's
loop went on (:func:`trial_import`, :mod:`~uwsgiapp.supervisor.trialrun`): code that ends or
hangs the process importing it never reaches the master. The master loop waits while this
runs: as long as the import takes; a stop signal calls the import off at once, as a failure
does, and the master's signal handlers are put back after it (the app's import may have set
its own): :mod:`~uwsgiapp.supervisor.mastersignals`.

The old modules must then be freed, or the master (and every worker forked after) keeps each
generation of the code: :func:`release_old_code` drops what the standard library holds of
them (what the old code put in its registries is taken out before the re-import:
:mod:`~uwsgiapp.supervisor.leftovers`), and the reload's log line says how many old modules
something still holds.
What the old code's import registered with ``atexit`` and ``os.register_at_fork`` is undone
(:mod:`~uwsgiapp.supervisor.registrations`): it would run again in every worker forked after.
What it patched into the modules that stay (sentry-sdk's ``logging.Logger.callHandlers``) is
put back as it was before the re-import, and again if the re-import fails
(:mod:`~uwsgiapp.supervisor.patches`): the new code wrapped the old code's wrappers.
"""

from __future__ import annotations

import contextlib
import gc
import importlib
import importlib.machinery
import logging
import os
import sys
import threading
import time
import types
import weakref
from collections.abc import Callable, Iterable

from uwsgiapp import hooks
from uwsgiapp.config import Config
from uwsgiapp.config.fromgunicorn import debug_flag_set
from uwsgiapp.importer import AppImportError, WSGIApp, load_app, parse_spec
from uwsgiapp.stats.server import StatsServer
from uwsgiapp.supervisor import options
from uwsgiapp.supervisor.actions import ReloadKind
from uwsgiapp.supervisor.importconns import open_fds, say_import_connections
from uwsgiapp.supervisor.importthreads import say_import_threads, threads_running
from uwsgiapp.supervisor.keptmodules import app_modules, held_by_earlier
from uwsgiapp.supervisor.leftovers import Taken, put_back, release_old_code, take_out
from uwsgiapp.supervisor.mastersignals import MasterSignals, StopDuringReimport
from uwsgiapp.supervisor.meanwhile import Watch, stats_clients, stats_served
from uwsgiapp.supervisor.patches import Patches
from uwsgiapp.supervisor.registrations import Registrations, attach, close_handlers
from uwsgiapp.supervisor.trial import one_line, traceback_of

log = logging.getLogger("uwsgiapp.error")


def say_import_leftovers(
    before: Iterable[threading.Thread],
    fds: set[int],
    what: str,
    registered: Registrations | None = None,
) -> None:
    """Warn of the threads ``what`` started and of the connections it left open in the master
    (``before`` and ``fds``: the threads and the descriptors before it; ``registered``: what
    the import registered, the first import's by default)."""
    hooked = (_registered if registered is None else registered).child_hook_modules
    say_import_threads(before, what, hooked)
    say_import_connections(fds, what)


#: What the current code's import registered with atexit and os.register_at_fork.
_registered = Registrations()
#: What the current code's import patched in the modules a HUP keeps (the standard library).
_patched = Patches()


def _import_recorded(config: Config, registered: Registrations) -> WSGIApp:
    with registered.recording():
        app = load_app(config.app, chdir=config.chdir, pythonpath=config.pythonpath)
    launched = options.start_environ()  # FLASK_DEBUG there is said at start already
    said = debug_flag_set(os.environ if launched is None else launched)
    try:  # an app object's own __getattr__ may raise anything: it is only asked
        debug = getattr(app, "debug", False) is True
    except Exception:
        debug = False
    if debug and not said:
        in_env = debug_flag_set(os.environ)
        cause = "FLASK_DEBUG from --env" if in_env else "DEBUG = True in its code"
        log.warning(
            "the app is in debug mode (%s): a view's error skips the app's error handlers (the "
            "server answers 500); a development setting",
            cause,
        )
    return app


def first_import(config: Config) -> WSGIApp:
    """The master's first import of the app, what it registers with atexit and
    os.register_at_fork remembered for the first HUP to undo."""
    with _patched.recording():
        return _import_recorded(config, _registered)


def reimport(
    config: Config,
    before: set[str],
    install: Callable[[WSGIApp], None] | None = None,
    signals: MasterSignals | None = None,
    stats: StatsServer | None = None,
    watch: Watch | None = None,
) -> WSGIApp | None:
    """Import the app afresh; None (the old modules restored, one line logged) if it fails
    or a stop signal calls it off. ``install`` puts the new app where the caller kept the old
    one before the old code is collected (the caller's reference would otherwise keep it until
    the next HUP). ``signals``: the master's handlers, which a stop then interrupts the import
    through, and which are put back after it. ``stats``: served by a thread for the import's
    duration (:mod:`~uwsgiapp.supervisor.meanwhile`), which looks at the workers (``watch``:
    from the start, the old code's take-out included, it holds their recycles)."""
    started = time.monotonic()
    if watch is not None:
        watch.begin()
    try:
        # sysconfig may import its data module only now, which a dropped user may not be
        # able to read (a Python under /root): any failure here calls the reload off, as a
        # failed import does, instead of ending the master.
        doomed = app_modules(list(sys.modules), before)
        launchers = held_by_earlier(before, doomed)
    except Exception as exc:
        log.error("reload: cannot re-import the app, keeping the old code: %r", exc)
        return None
    _say_launchers(launchers)
    saved = {name: sys.modules.pop(name) for name in doomed}
    importlib.invalidate_caches()  # new files since the first import are found
    threads, fds = threading.enumerate(), open_fds()
    registered = Registrations()
    taken = _take_old(saved)
    try:
        app = _import_under(config, registered, signals, saved.__contains__, stats, watch)
    except AppImportError as exc:
        _call_off(before, saved, registered, taken)
        said, detail = one_line(str(exc)), {"traceback": traceback_of(str(exc))}
        log.error("reload: cannot re-import the app, keeping the old code: %s", said, extra=detail)
        return None
    except StopDuringReimport as stop:
        _call_off(before, saved, registered, taken)
        log.warning(
            "reload: SIG%s during the re-import of the app: called off after %.2f s, the old "
            "code stays; stopping",
            stop.args[0],
            time.monotonic() - started,
        )
        return None
    took = time.monotonic() - started
    say_import_leftovers(threads, fds | stats_clients(stats), "the re-import", registered)
    if install is not None:
        install(app)
    close_handlers(taken[0])
    del taken  # it holds the old code's objects
    held = _let_go(saved, registered)
    words = held_words(held, threads_running(_MARK))
    where = f"from {file} " if (file := _app_file(config.app)) else ""  # which release it was
    log.info("reload: app re-imported %s(%d modules) in %.2f s%s", where, len(doomed), took, words)
    return app


def _app_file(spec: str) -> str:
    """The file the app's module was imported from ("" if unknown)."""
    parsed = parse_spec(spec)
    module = None if parsed.path else sys.modules.get(parsed.module)
    return os.path.abspath(parsed.path) if parsed.path else getattr(module, "__file__", "") or ""


def _say_launchers(launchers: list[tuple[str, str]]) -> None:
    """One warning for each (package loaded before the app, package of the app's it holds
    that the re-import takes afresh): :func:`~uwsgiapp.supervisor.keptmodules.held_by_earlier`."""
    for launcher, used in launchers:
        log.warning(
            "reload: %s, loaded before the app (as a tracer's launcher loads it), holds %s, "
            "which the re-import takes afresh: what %s did to the old %s (patches it made as "
            "the app first imported it) is not done to the new one; with --lazy-apps each "
            "worker imports the app after %s, as at the first start",
            launcher,
            used,
            launcher,
            used,
            launcher,
        )


def trial_import(config: Config, before: set[str]) -> str | None:
    """In a process forked to try the new code (and thrown away after): the import a HUP's
    :func:`reimport` makes, prepared as it is (the app's modules dropped, what the old code
    put in the standard library taken out); None if it imports, else why not (its first line,
    then the traceback, if any)."""
    try:
        saved = {name: sys.modules.pop(name) for name in app_modules(list(sys.modules), before)}
        importlib.invalidate_caches()
        _take_old(saved)
        _patched.undo(saved.__contains__)
        load_app(config.app, chdir=config.chdir, pythonpath=config.pythonpath)
    except AppImportError as exc:
        return str(exc)
    except Exception as exc:  # before the import: as reimport's
        return repr(exc)
    return None


def held_words(held: list[str], threads: list[str] | None = None) -> str:
    """What the reload's line says of the old modules something still ``held``; ``threads``:
    the names of the threads running their code (started by the old code, they run on)."""
    if not held:
        return ""
    names = ", ".join(sorted(held)[:5]) + (", ..." if len(held) > 5 else "")
    if threads:
        return (
            f"; {len(held)} of the old modules are still held ({names}: by the old code's "
            f"thread{'s' if len(threads) > 1 else ''} {', '.join(threads[:5])}, still running "
            "in the master: kept there and in the workers forked after; start it in a postfork "
            "function, or use --lazy-apps)"
        )
    return (
        f"; {len(held)} of the old modules are still held ({names}: by something the master "
        "cannot let go of, such as a connection the old code's import left open (a database's: "
        "close it at the end of the import), a registration of the old code (codecs.register, "
        "sys.addaudithook), a module loaded before the app that keeps them (a tracer's), or a "
        "standard library thread or timer the old code started: kept in the master and the "
        "workers forked after; --lazy-apps reloads without it)"
    )


def _take_old(
    saved: dict[str, types.ModuleType],
) -> tuple[list[tuple[logging.Logger, logging.Handler]], Taken]:
    """Before the re-import of the ``saved`` modules: the log handlers the old code added, and
    what it put in the standard library's registries, taken out (its import adds its own
    anew)."""
    old = {id(m.__dict__) for m in saved.values() if issubclass(type(m), types.ModuleType)}
    handlers = _registered.detach(lambda caller: caller in old)
    return handlers, take_out(saved, _registered.record_factory)


def _let_go(saved: dict[str, types.ModuleType], registered: Registrations) -> list[str]:
    """The old modules (``saved``, emptied) are replaced, what the new code's import
    ``registered`` is now the one to undo: free the old code; the names of the old modules
    something still holds."""
    modules = [m for m in saved.values() if issubclass(type(m), types.ModuleType)]
    global _registered
    old_globals = {id(module.__dict__) for module in modules}
    _undo_registrations(_registered, lambda caller: caller in old_globals)
    _registered = registered
    _patched.commit()
    marks = []
    try:
        marks = [(module.__name__, _mark(module)) for module in modules]
        release_old_code(modules)
    except Exception as exc:  # the registries are the stdlib's private ones: never fatal
        log.warning("reload: could not let go of the old code: %r", exc)
    del modules
    saved.clear()
    gc.collect()  # what of the old code nothing holds any more
    return [name for name, mark in marks if mark() is not None]


def _import_under(
    config: Config,
    registered: Registrations,
    signals: MasterSignals | None,
    dropped: Callable[[str], bool],
    stats: StatsServer | None,
    watch: Watch | None = None,
) -> WSGIApp:
    """The import, which a stop signal interrupts (the old code's patches, of the modules
    ``dropped`` says, undone first); then the master's handlers are put back wherever it set
    its own."""
    imported = False
    try:
        with (
            _patched.renewing(dropped),  # outside what a stop interrupts: recorded whole
            stats_served(stats, watch=watch),  # the loop that serves it waits for the import
            signals.stops_interrupt() if signals is not None else contextlib.nullcontext(),
        ):
            app = _import_recorded(config, registered)
            imported = True
            return app
    finally:
        taken = signals.reclaim(imported) if signals is not None else []
        if taken:
            log.warning(
                "reload: the app's import set its own handler for %s: the master's is put "
                "back (the master stops, reloads and reaps on its signals; the app's handler "
                "runs neither there nor in the workers, which set their own)",
                ", ".join(taken),
            )


def _call_off(
    before: set[str],
    saved: dict[str, types.ModuleType],
    registered: Registrations,
    taken: tuple[list[tuple[logging.Logger, logging.Handler]], Taken],
) -> None:
    """A failed re-import: what it loaded and registered goes, the old modules (and the log
    handlers they added, what the registries held of them: ``taken``) come back."""
    failed = app_modules(list(sys.modules), before)
    for name in failed:
        del sys.modules[name]  # what the failed import loaded must not mix with the old
    # The failed code's (what is of the old modules' names is the failed code's: the old
    # code's was taken out before), then the old code's back.
    take_out({*failed, *saved}, registered.record_factory)
    put_back(taken[1])
    sys.modules.update(saved)
    # Its code (the module that failed is already out of sys.modules): what no module loaded
    # now registered; the old code and a module of the stdlib it imported first keep theirs.
    modules = list(sys.modules.values())
    loaded = {id(m.__dict__) for m in modules if issubclass(type(m), types.ModuleType)}
    _undo_registrations(registered, lambda caller: caller not in loaded)
    close_handlers(registered.detach(lambda caller: caller not in loaded))
    attach(taken[0])
    _patched.call_off(lambda name: name in saved or name not in sys.modules)  # as its code


def _undo_registrations(registered: Registrations, replaced: Callable[[int], bool]) -> None:
    """Take out what the modules ``replaced`` says (by the id of their globals) registered:
    the postfork functions, and the exit functions and fork hooks of ``registered``."""
    hooks.forget(replaced)
    registered.undo(replaced)


#: The name of the :class:`_Mark` in an old module's globals.
_MARK = "__uwsgiapp_replaced__"


class _Mark:
    """Put in an old module's globals: alive while anything holds them (a function of the
    module does, though the module object itself may be gone)."""

    __slots__ = ("__weakref__",)


def _mark(module: types.ModuleType) -> weakref.ref[_Mark]:
    mark = _Mark()
    module.__dict__[_MARK] = mark
    return weakref.ref(mark)


def reload_kind(config: Config, *, preloaded: bool) -> ReloadKind:
    """What a HUP does about the code, from the options."""
    if not preloaded:
        return ReloadKind.LAZY
    return ReloadKind.REIMPORT if config.reload_preloaded else ReloadKind.RECYCLE
