"""``--chown-socket USER[:GROUP]`` (uWSGI's ``chown-socket``): a real ``uwsgiapp serve`` gives
its unix socket files to the ids named, so that nginx's user may connect while the app runs as
another; a name that does not resolve stops start-up before anything is bound."""

from __future__ import annotations

import os
import pwd
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from support.procs import APPS_DIR, Server, short_tmpdir, uwsgi_exchange, uwsgi_get, wait_until

from uwsgiapp.supervisor import privileges

pytestmark = pytest.mark.nginx

#: Ids with no passwd or group entry (a container's numeric ids): nginx's, and a stranger's.
NGINX_GID, STRANGER_GID, CLIENT_UID = 42421, 42422, 42423


@pytest.fixture
def nobody() -> pwd.struct_passwd:
    if os.geteuid() != 0:
        pytest.skip("giving a file to another user needs root")
    try:
        return pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("needs the user nobody")


def _connects_as(path: str, uid: int, gid: int) -> bool:
    """Whether a process with ``uid``/``gid`` (and no other group) may connect to ``path``."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        try:
            os.setgroups([])
            os.setgid(gid)
            os.setuid(uid)
            with socket.socket(socket.AF_UNIX) as s:
                s.connect(path)
            os._exit(0)
        except PermissionError:
            os._exit(13)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    code = os.waitstatus_to_exitcode(status)
    assert code in (0, 13), f"the client child failed otherwise: {code}"
    return code == 0


def _server(tmp_path: Path, dir_owner: int = 0, **options: object) -> Server:
    socket_dir = short_tmpdir()
    os.chmod(socket_dir, 0o755)  # searchable by the clients below
    os.chown(socket_dir, dir_owner, 0)  # the app user's: its master removes the socket at exit
    return Server(
        tmp_path / "server",
        "supervisor_app:app",
        socket=os.path.join(socket_dir, "app.sock"),
        **options,
    )


def test_the_socket_goes_to_the_named_ids_and_their_group_may_connect(
    tmp_path: Path, nobody: pwd.struct_passwd
) -> None:
    stats_dir = short_tmpdir()
    os.chown(stats_dir, nobody.pw_uid, 0)
    stats = os.path.join(stats_dir, "stats.sock")
    server = _server(
        tmp_path,
        nobody.pw_uid,
        uid="nobody",
        chown_socket=f"{CLIENT_UID}:{NGINX_GID}",
        stats=stats,
    ).start()
    try:
        st = os.lstat(server.socket)
        assert (st.st_uid, st.st_gid) == (CLIENT_UID, NGINX_GID)
        assert stat.S_IMODE(st.st_mode) == 0o660
        # The stats socket is the app user's, as without the option (uWSGI's rule too): given
        # at the drop, a moment after the uwsgi socket (which the start waits for) is.
        wait_until(lambda: os.lstat(stats).st_uid == nobody.pw_uid, 10, "the stats socket's uid")
        assert _connects_as(server.socket, CLIENT_UID + 1, NGINX_GID)
        assert not _connects_as(server.socket, CLIENT_UID + 1, STRANGER_GID)
        wait_until(lambda: "starting 1 worker" in server.log(), 10, "the start")
        assert f"owner {CLIENT_UID}, group {NGINX_GID}, mode 0660" in server.log()
        assert "cannot remove it" not in server.log()
        reply = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
        assert reply.startswith(b"HTTP/1.1 200"), reply
    finally:
        server.stop()
    assert not os.path.lexists(server.socket)  # removed at exit as before


def test_a_socket_the_dropped_master_cannot_remove_is_said_at_start_up(
    tmp_path: Path, nobody: pwd.struct_passwd
) -> None:
    server = _server(tmp_path, uid="nobody", chown_socket=str(CLIENT_UID)).start()
    try:
        wait_until(lambda: "starting 1 worker" in server.log(), 10, "the start")
        assert f"{server.socket}: after --uid/--gid the master cannot write its directory" in (
            server.log()
        )
    finally:
        server.stop()


def test_a_group_alone_changes_the_group_and_keeps_the_owner(
    tmp_path: Path, nobody: pwd.struct_passwd
) -> None:
    server = _server(tmp_path, chown_socket=f":{NGINX_GID}").start()
    try:
        st = os.lstat(server.socket)
        assert (st.st_uid, st.st_gid) == (0, NGINX_GID)
        assert _connects_as(server.socket, CLIENT_UID, NGINX_GID)
    finally:
        server.stop()


def test_a_user_that_does_not_exist_stops_start_up_before_binding(tmp_path: Path) -> None:
    server = _server(tmp_path, chown_socket="no-such-user-here:www-data")
    server.start(wait=False)
    try:
        assert server.wait(15) == 3
    finally:
        server.stop()
    assert "--chown-socket: no such user 'no-such-user-here'" in server.log()
    assert not os.path.lexists(server.socket)


@pytest.mark.parametrize(
    ("spec", "ids"),
    [("0", (0, -1)), ("0:0", (0, 0)), (":5", (-1, 5)), ("root:7", (0, 7)), ("7:root", (7, 0))],
)
def test_resolve_owner(spec: str, ids: tuple[int, int]) -> None:
    owner = privileges.resolve_owner(spec)
    assert (owner.uid, owner.gid) == ids


@pytest.mark.parametrize(
    ("spec", "said"),
    [
        (":", "names no user or group"),
        ("0:no-such-group-here", "no such group 'no-such-group-here'"),
        ("no-such-user-here", "no such user 'no-such-user-here'"),
    ],
)
def test_resolve_owner_refuses(spec: str, said: str) -> None:
    with pytest.raises(privileges.PrivilegeError) as refused:
        privileges.resolve_owner(spec)
    assert str(refused.value).startswith("--chown-socket: ") and said in str(refused.value)


def test_check_config_names_a_user_that_does_not_exist(tmp_path: Path) -> None:
    done = subprocess.run(
        [
            *(sys.executable, "-m", "uwsgiapp", "serve", "supervisor_app:app", "--check-config"),
            *("--pythonpath", str(APPS_DIR), "--chown-socket", "no-such-user-here"),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
    )
    assert done.returncode == 3, done.stderr
    assert "--chown-socket: no such user 'no-such-user-here'" in done.stderr


def test_check_config_refuses_what_only_root_may_give(nobody: pwd.struct_passwd) -> None:
    # The gate passed '--chown-socket 0' as a plain user; the start then stopped on EPERM.
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child, as a plain user
        try:
            os.setgroups([])
            os.setgid(STRANGER_GID)
            os.setuid(CLIENT_UID)
            for spec, said in (("0", "needs root"), (f":{NGINX_GID}", "not in group")):
                try:
                    privileges.may_give(privileges.resolve_owner(spec))
                except privileges.PrivilegeError as exc:
                    assert said in str(exc), exc
                else:
                    os._exit(2)
            privileges.may_give(privileges.resolve_owner(f"{CLIENT_UID}:{STRANGER_GID}"))
            os._exit(0)
        except BaseException:
            os._exit(1)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
