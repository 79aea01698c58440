"""A log of ours that cannot be written (a full disk: /dev/full) is told on stderr once, then as
a count now and then; not ``logging``'s 47-line traceback per record (26 MB of stderr for 10k
requests, a flood into the journal under systemd)."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import types
from collections.abc import Iterator
from pathlib import Path

import pytest
from handler_kit import logged_response

from uwsgiapp.server import logs, throttle
from uwsgiapp.server.logs import KeptFileHandler, make_access_log, reopen_logs, setup_error_log

RECORDS = 1000

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="no /dev/full")


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in ("uwsgiapp", "uwsgiapp.access")]
    saved = [(logger.level, logger.propagate, list(logger.handlers)) for logger in loggers]
    # Earlier tests' failing handlers, alive until collected, would tell their counts here.
    logs._FAILED.clear()
    yield
    for logger, (level, propagate, handlers) in zip(loggers, saved, strict=True):
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            if isinstance(handler, KeptFileHandler):
                handler.close_for_good()
        for handler in handlers:
            logger.addHandler(handler)
        logger.setLevel(level)
        logger.propagate = propagate


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The throttle's monotonic clock, moved by the test."""
    now = [1000.0]
    monkeypatch.setattr(throttle, "time", types.SimpleNamespace(monotonic=lambda: now[0]))
    return now


def _lines(text: str) -> list[str]:
    return text.splitlines()


def test_error_log_on_a_full_disk_is_told_once(capfd: pytest.CaptureFixture[str]) -> None:
    setup_error_log("/dev/full")
    for number in range(RECORDS):
        logging.getLogger("uwsgiapp.error").warning("line %d", number)
    err = capfd.readouterr().err
    assert "Logging error" not in err
    [line] = _lines(err)
    assert "cannot write to the error log (/dev/full)" in line
    assert "No space left on device" in line


def test_access_log_on_a_full_disk_is_told_once(capfd: pytest.CaptureFixture[str]) -> None:
    access = make_access_log("uwsgi", "/dev/full")
    assert access is not None
    for _ in range(RECORDS):
        access(
            {"REQUEST_METHOD": "GET", "REQUEST_URI": "/"},
            logged_response("200 OK", 45, 40),
            0.001,
            b"",
        )
    err = capfd.readouterr().err
    assert "Logging error" not in err
    [line] = _lines(err)
    assert "cannot write to the access log (/dev/full)" in line


def test_the_dropped_lines_are_counted_once_an_interval(
    capfd: pytest.CaptureFixture[str], clock: list[float]
) -> None:
    setup_error_log("/dev/full")
    log = logging.getLogger("uwsgiapp.error")
    log.warning("first")
    for _ in range(41):
        log.warning("dropped")
    assert len(_lines(capfd.readouterr().err)) == 1
    clock[0] += logs.WRITE_FAILURE_INTERVAL
    log.warning("the 43rd")
    [line] = _lines(capfd.readouterr().err)
    assert "42 more lines of the error log (/dev/full) dropped" in line


def test_the_dropped_lines_are_told_at_the_loops_tick_once_due(
    capfd: pytest.CaptureFixture[str], clock: list[float]
) -> None:
    # Counted only as the next failure came: once the disk had room again (or nothing more
    # was written), the count since the last line was never said.
    setup_error_log("/dev/full")
    log = logging.getLogger("uwsgiapp.error")
    for _ in range(5):
        log.warning("dropped")
    capfd.readouterr()
    logs.tell_write_failures()  # not due yet
    assert capfd.readouterr().err == ""
    clock[0] += logs.WRITE_FAILURE_INTERVAL
    logs.tell_write_failures()
    [line] = _lines(capfd.readouterr().err)
    assert "4 more lines of the error log (/dev/full) dropped" in line
    clock[0] += logs.WRITE_FAILURE_INTERVAL
    logs.tell_write_failures()  # nothing new: nothing said
    assert capfd.readouterr().err == ""
    for _ in range(3):
        log.warning("dropped")
    capfd.readouterr()
    logs.tell_write_failures(final=True)  # the process ends: now, due or not
    [line] = _lines(capfd.readouterr().err)
    assert "2 more lines of the error log (/dev/full) dropped" in line


LEAVING = """
import logging
from uwsgiapp.server.logs import setup_error_log
from uwsgiapp.supervisor.workerexit import leave

setup_error_log("/dev/full")
for _ in range(5):
    logging.getLogger("uwsgiapp.error").warning("dropped")
leave(0, finish=False, who="worker 1")
"""


def test_a_process_that_ends_tells_the_lines_it_dropped() -> None:
    """A count not yet due was never said once the process stopped within the interval."""
    done = subprocess.run(
        [sys.executable, "-c", LEAVING], capture_output=True, timeout=30, check=False
    )
    err = done.stderr.decode()
    assert done.returncode == 0 and "cannot write to the error log (/dev/full)" in err, err
    assert "4 more lines of the error log (/dev/full) dropped" in err, err


def test_a_forked_worker_does_not_tell_its_masters_dropped_lines(
    capfd: pytest.CaptureFixture[str], clock: list[float]
) -> None:
    # Each worker said the master's count at its first tick ("3 more lines ... dropped", under
    # its own pid); its own first failure was then a "more" line too.
    setup_error_log("/dev/full")
    log = logging.getLogger("uwsgiapp.error")
    for _ in range(3):
        log.warning("dropped in the master")
    capfd.readouterr()
    pid = os.fork()
    if pid == 0:  # the child: nothing of the parent's to tell; its own first failure in full
        code = 0
        try:
            clock[0] += logs.WRITE_FAILURE_INTERVAL
            logs.tell_write_failures()
            log.warning("the worker's own")
        except BaseException:
            code = 1
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    [line] = _lines(capfd.readouterr().err)
    assert f"uwsgiapp[{pid}]: cannot write to the error log (/dev/full)" in line, line


def test_a_failing_stderr_is_told_once_too(
    capfd: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    full = open("/dev/full", "w", encoding="utf-8")  # noqa: SIM115 (closed below)
    monkeypatch.setattr(sys, "stderr", full)
    try:
        setup_error_log("-")
        for number in range(RECORDS):
            logging.getLogger("uwsgiapp.error").warning("line %d", number)
    finally:
        monkeypatch.undo()
        with contextlib.suppress(OSError):  # what it holds cannot be written either
            full.close()
    [line] = _lines(capfd.readouterr().err)
    assert "cannot write to the error log (/dev/full)" in line


def test_a_record_that_cannot_be_formatted_keeps_loggings_traceback(
    capfd: pytest.CaptureFixture[str],
) -> None:
    # Not a write failure: a bug at the call site, which logging's traceback points at.
    setup_error_log("-")
    logging.getLogger("uwsgiapp.error").warning("%d", "not a number")
    assert "--- Logging error ---" in capfd.readouterr().err


def test_usr1_on_a_full_disk_reopens_without_raising(capfd: pytest.CaptureFixture[str]) -> None:
    # Closing the old file flushes the lines it holds, which fails: USR1 raised that from the
    # worker's signal handler, into whatever the worker was running.
    setup_error_log("/dev/full")
    make_access_log("uwsgi", "/dev/full")
    logging.getLogger("uwsgiapp.error").warning("held in the buffer")
    assert reopen_logs()
    setup_error_log("-")  # the handler on /dev/full is closed for good
    assert len(_lines(capfd.readouterr().err)) == 1


TORN = """
import logging, resource, signal, sys
from uwsgiapp.server.accesslog import LineWriter
from uwsgiapp.server.logs import KeptFileHandler

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
handler = KeptFileHandler(sys.argv[1])
writer = LineWriter(handler)
resource.setrlimit(resource.RLIMIT_FSIZE, (100, resource.RLIM_INFINITY))
writer.write(b'{"n": 1, "pad": "' + b"x" * 40 + b'"}\\n')  # 60 bytes: whole
writer.write(b'{"n": 2, "pad": "' + b"x" * 40 + b'"}\\n')  # cut at 100 bytes: a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
writer.write(b'{"n": 3}\\n')
"""


def test_a_line_a_failed_write_cut_is_ended_before_the_next(tmp_path: Path) -> None:
    """A full disk let a record's first half through; the next record was glued to it, and
    neither parsed (a JSON access log lost both)."""
    path = tmp_path / "access.log"
    done = subprocess.run(
        [sys.executable, "-c", TORN, str(path)], capture_output=True, timeout=30, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = path.read_bytes().split(b"\n")
    assert len(lines[0]) + 1 + len(lines[1]) == 100, lines  # the cut one: up to the limit
    assert lines[2:] == [b'{"n": 3}', b""], lines
    assert json.loads(lines[0]) == {"n": 1, "pad": "x" * 40}
    assert b"File too large" in done.stderr  # told, as a full disk is


REFUSED_THEN_FORK = """
import logging, os, resource, signal, sys
from uwsgiapp.server.logs import setup_error_log

signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
setup_error_log(sys.argv[1])
log = logging.getLogger("uwsgiapp.error")
log.warning("first")
resource.setrlimit(resource.RLIMIT_FSIZE, (os.path.getsize(sys.argv[1]), resource.RLIM_INFINITY))
log.warning("refused by a full disk")
resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
pid = os.fork()  # a worker forked while the disk was full
if pid == 0:
    log.warning("the worker's")
    os._exit(0)
os.waitpid(pid, 0)
log.warning("the master's")
"""


def test_a_line_a_full_disk_refused_is_not_written_later_nor_by_each_fork(tmp_path: Path) -> None:
    """The error log's buffered stream kept what a full disk refused: written later with the
    next line, out of order, and once more by each worker forked meanwhile (a chaos test's
    log had eight master lines twice, and a worker's fragment among them)."""
    path = tmp_path / "error.log"
    done = subprocess.run(
        [sys.executable, "-c", REFUSED_THEN_FORK, str(path)],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    messages = [line.split("] ")[-1] for line in path.read_text().splitlines()]
    assert messages == ["first", "the worker's", "the master's"], messages
    assert b"File too large" in done.stderr  # told: dropped, as it says
