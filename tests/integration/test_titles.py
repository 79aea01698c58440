"""Process titles out of the box: ``ps`` tells the master from each worker (a real server)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from support.procs import Server, wait_until


def children(pid: int) -> set[int]:
    path = Path(f"/proc/{pid}/task/{pid}/children")
    return {int(p) for p in path.read_text().split()} if path.exists() else set()


def cmdline(pid: int) -> str:
    return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode().strip()


def test_master_and_workers_show_their_role_in_ps(tmp_path: Path) -> None:
    server = Server(tmp_path, "supervisor_app:app", workers=2).start()
    try:
        expected = [
            "uwsgiapp worker 1 [supervisor_app:app]",
            "uwsgiapp worker 2 [supervisor_app:app]",
        ]

        def titled() -> bool:  # a worker sets its title just after fork: wait for it
            pids = children(server.pid)
            return len(pids) == 2 and sorted(cmdline(pid) for pid in pids) == expected

        wait_until(titled, 20, "2 workers with their titles")
        master = cmdline(server.pid)
        workers = sorted(cmdline(pid) for pid in children(server.pid))
    finally:
        server.stop()
    assert master == "uwsgiapp master [supervisor_app:app]"
    assert workers == [
        "uwsgiapp worker 1 [supervisor_app:app]",
        "uwsgiapp worker 2 [supervisor_app:app]",
    ]


def test_without_setproctitle_linux_gets_a_short_name(tmp_path: Path) -> None:
    code = (
        "import sys; sys.modules['setproctitle'] = None\n"  # as if it were not installed
        "from uwsgiapp.supervisor.titles import set_title, worker_title\n"
        "set_title(*worker_title(12, 'app:app'))\n"
        "print(open('/proc/self/comm').read().strip())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "uwsgiapp w12"
