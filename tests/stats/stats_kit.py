"""Fake snapshots and small socket/tmux helpers shared by the stats tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from uwsgiapp.stats.model import (
    DURATION_BOUNDS,
    AppStats,
    CoreStats,
    Histogram,
    ServerStats,
    SocketStats,
    StatusCounts,
    WorkerStats,
)
from uwsgiapp.stats.server import StatsServer

ROOT = str(Path(__file__).resolve().parents[2])


def durations(*seconds: float) -> Histogram:
    """A histogram holding ``seconds``."""
    h = Histogram.empty()
    for s in seconds:
        h = h.observe(s)
    return h


def worker(wid: int, requests: int, *, status: str = "idle", **kw: object) -> WorkerStats:
    """A worker with ``requests`` answered 2xx/4xx/5xx in a 6:3:1 mix (rounded)."""
    c4 = requests * 3 // 10
    c5 = requests // 10
    defaults: dict[str, object] = {
        "id": wid,
        "pid": 4000 + wid,
        "requests": requests,
        "delta_requests": requests,
        "exceptions": c5,
        "status": status,
        "rss": (20 + wid) * 1024 * 1024,
        "vsz": (200 + wid) * 1024 * 1024,
        "running_time": requests * 1500,
        "last_spawn": 1_700_000_000 + wid,
        "respawn_count": 1,
        "tx": requests * 120,
        "avg_rt": 1500,
        "statuses": StatusCounts(c2xx=requests - c4 - c5, c4xx=c4, c5xx=c5),
        "durations": Histogram(
            counts=(requests,) + (0,) * len(DURATION_BOUNDS), sum=requests * 0.0015
        ),
        "cores": (
            CoreStats(
                id=0,
                requests=requests,
                in_request=status == "busy",
                request_start=1_700_000_100 if status == "busy" else 0,
            ),
        ),
        "apps": (AppStats(id=0, mountpoint="", requests=requests, exceptions=c5),),
    }
    defaults.update(kw)
    return WorkerStats(**defaults)  # type: ignore[arg-type]


def server_stats(*workers: WorkerStats, listen_queue: int = 0) -> ServerStats:
    """A master with the given workers on one unix socket."""
    return ServerStats(
        version="0.1.0",
        pid=4000,
        uid=1000,
        gid=1000,
        cwd="/srv/app",
        listen_queue=listen_queue,
        load=listen_queue,
        sockets=(SocketStats(name="/run/app.sock", queue=listen_queue, max_queue=128),),
        workers=workers,
    )


def sample() -> ServerStats:
    """Three workers with distinct counts, one busy."""
    return server_stats(
        worker(1, 1234), worker(2, 567, status="busy"), worker(3, 89, respawn_count=3)
    )


@contextlib.contextmanager
def running(server: StatsServer) -> Iterator[StatsServer]:
    """Drive ``server`` from a thread (as the master loop would) until the block ends."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            server.poll(0.05)

    thread = threading.Thread(target=loop, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        stop.set()
        thread.join(5)
        server.close()


def read_all(address: str | tuple[str, int], request: bytes = b"", timeout: float = 5.0) -> bytes:
    """Connect, send ``request``, read until the server closes."""
    family = socket.AF_UNIX if isinstance(address, str) else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(address)
        if request:
            sock.sendall(request)
        chunks = []
        while True:
            data = sock.recv(65536)
            if not data:
                return b"".join(chunks)
            chunks.append(data)


def spec_of(address: str | tuple[str, int]) -> str:
    """The command-line form of a server address."""
    return address if isinstance(address, str) else f"{address[0]}:{address[1]}"


class Tmux:
    """A private tmux server (its own socket name) running one command in a sized window."""

    def __init__(self, name: str, command: list[str], *, width: int = 160, height: int = 30):
        if shutil.which("tmux") is None:
            raise RuntimeError("tmux is not installed")
        self.name = name
        env = {
            "PYTHONPATH": ROOT,
            "TERM": "xterm-256color",
            "PATH": os.environ.get("PATH", ""),
            "HOME": os.environ.get("HOME", "/tmp"),
            "LANG": "C.UTF-8",
        }
        shell = " ".join(f"{k}={_quote(v)}" for k, v in env.items())
        # The pane outlives the command, so a crash leaves its traceback and status on screen.
        line = (
            f"env -i {shell} "
            + " ".join(_quote(c) for c in command)
            + '; echo "[exited $?]"; sleep 600'
        )
        self._tmux("new-session", "-d", "-s", name, "-x", str(width), "-y", str(height), line)

    def _tmux(self, *args: str) -> str:
        out = subprocess.run(
            ["tmux", "-L", self.name, "-f", "/dev/null", *args],
            capture_output=True,
            text=True,
            timeout=10,
            check=True,
        )
        return out.stdout

    def capture(self) -> str:
        """The visible screen as text."""
        return self._tmux("capture-pane", "-p", "-t", self.name)

    def wait_for(self, predicate: Callable[[str], bool], timeout: float = 15.0) -> str:
        """Capture until ``predicate(screen)`` holds; the last screen either way."""
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            with contextlib.suppress(subprocess.CalledProcessError):
                screen = self.capture()
                if predicate(screen):
                    return screen
            time.sleep(0.2)
        return screen

    def send_keys(self, *keys: str) -> None:
        """Type into the window."""
        self._tmux("send-keys", "-t", self.name, *keys)

    def kill(self) -> None:
        """Stop our tmux server (and the command in it) and remove its socket file."""
        with contextlib.suppress(subprocess.SubprocessError):
            subprocess.run(
                ["tmux", "-L", self.name, "kill-server"], capture_output=True, timeout=10
            )
        tmpdir = os.environ.get("TMUX_TMPDIR", "/tmp")
        with contextlib.suppress(OSError):
            os.unlink(os.path.join(tmpdir, f"tmux-{os.getuid()}", self.name))


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)


PYTHON = sys.executable
