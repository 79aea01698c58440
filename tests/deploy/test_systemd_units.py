"""deploy/systemd and deploy/logrotate, as systemd and logrotate would run them: the service's
command line (its paths moved under a tmp dir) started with the socket unit's listening socket
at fd 3 (LISTEN_FDS) and a stand-in for systemd's notify socket; its reload, the logrotate
move and signal, and its stop, each as the unit files say."""

from __future__ import annotations

import configparser
import os
import shlex
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.procs import (
    SYSTEMD_EXEC,
    notify_socket,
    short_tmpdir,
    uwsgi_exchange,
    uwsgi_get,
    wait_until,
)

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"unit ok"]
"""


def _unit(name: str) -> configparser.ConfigParser:
    unit = configparser.ConfigParser(strict=False, interpolation=None, delimiters=("=",))
    unit.optionxform = str  # type: ignore[assignment,method-assign]  # keys are case-sensitive
    unit.read_string(
        (DEPLOY / "systemd" / name).read_text().replace("\\\n", " ")  # continuation lines
    )
    return unit


def _told(manager: socket.socket, state: str) -> str:
    """The next notification that carries ``state`` (READY=1, RELOADING=1, STOPPING=1)."""
    while state not in (said := manager.recv(4096).decode()).splitlines():
        pass
    return said


def test_the_units_as_systemd_runs_them(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    service, sock = _unit("uwsgiapp.service")["Service"], _unit("uwsgiapp.socket")["Socket"]
    assert (service["Type"], service["NotifyAccess"]) == ("notify", "all")
    assert service["KillSignal"] == "SIGTERM"  # graceful, within the stop's timeout
    assert int(service["TimeoutStopSec"]) > 30  # --graceful-timeout's default
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    command = shlex.split(service["ExecStart"].replace("/var/log/app", str(tmp_path)))
    assert command[:3] == ["/srv/app/venv/bin/uwsgiapp", "serve", "app:app"]
    assert "--socket" not in command  # the socket unit's, passed at fd 3
    (tmp_path / "app.py").write_text(APP)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(tmp_path), *sys.path]))
    path = os.path.join(short_tmpdir(), Path(sock["ListenStream"]).name)
    with notify_socket(monkeypatch) as manager, socket.socket(socket.AF_UNIX) as held:
        held.bind(path)
        os.chmod(path, int(sock["SocketMode"], 8))
        held.listen(int(sock["Backlog"]))
        master = subprocess.Popen(
            [sys.executable, "-c", SYSTEMD_EXEC, str(held.fileno()), *command[2:]],
            pass_fds=[held.fileno()], cwd=tmp_path, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            assert f"MAINPID={master.pid}" in _told(manager, "READY=1")
            access = tmp_path / "access.log"

            def served() -> bool:
                return uwsgi_exchange(path, uwsgi_get("/u"), timeout=10).data.endswith(b"unit ok")

            assert served()
            wait_until(lambda: "GET /u =>" in access.read_text(), 10, "the access line")
            # logrotate: the files moved, new ones created, USR1 to the main PID (postrotate).
            rotate = (DEPLOY / "logrotate" / "uwsgiapp").read_text()
            assert (
                "create 0640 app app" in rotate and "kill -USR1" in rotate and "MainPID" in rotate
            )
            assert "/var/log/app/access.log /var/log/app/error.log" in rotate
            for name in ("access.log", "error.log"):
                (tmp_path / name).rename(tmp_path / f"{name}.1")
                (tmp_path / name).touch(mode=0o640)
            os.kill(master.pid, signal.SIGUSR1)
            wait_until(lambda: "USR1" in (tmp_path / "error.log").read_text(), 10, "the reopen")
            assert served()
            wait_until(lambda: "GET /u =>" in access.read_text(), 10, "a line in the new file")
            assert (tmp_path / "access.log.1").read_text().count("GET /u =>") == 1
            # systemctl reload: ExecReload's HUP ($MAINPID), RELOADING=1 then READY=1.
            os.kill(master.pid, signal.SIGHUP)
            _told(manager, "RELOADING=1")
            _told(manager, "READY=1")
            assert served()
            # systemctl stop: KillSignal.
            master.send_signal(signal.Signals[service["KillSignal"]])
            assert master.wait(int(service["TimeoutStopSec"])) == 0
            _told(manager, "STOPPING=1")
        finally:
            if master.poll() is None:
                master.kill()
                master.wait()
    assert "Traceback" not in (tmp_path / "error.log").read_text()
