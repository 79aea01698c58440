"""--chdir is entered first: relative paths are taken from it, and a HUP enters it again (a
deploy's `current` symlink moves the app). Real processes, real signals."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from cli.cli_testkit import run_cli
from support.procs import (
    Server,
    short_tmpdir,
    uwsgi_exchange,
    uwsgi_get,
    wait_for_serving,
    wait_until,
)

import uwsgiapp
from uwsgiapp.supervisor.touch import INTERVAL

APP = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [{version!r}]
"""


def _releases(tmp_path: Path) -> tuple[Path, Path]:
    """releases/r1 and r2, each an app answering its name, and ``current`` pointing at r1."""
    releases = tmp_path / "releases"
    for version in ("r1", "r2"):
        (releases / version).mkdir(parents=True)
        (releases / version / "relapp.py").write_text(APP.format(version=version.encode()))
    current = tmp_path / "current"
    current.symlink_to(releases / "r1")
    return releases, current


def _answer(sock: str) -> bytes:
    return uwsgi_exchange(sock, uwsgi_get("/"), timeout=10).data.rpartition(b"\r\n\r\n")[2]


def test_relative_socket_pidfile_and_log_live_in_the_chdir_and_are_removed(
    tmp_path: Path,
) -> None:
    # The DigitalOcean layout: `chdir = /home/u/proj`, `socket = proj.sock`, nginx pointed at
    # /home/u/proj/proj.sock; started from elsewhere (systemd starts in /).
    start = Path(short_tmpdir())
    proj = start / "proj"
    proj.mkdir()
    (proj / "relapp.py").write_text(APP.format(version=b"here"))
    server = Server(
        start,
        "relapp:app",
        socket="proj.sock",
        chdir="proj",
        pidfile="proj.pid",
        error_log_file="proj.log",
    )
    server.start(wait=False)
    try:
        wait_until(lambda: (proj / "proj.pid").exists(), 15, "the pidfile in the chdir")
        wait_for_serving(server, 1)
        assert _answer(str(proj / "proj.sock")) == b"here"
        assert not (start / "proj.sock").exists() and (proj / "proj.log").exists()
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
    finally:
        server.stop()
    log = (proj / "proj.log").read_text()
    assert f"listening on {proj}/proj.sock (owner" in log  # the path for nginx's uwsgi_pass
    # What runs (after a pip install -U, --version says what is installed, not what runs).
    assert f"starting 1 worker (uwsgiapp {uwsgiapp.__version__}, " in log, log
    assert "could not remove" not in log, log
    assert not (proj / "proj.sock").exists() and not (proj / "proj.pid").exists()


def test_hup_enters_the_chdir_again_so_a_deploy_symlink_moves_the_app(tmp_path: Path) -> None:
    releases, current = _releases(tmp_path)
    server = Server(tmp_path, "relapp:app", chdir="current", workers=1).start()
    try:
        wait_for_serving(server, 1)
        assert _answer(server.socket) == b"r1"
        swap = tmp_path / "current.new"
        swap.symlink_to(releases / "r2")
        swap.replace(current)  # the atomic switch deploy tools make
        server.signal(signal.SIGHUP)
        wait_until(lambda: _answer(server.socket) == b"r2", 15, "the new release to answer")
    finally:
        server.stop()
    assert "cannot re-import" not in server.log()
    # Which release was loaded: a systemd WorkingDirectory= (resolved) reloaded the old one.
    assert f"reload: app re-imported from {releases}/r2/relapp.py (" in server.log()


def test_a_deploys_hup_beside_a_watched_symlink_reloads_once(tmp_path: Path) -> None:
    """--touch-reload on the ``current`` symlink and a HUP after the flip: the HUP's reload
    loaded the new release, then the touch poll saw the flip and reloaded again."""
    releases, current = _releases(tmp_path)
    server = Server(
        tmp_path, "relapp:app", chdir="current", workers=1, touch_reload=[str(current)]
    ).start()
    try:
        wait_for_serving(server, 1)
        swap = tmp_path / "current.new"
        swap.symlink_to(releases / "r2")
        swap.replace(current)
        server.signal(signal.SIGHUP)
        wait_until(lambda: _answer(server.socket) == b"r2", 15, "the new release to answer")
        wait_until(lambda: "new worker ready" in server.log(), 15, "the reload's end")
        time.sleep(3 * INTERVAL)  # the touch poll's looks: none may reload
    finally:
        server.stop()
    log = server.log()
    assert "--touch-reload" not in log and log.count("graceful reload (generation") == 1, log


def test_hup_to_a_release_missing_a_module_fails_not_finding_it_in_the_last_one(
    tmp_path: Path,
) -> None:
    """Each reload left the last release's directory on sys.path: a module the new release
    no longer ships was imported from the old one, and the reload passed; the next restart
    was the outage."""
    releases = tmp_path / "releases"
    uses = "import helpers\n" + APP.replace("{version!r}", "helpers.VERSION")
    for version in ("r1", "r2", "r3"):
        (releases / version).mkdir(parents=True)
        (releases / version / "relapp.py").write_text(uses)
        if version != "r3":
            (releases / version / "helpers.py").write_text(f"VERSION = {version.encode()!r}\n")
    current = tmp_path / "current"
    current.symlink_to(releases / "r1")
    server = Server(tmp_path, "relapp:app", chdir="current", workers=1).start()
    try:
        wait_for_serving(server, 1)
        for version in ("r2", "r3"):
            swap = tmp_path / "current.new"
            swap.symlink_to(releases / version)
            swap.replace(current)
            server.signal(signal.SIGHUP)
            if version == "r2":
                wait_until(lambda: _answer(server.socket) == b"r2", 15, "r2 to answer")
        wait_until(lambda: "reload failed" in server.log(), 30, "the reload to r3 to fail")
        assert _answer(server.socket) == b"r2"  # the old code serves on
    finally:
        server.stop()
    assert "No module named 'helpers'" in server.log(), server.log()


def test_a_chdir_that_cannot_be_entered_stops_the_start_naming_the_option(
    tmp_path: Path,
) -> None:
    done = run_cli("serve", "x:app", "--chdir", "missing", "--socket", "a.sock", cwd=tmp_path)
    assert done.returncode == 3
    assert f"--chdir: cannot enter {tmp_path}/missing: No such file" in done.stderr.decode()
    assert not (tmp_path / "a.sock").exists()
