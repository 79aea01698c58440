"""bench/profile_worker.py: its in-process worker serves one load phase after another.

Each phase runs the worker's loop until a TERM; bench/RESULTS.md once showed the second phase's
traceback (the first run had closed the listeners). Run in a child process: the worker installs
its signal handlers and is stopped by a TERM to its own process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from support.scripts import ROOT

CHILD = textwrap.dedent(
    """
    import sys, urllib.request
    sys.path.insert(0, "tests")
    from support.scripts import load_script

    tool = load_script("bench/profile_worker.py")

    def client(url, conns, seconds):
        for _ in range(5):
            with urllib.request.urlopen(url, timeout=10) as resp:
                assert resp.status == 200, resp.status
        return "5 requests"

    with tool.live_worker("hello") as (worker, url):
        for phase in (1, 2):
            served, cpu, out = tool.drive(worker, url, 1, 1, None, client)
            print(f"phase {phase}: served {served}, {out}")
    """
)


@pytest.mark.usefixtures("nginx_available")
def test_two_phases_are_served_by_the_same_worker() -> None:
    done = subprocess.run(
        [sys.executable, "-c", CHILD], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == [
        "phase 1: served 5, 5 requests",
        "phase 2: served 5, 5 requests",
    ]
