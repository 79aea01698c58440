"""The master's dump files (:mod:`uwsgiapp.supervisor.dumps`), without a worker: what a file
held comes out as one record, escaped, and every file is closed once."""

from __future__ import annotations

import logging
import os
import re
import signal
import time
from pathlib import Path

import pytest

from uwsgiapp.supervisor.dumps import MAX_DUMP, DumpFiles, clock_time, dump_text
from uwsgiapp.supervisor.importconns import is_open
from uwsgiapp.supervisor.oomkills import OomKills
from uwsgiapp.supervisor.workerexit import kill_all

pytestmark = pytest.mark.skipif(not hasattr(os, "memfd_create"), reason="no memfd_create")


def test_the_text_is_escaped_line_by_line_without_trailing_blank_lines() -> None:
    data = b'Thread 0x1 (most recent call first):\n  File "a\x1bb.py", line 3 in f\xff\n\n\n'
    assert dump_text(data) == (
        'Thread 0x1 (most recent call first):\n  File "a\\x1Bb.py", line 3 in f\\xff'
    )


def test_a_dump_is_logged_once_as_one_record_and_its_file_closed(
    caplog: pytest.LogCaptureFixture,
) -> None:
    dumps = DumpFiles()
    fd = dumps.open()
    assert fd is not None
    dumps.forked(4321, fd)
    os.write(fd, b"Fatal Python error: Segmentation fault\n\n")
    os.write(fd, b'Current thread 0x2 (most recent call first):\n  File "x.py", line 1 in g\n')
    written = os.fstat(fd).st_mtime
    with caplog.at_level(logging.ERROR, logger="uwsgiapp.error"):
        dumps.exited(4321)
        dumps.exited(4321)  # reaped once; a second call finds nothing
    assert [r.getMessage() for r in caplog.records] == [
        "the stacks of the worker with pid 4321 when it got its signal at "
        f"{clock_time(written)} (faulthandler):\n"
        "Fatal Python error: Segmentation fault\n\n"
        'Current thread 0x2 (most recent call first):\n  File "x.py", line 1 in g'
    ]
    assert not is_open(fd)


def test_the_clock_time_has_the_logs_milliseconds() -> None:
    assert re.fullmatch(r"\d\d:\d\d:\d\d,\d{3}", clock_time(1_700_000_000.0456))
    assert clock_time(1_700_000_000.0456).endswith(",045")


def test_no_dump_no_record_and_a_huge_one_is_cut(caplog: pytest.LogCaptureFixture) -> None:
    dumps = DumpFiles()
    quiet, huge = dumps.open(), dumps.open()
    assert quiet is not None and huge is not None
    dumps.forked(1, quiet)
    dumps.forked(2, huge)
    os.write(huge, b"x" * (MAX_DUMP + 10))
    with caplog.at_level(logging.ERROR, logger="uwsgiapp.error"):
        dumps.exited(1)
        dumps.exited(2)
    assert len(caplog.records) == 1
    assert (
        caplog.records[0]
        .getMessage()
        .endswith("\n" + "x" * MAX_DUMP + "\n(the rest cut: the first 256 KiB)")
    )
    assert not is_open(quiet) and not is_open(huge)


def test_a_failed_fork_closes_its_file_and_a_worker_closes_its_siblings() -> None:
    dumps = DumpFiles()
    failed, sibling, own = dumps.open(), dumps.open(), dumps.open()
    assert failed is not None and sibling is not None and own is not None
    dumps.forked(0, failed)
    assert not is_open(failed)
    dumps.forked(99, sibling)
    dumps.in_worker()  # as in the worker forked with ``own``: not yet recorded as anyone's
    assert not is_open(sibling)
    assert is_open(own)
    dumps.exited(99)  # nothing left to read or close
    os.close(own)


def test_a_refused_memfd_is_said_once_and_not_asked_again(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls = []

    def refused(name: str) -> int:
        calls.append(name)
        raise PermissionError(1, "Operation not permitted")

    dumps = DumpFiles()
    dumps._create = refused  # a seccomp filter that refuses memfd_create
    with caplog.at_level(logging.WARNING, logger="uwsgiapp.error"):
        assert dumps.open() is None
        assert dumps.open() is None
    assert len(calls) == 1
    assert len(caplog.records) == 1
    assert "its stack dumps go to the log" in caplog.records[0].getMessage()


def _state(pid: int) -> str:
    """A process's state letter (``Z`` for a zombie), from /proc."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()[0]


def test_the_halts_kill_all_logs_what_its_reaped_workers_dumped(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # A halt (workers dying as they start) reaps the rest itself: a sibling that had crashed
    # meanwhile lost its dump (it never reached the loop's reap).
    dumps = DumpFiles()
    pids: dict[int, object] = {}
    for crash in (True, False):
        fd = dumps.open()
        assert fd is not None
        pid = os.fork()
        if pid == 0:  # the worker: dump into its file, then die; or wait to be killed
            if crash:
                os.write(fd, b"Current thread 0x1 (most recent call first):\n")
                os.write(fd, b'  File "w.py", line 2 in boot\n')
                signal.signal(signal.SIGTERM, signal.SIG_DFL)
                os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(30)
            os._exit(0)
        dumps.forked(pid, fd)
        pids[pid] = None
    crashed, waiting = pids
    # Dead before the halt (unreaped): killed by the halt instead, it was no crash (Python
    # 3.13, a loaded machine: the halt came before the child's own signal).
    deadline = time.monotonic() + 10
    while _state(crashed) != "Z" and time.monotonic() < deadline:
        time.sleep(0.01)
    seen: list[tuple[int, int | None]] = []

    def reaped(pid: int, signum: int | None) -> None:
        seen.append((pid, signum))
        dumps.exited(pid, signum)

    with caplog.at_level(logging.ERROR, logger="uwsgiapp.error"):
        kill_all(pids, reaped)
    assert pids == {}
    # (reap() takes any child that ended: one an earlier test left is not this test's)
    ours = sorted(s for s in seen if s[0] in (crashed, waiting))
    assert ours == sorted([(crashed, signal.SIGTERM), (waiting, signal.SIGKILL)])
    said = [r.getMessage() for r in caplog.records]
    assert len(said) == 1 and said[0].startswith(f"the stacks of the worker with pid {crashed} ")
    assert said[0].endswith('File "w.py", line 2 in boot')


def test_a_sigkill_its_memory_cgroup_counted_is_named_the_oom_killers(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    events = tmp_path / "cg" / "memory.events"
    events.parent.mkdir()
    events.write_text("oom 0\noom_kill 4\n")
    (tmp_path / "cg" / "memory.max").write_text("104857600\n")
    (tmp_path / "proc").write_text("0::/\n")
    dumps = DumpFiles()
    dumps.oom = OomKills(str(tmp_path / "proc"), str(tmp_path / "cg"))
    with caplog.at_level(logging.ERROR, logger="uwsgiapp.error"):
        assert dumps.exited(7, signal.SIGKILL) is None  # the count did not rise
        events.write_text("oom 1\noom_kill 5\n")
        assert dumps.exited(8, signal.SIGSEGV) is None  # not a SIGKILL: not looked at
        # What the exit line says (one line: a second one said it again, after a hedge)
        assert dumps.exited(9, signal.SIGKILL) == (
            "the kernel's OOM killer: its memory cgroup (limit 100 MB) counts 1 OOM kill more"
        )
    assert caplog.records == []
