"""Files opened, handed over and removed without following links (uwsgiapp.server.safefiles),
and the access and error logs that use them. Any user; the root-only cases are in
tests/integration/test_root_files.py."""

from __future__ import annotations

import logging
import os
import shutil
import socket
import stat
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from handler_kit import logged_response
from support.scripts import load_script

from uwsgiapp.addresses import AllowList
from uwsgiapp.server import safefiles
from uwsgiapp.server.accesslog import encode_line
from uwsgiapp.server.listeners import ListenerError, bind
from uwsgiapp.server.logs import make_access_log, reopen_logs, setup_error_log
from uwsgiapp.server.logtext import escape_log_text


@pytest.fixture
def victim(tmp_path: Path) -> Path:
    """A file nobody but its owner should ever see changed."""
    path = tmp_path / "victim"
    path.write_text("secret\n")
    path.chmod(0o600)
    return path


@pytest.fixture(autouse=True)
def _restore_loggers() -> Iterator[None]:
    yield
    for name in ("uwsgiapp", "uwsgiapp.access"):
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()


def test_open_append_refuses_a_symlink_naming_the_path(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "error.log"
    link.symlink_to(victim)
    with pytest.raises(safefiles.UnsafeFileError, match=f"{link}: is a symbolic link"):
        safefiles.open_append(str(link))
    assert victim.read_text() == "secret\n"


def test_open_append_does_not_create_a_dangling_symlinks_target(tmp_path: Path) -> None:
    target = tmp_path / "cron.d" / "x"
    target.parent.mkdir()
    (tmp_path / "access.log").symlink_to(target)
    with pytest.raises(safefiles.UnsafeFileError):
        safefiles.open_append(str(tmp_path / "access.log"))
    assert not target.exists()


@pytest.mark.parametrize("kind", ["fifo", "directory", "socket"])
def test_open_append_refuses_what_is_not_a_regular_file(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "thing"
    if kind == "fifo":
        os.mkfifo(path)
    elif kind == "directory":
        path.mkdir()
    else:
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(str(path))
        sock.close()
    with pytest.raises(OSError, match=str(path)):
        safefiles.open_append(str(path))


def test_open_append_creates_and_appends(tmp_path: Path) -> None:
    path = tmp_path / "new.log"
    for text in (b"one\n", b"two\n"):
        fd = safefiles.open_append(str(path))
        try:
            assert os.get_inheritable(fd) is False
            os.write(fd, text)
        finally:
            os.close(fd)
    assert path.read_bytes() == b"one\ntwo\n"
    # Only the owner writes; other users may not read (client addresses, URLs with tokens).
    assert stat.S_IMODE(path.stat().st_mode) & 0o027 == 0
    assert stat.S_IMODE(path.stat().st_mode) & 0o600 == 0o600


def test_the_error_log_refuses_a_planted_link(tmp_path: Path, victim: Path) -> None:
    link = tmp_path / "error.log"
    link.symlink_to(victim)
    with pytest.raises(OSError, match="symbolic link"):
        setup_error_log(str(link))
    assert victim.read_text() == "secret\n"


def test_reopen_keeps_the_old_file_when_a_link_was_planted(tmp_path: Path, victim: Path) -> None:
    log_path = tmp_path / "error.log"
    setup_error_log(str(log_path))
    logging.getLogger("uwsgiapp.error").info("before")
    log_path.rename(tmp_path / "error.log.1")
    log_path.symlink_to(victim)  # what the app user can do in its own log directory
    reopen_logs()
    logging.getLogger("uwsgiapp.error").info("after")
    assert victim.read_text() == "secret\n"
    old = (tmp_path / "error.log.1").read_text()
    assert "before" in old and "after" in old
    assert "cannot reopen log file" in old and "symbolic link" in old


def test_write_pidfile_replaces_a_link_without_touching_its_target(
    tmp_path: Path, victim: Path
) -> None:
    pidfile = tmp_path / "app.pid"
    pidfile.symlink_to(victim)
    safefiles.write_pidfile(str(pidfile), 4242)
    assert victim.read_text() == "secret\n"
    assert not pidfile.is_symlink() and pidfile.read_text() == "4242\n"
    assert stat.S_IMODE(pidfile.stat().st_mode) == 0o644
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".pid-")] == []


def test_remove_pidfile_only_removes_our_own(tmp_path: Path, victim: Path) -> None:
    pidfile = tmp_path / "app.pid"
    pidfile.write_text("4243\n")  # another server started on the same pidfile since
    assert not safefiles.remove_pidfile(str(pidfile), 4242)
    assert pidfile.exists()
    pidfile.unlink()
    pidfile.symlink_to(victim)
    victim.chmod(0o644)
    victim.write_text("4242\n")
    assert not safefiles.remove_pidfile(str(pidfile), 4242)  # a link holding our pid: not ours
    assert pidfile.is_symlink() and victim.exists()
    pidfile.unlink()
    safefiles.write_pidfile(str(pidfile), 4242)
    assert safefiles.remove_pidfile(str(pidfile), 4242)
    assert not pidfile.exists()


def test_chown_socket_refuses_a_path_that_is_no_longer_our_socket(
    tmp_path: Path, victim: Path
) -> None:
    path = tmp_path / "app.sock"
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(path))
    try:
        st = path.lstat()
        inode = (st.st_dev, st.st_ino)
        uid, gid = os.getuid(), os.getgid()  # to ourselves: allowed for anyone
        safefiles.chown_socket(str(path), inode, uid, gid)
        path.unlink()
        path.symlink_to(victim)
        with pytest.raises(safefiles.UnsafeFileError, match="no longer the socket we bound"):
            safefiles.chown_socket(str(path), inode, uid, gid)
        path.unlink()
        other = socket.socket(socket.AF_UNIX)
        other.bind(str(path))  # a socket, but another one
        other.close()
        with pytest.raises(safefiles.UnsafeFileError):
            safefiles.chown_socket(str(path), inode, uid, gid)
    finally:
        sock.close()


def test_the_stale_socket_probe_connects_to_the_file_itself_never_through_a_link(
    tmp_path: Path,
) -> None:
    # The bind checks with lstat that a socket is there, then probes it: a link swapped in
    # between had root connect wherever it pointed. The probe now opens the file without
    # following a link and connects through that descriptor.
    live = socket.socket(socket.AF_UNIX)
    live.bind(str(tmp_path / "live.sock"))
    live.listen(1)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(tmp_path / "stale.sock"))
    stale.close()
    (tmp_path / "link.sock").symlink_to(tmp_path / "live.sock")
    (tmp_path / "file").write_text("")
    full = socket.socket(socket.AF_UNIX)  # a server that does not accept: its queue full
    full.bind(str(tmp_path / "full.sock"))
    full.listen(0)
    waiting = socket.socket(socket.AF_UNIX)
    waiting.connect(str(tmp_path / "full.sock"))
    with live, full, waiting, safefiles.in_parent(str(tmp_path / "x")) as (parent, _):
        assert safefiles.socket_answers(parent, "live.sock", "")
        assert safefiles.socket_answers(parent, "full.sock", "")  # not waited for
        assert not safefiles.socket_answers(parent, "stale.sock", "")
        assert not safefiles.socket_answers(parent, "gone.sock", "")
        for name in ("link.sock", "file"):
            with pytest.raises(safefiles.UnsafeFileError, match="no longer a socket"):
                safefiles.socket_answers(parent, name, "")


def test_a_socket_another_user_listens_on_is_named_as_theirs(sticky: Path) -> None:
    # In a sticky /tmp another user took the socket's name first (after a reboot, say):
    # nginx's requests went to them, and the start's error said only "another server".
    path = sticky / "app.sock"
    with socket.socket(socket.AF_UNIX) as squatter:
        squatter.bind(str(path))
        os.chown(path, NOBODY, NOBODY)
        squatter.listen(1)
        with pytest.raises(ListenerError, match=f"uid {NOBODY}'s, another user's"):
            bind(str(path), backlog=1, chmod=0o660, allow=AllowList())
    with socket.socket(socket.AF_UNIX) as ours:  # our own server's: no owner named
        path.unlink()
        ours.bind(str(path))
        ours.listen(1)
        with pytest.raises(ListenerError, match=r"listening on it$"):
            bind(str(path), backlog=1, chmod=0o660, allow=AllowList())
        # Given to --uid (or --chown-socket) in a directory only root writes: a second start
        # of the same server, not a squatter.
        os.chown(path, NOBODY, NOBODY)
        sticky.chmod(0o755)
        with pytest.raises(ListenerError, match=r"listening on it$"):
            bind(str(path), backlog=1, chmod=0o660, allow=AllowList())


def test_a_socket_that_cannot_be_probed_is_not_taken_for_a_stale_one(sticky: Path) -> None:
    # A server's socket of mode 0600 in a directory anyone may write: another user's start
    # cannot connect (EACCES). That was taken for "nobody listens", and the file replaced.
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(sticky / "app.sock"))
        os.chmod(sticky / "app.sock", 0o600)
        live.listen(1)
        pid = os.fork()
        if pid == 0:  # another user's start
            code = 1
            try:
                os.setgid(NOBODY)
                os.setuid(NOBODY)
                bind(str(sticky / "app.sock"), backlog=1, chmod=0o660, allow=AllowList())
            except ListenerError as exc:
                code = 0 if "cannot tell whether a server listens" in str(exc) else 2
            finally:
                os._exit(code)
        assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0
        assert (sticky / "app.sock").exists()


NOBODY = 65534


@pytest.fixture
def as_root() -> None:
    if os.geteuid() != 0:
        pytest.skip("the links root may follow: needs root")


@pytest.fixture
def sticky(as_root: None) -> Iterator[Path]:
    """A directory anyone may write, as /tmp (under it: the other user must reach it)."""
    directory = Path(tempfile.mkdtemp(dir="/tmp"))
    try:
        directory.chmod(0o1777)
        yield directory
    finally:
        shutil.rmtree(directory)


@pytest.fixture
def elsewhere(tmp_path: Path) -> Path:
    """A directory of root's that a planted link could point into."""
    path = tmp_path / "etc"
    path.mkdir(mode=0o755)
    return path


def _user_dir(tmp_path: Path, name: str, mode: int = 0o755, owner: int = NOBODY) -> Path:
    path = tmp_path / name
    path.mkdir()
    os.chown(path, owner, owner)
    path.chmod(mode)
    return path


@pytest.mark.usefixtures("as_root")
def test_as_root_a_link_on_the_way_in_the_app_users_directory_is_refused(
    tmp_path: Path, elsewhere: Path
) -> None:
    # The app user owns its log directory; it swaps a subdirectory for `logs -> /etc`.
    app = _user_dir(tmp_path, "app")
    (app / "logs").symlink_to(elsewhere)
    path = str(app / "logs" / "app.log")
    with pytest.raises(safefiles.UnsafeFileError, match=rf"{path}: 'logs' on the way is a symb"):
        safefiles.open_append(path)
    with pytest.raises(safefiles.UnsafeFileError):
        safefiles.chown_file(path, 0, 0)
    with pytest.raises(safefiles.UnsafeFileError):
        safefiles.write_pidfile(str(app / "logs" / "app.pid"), 4242)
    (elsewhere / "app.pid").write_text("4242\n")
    assert safefiles.read_pid(str(app / "logs" / "app.pid")) is None
    assert not safefiles.remove_pidfile(str(app / "logs" / "app.pid"), 4242)
    assert sorted(p.name for p in elsewhere.iterdir()) == ["app.pid"]
    # A link further up, relative, or a chain: the same.
    (app / "up").symlink_to("logs")
    with pytest.raises(safefiles.UnsafeFileError, match="'up' on the way"):
        safefiles.open_append(str(app / "up" / "x.log"))
    assert sorted(p.name for p in elsewhere.iterdir()) == ["app.pid"]


@pytest.mark.usefixtures("as_root")
def test_as_root_a_link_the_app_user_owns_in_roots_directory_is_refused(
    tmp_path: Path, elsewhere: Path
) -> None:
    """Made before a non-recursive chown root: the directory only root may write, the link
    the app user's. It was followed (the log created in root's 0700 directory)."""
    hard = _user_dir(tmp_path, "hard", owner=0)
    (hard / "logs").symlink_to(elsewhere)
    os.lchown(hard / "logs", NOBODY, NOBODY)
    with pytest.raises(safefiles.UnsafeFileError, match="'logs' on the way is a symb"):
        safefiles.open_append(str(hard / "logs" / "planted.log"))
    assert list(elsewhere.iterdir()) == []
    os.lchown(hard / "logs", 0, 0)  # root's own link there: followed, as before
    os.close(safefiles.open_append(str(hard / "logs" / "ok.log")))
    assert [p.name for p in elsewhere.iterdir()] == ["ok.log"]


@pytest.mark.usefixtures("as_root")
def test_as_root_a_sockets_removal_never_goes_through_a_link_the_app_user_planted(
    tmp_path: Path, elsewhere: Path
) -> None:
    # A start that fails as root removes the socket it bound. The app user swapped the
    # directory on its way for a link to one of root's, which holds the same inode under the
    # same name: root removed that (the swap raced the check; a hard link stands in for it).
    run = _user_dir(tmp_path, "app") / "run"
    run.mkdir()
    listener = bind(str(run / "app.sock"), backlog=8, chmod=0o660, allow=AllowList.parse([]))
    os.link(run / "app.sock", elsewhere / "app.sock")
    run.rename(tmp_path / "app" / "moved")
    run.symlink_to(elsewhere)
    listener.close()
    assert (elsewhere / "app.sock").exists()
    assert (tmp_path / "app" / "moved" / "app.sock").exists()  # not reached through the link
    listener.path = str(tmp_path / "app" / "moved" / "app.sock")  # its own, with no link
    listener.close_path()
    assert not (tmp_path / "app" / "moved" / "app.sock").exists()


@pytest.mark.usefixtures("as_root")
def test_as_root_a_socket_that_cannot_be_bound_through_its_directory_is_refused() -> None:
    # /proc/self/fd/N/<name> did not fit a socket address: root bound it by its whole path,
    # following whatever link the app user had swapped in on the way since the walk.
    directory = Path(tempfile.mkdtemp(prefix="u", dir="/tmp"))
    try:
        name = "s" * (106 - len(str(directory)))  # the whole path fits a socket address (107)
        assert len(f"/proc/self/fd/9/{name}") > 107
        with pytest.raises(ListenerError, match="give it a shorter name"):
            bind(str(directory / name), backlog=8, chmod=0o660, allow=AllowList.parse([]))
        assert not (directory / name).exists()
        bind(str(directory / "s.sock"), backlog=8, chmod=0o660, allow=AllowList.parse([])).close()
    finally:
        shutil.rmtree(directory)


@pytest.mark.usefixtures("as_root")
def test_as_root_links_only_root_could_have_made_are_followed(
    tmp_path: Path, elsewhere: Path
) -> None:
    # /var/log -> /data/log made by the admin: a directory only root can write.
    tmp_path.chmod(0o755)
    (tmp_path / "abs").symlink_to(elsewhere)
    (tmp_path / "rel").symlink_to("etc")
    (tmp_path / "chain").symlink_to("abs")
    for via in ("abs", "rel", "chain", "rel/../etc"):
        fd = safefiles.open_append(str(tmp_path / via / f"{via.replace('/', '_')}.log"))
        os.close(fd)
    assert sorted(p.name for p in elsewhere.iterdir()) == [
        "abs.log",
        "chain.log",
        "rel.log",
        "rel_.._etc.log",
    ]
    safefiles.write_pidfile(str(tmp_path / "rel" / "app.pid"), 4242)
    assert safefiles.read_pid(str(tmp_path / "abs" / "app.pid")) == 4242
    assert safefiles.remove_pidfile(str(tmp_path / "chain" / "app.pid"), 4242)
    assert not (elsewhere / "app.pid").exists()


@pytest.mark.usefixtures("as_root")
def test_as_root_a_sticky_directory_follows_only_roots_own_links(
    tmp_path: Path, elsewhere: Path
) -> None:
    # /tmp: anyone may add a link, nobody but its owner (or root) may replace it.
    shared = _user_dir(tmp_path, "tmp", 0o1777, owner=0)
    (shared / "roots").symlink_to(elsewhere)
    (shared / "theirs").symlink_to(elsewhere)
    os.chown(shared / "theirs", NOBODY, NOBODY, follow_symlinks=False)
    os.close(safefiles.open_append(str(shared / "roots" / "a.log")))
    with pytest.raises(safefiles.UnsafeFileError, match="'theirs' on the way"):
        safefiles.open_append(str(shared / "theirs" / "b.log"))
    # Writable by a group, not sticky: even root's own link could have been swapped.
    group = _user_dir(tmp_path, "group", 0o775, owner=0)
    (group / "link").symlink_to(elsewhere)
    with pytest.raises(safefiles.UnsafeFileError, match="'link' on the way"):
        safefiles.open_append(str(group / "link" / "c.log"))
    assert [p.name for p in elsewhere.iterdir()] == ["a.log"]


def test_a_character_device_is_taken_and_never_handed_over() -> None:
    # --access-log-file /dev/null: only root makes device nodes, so nobody planted it.
    before = os.stat("/dev/null")
    os.close(safefiles.open_append("/dev/null"))
    if os.geteuid() == 0:
        safefiles.chown_file("/dev/null", NOBODY, NOBODY)
    after = os.stat("/dev/null")
    assert (after.st_uid, after.st_gid, after.st_mode) == (
        before.st_uid, before.st_gid, before.st_mode
    )  # fmt: skip


@pytest.mark.parametrize(
    ("target", "stream"),
    [
        ("/dev/stdout", "stdout"),
        ("/dev/stderr", "stderr"),
        ("-", "stderr"),
        # A uWSGI ini in Docker: `logto = /proc/self/fd/1` stopped the start ("is a symbolic
        # link; refusing to use it"), though it is /dev/stdout's own target.
        ("/proc/self/fd/1", "stdout"),
        ("/dev/fd/2", "stderr"),
    ],
)
def test_dev_stdout_and_stderr_are_the_processs_streams(target: str, stream: str) -> None:
    setup_error_log(target)
    (handler,) = logging.getLogger("uwsgiapp").handlers
    assert isinstance(handler, logging.StreamHandler)
    assert handler.stream is getattr(sys, stream)


def test_the_walk_names_the_whole_path_when_it_fails(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("")
    (tmp_path / "loop1").symlink_to("loop2")
    (tmp_path / "loop2").symlink_to("loop1")
    tmp_path.chmod(0o755)
    for path, error in (
        (tmp_path / "missing" / "x.log", FileNotFoundError),
        (tmp_path / "file" / "x.log", NotADirectoryError),
        (tmp_path / "loop1" / "x.log", OSError),
    ):
        with pytest.raises(error, match=str(path)):
            safefiles.open_append(str(path))


def test_not_root_a_link_on_the_way_is_followed(
    tmp_path: Path, elsewhere: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A user who is not root cannot be made to write where it could not anyway.
    app = _user_dir(tmp_path, "app", 0o777, owner=os.geteuid())
    (app / "logs").symlink_to(elsewhere)
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    os.close(safefiles.open_append(str(app / "logs" / "x.log")))
    assert (elsewhere / "x.log").exists()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("/plain?x=1", "/plain?x=1"),
        ("/a\r\nGET /forged", "/a\\x0D\\x0AGET /forged"),
        ("/\x1b[31mred\x1b[0m", "/\\x1B[31mred\\x1B[0m"),
        ("/tab\there\x00\x7f", "/tab\\x09here\\x00\\x7F"),
        ("/caf\xc3\xa9/\xe2\x82\xac", "/caf\xc3\xa9/\xe2\x82\xac"),  # UTF-8 bytes stay as sent
    ],
)
def test_escape_log_text(text: str, expected: str) -> None:
    assert escape_log_text(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "/plain?x=1",
        "/a\r\nGET /forged",
        "/\x1b[31mred",
        "/tab\there\x00\x7f",
        "/caf\xc3\xa9\xa0\x85\xad",  # not controls to us, though str.isprintable says no
        "",
    ],
)
def test_an_access_line_is_escaped_as_escape_log_text_does(text: str) -> None:
    # The access log checks the encoded bytes, not the text: both must agree.
    assert encode_line(text) == (escape_log_text(text) + "\n").encode("latin-1")


def test_access_log_lines_cannot_be_forged(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    access = make_access_log("uwsgi", str(path))
    assert access is not None
    environ = {
        "REMOTE_ADDR": "127.0.0.1",
        "REQUEST_METHOD": "GET\x1b[2J",
        "REQUEST_URI": '/x HTTP/1.1" 200\n[pid: 1] 10.0.0.1 forged',
        "SERVER_PROTOCOL": "HTTP/1.1\r",
    }
    access(environ, logged_response("200 OK", 45, 40), 0.001, b"")
    lines = path.read_bytes().split(b"\n")
    assert len(lines) == 2 and lines[1] == b"", lines
    assert b"\\x0A[pid: 1] 10.0.0.1 forged" in lines[0]
    assert b"GET\\x1B[2J" in lines[0] and b"HTTP/1.1\\x0D 200" in lines[0]


def test_the_root_paths_table_names_tests_that_exist() -> None:
    """docs/RELIABILITY.md lists each privileged path with its test: the names must not rot."""
    root = Path(__file__).resolve().parents[2]
    rows = load_script("scripts/reliability.py").ROOT_PATHS
    assert len(rows) >= 10
    for _, _, tests in rows:
        for ref in tests.split("; "):
            path, _, name = ref.partition("::")
            source = (root / path).read_text()
            assert not name or f"def {name}(" in source, ref


@pytest.mark.usefixtures("as_root")
def test_as_root_a_socket_is_bound_and_handed_over_only_through_the_walked_directory(
    tmp_path: Path, elsewhere: Path
) -> None:
    # --socket /run/app/sub/app.sock, and the app user made sub a link to a root directory:
    # root removed a "stale" socket there and bound its own (and with a race, any file).
    from uwsgiapp.addresses import AllowList
    from uwsgiapp.server.listeners import ListenerError, bind

    app = _user_dir(tmp_path, "app")
    (app / "sub").symlink_to(elsewhere)
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(elsewhere / "app.sock"))
    stale.close()  # a socket file nobody listens on: what start-up would remove
    allow = AllowList.parse(["127.0.0.1"])
    with pytest.raises(ListenerError, match="'sub' on the way is a symbolic link"):
        bind(str(app / "sub" / "app.sock"), backlog=8, chmod=0o660, allow=allow)
    assert [p.name for p in elsewhere.iterdir()] == ["app.sock"]
    # Through a real directory: bound, named by its path, handed over through its inode.
    (app / "run").mkdir()
    listener = bind(str(app / "run" / "app.sock"), backlog=8, chmod=0o660, allow=allow)
    try:
        assert listener.path == str(app / "run" / "app.sock")
        safefiles.chown_socket(listener.path, listener.inode, NOBODY, NOBODY)
        st = os.lstat(listener.path)
        assert stat.S_ISSOCK(st.st_mode) and (st.st_uid, st.st_gid) == (NOBODY, NOBODY)
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(listener.path)
    finally:
        listener.close()
    assert not (app / "run" / "app.sock").exists()


@pytest.mark.usefixtures("as_root")
def test_as_root_a_config_file_is_read_through_roots_links_only(
    tmp_path: Path, elsewhere: Path
) -> None:
    """An ini's env = SECRET=@(app/secret.key), an include, --config: the app user's link to
    a root-only file was followed, its text put in the app's environment."""
    from uwsgiapp.config import ConfigError
    from uwsgiapp.config.tomlfile import toml_layer
    from uwsgiapp.config.uwsgiini import ini_layer

    secret = elsewhere / "secret"
    secret.write_text("TOPSECRET\n")
    secret.chmod(0o600)
    app = _user_dir(tmp_path, "app")
    for name in ("secret.key", "inc.ini", "app.toml"):
        (app / name).symlink_to(secret)
        os.lchown(app / name, NOBODY, NOBODY)
    site = tmp_path / "site.ini"
    for line in (f"env = SECRET=@({app}/secret.key)", f"include = {app}/inc.ini"):
        site.write_text(f"[uwsgi]\nmodule = app:app\n{line}\n")
        with pytest.raises(ConfigError, match="someone other than root could have made"):
            ini_layer(str(site), environ={})
    with pytest.raises(ConfigError, match="someone other than root could have made"):
        toml_layer(str(app / "app.toml"))
    # root's own link (Debian's apps-enabled -> apps-available) is read, as before
    (tmp_path / "enabled.ini").symlink_to(site)
    site.write_text(f"[uwsgi]\nmodule = app:app\nenv = SECRET=@({secret})\n")
    layer = ini_layer(str(tmp_path / "enabled.ini"), environ={}).layer
    assert layer["env"].value == ["SECRET=TOPSECRET"]


@pytest.mark.usefixtures("as_root")
def test_as_root_a_config_file_others_may_change_is_warned_of(
    tmp_path: Path, elsewhere: Path
) -> None:
    """An include the app user could write (its own, or in its directory) set uid = 0 or an
    error log root then chowned, unsaid: it is used still, with a warning at each start."""
    from uwsgiapp.cli import build_parser
    from uwsgiapp.config.serve import resolve_serve_config

    app = _user_dir(tmp_path, "app")
    (app / "local.ini").write_text("[uwsgi]\nworkers = 3\n")  # root's file, the app's directory
    (app / "conf").mkdir()  # root's directory in the app's: the app may rename it and replace it
    (app / "conf" / "nested.ini").write_text("[uwsgi]\n")
    shared = _user_dir(tmp_path, "shared", mode=0o1777, owner=0)
    (shared / "sticky.ini").write_text("[uwsgi]\n")  # root's, in a sticky directory: safe
    (elsewhere / "mine.ini").write_text("[uwsgi]\n")
    (elsewhere / "theirs.ini").write_text("[uwsgi]\n")
    os.chown(elsewhere / "theirs.ini", NOBODY, 0)
    (elsewhere / "open.ini").write_text("[uwsgi]\n")
    (elsewhere / "open.ini").chmod(0o666)
    site = elsewhere / "site.ini"
    names = [app / "local.ini", app / "conf" / "nested.ini", shared / "sticky.ini"]
    names += [elsewhere / "mine.ini"]
    names += [elsewhere / "theirs.ini", elsewhere / "open.ini"]
    includes = "".join(f"include = {p}\n" for p in names)
    site.write_text(f"[uwsgi]\nmodule = app:app\nsocket = 127.0.0.1:0\n{includes}")
    args = build_parser(["serve"]).parse_args(["serve", "--ini", str(site)])
    for _ in range(2):  # said again at a HUP's resolution, once each
        warnings = [w for w in resolve_serve_config(args, {}).warnings if "config file" in w]
        assert [w.split(": it chooses")[0] for w in warnings] == [
            f"config file {app / 'local.ini'} may be changed by others than root (its "
            "directory is owned by nobody (65534))",
            f"config file {app / 'conf' / 'nested.ini'} may be changed by others than root (a "
            "directory above it is owned by nobody (65534))",
            f"config file {elsewhere / 'theirs.ini'} may be changed by others than root (it is "
            "owned by nobody (65534))",
            f"config file {elsewhere / 'open.ini'} may be changed by others than root (it is "
            "writable by everyone)",
        ]
        assert warnings[0].endswith("(chown root:root; chmod go-w)")


def test_an_at_file_that_is_a_fifo_is_given_up_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """@(fifo) with no writer hung the start (include= gave up after 10 s)."""
    from uwsgiapp.config import ConfigError, readfile
    from uwsgiapp.config.uwsgiini import ini_layer

    fifo = tmp_path / "secret.key"
    os.mkfifo(fifo)
    site = tmp_path / "site.ini"
    site.write_text(f"[uwsgi]\nmodule = app:app\nenv = SECRET=@({fifo})\n")
    monkeypatch.setattr(readfile, "PIPE_SECONDS", 0.3)
    with pytest.raises(ConfigError, match=r"nothing more came through the pipe in 0\.3 s"):
        ini_layer(str(site), environ={})


@pytest.mark.usefixtures("as_root")
def test_as_root_proc_links_are_the_kernels_and_hard_links_are_refused(
    tmp_path: Path, elsewhere: Path
) -> None:
    """/dev/fd/N of a deleted file read '<path> (deleted)', a file an app user could make
    (its settings then root's), and a big heredoc's (a deleted temp file) failed; a hard link
    the app user made to a root-only file was read."""
    from uwsgiapp.config.readfile import read_bounded

    app = _user_dir(tmp_path, "app", mode=0o1777)
    config = app / "cfg.ini"
    config.write_text("[uwsgi]\nmodule = real:app\n")
    fd = os.open(config, os.O_RDONLY)
    try:
        config.unlink()
        (app / "cfg.ini (deleted)").write_text("[uwsgi]\nmodule = attackers:app\n")
        assert read_bounded(f"/proc/self/fd/{fd}") == b"[uwsgi]\nmodule = real:app\n"
    finally:
        os.close(fd)
    secret = elsewhere / "secret"
    secret.write_text("TOPSECRET\n")
    os.link(secret, app / "secret.key")
    with pytest.raises(OSError, match="has 2 hard links, in a directory others may write"):
        read_bounded(str(app / "secret.key"))
    assert read_bounded(str(secret)) == b"TOPSECRET\n"  # in root's own directory: read
    # Debian's relative apps-enabled link, root's, in root's directory: read.
    (elsewhere / "available").mkdir()
    (elsewhere / "enabled").mkdir()
    (elsewhere / "available" / "x.ini").write_text("[uwsgi]\n")
    (elsewhere / "enabled" / "x.ini").symlink_to("../available/x.ini")
    assert read_bounded(str(elsewhere / "enabled" / "x.ini")) == b"[uwsgi]\n"


def test_a_privileged_port_refused_to_a_user_says_why(as_root: None) -> None:
    """'cannot bind: Permission denied' and nothing more, for :80 as a non-root user."""
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 80:
            pytest.skip("this kernel lets any user bind port 80")
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            bind("127.0.0.1:80", backlog=1, chmod=0o660, allow=AllowList())
        except ListenerError as exc:
            code = 0 if "a port under 1024 needs root: start as root with --uid" in str(exc) else 2
        finally:
            os._exit(code)
    assert os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) == 0


def test_a_privileged_port_refused_to_root_names_the_capability(as_root: None) -> None:
    """root in a container with its capabilities dropped was told to start as root."""
    with open("/proc/sys/net/ipv4/ip_unprivileged_port_start") as f:
        if int(f.read()) <= 80:
            pytest.skip("this kernel lets any user bind port 80")
    if shutil.which("capsh") is None:
        pytest.skip("no capsh to drop CAP_NET_BIND_SERVICE")
    code = """
from uwsgiapp.addresses import AllowList
from uwsgiapp.server.listeners import ListenerError, bind
try:
    bind("127.0.0.1:80", backlog=1, chmod=0o660, allow=AllowList())
except ListenerError as exc:
    print(exc)
"""
    import subprocess

    done = subprocess.run(
        [
            "capsh",
            "--drop=cap_net_bind_service",
            "--",
            "-c",
            'exec "$0" -c "$1"',
            sys.executable,
            code,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert "as root without CAP_NET_BIND_SERVICE" in done.stdout, done.stdout + done.stderr
