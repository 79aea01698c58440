"""A HUP's trial import: what the master decides about the child process that imports the new
code before the master does (the child and its signals: :mod:`~uwsgiapp.supervisor.trialrun`).

A preloaded app is re-imported in the master at a HUP (:mod:`~uwsgiapp.supervisor.reload`). An
import that raises is called off there, but new code that ends the process as it imports
(``os._exit``, a segfault or an abort in a C extension, the OOM killer) ended the master, and
the old workers with it; an import that never returns (a loop, a lock, a connect without a
timeout) held the master's loop for good, so that no worker was replaced or killed at its
harakiri. So the new code is imported in a child first, while the loop goes on; the master
imports it only once the child has. Pure: values in, lines and actions out.

The child writes its records, one line each (``uwsgiapp-trial PID KIND TEXT``), into a file
the master reads once the child has ended, where faulthandler writes the child's stacks too
(a crash; the deadline's ``SIGUSR2``). ``ok``: the new code imported; ``error``: its import
raised (TEXT: the error, one line); ``at``: where the import called ``os._exit``.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterable
from dataclasses import dataclass
from types import FrameType

from uwsgiapp.supervisor.actions import (
    DUMP_GRACE,
    Action,
    Log,
    LogLevel,
    Mode,
    Notify,
    describe_exit,
)
from uwsgiapp.supervisor.policy import Policy

RECORD = "uwsgiapp-trial"
#: Where the child's import is in its file: the innermost frame first (file, line, function).
Frame = tuple[str, int, str]

_FRAME = re.compile(r'^\s+File "(?P<file>[^"]*)", line (?P<line>\d+) in (?P<name>.*)$')


def record(pid: int, kind: str, text: str = "") -> bytes:
    """One record of the child ``pid`` for the master, as it is written."""
    return f"{RECORD} {pid} {kind} {' '.join(text.split())}\n".encode()


def records(output: str, pid: int) -> dict[str, str]:
    """The records the child ``pid`` wrote (kind → text); those of a process it forked (with
    another pid) are not its."""
    found: dict[str, str] = {}
    mark = f"{RECORD} {pid} "
    for line in output.splitlines():
        if line.startswith(mark):
            kind, _, text = line[len(mark) :].partition(" ")
            found[kind] = text
    return found


def stack_frames(frame: FrameType | None) -> list[Frame]:
    """The frames from ``frame`` outwards, as :data:`Frame` values."""
    frames: list[Frame] = []
    while frame is not None:
        frames.append((frame.f_code.co_filename, frame.f_lineno or 0, frame.f_code.co_name))
        frame = frame.f_back
    return frames


def dumped_frames(output: str) -> list[Frame]:
    """The frames of the thread that got the signal in a faulthandler dump (the first thread
    listed if none says it is the current one), innermost first."""
    threads: list[tuple[bool, list[Frame]]] = []
    for line in output.splitlines():
        if line.startswith(("Current thread", "Thread 0x")):
            threads.append((line.startswith("Current"), []))
        elif threads and (match := _FRAME.match(line)):
            threads[-1][1].append((match["file"], int(match["line"]), match["name"]))
    current = [frames for is_current, frames in threads if is_current and frames]
    return (current or [frames for _, frames in threads if frames] or [[]])[0]


def where(frames: Iterable[Frame]) -> str:
    """' at FILE, line N' for the innermost frame of the import, and the module that was
    importing if that is another file's (' at socket.py, line 836 in create_connection, from
    app.py, line 5'); '' without frames."""
    ours = [frame for frame in frames if not frame[0].startswith("<frozen ")]
    if not ours:
        return ""
    file, line, name = ours[0]
    module = next((frame for frame in ours if frame[2] == "<module>"), ours[0])
    if module == ours[0]:
        return f" at {file}, line {line}"
    return f" at {file}, line {line} in {name}, from {module[0]}, line {module[1]}"


_FILE_LINE = re.compile(r'^\s*File "(?P<file>[^"]+)", line (?P<line>\d+)(?:, in (?P<name>.+))?')


def traceback_of(message: str) -> str:
    """The traceback an import error's message carries on the lines after its first, or ""."""
    return message.partition("\n")[2].strip()


def one_line(message: str) -> str:
    """An import error's message (the inner traceback on the lines after the first) as one
    line: the first line, the exception, and the last file and line the traceback names."""
    lines = [line for line in message.splitlines() if line.strip()]
    if len(lines) < 2:
        return message.strip()
    frames: list[Frame] = []
    last = 0  # the traceback's last file line: the exception is the first line after its code
    for index, line in enumerate(lines[1:], 1):
        match = _FILE_LINE.match(line)
        if match:
            # A SyntaxError's frame has no name: it is the module being compiled.
            frames.append((match["file"], int(match["line"]), match["name"] or "<module>"))
            last = index
    # The innermost frame of ours (not <frozen os>'s: os.environ["X"]), with the module that
    # was importing when it is another file's (a library's raise, from the app's line).
    at = f" ({found[4:]})" if (found := where(reversed(frames))) else ""
    exception = next(
        (i for i in range(last + 1, len(lines)) if not lines[i][:1].isspace()), len(lines) - 1
    )
    said = " ".join(line.strip() for line in lines[exception + 1 :])  # the hints after it
    return f"{lines[0].rstrip(':')}: {lines[exception].strip()}{at}{' ' if said else ''}{said}"


@dataclass(frozen=True, slots=True)
class TrialEnd:
    """How the child ``pid`` ended: its exit ``code`` or the ``signum`` that killed it, after
    ``seconds``; ``output``: what its file held (None: there was no file); ``overdue``: the
    deadline (seconds) it was killed at, 0.0 if it ended before."""

    pid: int
    code: int | None
    signum: int | None
    seconds: float
    output: str | None
    overdue: float = 0.0


def failure(end: TrialEnd) -> str | None:
    """None if the new code imported in the child; else what became of its import, one line."""
    said = records(end.output or "", end.pid)
    if end.code == 0 and not end.overdue and ("ok" in said or end.output is None):
        return None
    if "error" in said:  # its import raised: the error, as the master's own import says it
        return said["error"]
    if "at" in said:  # os._exit: where it was called
        how, place = f"{describe_exit(end.code, None)} (os._exit {said['at']})", ""
    else:
        how, place = describe_exit(end.code, end.signum), where(dumped_frames(end.output or ""))
        if end.overdue:
            how = f"was still importing after {end.overdue:g} s (--reload-check-timeout)"
        elif end.signum is not None:
            how = "was " + how
        if end.signum == signal.SIGKILL and not end.overdue:
            how += ", not sent by uwsgiapp: the OOM killer (dmesg says), or a kill -9"
    return f"its import, tried in a child process (pid {end.pid}), {how}{place}"


def failure_traceback(end: TrialEnd) -> str:
    """The traceback of the child's failed import, "" if none came."""
    text = records(end.output or "", end.pid).get("traceback", "")
    try:
        detail = json.loads(text) if text else ""
    except ValueError:
        return ""
    return detail if isinstance(detail, str) else ""


@dataclass(slots=True)
class Deadline:
    """When the child is past ``--reload-check-timeout``: its stacks are asked for (faulthandler
    on ``SIGUSR2``), then, :data:`~uwsgiapp.supervisor.actions.DUMP_GRACE` later, it is
    killed."""

    started: float
    timeout: float
    dumped: bool = False

    def due(self, now: float) -> signal.Signals | None:
        """The signal to send the child now, if any (SIGKILL again at each later tick)."""
        if now < self.started + self.timeout:
            return None
        if not self.dumped:
            self.dumped = True
            return signal.SIGUSR2
        return signal.SIGKILL if now >= self.started + self.timeout + DUMP_GRACE else None


def started_line(pid: int, timeout: float) -> str:
    """What the log says as the child starts."""
    return (
        f"SIGHUP: the new code is imported in a child process first (pid {pid}, for at most "
        f"{timeout:g} s: --reload-check-timeout); the workers serve on meanwhile"
    )


def passed(policy: Policy, now: float, workers: int | None) -> list[Action]:
    """The child imported the new code: the reload proper, as a HUP starts it (``workers``:
    the ``--workers`` the HUP read again, None if unchanged); the service manager was told
    it reloads when the child started."""
    if policy.mode is Mode.STOPPING or policy.halted:
        return []
    actions = policy.hup_workers(workers) + policy.on_signal("HUP", now)
    return [a for a in actions if not (isinstance(a, Notify) and a.state.startswith("RELOADING"))]


def failed(policy: Policy, why: str, detail: str = "") -> list[Action]:
    """The child did not import the new code (``why``; ``detail``: its traceback): the reload
    is off before it began; the workers serve on, and the service manager hears that the
    reload is over."""
    policy.ready_said = True
    said = f"reload: cannot re-import the app, keeping the old code: {why}"
    return [
        Log(LogLevel.ERROR, said, detail),
        Log(
            LogLevel.ERROR, "reload failed (the app cannot be re-imported): keeping the old workers"
        ),
        Notify("READY=1\nSTATUS=reload failed: the old workers serve"),
    ]
