"""A HUP's trial import, its decisions (:mod:`uwsgiapp.supervisor.trial`): what the master says
of the child that imported the new code first, and what the reload does then. No processes,
but for the faulthandler dumps parsed, which come from a real crash of this Python."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest
from supervisor.policy_sim import started

from uwsgiapp.supervisor.actions import Log, Mode, Notify, Reimport, ReloadKind, Spawn
from uwsgiapp.supervisor.trial import (
    Deadline,
    TrialEnd,
    dumped_frames,
    failed,
    failure,
    passed,
    record,
    records,
    stack_frames,
    where,
)

PID = 4242


def _end(output: str | None, code: int | None = None, signum: int | None = None) -> TrialEnd:
    return TrialEnd(PID, code, signum, 0.5, output)


def test_the_child_that_imported_is_a_success() -> None:
    assert failure(_end(record(PID, "ok").decode(), code=0)) is None
    assert failure(_end(None, code=0)) is None  # no file to write to: its exit says


def test_an_exit_0_without_the_childs_word_is_a_failure() -> None:
    # The app's import called os._exit(0) (a library's "nothing to do" exit): not imported.
    said = failure(_end("", code=0))
    assert said == f"its import, tried in a child process (pid {PID}), exited with code 0"


def test_the_records_of_a_process_the_child_forked_are_not_its() -> None:
    output = (record(PID + 1, "ok") + record(PID, "error", "boom\n  at line 3")).decode()
    assert records(output, PID) == {"error": "boom at line 3"}  # one line
    assert failure(_end(output, code=0)) == "boom at line 3"


def test_an_exception_is_said_as_the_masters_import_says_it() -> None:
    line = "error while importing module 'app' for app 'app:app': RuntimeError: x (app.py, line 2)"
    assert failure(_end(record(PID, "error", line).decode(), code=1)) == line


def test_os_exit_names_where_it_was_called() -> None:
    output = record(PID, "at", " at /srv/app.py, line 6").decode()
    assert failure(_end(output, code=3)) == (
        f"its import, tried in a child process (pid {PID}), exited with code 3 "
        "(os._exit at /srv/app.py, line 6)"
    )


def _crash_dump(tmp_path: Path, source: str) -> str:
    """What faulthandler writes as a real process of this Python crashes importing ``source``."""
    (tmp_path / "crashing.py").write_text(source)
    # On sys.path by name: the compiled build's runs set PYTHONSAFEPATH, which leaves out
    # the working directory of a -c.
    ran = subprocess.run(
        [
            sys.executable,
            "-X",
            "faulthandler",
            "-c",
            f"import sys; sys.path.insert(0, {str(tmp_path)!r}); import crashing",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert ran.returncode == -signal.SIGSEGV, ran
    return ran.stderr


def test_a_segfault_names_the_innermost_frame_and_the_module_importing(tmp_path: Path) -> None:
    dump = _crash_dump(tmp_path, "import ctypes\n\n\nctypes.string_at(0)\n")
    frames = dumped_frames(dump)
    assert frames[0][2] == "string_at", dump
    said = failure(_end(dump, signum=signal.SIGSEGV))
    assert said is not None
    assert said.startswith(
        f"its import, tried in a child process (pid {PID}), was killed by signal 11 (SIGSEGV) "
        f"at {frames[0][0]}, line {frames[0][1]} in string_at, from "
    )
    assert said.endswith(f"{tmp_path / 'crashing.py'}, line 4"), said


def test_where_names_one_frame_when_the_module_itself_is_the_innermost() -> None:
    frames = [("/srv/app.py", 13, "<module>"), ("<frozen importlib._bootstrap>", 241, "_call")]
    assert where(frames) == " at /srv/app.py, line 13"
    assert where([("<frozen importlib._bootstrap>", 241, "_call")]) == ""
    assert where([]) == ""


def test_the_frames_of_this_call_go_outwards() -> None:
    frames = stack_frames(sys._getframe())
    assert frames[0][2] == "test_the_frames_of_this_call_go_outwards"
    assert frames[0][0] == __file__


def test_the_current_thread_of_a_dump_is_the_one_read() -> None:
    dump = (
        "Thread 0x00007f0000000001 (most recent call first):\n"
        '  File "/srv/pool.py", line 9 in run\n\n'
        "Current thread 0x00007f0000000002 (most recent call first):\n"
        '  File "/usr/lib/python3/socket.py", line 836 in create_connection\n'
        '  File "/srv/app.py", line 5 in <module>\n'
        '  File "<frozen importlib._bootstrap>", line 241 in _call_with_frames_removed\n'
    )
    said = failure(TrialEnd(PID, None, signal.SIGUSR2, 60.1, dump, overdue=60.0))
    assert said == (
        f"its import, tried in a child process (pid {PID}), was still importing after 60 s "
        "(--reload-check-timeout) at /usr/lib/python3/socket.py, line 836 in "
        "create_connection, from /srv/app.py, line 5"
    )


def test_a_sigkill_nobody_sent_is_said_to_be_the_oom_killers_likely() -> None:
    said = failure(_end("", signum=signal.SIGKILL))
    assert said == (
        f"its import, tried in a child process (pid {PID}), was killed by signal 9 (SIGKILL), "
        "not sent by uwsgiapp: the OOM killer (dmesg says), or a kill -9"
    )


def test_the_deadline_dumps_then_kills() -> None:
    deadline = Deadline(started=100.0, timeout=5.0)
    assert deadline.due(104.9) is None
    assert deadline.due(105.0) is signal.SIGUSR2
    assert deadline.due(105.5) is None  # the dump's grace
    assert deadline.due(106.0) is signal.SIGKILL
    assert deadline.due(106.1) is signal.SIGKILL  # until it is reaped


def test_a_passed_trial_begins_the_reload_without_saying_reloading_twice() -> None:
    sim = started(workers=2, reload_kind=ReloadKind.REIMPORT)
    actions = passed(sim.policy, sim.now, None)
    assert sim.policy.mode is Mode.RELOADING
    assert any(isinstance(a, Reimport) for a in actions)
    assert sum(isinstance(a, Spawn) for a in actions) == 2
    assert not [a for a in actions if isinstance(a, Notify)]  # said as the child started
    assert any(isinstance(a, Log) and "SIGHUP: graceful reload" in a.message for a in actions)


def test_a_passed_trial_applies_the_workers_the_hup_read() -> None:
    sim = started(workers=2)
    actions = passed(sim.policy, sim.now, 3)
    assert sum(isinstance(a, Spawn) for a in actions) == 3


def test_a_trial_that_passes_after_a_stop_does_nothing() -> None:
    sim = started(workers=2)
    sim.run(sim.policy.on_signal("TERM", sim.now))
    assert passed(sim.policy, sim.now, None) == []


def test_a_failed_trial_keeps_the_workers_and_says_ready() -> None:
    sim = started(workers=2)
    before = dict(sim.policy.records)
    actions = failed(sim.policy, "its import ... exited with code 3")
    assert [a.message for a in actions if isinstance(a, Log)] == [
        "reload: cannot re-import the app, keeping the old code: its import ... exited with code 3",
        "reload failed (the app cannot be re-imported): keeping the old workers",
    ]
    assert [a.state for a in actions if isinstance(a, Notify)] == [
        "READY=1\nSTATUS=reload failed: the old workers serve"
    ]
    assert sim.policy.records == before and sim.policy.mode is Mode.RUNNING


@pytest.mark.parametrize("kind", ["ok", "error", "at"])
def test_a_record_is_one_line(kind: str) -> None:
    assert record(PID, kind, "a\nb  c").count(b"\n") == 1
