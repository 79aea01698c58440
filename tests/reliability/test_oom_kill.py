"""A worker the kernel's OOM killer ends is named the OOM killer's, with the limit: a real
memory cgroup (v1, as a container's ``--memory`` makes one) with a 150 MB limit holds the
server, and a request allocates past it.

Skipped where this process cannot make a memory cgroup of its own (not root, or cgroup v2
only: there a child needs the controller enabled above it); the cgroup files of both kinds
are read by the tests of ``uwsgiapp.supervisor.oomkills``.
"""

from __future__ import annotations

import os
import shlex
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.procs import Server, wait_until

from uwsgiapp.client import parse_address, request

LIMIT_MB = 150

APP = f"""
def app(environ, start_response):
    if environ["PATH_INFO"] == "/eat":
        hog = bytearray({LIMIT_MB * 2} * 1024 * 1024)
        for i in range(0, len(hog), 4096):
            hog[i] = 1
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]
"""


def _own_memory_cgroup() -> Path | None:
    """This process's cgroup v1 memory directory, if it may make a child there."""
    try:
        text = Path("/proc/self/cgroup").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        _, _, rest = line.partition(":")
        controllers, _, path = rest.partition(":")
        if "memory" in controllers.split(","):
            base = Path("/sys/fs/cgroup/memory") / path.strip().lstrip("/")
            if os.geteuid() == 0 and (base / "memory.limit_in_bytes").exists():
                return base
    return None


@pytest.fixture
def memory_cgroup() -> Iterator[Path]:
    parent = _own_memory_cgroup()
    if parent is None:
        pytest.skip("no cgroup v1 memory controller this process may make a child in")
    cgroup = parent / f"uwsgiapp-test-{os.getpid()}"
    cgroup.mkdir()
    try:
        (cgroup / "memory.limit_in_bytes").write_text(str(LIMIT_MB * 1024 * 1024))
        if (cgroup / "memory.memsw.limit_in_bytes").exists():  # no swapping instead
            (cgroup / "memory.memsw.limit_in_bytes").write_text(str(LIMIT_MB * 1024 * 1024))
        yield cgroup
    finally:
        for _ in range(100):  # empty once the server's processes are gone
            try:
                cgroup.rmdir()
                break
            except OSError:
                time.sleep(0.1)


class CgroupServer(Server):
    """``uwsgiapp serve`` started inside ``cgroup`` (its master and so its workers)."""

    cgroup: Path

    def command(self) -> list[str]:
        enter = f'echo $$ > {shlex.quote(str(self.cgroup / "cgroup.procs"))} && exec "$@"'
        return ["sh", "-c", enter, "sh", *super().command()]


def test_a_worker_the_oom_killer_ended_is_named_so(tmp_path: Path, memory_cgroup: Path) -> None:
    (tmp_path / "memapp.py").write_text(APP)
    server = CgroupServer(
        tmp_path / "server",
        "memapp:app",
        pythonpath=[str(tmp_path)],
        workers=2,
        reload_on_rss=LIMIT_MB,  # two workers may pass the limit before either is recycled
    )
    server.cgroup = memory_cgroup
    server.start()
    try:
        assert (
            f"--reload-on-rss {LIMIT_MB} MB for each of 2 workers is more than the memory "
            f"cgroup's limit, {LIMIT_MB} MB: the OOM killer may kill a worker"
        ) in server.log()
        address = parse_address(server.socket)
        with pytest.raises(Exception):  # noqa: B017 - the connection closes unanswered
            request(address, "/eat")
        said = (
            f"killed by signal 9 (SIGKILL), sent by the kernel's OOM killer: its memory cgroup "
            f"(limit {LIMIT_MB} MB) counts 1 OOM kill more (it was in a request, which got no "
            "answer); starting a new one"
        )
        wait_until(lambda: said in server.log(), 15, "the OOM killer's line")
        # one line: a second one said it again after the first had guessed
        assert "not sent by uwsgiapp" not in server.log() and "was killed by" not in server.log()
        wait_until(lambda: request(address, "/").body == b"ok", 15, "the new worker")
    finally:
        server.stop()
