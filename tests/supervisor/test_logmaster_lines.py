"""--log-master's line assembly (pure): what of a worker's bytes is written now, what waits;
and the pipes a worker gets, made whole or not at all."""

from __future__ import annotations

import datetime
import errno
import json
import os
import random
import types
from pathlib import Path

import pytest

from uwsgiapp.server import throttle
from uwsgiapp.server.logs import WRITE_FAILURE_INTERVAL
from uwsgiapp.supervisor.logmaster import MASTER_BACKLOG, LogMaster
from uwsgiapp.supervisor.logstreams import (
    Sink,
    as_records,
    output_lines,
    output_name,
    take_lines,
)


@pytest.mark.parametrize(
    ("held", "data", "ready", "rest"),
    [
        (b"", b"a\n", b"a\n", b""),
        (b"", b"a\nb", b"a\n", b"b"),
        (b"a", b"b", b"", b"ab"),
        (b"a", b"b\nc\nd", b"ab\nc\n", b"d"),
        (b"", b"", b"", b""),
        (b"x", b"\n", b"x\n", b""),
    ],
)
def test_whole_lines_go_and_a_piece_waits_for_its_newline(
    held: bytes, data: bytes, ready: bytes, rest: bytes
) -> None:
    assert take_lines(held, data) == (ready, rest)


def test_a_line_over_the_limit_goes_in_pieces_each_ending_a_line() -> None:
    # 5 + 6 bytes without a newline: two pieces of 4 go, 3 bytes wait.
    assert take_lines(b"ab\n" + b"x" * 5, b"y" * 6, limit=4) == (b"ab\nxxxx\nxyyy\n", b"yyy")
    ready, rest = take_lines(b"", b"z" * 11, limit=4)
    assert (ready, rest) == (b"zzzz\nzzzz\n", b"zzz")


def test_a_whole_line_that_came_at_once_is_not_cut() -> None:
    line = b"j" * 100 + b"\n"
    assert take_lines(b"", line, limit=10) == (line, b"")


def test_lines_fed_in_random_pieces_come_out_whole_and_in_order() -> None:
    rng = random.Random(7)
    lines = [bytes([97 + i % 26]) * rng.randint(0, 3000) + b"\n" for i in range(200)]
    stream = b"".join(lines)
    out, held, at = [], b"", 0
    while at < len(stream):
        step = rng.randint(1, 5000)
        ready, held = take_lines(held, stream[at : at + step])
        out.append(ready)
        at += step
    assert held == b""
    assert b"".join(out).splitlines(keepends=True) == lines


def test_pipes_that_cannot_all_be_made_are_closed_and_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    made: list[tuple[int, int]] = []
    real_pipe = os.pipe

    def pipe() -> tuple[int, int]:
        if made:
            raise OSError(errno.EMFILE, "Too many open files")
        made.append(real_pipe())
        return made[-1]

    funnel = LogMaster()
    funnel.sinks = [Sink(fd=-1, std=[1], ours=True)]
    monkeypatch.setattr(os, "pipe", pipe)
    with pytest.raises(OSError, match="its --log-master pipes: Too many open files"):
        funnel.before_fork()
    for fd in made[0]:
        with pytest.raises(OSError):
            os.fstat(fd)  # closed
    funnel.after_fork(0)  # nothing pending: nothing to close


def test_the_masters_lines_over_its_backlog_are_dropped_and_counted(tmp_path: Path) -> None:
    target = tmp_path / "log"
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    funnel = LogMaster()
    funnel.sinks = [Sink(fd=fd)]
    line = b"m" * 1023 + b"\n"
    for _ in range(MASTER_BACKLOG // len(line) + 10):  # the thread wrote none meanwhile
        funnel.put(0, line)
    funnel._write_master({})
    os.close(fd)
    lines = target.read_bytes().splitlines()
    assert set(lines[:-1]) == {line[:-1]} and len(lines) - 1 == MASTER_BACKLOG // len(line) + 1
    assert lines[-1] == (
        b"uwsgiapp: log-master: 9 of the master's lines dropped: the log target took none for "
        b"a while"
    )


@pytest.fixture
def now(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The throttle's monotonic clock, moved by the test."""
    clock = [1000.0]
    monkeypatch.setattr(throttle, "time", types.SimpleNamespace(monotonic=lambda: clock[0]))
    return clock


def test_the_lines_a_sink_cannot_take_are_counted_not_said_once_for_good(
    capfd: pytest.CaptureFixture[str], now: list[float]
) -> None:
    # A full disk under --log-master was said once, and the lines lost after it never counted.
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    sink = Sink(-1, path="/srv/log/app.log")
    sink.dropped(b"one\ntwo\n", full)
    sink.dropped(b"three\n" * 40, full)
    [first] = capfd.readouterr().err.splitlines()
    assert "cannot write to --log-master's /srv/log/app.log: [Errno 28]" in first, first
    # The first batch's own lines counted in the first line (they were in no count).
    assert "dropping its lines (2 so far) (a count every 60 s while it fails)" in first, first
    now[0] += WRITE_FAILURE_INTERVAL
    sink.dropped(b"four\n", full)
    [count] = capfd.readouterr().err.splitlines()
    assert "41 more lines of --log-master's /srv/log/app.log dropped" in count, count
    sink.dropped(b"five\n", full)
    assert capfd.readouterr().err == ""  # counted, for the next line
    sink.reopened()  # the count so far, and a new failure is said as a first one
    assert "1 more line of --log-master's" in capfd.readouterr().err
    sink.dropped(b"six\n", full)
    assert "cannot write to --log-master's" in capfd.readouterr().err


def test_a_count_of_dropped_lines_is_said_when_due_and_at_the_end(
    capfd: pytest.CaptureFixture[str], now: list[float]
) -> None:
    # The count waited for the next failure a minute later: the lines lost in a failure's last
    # minute (the disk freed, the server stopped) were never counted.
    full = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    sink = Sink(-1, path="/srv/log/app.log")
    sink.dropped(b"one\n", full)
    sink.dropped(b"two\nthree\n", full)
    capfd.readouterr()
    assert sink.counting()
    sink.tell_due()
    assert capfd.readouterr().err == ""  # not due yet
    now[0] += WRITE_FAILURE_INTERVAL
    sink.tell_due()
    assert "2 more lines of --log-master's /srv/log/app.log" in capfd.readouterr().err
    assert not sink.counting()
    sink.dropped(b"four\n", full)
    sink.tell_due(final=True)
    assert "1 more line of" in capfd.readouterr().err


def test_a_workers_output_becomes_json_records_and_its_own_json_lines_stay_as_they_are() -> None:
    lines = b'plain line\r\n\n   \n{"own": 1}\n{not json}\n{"a": [1}\n\xff\x1b[31m\n[1, 2]\n'
    out = as_records(lines, stream="stderr", pid=42, when=0.0)
    records = [json.loads(line) for line in out.splitlines()]
    assert out.endswith(b"\n") and len(records) == 6  # a blank line is no record
    assert records[1] == {"own": 1}  # the app's own JSON logging: as it was
    wrapped = [r for r in records if "logger" in r]
    assert [r["message"] for r in wrapped] == [
        "plain line",
        "{not json}",
        '{"a": [1}',
        "\\xff\x1b[31m",  # not UTF-8: escaped; a control character: JSON's own escape
        "[1, 2]",  # JSON, but no object: no record of a log collector's
    ]
    # INFO on stderr too: logging's default handler writes every level there.
    assert {(r["level"], r["logger"], r["pid"]) for r in wrapped} == {("INFO", "stderr", 42)}
    assert b"\\u001b[31m" in out  # never a raw escape on the terminal that tails the log
    assert datetime.datetime.fromisoformat(wrapped[0]["time"]).utcoffset() is not None
    assert as_records(b"", stream="stdout", pid=1, when=0.0) == b""
    # A progress bar's CRs keep its line one record, as in the text log.
    (bar,) = as_records(b"10%\r50%\r100%\n", stream="stdout", pid=1, when=0.0).splitlines()
    assert json.loads(bar)["message"] == "10%\r50%\r100%"


def test_a_line_json_cannot_read_for_its_depth_is_a_record_and_the_thread_goes_on() -> None:
    # json.loads raised RecursionError (no ValueError) out of the log-master's thread: it
    # ended, and every worker then blocked on its next write.
    deep = b'{"a": ' + b"[" * 60_000 + b"\n"
    (record,) = as_records(deep, stream="stdout", pid=1, when=0.0).splitlines()
    assert json.loads(record)["message"] == deep[:-1].decode()
    assert output_lines(b"x\n", ("stdout", 1)) != b"x\n"


def test_the_output_is_named_by_the_descriptors_its_pipe_takes_the_place_of() -> None:
    assert [output_name(std) for std in ([1], [2], [1, 2])] == ["stdout", "stderr", "output"]
    assert output_lines(b"as it came\n", None) == b"as it came\n"
    (line,) = output_lines(b"x\n", ("stdout", 7)).splitlines()
    assert json.loads(line)["pid"] == 7


def test_output_that_cannot_be_made_records_is_written_as_it_came(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from uwsgiapp.supervisor import logstreams

    def broken(lines: bytes, **_: object) -> bytes:
        raise MemoryError

    monkeypatch.setattr(logstreams, "as_records", broken)
    assert output_lines(b"a line\n", ("stdout", 1)) == b"a line\n"
