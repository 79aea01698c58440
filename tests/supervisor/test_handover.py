"""A binary upgrade's decisions (USR2, WINCH, HUP after WINCH), the variable that passes the
sockets, and the pidfile's moves: pure functions and real files, no processes."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from uwsgiapp.addresses import AllowList
from uwsgiapp.server.listeners import Listener, address_key, adopt, bind, drop_adopted
from uwsgiapp.supervisor import takeover, upgrade
from uwsgiapp.supervisor.actions import RETIRE, Signal, Spawn
from uwsgiapp.supervisor.handover import (
    TOUCHED,
    VARIABLE,
    Do,
    Passed,
    PassedSocket,
    Seen,
    Standing,
    child_exit,
    decide,
    decode,
    encode,
    exec_environ,
    fault,
    oldbin,
)
from uwsgiapp.supervisor.policy import Policy
from uwsgiapp.supervisor.status import WorkerStatus
from uwsgiapp.supervisor.takeover import start_dir
from uwsgiapp.supervisor.upgrade import put_back, set_aside


def test_usr2_starts_a_new_master_only_when_no_other_runs() -> None:
    assert decide("USR2", Standing()) == (Do.UPGRADE, "")
    do, line = decide("USR2", Standing(child=4242))
    assert do is Do.REFUSE and "earlier USR2 (pid 4242) still runs" in line
    do, line = decide("USR2", Standing(parent=4141))  # gunicorn: "Parent exists"
    assert do is Do.REFUSE and "old master (pid 4141)" in line
    do, line = decide("USR2", Standing(pid1=True))
    assert do is Do.REFUSE and "PID 1" in line and "new container" in line
    do, line = decide("USR2", Standing(init="docker-init"))  # docker run --init
    assert do is Do.REFUSE and "parent is docker-init, a container's PID 1" in line
    do, line = decide("USR2", Standing(can_exec=False))
    assert do is Do.REFUSE and "not started by the uwsgiapp command" in line
    do, line = decide("USR2", Standing(cwd_lost=True))
    assert do is Do.REFUSE and "directory this server was started in" in line
    assert decide("USR2", Standing(stopping=True)) == (
        Do.REFUSE,
        "SIGUSR2 refused: this master is stopping",
    )


def test_winch_stops_the_workers_only_after_a_usr2() -> None:
    assert decide("WINCH", Standing()) == (Do.IGNORE, "")  # a terminal's resize, unsaid
    # The new master's: ignored, but said (a script that WINCHes the pidfile's pid, now its).
    do, line = decide("WINCH", Standing(parent=4141))
    assert do is Do.IGNORE and "WINCH the old master (pid 4141" in line, line
    do, line = decide("WINCH", Standing(child=4242))
    assert do is Do.STOP_WORKERS and "the new master (pid 4242) serves" in line
    do, line = decide("WINCH", Standing(child=4242, workers_stopped=True))
    assert do is Do.IGNORE and "already" in line
    assert decide("WINCH", Standing(child=4242, stopping=True)) == (Do.POLICY, "")


def test_ttin_and_ttou_after_winch_leave_the_workers_stopped() -> None:
    for name in ("TTIN", "TTOU"):
        do, line = decide(name, Standing(child=4242, workers_stopped=True))
        assert do is Do.IGNORE and f"SIG{name} ignored: WINCH stopped" in line
        assert decide(name, Standing(child=4242)) == (Do.POLICY, "")


def test_a_hup_after_winch_starts_the_old_workers_again_else_reloads() -> None:
    do, line = decide("HUP", Standing(child=4242, workers_stopped=True))
    assert do is Do.START_WORKERS and "no re-import" in line and "(pid 4242)" in line
    assert decide("HUP", Standing(workers_stopped=True))[0] is Do.START_WORKERS
    assert decide("HUP", Standing(child=4242)) == (Do.POLICY, "")  # a reload, as always
    assert decide("HUP", Standing()) == (Do.POLICY, "")
    assert decide("TERM", Standing(child=4242, workers_stopped=True)) == (Do.POLICY, "")


def test_a_touch_reload_is_a_reload_unless_a_new_master_runs() -> None:
    # The arbiter's touch of --touch-reload is no HUP after WINCH: it never rolls back.
    do, line = decide(TOUCHED, Standing(child=4242, workers_stopped=True))
    assert do is Do.IGNORE and "the reload is left to the new master (pid 4242)" in line
    assert decide(TOUCHED, Standing(child=4242))[0] is Do.IGNORE
    assert decide(TOUCHED, Standing()) == (Do.POLICY, "")  # the arbiter makes it a HUP
    assert decide(TOUCHED, Standing(parent=4141)) == (Do.POLICY, "")  # the new master reloads


def test_the_passed_sockets_survive_the_variable() -> None:
    passed = Passed(
        parent=4141,
        sockets=(
            PassedSocket(spec="/run/app/app.sock", fd=5, path="/run/app/app.sock", inode=(1, 2)),
            PassedSocket(spec="127.0.0.1:9191", fd=7),
        ),
    )
    assert decode(encode(passed)) == passed
    for bad in ("", "{", "[]", '{"parent": 1}', '{"parent": 0, "sockets": []}'):
        assert decode(bad) is None, bad
    assert decode('{"parent": 9, "sockets": [["x", 1, "", []]]}') is None  # stdout is no socket


def test_the_new_masters_environment_is_the_start_one_with_the_sockets() -> None:
    passed = Passed(parent=4141, sockets=(PassedSocket(spec="fd://3", fd=3),))
    start = {"PATH": "/usr/bin", "LISTEN_PID": "4141", "LISTEN_FDS": "1"}
    env = exec_environ(start, passed, 4242)
    assert env["LISTEN_PID"] == "4242" and env["LISTEN_FDS"] == "1"  # as systemd passes them
    assert decode(env[VARIABLE]) == passed and env["PATH"] == "/usr/bin"
    assert start["LISTEN_PID"] == "4141"  # the start's copy is left as it was
    other = exec_environ({"LISTEN_PID": "99"}, passed, 4242)
    assert other["LISTEN_PID"] == "99"  # not the old master's: not its to pass on


def test_the_old_master_says_how_the_new_one_ended() -> None:
    assert "exited with code 4 (the app cannot be imported" in child_exit(7, 4, None)
    assert "killed by signal 9" in child_exit(7, None, 9)
    assert "could not be executed" in child_exit(7, 127, None)
    assert child_exit(7, 0, None) == "the new master (pid 7) exited with code 0 (stopped)"
    assert oldbin("/run/app.pid") == "/run/app.pid.oldbin"


def test_winch_retires_every_worker_and_the_hup_brings_them_back() -> None:
    policy = Policy(workers=2)
    for i, action in enumerate(policy.start()):
        assert isinstance(action, Spawn)
        policy.spawned(action.wid, action.generation, 100 + i, 0.0)
    stop = policy.set_workers(0, 1.0)
    assert sorted(a.pid for a in stop if isinstance(a, Signal)) == [100, 101]
    assert all(a.signum == RETIRE for a in stop if isinstance(a, Signal))
    for pid in (100, 101):
        policy.on_exit(pid, 0, None, 2.0)
    assert policy.on_tick(3.0, 3.0, lambda wid: _idle()) == []  # none started again
    again = policy.set_workers(2, 4.0)
    assert len([a for a in again if isinstance(a, Spawn)]) == 2


def _idle() -> WorkerStatus:
    return WorkerStatus(pid=0, state=0, request_start=0.0, requests=0)


def test_the_pidfile_goes_aside_and_comes_back(tmp_path: Path) -> None:
    pidfile = tmp_path / "app.pid"
    pidfile.write_text("4141\n")
    assert set_aside(str(pidfile), 4141)
    assert not pidfile.exists() and (tmp_path / "app.pid.oldbin").read_text() == "4141\n"
    pidfile.write_text("4242\n")  # the new master's, left by a SIGKILL
    assert put_back(str(pidfile), 4141, 4242)
    assert pidfile.read_text() == "4141\n" and not (tmp_path / "app.pid.oldbin").exists()
    assert not set_aside(str(pidfile), 1)  # not this master's: left alone
    set_aside(str(pidfile), 4141)
    pidfile.write_text("5555\n")  # another server's since: not replaced
    assert not put_back(str(pidfile), 4141, 4242)
    assert pidfile.read_text() == "5555\n"


@pytest.mark.skipif(os.geteuid() != 0, reason="a link only root must not follow")
def test_the_pidfile_is_never_followed(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere"
    target.write_text("4141\n")
    (tmp_path / "app.pid").symlink_to(target)
    assert not set_aside(str(tmp_path / "app.pid"), 4141)
    assert target.read_text() == "4141\n" and (tmp_path / "app.pid").is_symlink()


def test_a_shared_socket_file_is_left_at_close(tmp_path: Path) -> None:
    path = str(tmp_path / "s.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    st = os.lstat(path)
    listener = Listener(sock, path, path=path, inode=(st.st_dev, st.st_ino), shared=True)
    listener.close()
    assert os.path.exists(path)  # the other master's still
    listener.shared = False
    listener.close_path()
    assert not os.path.exists(path)


def test_an_adopted_socket_is_found_whatever_the_specs_spelling(tmp_path: Path) -> None:
    # The old master's Listener.spec of "unix:/a.sock" is "/a.sock": the new master's option
    # still says "unix:/a.sock".
    path = str(tmp_path / "a.sock")
    assert address_key(f"unix:{path}") == address_key(path) == f"unix:{path}"
    assert address_key(":9000") == address_key("0.0.0.0:9000")
    assert address_key("fd://3") == "fd://3" and address_key("@abstract") == ""
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.listen(1)
    adopt(Listener(sock, path, path=path, shared=True))
    try:
        taken = bind(f"unix:{path}", backlog=8, chmod=0o660, allow=AllowList.parse([]))
        assert taken.sock is sock and drop_adopted() == []
    finally:
        drop_adopted()
        sock.close()


def test_a_new_master_starts_in_the_shells_directory_through_its_symlink(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    release = tmp_path / "releases" / "1"
    release.mkdir(parents=True)
    (tmp_path / "current").symlink_to(release)
    monkeypatch.chdir(tmp_path / "current")  # getcwd() resolves it
    assert start_dir({"PWD": str(tmp_path / "current")}) == str(tmp_path / "current")
    assert start_dir({"PWD": str(tmp_path)}) == str(release)  # another directory: not it
    assert start_dir({"PWD": "current"}) == str(release)
    assert start_dir({}) == str(release)


def test_only_the_listening_socket_a_spec_names_is_taken() -> None:
    unix = PassedSocket(spec="/run/a.sock", fd=5, path="/run/a.sock", inode=(1, 2))
    good = Seen(
        kind=socket.SOCK_STREAM,
        accepting=True,
        family=socket.AF_UNIX,
        name="/run/a.sock",
        file=(1, 2),
    )
    assert fault(unix, good) == ""
    pinned = Seen(
        kind=socket.SOCK_STREAM,
        accepting=True,
        family=socket.AF_UNIX,
        name="/proc/self/fd/7/a.sock",
        file=(1, 2),
    )  # bound through its pinned directory
    assert fault(unix, pinned) == ""
    udp = Seen(kind=socket.SOCK_DGRAM, accepting=False, family=socket.AF_INET, name=("", 0))
    assert fault(unix, udp) == "not a stream socket"
    pair = Seen(kind=socket.SOCK_STREAM, accepting=False, family=socket.AF_UNIX, name="")
    assert fault(unix, pair) == "not a listening socket"
    other = Seen(
        kind=socket.SOCK_STREAM,
        accepting=True,
        family=socket.AF_UNIX,
        name="/run/b.sock",
        file=(1, 2),
    )
    assert "not a unix socket bound to /run/a.sock" in fault(unix, other)
    replaced = Seen(
        kind=socket.SOCK_STREAM,
        accepting=True,
        family=socket.AF_UNIX,
        name="/run/a.sock",
        file=(1, 3),
    )
    assert "no longer the socket file" in fault(unix, replaced)
    # A forged variable: another socket of the same name, whose file root would hand over.
    decoy = PassedSocket(spec="/run/a.sock", fd=5, path="/root/only/a.sock", inode=(1, 2))
    seen = Seen(
        kind=socket.SOCK_STREAM,
        accepting=True,
        family=socket.AF_UNIX,
        name="/root/only/a.sock",
        file=(1, 2),
    )
    assert fault(decoy, seen) == "/root/only/a.sock is not the file its spec names"
    tcp = PassedSocket(spec="127.0.0.1:9000", fd=6)
    listening = Seen(
        kind=socket.SOCK_STREAM, accepting=True, family=socket.AF_INET, name=("127.0.0.1", 9000)
    )
    assert fault(tcp, listening) == ""
    assert "port 9000" in fault(PassedSocket(spec=":9000", fd=6), good)
    elsewhere = Seen(
        kind=socket.SOCK_STREAM, accepting=True, family=socket.AF_INET, name=("127.0.0.1", 80)
    )
    assert "port 9000" in fault(tcp, elsewhere)
    assert fault(PassedSocket(spec="fd://3", fd=3), listening) == ""
    assert fault(PassedSocket(spec="fd://3", fd=4), listening) == "not descriptor 3"


def test_a_usr2_whose_start_directory_is_gone_is_refused_before_the_fork(tmp_path: Path) -> None:
    # A deploy that keeps N releases removed the one the master started in: the new master's
    # chdir failed and the old one said only "exited with code 1 (internal error)".
    gone = tmp_path / "releases" / "3"
    refused = upgrade._cannot_start(takeover.Start(sys.executable, ["uwsgiapp"], str(gone)))
    assert f"the directory this master was started in, {gone}, is gone or cannot" in refused
    assert upgrade._cannot_start(takeover.Start(sys.executable, ["uwsgiapp"], str(tmp_path))) == ""


UNDER_INIT = """
import ctypes, os, sys
ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)  # PR_SET_NAME: /proc/1/comm
child = os.fork()
if child == 0:
    from uwsgiapp.supervisor.upgrade import container_init
    print(repr(container_init()), flush=True)
    os._exit(0)
os.waitpid(child, 0)
"""


@pytest.mark.skipif(
    os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare"
)
@pytest.mark.parametrize(("init", "said"), [("docker-init", "'docker-init'"), ("tini", "'tini'"),
                                             ("systemd", "''")])  # fmt: skip
def test_the_container_init_is_the_parent_named_as_pid_1(init: str, said: str) -> None:
    """A master under docker run --init took USR2: the new master was killed with the
    container when the old one quit, without a line."""
    done = subprocess.run(
        ["unshare", "--pid", "--fork", "--mount-proc", sys.executable, "-c", UNDER_INIT, init],
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.stdout.decode().strip() == said, done.stderr
