"""The command handles stop signals from its first instant (uwsgiapp/entry.py).

As PID 1 in a container the kernel drops a signal that has no handler: a TERM that came while
the command was still importing was lost, and ``docker stop`` waited out its timeout. Here a TERM
is sent while ``uwsgiapp.cli`` is being imported: with the entry's handler the command exits
143 at once; without one the process would be killed by the signal (as PID 1: ignored).
"""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

TERM_DURING_IMPORT = textwrap.dedent(
    """
    import builtins, os, signal, sys, time
    sys.argv = ["uwsgiapp", *sys.argv[1:]]
    real_import = builtins.__import__

    def term_then_import(name, *args, **kwargs):
        if name == "uwsgiapp.cli":
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)  # a handler's SystemExit cuts this short
        return real_import(name, *args, **kwargs)

    builtins.__import__ = term_then_import
    from uwsgiapp.entry import main
    sys.exit(main())
    """
)


@pytest.mark.parametrize(
    ("command", "code"),
    [
        # serve's TERM is a stop as asked, 0, as a moment later (it was 143, a failure)
        (["serve", "app:app"], 0),
        (["--version"], 128 + signal.SIGTERM),
        # a check stopped is no pass (a deploy gate's `check && reload`): review
        (["serve", "--check-config", "app:app"], 128 + signal.SIGTERM),
        (["serve", "app:app", "--print-config"], 128 + signal.SIGTERM),
        (["request", "127.0.0.1:1"], 128 + signal.SIGTERM),
    ],
)
def test_a_term_while_importing_ends_the_command(command: list[str], code: int) -> None:
    done = subprocess.run(
        [sys.executable, "-c", TERM_DURING_IMPORT, *command],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == code, (done.returncode, done.stderr[-500:])
    if code == 0:
        assert done.stderr == "uwsgiapp serve: SIGTERM during start-up: stopped\n"


PROBE = textwrap.dedent(
    """
    import argparse, signal, sys

    def fake(args):
        term, intr = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)
        print(term == signal.SIG_DFL, intr is signal.default_int_handler)
        return 0

    parse = argparse.ArgumentParser.parse_args

    def parse_then_fake(self, *args, **kwargs):
        namespace = parse(self, *args, **kwargs)
        namespace.handler = fake
        return namespace

    argparse.ArgumentParser.parse_args = parse_then_fake
    from uwsgiapp.entry import main
    sys.argv = ["uwsgiapp", "ping", "127.0.0.1:1"]
    sys.exit(main())
    """
)


@pytest.mark.parametrize(
    ("inherited", "int_is"),
    [
        # As from a terminal: commands other than serve get the default handlers back (a run
        # of the suite in the background, nohup or a CI shell, has INT ignored: set here).
        (signal.SIG_DFL, "intr is signal.default_int_handler"),
        # A shell's background job (`uwsgiapp request ... &`) starts with INT and QUIT
        # ignored: Ctrl-C at the terminal must not end it.
        (signal.SIG_IGN, "intr == signal.SIG_IGN"),
    ],
)
def test_commands_other_than_serve_keep_the_int_they_started_with(
    inherited: signal.Handlers, int_is: str
) -> None:
    def start_with() -> None:
        signal.signal(signal.SIGINT, inherited)

    probe = PROBE.replace("intr is signal.default_int_handler", int_is)
    done = subprocess.run(
        [sys.executable, "-c", probe],
        capture_output=True,
        text=True,
        timeout=30,
        preexec_fn=start_with,
    )
    assert done.returncode == 0, done.stderr[-500:]
    assert done.stdout.split() == ["True", "True"]


def test_a_term_in_the_checked_apps_import_is_a_stop_not_the_apps_failure(tmp_path: Path) -> None:
    # --check-config kept the entry's handler: its SystemExit, raised inside the app's import,
    # was reported as the app's ("cannot be imported", exit 4, a traceback): a stop read as a
    # broken deploy (review).
    marker = tmp_path / "importing"
    (tmp_path / "slowapp.py").write_text(
        f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(30)\n"
        "def app(environ, start_response):\n    return []\n"
    )
    proc = subprocess.Popen(
        [sys.executable, "-m", "uwsgiapp", "serve", "slowapp:app", "--check-config",
         "--socket", str(tmp_path / "s.sock")],
        cwd=tmp_path, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 30
        while not marker.exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    finally:
        proc.kill()
    assert proc.returncode == -signal.SIGTERM, (proc.returncode, err)
    assert "cannot" not in err and "Traceback" not in err, err
