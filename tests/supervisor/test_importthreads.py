"""What start-up and a HUP say of the threads an import of the app started in the master
(:mod:`uwsgiapp.supervisor.importthreads`)."""

from __future__ import annotations

import logging
import sys
import threading
import types
from collections.abc import Iterator

import pytest

from uwsgiapp.supervisor.importthreads import (
    restarted_after_fork,
    say_import_threads,
    thread_module,
)
from uwsgiapp.supervisor.keptmodules import site_dirs
from uwsgiapp.supervisor.registrations import Registrations

# A library that starts its exporter's thread at init and, as OpenTelemetry's
# BatchSpanProcessor does, registers an after-fork hook that starts it again in the child.
EXPORTER = """
import os, threading
stop = threading.Event()
def worker():
    stop.wait()
def restart():
    pass
def init(with_hook):
    thread = threading.Thread(target=worker, name=f"Exporter-{with_hook}", daemon=True)
    thread.start()
    if with_hook:
        os.register_at_fork(after_in_child=restart)
    return thread
"""


@pytest.fixture
def exporter() -> Iterator[types.ModuleType]:
    module = types.ModuleType("exporterlib.batch")
    exec(compile(EXPORTER, "exporterlib/batch.py", "exec"), vars(module))
    yield module
    module.stop.set()


def _said(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    return [(r.levelname, r.getMessage()) for r in caplog.records if r.name == "uwsgiapp.error"]


def test_a_thread_its_library_starts_again_after_the_fork_is_not_one_to_move(
    exporter: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    # An outside trial (OpenTelemetry's SDK set up at the app's import): the start-up warning
    # told the user to move a thread to the workers (--lazy-apps) that its library already
    # starts in each of them, and the spans of every worker arrived.
    before = threading.enumerate()
    registered = Registrations()
    with registered.recording():
        exporter.init(True)
    registered.undo(lambda caller: True)  # the test's hook: silenced
    assert registered.child_hook_modules == {"exporterlib.batch"}
    with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
        say_import_threads(before, "the app's import", registered.child_hook_modules)
    assert _said(caplog) == [
        (
            "INFO",
            "the app's import started 1 thread in the master (Exporter-True), which its library "
            "starts again in each worker after the fork (an os.register_at_fork hook)",
        )
    ]


def test_a_thread_nothing_starts_again_is_warned_of(
    exporter: types.ModuleType, caplog: pytest.LogCaptureFixture
) -> None:
    before = threading.enumerate()
    registered = Registrations()
    with registered.recording():
        exporter.init(False)
    assert registered.child_hook_modules == set()
    with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
        say_import_threads(before, "the re-import", registered.child_hook_modules)
    ((level, line),) = _said(caplog)
    assert level == "WARNING"
    assert line.startswith("the re-import started 1 thread in the master (Exporter-False): ")


def test_which_module_a_thread_runs_and_whose_hook_starts_it_again(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    class Refresher(threading.Thread):
        def run(self) -> None:
            pass

    assert thread_module(Refresher()) == __name__
    assert thread_module(threading.Thread(target=logging.getLogger)) == "logging"
    assert thread_module(threading.Thread()) == "threading"
    installed = site_dirs()[0]
    for name, path in {
        "opentelemetry.sdk.trace.export": f"{installed}opentelemetry/sdk/trace/export.py",
        "myapp.cache": "/srv/app/myapp/cache.py",
    }.items():
        module = types.ModuleType(name)
        module.__file__ = path
        monkeypatch.setitem(sys.modules, name, module)
    hooked = {"opentelemetry.sdk._shared_internal", "myapp.db", "concurrent.futures.thread"}
    # An installed library's hook in another module of its package (OpenTelemetry's).
    assert restarted_after_fork("opentelemetry.sdk.trace.export", hooked)
    assert not restarted_after_fork("cachelib.refresh", hooked)
    assert not restarted_after_fork(None, hooked)
    # The app's own: its engine.dispose hook in myapp.db restarts no thread of myapp.cache.
    assert not restarted_after_fork("myapp.cache", hooked)
    assert restarted_after_fork("myapp.db", hooked)
    # The standard library's hook (concurrent.futures resets a lock) restarts no pool thread.
    assert not restarted_after_fork("concurrent.futures.thread", hooked)


def test_a_thread_pool_made_at_import_is_warned_of(caplog: pytest.LogCaptureFixture) -> None:
    # Its module registers an after-fork hook at first import, which reset a lock only: the
    # workers' pool has no thread, and its tasks never ran, while the start-up line said the
    # library starts it again.
    from concurrent.futures import ThreadPoolExecutor

    before = threading.enumerate()
    pool = ThreadPoolExecutor(1, thread_name_prefix="pool-at-import")
    try:
        pool.submit(int).result()
        with caplog.at_level(logging.INFO, logger="uwsgiapp.error"):
            say_import_threads(before, "the app's import", {"concurrent.futures.thread"})
    finally:
        pool.shutdown()
    (record,) = [r for r in caplog.records if "pool-at-import" in r.getMessage()]
    assert record.levelno == logging.WARNING
