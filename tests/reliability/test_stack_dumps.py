"""A worker's stack dump (faulthandler, at a harakiri or a segfault) comes out of the master as
one log record, whole, while other threads and workers keep writing to the same log.

faulthandler writes a dump a few bytes at a time from its signal handler; written straight into
the shared log, the lines other writers wrote meanwhile landed inside the dump's lines.
"""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest
from support.procs import Server, stack, wait_until

pytestmark = pytest.mark.nginx

APP = textwrap.dedent(
    """
    import ctypes, os, signal, sys, threading, time

    # As a log entry starts, so that the test can tell where the dump's record ends.
    CHATTER = "2026-01-01 00:00:00,000 [0] [INFO] " + "chatter " * 8 + "\\n"

    def chatter():
        while True:  # another writer to the same log, a line per write
            os.write(2, CHATTER.encode())
            time.sleep(0.0005)

    threading.Thread(target=chatter, daemon=True).start()

    def _stuck_forever():  # in C that retries on EINTR (libpq's): no Python handler runs
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR2})
        time.sleep(3600)

    def _segfault():
        ctypes.string_at(0)

    def _waiting():  # Python's own wait: the worker's handler runs and logs the stack
        threading.Event().wait()

    def app(environ, start_response):
        path = environ["PATH_INFO"]
        if path == "/stuck":
            _stuck_forever()
        if path == "/segfault":
            _segfault()
        if path == "/waiting":
            _waiting()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [str(os.getpid()).encode()]
    """
)

#: The master's record that holds a dump, up to the next record.
DUMP = re.compile(
    r"\[ERROR\] the stacks of the worker with pid (\d+) when it got its signal at "
    r"\d\d:\d\d:\d\d,\d{3} \(faulthandler\):\n((?:.*\n)*?)(?=\d{4}-\d\d-\d\d |\Z)"
)
#: The lines faulthandler writes.
DUMP_LINE = re.compile(
    r'^(Fatal Python error: .*|(Current thread|Thread) 0x[0-9a-f]+ .*:|  File ".*", line \d+ in '
    r"\S+|  <no Python frame>|Extension modules: .*|Stack \(most recent call first\):|)$"
)

#: The start of one of them, as a SIGKILL mid-write leaves it.
CUT_LINE = re.compile(r'^(Fatal Python error: |(Current thread|Thread) 0x[0-9a-f]|  File "|Ext)')


@pytest.mark.parametrize(
    ("route", "frame", "kill"),
    [("stuck", "_stuck_forever", "signal 9 (SIGKILL)"), ("segfault", "_segfault", "signal 11")],
)
def test_a_dump_is_one_whole_record_amid_other_writers(
    tmp_path: Path, nginx_available: None, route: str, frame: str, kill: str
) -> None:
    (tmp_path / "chatty_app.py").write_text(APP)
    with stack(
        tmp_path,
        "chatty_app:app",
        workers=2,
        harakiri=1,
        lazy_apps=True,  # the writing thread in each worker
        pythonpath=[str(tmp_path)],
    ) as (server, nginx):
        status, _, _ = nginx.request("GET", f"/{route}")
        assert status == 502
        # The record is logged at the reap, the exit's line by the actions after it.
        done = re.compile(r"(?s)the stacks of the worker with pid (\d+) .*\(pid \1\) killed by")
        wait_until(lambda: done.search(server.log()) is not None, 15, "the dump and the exit")
        log = server.log()
    found = DUMP.search(log)
    assert found is not None
    pid, dump = found.group(1), found.group(2)
    assert f"(pid {pid}) killed by {kill}" in log
    lines = dump.rstrip("\n").split("\n")
    assert [line for line in lines if not DUMP_LINE.match(line)] == []
    assert any(f"in {frame}" in line for line in lines), dump
    # Nothing of the dump outside its record, and no other writer's line cut by it.
    # (faulthandler's "line N in f"; the Python traceback of a harakiri has "line N, in f".)
    written = re.compile(rf'", line \d+ in {frame}\n')
    assert len(written.findall(log)) == len(written.findall(dump)) == 1
    chatter = "2026-01-01 00:00:00,000 [0] [INFO] " + "chatter " * 8
    assert all(line == chatter for line in log.split("\n") if "chatter chatter" in line)


def test_a_harakiri_whose_handler_ran_logs_its_stack_once(
    tmp_path: Path, nginx_available: None
) -> None:
    # faulthandler's dump of every thread came too, at the kill: the same stuck stack twice,
    # some hundred lines a request. It stays for a worker whose handler cannot run (above).
    (tmp_path / "chatty_app.py").write_text(APP)
    options = {"workers": 1, "harakiri": 1, "lazy_apps": True, "pythonpath": [str(tmp_path)]}
    with stack(tmp_path, "chatty_app:app", **options) as (server, nginx):
        assert nginx.request("GET", "/waiting")[0] == 502
        wait_until(lambda: "exited with code 0" in server.log(), 15, "the cut worker's exit")
        log = server.log()
    assert "stuck in GET /waiting; its stack" in log and "in _waiting" in log
    assert "when it got its signal" not in log


def test_workers_crashing_as_they_start_dump_into_records(tmp_path: Path) -> None:
    # --lazy-apps: each worker imports the app after the fork, and crashes there; the dumps
    # of two workers crashing at once, and the master's lines, were spliced together.
    (tmp_path / "crash_at_import.py").write_text("import ctypes\nctypes.string_at(0)\n")
    server = Server(
        tmp_path / "server",
        "crash_at_import:app",
        workers=2,
        lazy_apps=True,
        pythonpath=[str(tmp_path)],
    ).start(wait=False)
    try:
        code = server.wait(30)  # the master stops once workers keep dying as they start
    finally:
        server.stop()
    log = server.log()
    assert code != 0 and "died while starting" in log, log
    dumps = [found.group(2) for found in DUMP.finditer(log)]
    assert dumps, log
    for dump in dumps:
        # A worker still writing its dump when the halt's SIGKILL comes (a loaded machine)
        # leaves its last line cut short: a part of faulthandler's own, never another line.
        *whole, last = dump.rstrip("\n").split("\n")
        assert [line for line in whole if not DUMP_LINE.match(line)] == []
        assert DUMP_LINE.match(last) or CUT_LINE.match(last), last
    # Every line faulthandler wrote is inside a record.
    outside = DUMP.sub("", log)
    assert "Fatal Python error" not in outside and 'File "' not in outside, outside
