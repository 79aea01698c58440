"""A live server's stats socket with the tools and the set-ups of production.

- The real ``uwsgitop`` (from PyPI) under tmux shows one row per worker with the requests that
  went through nginx.
- Started as root with ``--uid nobody``, the stats unix socket is handed over with the uwsgi
  socket: owned by the dropped user, mode 0660, removed by the dropped master at exit when it
  can write the directory, left (with the start-up warning) when it cannot.
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import stat
import sys
from pathlib import Path

import pytest
from live_kit import accepting, wait_doc
from stats_kit import Tmux, read_all
from support.procs import Server, nginx_binary, short_tmpdir, stack, wait_until

UWSGITOP = Path(sys.executable).parent / "uwsgitop"
SENT = 7


def _rows(screen: str) -> dict[int, int]:
    """uwsgitop's worker rows: pid → REQ (columns WID % PID REQ RPS EXC ...)."""
    rows: dict[int, int] = {}
    for line in screen.splitlines():
        fields = line.split()
        if len(fields) >= 8 and fields[0].isdigit() and fields[2].isdigit():
            rows[int(fields[2])] = int(fields[3])
    return rows


@pytest.mark.nginx
@pytest.mark.skipif(nginx_binary() is None, reason="nginx is not installed")
@pytest.mark.skipif(not UWSGITOP.exists(), reason="uwsgitop is not installed")
def test_the_real_uwsgitop_shows_the_requests_sent(tmp_path: Path) -> None:
    path = os.path.join(short_tmpdir(), "stats.sock")
    with stack(tmp_path, "stats_app:app", workers=2, stats=path) as (_server, nginx):

        def read() -> dict[str, object]:
            doc: dict[str, object] = json.loads(read_all(path))
            return doc

        wait_doc(read, lambda d: accepting(d) == 2, 15)
        for _ in range(SENT):
            assert nginx.request("GET", "/ok")[0] == 200
        doc = wait_doc(read, lambda d: sum(w["requests"] for w in d["workers"]) == SENT, 10)
        want = {w["pid"]: w["requests"] for w in doc["workers"]}  # type: ignore[attr-defined]
        top = Tmux(f"uwa-uwsgitop-{os.getpid()}", [str(UWSGITOP), path], width=160, height=40)
        try:
            screen = top.wait_for(lambda s: _rows(s) == want and f"req: {SENT}" in s, 20)
        finally:
            top.kill()
        assert _rows(screen) == want, screen
        assert f"req: {SENT}" in screen, screen
        assert "WID" in screen and "ReSpwn" in screen, screen


def _nobody() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("starting as root and dropping privileges needs root")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("needs the user nobody")


def _dropped_gid(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Gid:"):
            return int(line.split()[1])
    raise AssertionError("no Gid line")


@pytest.mark.parametrize("owned", [True, False], ids=["user-dir", "root-dir"])
def test_the_stats_socket_is_handed_to_the_dropped_user(tmp_path: Path, owned: bool) -> None:
    user = _nobody()
    sockdir = short_tmpdir()
    if owned:
        os.chown(sockdir, user.pw_uid, user.pw_gid)
    os.chmod(sockdir, 0o755)
    path = os.path.join(sockdir, "stats.sock")
    server = Server(tmp_path / "server", "stats_app:app", workers=1, stats=path)
    server.options.update(uid=user.pw_name)
    server.start()
    try:
        wait_doc(lambda: json.loads(read_all(path)), lambda d: accepting(d) == 1, 15)
        st = os.stat(path)
        assert st.st_uid == user.pw_uid, st
        assert st.st_gid == _dropped_gid(server.pid), st
        assert stat.S_IMODE(st.st_mode) == 0o660, oct(st.st_mode)
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0, server.log()
    finally:
        server.stop()
    log = server.log()
    assert "Traceback" not in log, log
    warning = f"{path}: after --uid/--gid the master cannot write its directory"
    if owned:
        wait_until(lambda: not os.path.exists(path), 5, "the stats socket removed")
        assert warning not in log, log
    else:
        assert os.path.exists(path) and warning in log, log
        os.unlink(path)
    os.rmdir(sockdir)
