"""A real ``uwsgiapp serve`` started as root with ``--uid``: the files it opens, hands over or
removes while root never follow a link the app user planted (the app user owns the log and
pidfile directory, as the README recommends)."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import socket
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from support.procs import APPS_DIR, Server, short_tmpdir, uwsgi_exchange, wait_until

import uwsgiproto

pytestmark = pytest.mark.nginx


@pytest.fixture
def app_user() -> tuple[str, int, int]:
    """The unprivileged user the server drops to (name, uid, gid)."""
    if os.geteuid() != 0:
        pytest.skip("starting as root and dropping privileges needs root")
    try:
        user = pwd.getpwnam("nobody")
        group = grp.getgrgid(user.pw_gid)
    except KeyError:
        pytest.skip("needs the user nobody")
    return user.pw_name, user.pw_uid, group.gr_gid


@pytest.fixture
def app_dir(app_user: tuple[str, int, int]) -> Path:
    """A directory the app user owns: where it keeps the logs and the pidfile."""
    path = Path(short_tmpdir())
    os.chown(path, app_user[1], app_user[2])
    path.chmod(0o755)
    return path


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[Path]:
    """A root-only file outside the app user's reach."""
    tmp_path.chmod(0o755)
    path = tmp_path / "shadow"
    path.write_text("root secret\n")
    path.chmod(0o600)
    yield path


def _unchanged(victim: Path) -> None:
    st = victim.lstat()
    assert (st.st_uid, st.st_gid, stat.S_IMODE(st.st_mode)) == (0, 0, 0o600)
    assert victim.read_text() == "root secret\n"


def _text(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def _server(tmp_path: Path, user: str, **options: object) -> Server:
    server = Server(tmp_path / "server", "supervisor_app:app", **options)
    server.options.update(uid=user)
    return server


def _refused_start(server: Server) -> str:
    """Start ``server``, which must stop at start-up with exit 3: its log."""
    server.start(wait=False)
    try:
        code = server.wait(15)
    finally:
        server.stop()
    assert code == 3, server.log()
    return server.log()


def _get(server: Server, path: str) -> bytes:
    packet = uwsgiproto.build_request(
        {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1"}
    )
    return uwsgi_exchange(server.socket, packet, timeout=10).data


@pytest.mark.parametrize("option", ["error_log_file", "access_log_file"])
def test_a_log_linked_to_a_root_file_stops_start_up(
    tmp_path: Path, app_user: tuple[str, int, int], app_dir: Path, victim: Path, option: str
) -> None:
    link = app_dir / "app.log"
    link.symlink_to(victim)
    server = _server(tmp_path, app_user[0], **{option: str(link), "access_log": "uwsgi"})
    _refused_start(server)
    assert f"{link}: is a symbolic link; refusing to use it" in server.log()
    assert link.is_symlink()
    _unchanged(victim)


def test_a_log_linked_to_a_missing_root_path_is_not_created(
    tmp_path: Path, app_user: tuple[str, int, int], app_dir: Path
) -> None:
    cron = tmp_path / "cron.d"
    cron.mkdir()
    (app_dir / "error.log").symlink_to(cron / "x")
    server = _server(tmp_path, app_user[0], error_log_file=str(app_dir / "error.log"))
    _refused_start(server)
    assert not (cron / "x").exists()


@pytest.mark.parametrize("option", ["error_log_file", "access_log_file", "pidfile"])
def test_a_link_the_app_user_planted_on_the_way_stops_start_up(
    tmp_path: Path, app_user: tuple[str, int, int], app_dir: Path, option: str
) -> None:
    # `logs` was the app user's directory; it became `logs -> /etc` while the server was down.
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o755)
    (app_dir / "logs").symlink_to(etc)
    path = app_dir / "logs" / "app.x"
    server = _server(tmp_path, app_user[0], **{option: str(path), "access_log": "uwsgi"})
    _refused_start(server)
    assert f"{path}: 'logs' on the way is a symbolic link" in server.log()
    assert list(etc.iterdir()) == []


def test_a_chdir_through_a_planted_link_does_not_carry_root_there(
    tmp_path: Path, app_user: tuple[str, int, int], app_dir: Path
) -> None:
    # --chdir /home/app/proj, and the app user made proj a link to a root directory: root
    # entered it and opened the relative log and pidfile there, without any race (an existing
    # root file named like the log was handed to the app user).
    etc = tmp_path / "etc"
    etc.mkdir(mode=0o755)
    (etc / "app.log").write_text("root's\n")
    (etc / "app.log").chmod(0o600)
    (app_dir / "proj").symlink_to(etc)
    server = _server(
        tmp_path,
        app_user[0],
        chdir=str(app_dir / "proj"),
        error_log_file="app.log",
        pidfile="app.pid",
    )
    _refused_start(server)
    assert "'proj' on the way is a symbolic link" in server.log()
    st = (etc / "app.log").stat()
    assert (st.st_uid, (etc / "app.log").read_text()) == (0, "root's\n")
    assert sorted(p.name for p in etc.iterdir()) == ["app.log"]


def test_a_hard_link_to_a_root_file_is_refused(
    tmp_path: Path, app_user: tuple[str, int, int], app_dir: Path, victim: Path
) -> None:
    # Where fs.protected_hardlinks is off, the app user could make this link itself.
    os.link(victim, app_dir / "error.log")
    server = _server(tmp_path, app_user[0], error_log_file=str(app_dir / "error.log"))
    _refused_start(server)
    assert "has 2 hard links" in server.log()
    _unchanged(victim)


def test_logs_are_handed_over_and_usr1_never_follows_a_planted_link(
    tmp_path: Path, app_user: tuple[str, int, int], app_dir: Path, victim: Path
) -> None:
    user, uid, gid = app_user
    error_log = app_dir / "error.log"
    access_log = app_dir / "access.log"
    server = _server(
        tmp_path,
        user,
        error_log_file=str(error_log),
        access_log="uwsgi",
        access_log_file=str(access_log),
    ).start()
    try:
        # The socket accepts (queues) before the master drops privileges and hands the logs
        # over, so the files are checked once the error log says it runs as the app user.
        wait_until(lambda: "running as uid" in _text(error_log), 10, "the privilege drop")
        for path in (error_log, access_log):
            st = path.lstat()
            assert stat.S_ISREG(st.st_mode) and (st.st_uid, st.st_gid) == (uid, gid)
        assert _get(server, "/pid").startswith(b"HTTP/1.1 200")
        # logrotate moves the files; the app user plants links in their place.
        error_log.rename(app_dir / "error.log.1")
        access_log.rename(app_dir / "access.log.1")
        error_log.symlink_to(victim)
        access_log.symlink_to(victim)
        server.signal(signal.SIGUSR1)
        wait_until(
            lambda: "cannot reopen log file" in (app_dir / "error.log.1").read_text(),
            10,
            "the refused reopen in the old error log",
        )
        assert _get(server, "/pid?after").startswith(b"HTTP/1.1 200")
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
    finally:
        server.stop()
    _unchanged(victim)
    wait_until(lambda: "/pid?after" in (app_dir / "access.log.1").read_text(), 5, "the access line")


#: What ``logging.config.dictConfig`` and ``fileConfig`` do first (Django's set-up runs one at
#: import): every handler in the process is flushed and closed. (logging.config itself may not
#: be importable by the dropped user where Python lives under /root.)
RESET_LOGGING_APP = """
import logging
logging._handlers.clear()
logging.shutdown(logging._handlerList[:])
del logging._handlerList[:]
import os
os.chdir("/")  # and a relative log path must not be looked for elsewhere
from supervisor_app import app
"""


@pytest.mark.parametrize(
    ("app", "lazy"),
    [("supervisor_app:app", False), ("reset_logging:app", False), ("reset_logging:app", True)],
)
def test_workers_started_after_logrotate_moved_the_access_log_write_to_the_masters_file(
    tmp_path: Path, app_user: tuple[str, int, int], app: str, lazy: bool
) -> None:
    # The log directory is root's: after logrotate's move (without `create`) the dropped user
    # cannot make the file again. Workers started then (here: max-requests recycling) write to
    # the file the master holds; opening it by path, each one died at start, and after five
    # the whole server stopped. An app that resets logging at import closed the master's
    # handler (so workers opened the file by path again), and the error log's too (a worker's
    # lines were lost, "--- Logging error ---" on stderr instead).
    base = Path(short_tmpdir())  # root's, readable by the user (--chdir, the app's file)
    base.chmod(0o755)
    logs = base / "logs"
    logs.mkdir(mode=0o755)
    access_log, error_log = logs / "access.log", logs / "error.log"
    (base / "reset_logging.py").write_text(RESET_LOGGING_APP)
    server = Server(
        tmp_path / "server",
        app,
        uid=app_user[0],
        chdir=str(base),
        access_log="uwsgi",
        access_log_file="logs/access.log",
        error_log_file="logs/error.log",
        max_requests=2,
        lazy_apps=lazy,
        pythonpath=[str(APPS_DIR), str(base)],
    ).start()
    try:
        assert _get(server, "/pid?before").startswith(b"HTTP/1.1 200")
        access_log.rename(logs / "access.log.1")
        error_log.rename(logs / "error.log.1")
        for n in range(8):
            answer = _get(server, f"/pid?after{n}")
            assert answer.startswith(b"HTTP/1.1 200"), _text(logs / "error.log.1")
        assert server.proc.poll() is None
    finally:
        server.stop()
    assert not access_log.exists() and not error_log.exists()
    moved = (logs / "access.log.1").read_text()
    assert all(f"/pid?after{n}" in moved for n in range(8)), moved
    errors = (logs / "error.log.1").read_text()
    assert "crashed" not in errors and "Logging error" not in server.log()
    assert errors.count("served 2 requests (max-requests), recycling") >= 4, errors


def test_the_pidfile_replaces_a_planted_link_and_is_removed_at_exit(
    tmp_path: Path, app_user: tuple[str, int, int], app_dir: Path, victim: Path
) -> None:
    pidfile = app_dir / "app.pid"
    pidfile.symlink_to(victim)
    server = _server(tmp_path, app_user[0], pidfile=str(pidfile)).start()
    try:
        # Written after the socket is bound, so it may lag the socket by a moment.
        wait_until(lambda: not pidfile.is_symlink(), 10, "the pidfile")
        assert pidfile.read_text() == f"{server.pid}\n"
        _unchanged(victim)
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
    finally:
        server.stop()
    assert not pidfile.exists() and not pidfile.is_symlink()
    _unchanged(victim)


def test_a_pidfile_taken_over_by_another_server_is_left_alone(
    tmp_path: Path, app_user: tuple[str, int, int], app_dir: Path
) -> None:
    pidfile = app_dir / "app.pid"
    server = _server(tmp_path, app_user[0], pidfile=str(pidfile)).start()
    try:
        (app_dir / "new.pid").write_text("999999\n")
        (app_dir / "new.pid").rename(pidfile)
        server.signal(signal.SIGTERM)
        assert server.wait(15) == 0
    finally:
        server.stop()
    assert pidfile.read_text() == "999999\n"
    assert "could not remove pidfile" not in server.log()


def test_the_default_socket_mode_is_0660(tmp_path: Path) -> None:
    """Any user: the socket is created 0660 without --chmod-socket (no root needed)."""
    server = Server(tmp_path / "server", "supervisor_app:app").start()
    try:
        st = os.lstat(server.socket)
        assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o660
        assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
        with socket.socket(socket.AF_UNIX) as probe:
            probe.connect(server.socket)
    finally:
        server.stop()


def test_start_up_warns_of_root_and_of_log_dirs_the_user_cannot_write(
    tmp_path: Path, app_user: tuple[str, int, int], app_dir: Path
) -> None:
    # As root without --uid: said once. A log in a root-owned directory, with --uid: USR1
    # after logrotate's move could not make the new file; said at start-up, not at 3 a.m.
    tmp_path.chmod(0o755)
    as_root = Server(tmp_path / "root", "supervisor_app:app").start()
    try:
        wait_until(lambda: "starting 1 worker" in as_root.log(), 10, "the start")
        assert "running as root: so does the app" in as_root.log()
    finally:
        as_root.stop()
    root_dir = tmp_path / "logs"
    root_dir.mkdir(mode=0o755)
    server = _server(
        tmp_path,
        app_user[0],
        error_log_file=str(root_dir / "error.log"),
        access_log_file=str(app_dir / "access.log"),
    ).start()
    try:
        log = root_dir / "error.log"
        wait_until(lambda: "starting 1 worker" in _text(log), 10, "the start")
        text = _text(log)
        assert f"{log}: after --uid/--gid no new file can be made in its directory" in text
        assert "access.log: after" not in text  # the user's own directory is fine
        assert "running as root" not in text
    finally:
        server.stop()


def test_a_module_out_of_the_app_user_s_reach_is_named_with_the_import_error(
    tmp_path: Path, app_user: tuple[str, int, int]
) -> None:
    # A pyenv Python under /root (0700) gave "No module named 'subprocess'" after --uid, and
    # nothing said the user could not read the directory: the error now names it.
    # Not under tmp_path: pytest's base directory is root's alone (0700).
    base = Path(short_tmpdir())
    base.chmod(0o755)
    apps = base / "apps"
    apps.mkdir(mode=0o755)
    (apps / "reach_app.py").write_text("import hidden_helper\n\napp = hidden_helper.app\n")
    hidden = base / "private"
    hidden.mkdir(mode=0o700)
    (hidden / "hidden_helper.py").write_text("def app(environ, start_response):\n    pass\n")
    server = _server(tmp_path, app_user[0], pythonpath=[str(apps), str(hidden)])
    server.app = "reach_app:app"
    server.start(wait=False)
    try:
        code = server.wait(15)
    finally:
        server.stop()
    log = server.log()
    assert code == 4, log
    assert "No module named 'hidden_helper'" in log
    assert f"(uid {app_user[1]}) cannot read" in log
    assert str(hidden) in log.split("cannot read", 1)[1]


class _KeptCapabilities(Server):
    """Started with the securebit that keeps the capabilities across setuid (systemd's
    ``SecureBits=no-setuid-fixup``)."""

    def command(self) -> list[str]:
        return ["setpriv", "--securebits", "+no_setuid_fixup", *super().command()]


def test_a_drop_that_keeps_roots_capabilities_stops_start_up(
    tmp_path: Path, app_user: tuple[str, int, int], victim: Path
) -> None:
    # The master and workers ran as the user with every capability of root's: the app could
    # read the root-only file (the log said "running as uid 65534").
    if not shutil.which("setpriv"):
        pytest.skip("needs setpriv (util-linux)")
    server = _KeptCapabilities(tmp_path / "server", "supervisor_app:app")
    server.options.update(uid=app_user[0])
    log = _refused_start(server)
    assert "still holding capabilities" in log and "SecureBits=no-setuid-fixup" in log, log
    assert "Traceback" not in log, log
    _unchanged(victim)
