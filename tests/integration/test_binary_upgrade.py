"""gunicorn's binary upgrade: USR2 starts a new master with the listening sockets, WINCH stops
the old master's workers, TERM the old master; a new master that fails leaves the old one
serving. Real nginx, real processes, real signals; every process is stopped by its pid."""

from __future__ import annotations

import contextlib
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from support.load import Load
from support.procs import (
    SYSTEMD_EXEC,
    Nginx,
    Server,
    alive,
    catches_term,
    free_port,
    notify_socket,
    short_tmpdir,
    uwsgi_exchange,
    uwsgi_get,
    wait_until,
    worker_pids,
)

from uwsgiapp.stats.reader import fetch, parse_source
from uwsgiapp.supervisor.handover import VARIABLE, Passed, PassedSocket, encode

#: Answers with the pid of the master of the worker that served (its parent).
APP = """
import os
import time

def app(environ, start_response):
    path = environ["PATH_INFO"]
    if path.startswith("/sleep/"):
        time.sleep(float(path.rsplit("/", 1)[1]))
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [str(os.getppid()).encode()]
"""


def serving(master: int) -> set[int]:
    """``master``'s workers that have their handlers (a new master, its child too, excluded)."""
    return {
        pid
        for pid in worker_pids(master)
        if catches_term(pid) and "worker" in Path(f"/proc/{pid}/cmdline").read_text()
    }


#: The old master's line for each new master its USR2 started.
NEW_MASTER = re.compile(r"new master \(pid (\d+)\) started")


def new_master(server: Server) -> int:
    """The pid of the new master the old one's USR2 started (waits for its line)."""
    wait_until(lambda: NEW_MASTER.search(server.log()) is not None, 30, "the new master's line")
    return int(NEW_MASTER.findall(server.log())[-1])


def stop_all(server: Server) -> None:
    """Tear ``server`` down, and every new master its USR2s started (its log names them)."""
    server.stop()
    for pid in dict.fromkeys(int(found) for found in NEW_MASTER.findall(server.log())):
        stop_pid(pid)


def held(path: Path) -> int | None:
    """The pid a pidfile holds, None if there is none."""
    try:
        return int(path.read_text())
    except (OSError, ValueError):
        return None


def stop_pid(pid: int) -> None:
    """Tear down a master we did not start ourselves (the new one) and its workers."""
    if not pid or not alive(pid):
        return
    workers = worker_pids(pid)
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    try:
        wait_until(lambda: not alive(pid), 30, f"the new master {pid} to stop")
    except TimeoutError:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    for worker in workers:
        with contextlib.suppress(TimeoutError):
            wait_until(lambda w=worker: not alive(w), 15, f"worker {worker} to stop")  # type: ignore[misc]


def write_slow_new_code(tmp_path: Path) -> None:
    """New code whose import says it began (``importing``), then waits for ``go`` (60 s at
    most): what a new master is doing meanwhile can be looked at."""
    (tmp_path / "upgradeapp.py").write_text(
        "import os, time\n"
        f"open({str(tmp_path / 'importing')!r}, 'w').close()\n"
        "deadline = time.monotonic() + 60\n"
        f"while not os.path.exists({str(tmp_path / 'go')!r}) and time.monotonic() < deadline:\n"
        "    time.sleep(0.01)\n" + APP
    )


def start_server(tmp_path: Path, **options: object) -> tuple[Server, Path]:
    (tmp_path / "upgradeapp.py").write_text(APP)
    pidfile = tmp_path / "app.pid"
    server = Server(
        tmp_path / "server",
        "upgradeapp:app",
        pythonpath=[str(tmp_path)],
        pidfile=str(pidfile),
        **options,
    ).start()
    return server, pidfile


def test_usr2_winch_term_hand_over_without_a_failed_request(
    tmp_path: Path, nginx_available: None
) -> None:
    stats = f"{short_tmpdir()}/stats.sock"
    server, pidfile = start_server(tmp_path, workers=2, stats=stats)
    oldbin = Path(f"{pidfile}.oldbin")
    nginx = Nginx(tmp_path / "nginx", server.upstream)
    try:
        nginx.start()
        old = server.pid
        wait_until(lambda: len(serving(old)) == 2, 30, "the old master's workers")
        assert held(pidfile) == old and not oldbin.exists()
        with Load(nginx.port, lambda n: "/sleep/0.005", clients=3, limit=30_000) as load:
            load.wait_for(50, 30)
            server.signal(signal.SIGUSR2)
            new = new_master(server)
            wait_until(lambda: held(pidfile) == new, 30, "the new master's pidfile")
            assert held(oldbin) == old
            wait_until(lambda: str(new) in load.result.bodies, 30, "the new workers to answer")
            assert alive(old) and len(serving(old)) == 2  # both masters serve meanwhile
            server.signal(signal.SIGUSR2)  # a second one is refused, as is one to the new master
            os.kill(new, signal.SIGUSR2)
            wait_until(lambda: server.log().count("SIGUSR2 refused") == 2, 30, "two refusals")
            server.signal(signal.SIGWINCH)
            wait_until(lambda: not serving(old), 30, "the old workers to stop")
            assert alive(old) and alive(new) and held(oldbin) == old
            answered = load.result.total
            load.wait_for(answered + 50, 30)
            server.signal(signal.SIGTERM)
            assert server.wait(30) == 0
            wait_until(lambda: f"old master (pid {old}) has exited" in server.log(), 30, "it")
            answered = load.result.total
            load.wait_for(answered + 50, 30)
        result = load.result
        log = server.log()
        assert result.failures == [], (result.failures[:5], log)
        assert set(result.bodies) == {str(old), str(new)}, result.bodies
        assert nginx.upstream_errors() == [], nginx.upstream_errors()
        # The old master's stop left the new one's files: the socket, the stats, the pidfile.
        assert os.path.exists(server.socket) and os.path.exists(stats), log
        assert held(pidfile) == new and not oldbin.exists(), log
        answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
        assert answer.endswith(str(new).encode()), answer
        workers = worker_pids(new)
        os.kill(new, signal.SIGTERM)
        wait_until(lambda: not alive(new), 30, "the new master to stop")
        wait_until(lambda: not any(map(alive, workers)), 30, "its workers to stop")
        # Its own stop, the only master left, removes them.
        assert not os.path.exists(server.socket) and not os.path.exists(stats)
        assert not pidfile.exists()
    finally:
        nginx.stop()
        stop_all(server)


def test_a_new_master_that_cannot_import_leaves_the_old_one_serving(tmp_path: Path) -> None:
    server, pidfile = start_server(tmp_path, workers=1)
    try:
        old = server.pid
        wait_until(lambda: len(serving(old)) == 1, 30, "the worker")
        (tmp_path / "upgradeapp.py").write_text("raise ImportError('half deployed')\n")
        server.signal(signal.SIGUSR2)
        new = new_master(server)
        said = f"the new master (pid {new}) exited with code 4 (the app cannot be imported"
        wait_until(lambda: said in server.log(), 30, "the new master's failure")
        log = server.log()
        assert "half deployed" in log and "this master serves on" in log, log
        assert f"pidfile {pidfile} is this master's again" in log, log
        assert held(pidfile) == old and not Path(f"{pidfile}.oldbin").exists()
        assert not alive(new)
        # The failed start left the socket file it was given: the old master answers on it.
        answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(str(old).encode()), answer
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0
        assert not pidfile.exists() and not os.path.exists(server.socket)
    finally:
        stop_all(server)


def test_hup_after_winch_brings_the_old_workers_back_and_the_new_master_can_go(
    tmp_path: Path,
) -> None:
    # The new code is bad after all: HUP to the old master, then TERM to the new one.
    server, pidfile = start_server(tmp_path, workers=2)
    try:
        old = server.pid
        wait_until(lambda: len(serving(old)) == 2, 30, "the old workers")
        server.signal(signal.SIGUSR2)
        new = new_master(server)
        wait_until(lambda: len(serving(new)) == 2, 30, "the new workers")
        server.signal(signal.SIGWINCH)
        wait_until(lambda: not serving(old), 30, "the old workers to stop")
        server.signal(signal.SIGTTIN)  # neither starts a worker, nor says "one worker"
        server.signal(signal.SIGTTOU)
        said = ("SIGTTIN ignored: WINCH stopped", "SIGTTOU ignored: WINCH stopped")
        wait_until(lambda: all(x in server.log() for x in said), 30, "TTIN's and TTOU's lines")
        assert not serving(old) and "already at one worker" not in server.log()
        server.signal(signal.SIGHUP)
        wait_until(lambda: len(serving(old)) == 2, 30, "the old workers to start again")
        assert "no re-import" in server.log() and len(worker_pids(old) - {new}) == 2
        os.kill(new, signal.SIGTERM)
        said = f"the new master (pid {new}) exited with code 0"
        wait_until(lambda: said in server.log(), 30, "the new master's stop")
        assert held(pidfile) == old and not Path(f"{pidfile}.oldbin").exists()
        for _ in range(5):
            answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
            assert answer.endswith(str(old).encode()), answer
        server.signal(signal.SIGTERM)
        assert server.wait(30) == 0
        assert not pidfile.exists() and not os.path.exists(server.socket)
    finally:
        stop_all(server)


def test_the_old_masters_stop_leaves_a_shared_tcp_socket_open(tmp_path: Path) -> None:
    # A worker of a stopping master still in a request when its drain ends shuts the TCP
    # sockets down for every process (so that nginx tries another server): after a USR2 that
    # other process is the new master, which then accepted nothing more.
    port = free_port()
    server, _ = start_server(tmp_path, workers=1, socket=f"127.0.0.1:{port}", graceful_timeout=8)
    slow = socket.create_connection(("127.0.0.1", port), timeout=30)
    try:
        old = server.pid
        wait_until(lambda: len(serving(old)) == 1, 30, "the worker")
        slow.sendall(uwsgi_get("/sleep/7"))  # the old worker's, until past its drain's end
        wait_until(lambda: _busy(port), 30, "the slow request to be taken")
        server.signal(signal.SIGUSR2)
        new = new_master(server)
        wait_until(lambda: len(serving(new)) == 1, 30, "the new worker")
        server.signal(signal.SIGTERM)
        assert server.wait(60) == 0
        log = server.log()
        assert "the sockets refuse new connections" not in log, log
        with socket.create_connection(("127.0.0.1", port), timeout=10) as conn:
            conn.sendall(uwsgi_get("/"))
            conn.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda: conn.recv(65536), b""))
        assert answer.startswith(b"HTTP/1.1 200") and answer.endswith(str(new).encode()), answer
    finally:
        slow.close()
        stop_all(server)


def _busy(port: int) -> bool:
    """The listen queue of ``port`` is empty: the slow request was accepted."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1].endswith(f":{port:04X}") and fields[3] == "0A":
            return int(fields[4].split(":")[1], 16) == 0
    return False


def _message(manager: socket.socket) -> tuple[str, int]:
    """A notification and the pid that sent it (as systemd tells them apart)."""
    data, ancillary, _, _ = manager.recvmsg(4096, socket.CMSG_SPACE(12))
    pid = 0
    for level, kind, value in ancillary:
        if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
            pid = int.from_bytes(value[:4], sys.byteorder)
    return data.decode(), pid


def test_systemd_hears_the_new_masters_pid_and_no_stop_from_the_old_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Type=notify with NotifyAccess=all: READY=1 with MAINPID= moves the main process to the
    # new master; the old master's STOPPING=1 would have had systemd stop the whole service.
    with notify_socket(monkeypatch) as manager:
        server, _ = start_server(tmp_path, workers=1)
        try:
            old = server.pid
            ready, sender = _message(manager)
            assert ready.endswith(f"\nMAINPID={old}") and sender == old, ready
            server.signal(signal.SIGUSR2)
            new = new_master(server)
            ready, sender = _message(manager)
            assert ready.startswith("READY=1\n") and ready.endswith(f"\nMAINPID={new}"), ready
            assert sender == new
            server.signal(signal.SIGWINCH)
            wait_until(lambda: not serving(old), 30, "the old workers to stop")
            server.signal(signal.SIGTERM)
            assert server.wait(30) == 0
            wait_until(lambda: f"old master (pid {old}) has exited" in server.log(), 30, "it")
            os.kill(new, signal.SIGTERM)  # the only master now: its stop is the service's
            assert _message(manager) == ("STOPPING=1", new)
            wait_until(lambda: not alive(new), 30, "the new master to stop")
        finally:
            stop_all(server)


def test_usr2_with_unix_prefixed_specs_hands_the_sockets_over(tmp_path: Path) -> None:
    # "unix:PATH" (the README's spelling) is "PATH" in the old master's listener: the new
    # master must still find the socket it was passed, not bind the path again.
    short = short_tmpdir()
    path, stats = f"{short}/a.sock", f"{short}/stats.sock"
    (tmp_path / "upgradeapp.py").write_text(APP)
    server = Server(
        tmp_path / "server",
        "upgradeapp:app",
        pythonpath=[str(tmp_path)],
        socket=f"unix:{path}",
        stats=f"unix:{stats}",
        workers=1,
    )
    server.start(wait=False)
    try:
        old = server.pid
        wait_until(lambda: len(serving(old)) == 1, 30, "the worker")
        server.signal(signal.SIGUSR2)
        new = new_master(server)
        wait_until(lambda: len(serving(new)) == 1 or not alive(new), 30, "the new worker")
        log = server.log()
        assert alive(new) and "another server is listening" not in log, log
        server.signal(signal.SIGWINCH)
        wait_until(lambda: not serving(old), 30, "the old worker to stop")
        answer = uwsgi_exchange(path, uwsgi_get("/"), timeout=10).data
        assert answer.endswith(str(new).encode()), answer
    finally:
        stop_all(server)


#: Holds a new master (the one process started with the upgrade's variable) until the old
#: master that started it has exited: as if the old one stopped just after its USR2.
LATE = """
import os
import time

if os.environ.get("_UWSGIAPP_UPGRADE"):
    parent, deadline = os.getppid(), time.monotonic() + 60
    while os.getppid() == parent and time.monotonic() < deadline:
        time.sleep(0.01)
"""


def test_a_new_master_whose_old_master_stopped_at_once_serves_alone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(LATE)
    monkeypatch.setenv("PYTHONPATH", str(site))
    server, pidfile = start_server(tmp_path, workers=1)
    try:
        old = server.pid
        wait_until(lambda: len(serving(old)) == 1, 30, "the worker")
        server.signal(signal.SIGUSR2)
        new = new_master(server)
        server.signal(signal.SIGQUIT)
        assert server.wait(30) == 0
        wait_until(lambda: len(serving(new)) == 1 or not alive(new), 60, "the new worker")
        log = server.log()
        assert alive(new) and "which has exited already" in log, log
        answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
        assert answer.endswith(str(new).encode()), answer
        assert held(pidfile) == new
        stop_pid(new)
        # The only master: its stop removes the socket file.
        assert not os.path.exists(server.socket) and not pidfile.exists()
    finally:
        stop_all(server)


def test_usr2_from_a_symlinked_release_directory_loads_the_new_release(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A deploy: `cd /srv/app/current && uwsgiapp serve ...`, then `current` flipped to the
    # new release and USR2: the new master must start in (and import from) the new one.
    for n in (1, 2):
        (tmp_path / "releases" / str(n)).mkdir(parents=True)
        (tmp_path / "releases" / str(n) / "releaseapp.py").write_text(
            f"def app(environ, start_response):\n"
            f"    start_response('200 OK', [])\n"
            f"    return [b'release {n}']\n"
        )
    current = tmp_path / "current"
    current.symlink_to(tmp_path / "releases" / "1")
    monkeypatch.setenv("PWD", str(current))  # what a shell's cd sets
    server = Server(current, "releaseapp:app", workers=1)
    server.log_path = tmp_path / "server.log"
    server.start()
    try:
        old = server.pid
        wait_until(lambda: len(serving(old)) == 1, 30, "the worker")
        assert uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data.endswith(b"1")
        flipped = tmp_path / "flipped"
        flipped.symlink_to(tmp_path / "releases" / "2")
        flipped.rename(current)
        server.signal(signal.SIGUSR2)
        new = new_master(server)
        wait_until(lambda: len(serving(new)) == 1 or not alive(new), 30, "the new worker")
        server.signal(signal.SIGWINCH)
        wait_until(lambda: not serving(old), 30, "the old worker to stop")
        answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
        assert answer.endswith(b"release 2"), (answer, server.log())
        assert os.readlink(f"/proc/{new}/cwd") == str(tmp_path / "releases" / "2")
    finally:
        stop_all(server)


def test_a_touch_reload_after_winch_leaves_the_old_workers_stopped(tmp_path: Path) -> None:
    flag = tmp_path / "reload.trigger"
    flag.write_text("")
    server, _ = start_server(tmp_path, workers=1, touch_reload=[str(flag)])
    try:
        old = server.pid
        wait_until(lambda: len(serving(old)) == 1, 30, "the worker")
        server.signal(signal.SIGUSR2)
        new = new_master(server)
        wait_until(lambda: len(serving(new)) == 1, 30, "the new worker")
        server.signal(signal.SIGWINCH)
        wait_until(lambda: not serving(old), 30, "the old worker to stop")
        later = flag.stat().st_mtime + 10
        os.utime(flag, (later, later))
        said = "--touch-reload: the reload is left to the new master"
        wait_until(lambda: said in server.log() or bool(serving(old)), 30, "the touch's line")
        log = server.log()
        assert said in log and "workers WINCH stopped start again" not in log, log
        assert not serving(old) and alive(new)
    finally:
        stop_all(server)


def test_passed_descriptors_that_are_not_the_listening_socket_are_closed_and_bound_anew(
    tmp_path: Path,
) -> None:
    # A forged (or stale) variable: a UDP socket, one end of a socketpair, a regular file, each
    # named for the --socket spec. None is taken: each is closed and the spec bound as always.
    (tmp_path / "upgradeapp.py").write_text(APP)
    server = Server(tmp_path / "server", "upgradeapp:app", pythonpath=[str(tmp_path)], workers=1)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind(("127.0.0.1", 0))
    pair = socket.socketpair()
    regular = open(tmp_path / "regular", "wb")  # noqa: SIM115 - closed below
    fds = (udp.fileno(), pair[0].fileno(), regular.fileno())
    passed = Passed(
        parent=os.getpid(),
        sockets=tuple(
            PassedSocket(spec=server.socket, fd=fd, path=server.socket, inode=(1, 1)) for fd in fds
        ),
    )
    server._log = open(server.log_path, "ab")  # noqa: SIM115 - closed by server.stop()
    server.proc = subprocess.Popen(
        server.command(),
        stdout=server._log,
        stderr=subprocess.STDOUT,
        cwd=server.workdir,
        env={**os.environ, VARIABLE: encode(passed)},
        pass_fds=fds,
    )
    try:
        wait_until(lambda: len(serving(server.pid)) == 1, 30, "the worker")
        answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
        assert answer.endswith(str(server.pid).encode()), (answer, server.log())
        log = server.log()
        assert "not a stream socket" in log and "not a listening socket" in log, log
        assert log.count("not taken") == 3, log
        held = {
            os.readlink(f"/proc/{server.pid}/fd/{fd}")
            for fd in os.listdir(f"/proc/{server.pid}/fd")
        }
        assert str(tmp_path / "regular") not in held, held
    finally:
        server.stop()
        udp.close()
        pair[0].close()
        pair[1].close()
        regular.close()


def test_the_new_master_writes_the_pidfile_once_a_worker_serves(tmp_path: Path) -> None:
    # A deploy script waits for <pidfile> to name the new master, then sends WINCH: until its
    # workers serve, that would leave nobody accepting.
    server, pidfile = start_server(tmp_path, workers=1)
    try:
        old = server.pid
        wait_until(lambda: len(serving(old)) == 1, 30, "the worker")
        write_slow_new_code(tmp_path)
        server.signal(signal.SIGUSR2)
        new = new_master(server)
        wait_until(lambda: (tmp_path / "importing").exists(), 30, "the new master's import")
        assert held(pidfile) is None and held(Path(f"{pidfile}.oldbin")) == old
        (tmp_path / "go").write_text("")
        wait_until(lambda: held(pidfile) == new, 30, "the new master's pidfile")
        assert serving(new), server.log()
        assert f"a worker serves; pidfile {pidfile}" in server.log()
    finally:
        stop_all(server)


def test_a_new_masters_import_leaves_the_shared_stats_to_the_old_master(tmp_path: Path) -> None:
    # Both masters hold the stats socket: the new one answered the probes it took during its
    # import with "no worker yet" (503), while the old one's workers served (review).
    stats = f"{short_tmpdir()}/stats.sock"
    server, _ = start_server(tmp_path, workers=1, stats=stats)
    try:
        old = server.pid
        wait_until(lambda: len(serving(old)) == 1, 30, "the worker")
        write_slow_new_code(tmp_path)
        server.signal(signal.SIGUSR2)
        new_master(server)
        wait_until(lambda: (tmp_path / "importing").exists(), 30, "the new master's import")
        answers = {fetch(parse_source(stats))["pid"] for _ in range(20)}
        assert answers == {old}, answers  # each probe answered by the serving master
        (tmp_path / "go").write_text("")
    finally:
        stop_all(server)


def test_a_new_master_stopped_without_winch_gives_systemd_the_old_masters_pid_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rolling back before WINCH: TERM to the new master. Its READY=1 made it the main PID; its
    # exit must not be the service's (systemd would then stop the old master too).
    with notify_socket(monkeypatch) as manager:
        server, _ = start_server(tmp_path, workers=1)
        try:
            old = server.pid
            assert _message(manager)[1] == old
            server.signal(signal.SIGUSR2)
            new = new_master(server)
            ready, sender = _message(manager)
            assert ready.endswith(f"\nMAINPID={new}") and sender == new, ready
            os.kill(new, signal.SIGTERM)
            handback, sender = _message(manager)
            assert handback.startswith(f"MAINPID={old}\n") and sender == new, handback
            ready, sender = _message(manager)  # and the old master says it serves
            assert ready.startswith("READY=1\n") and ready.endswith(f"\nMAINPID={old}"), ready
            assert sender == old and alive(old)
        finally:
            stop_all(server)


def test_a_new_master_that_fails_after_the_old_one_exited_removes_the_socket_file(
    tmp_path: Path,
) -> None:
    server, pidfile = start_server(tmp_path, workers=1)
    try:
        old = server.pid
        wait_until(lambda: len(serving(old)) == 1, 30, "the worker")
        # The new code fails, once the old master (that passed the sockets) has gone.
        (tmp_path / "upgradeapp.py").write_text(
            "import os, time\n"
            f"open({str(tmp_path / 'importing')!r}, 'w').close()\n"
            "deadline = time.monotonic() + 60\n"
            f"while os.getppid() == {old} and time.monotonic() < deadline:\n"
            "    time.sleep(0.01)\n"
            "raise ImportError('half deployed')\n"
        )
        server.signal(signal.SIGUSR2)
        new = new_master(server)
        wait_until(lambda: (tmp_path / "importing").exists(), 30, "the new master's import")
        server.signal(signal.SIGQUIT)
        assert server.wait(30) == 0
        wait_until(lambda: not alive(new), 60, "the new master to fail")
        log = server.log()
        assert "half deployed" in log, log
        assert not os.path.exists(server.socket), log  # nobody listens there any more
        assert not pidfile.exists() and not Path(f"{pidfile}.oldbin").exists()
    finally:
        stop_all(server)


def test_usr2_passes_a_socket_systemd_passed_on_as_systemd_passes_it(tmp_path: Path) -> None:
    # No --socket: the unit's socket, fd 3 with LISTEN_FDS. The new master finds it there.
    (tmp_path / "upgradeapp.py").write_text(APP)
    path = os.path.join(short_tmpdir(), "unit.sock")
    unit = socket.socket(socket.AF_UNIX)
    unit.bind(path)
    unit.listen(16)
    log_path = tmp_path / "server.log"
    command = [sys.executable, "-c", SYSTEMD_EXEC, str(unit.fileno()), "upgradeapp:app"]
    with open(log_path, "ab") as log_file:
        proc = subprocess.Popen(
            [*command, "--pythonpath", str(tmp_path), "--workers", "1"],
            cwd=tmp_path,
            pass_fds=(unit.fileno(),),
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Server(tmp_path / "unused", "upgradeapp:app")
    server.proc, server.log_path = proc, log_path
    server._log = open(os.devnull, "ab")  # noqa: SIM115 - closed by server.stop()
    try:
        old = proc.pid
        wait_until(lambda: len(serving(old)) == 1, 30, "the worker")
        server.signal(signal.SIGUSR2)
        new = new_master(server)
        wait_until(lambda: len(serving(new)) == 1 or not alive(new), 30, "the new worker")
        assert alive(new), server.log()
        server.signal(signal.SIGWINCH)
        wait_until(lambda: not serving(old), 30, "the old worker to stop")
        answer = uwsgi_exchange(path, uwsgi_get("/"), timeout=10).data
        assert answer.endswith(str(new).encode()), (answer, server.log())
        assert f"listening on fd://3 ({path})" in server.log()
    finally:
        stop_all(server)
        unit.close()


@pytest.mark.skipif(os.geteuid() != 0, reason="--uid needs root")
def test_usr2_after_uid_starts_the_new_master_as_that_user_or_says_why_not(
    tmp_path: Path,
) -> None:
    appdir = short_tmpdir()
    os.chmod(appdir, 0o755)  # readable by the dropped user
    Path(appdir, "upgradeapp.py").write_text(APP)
    server = Server(tmp_path / "server", "upgradeapp:app", pythonpath=[appdir], workers=1)
    server.options["uid"] = "nobody"
    server.start()
    try:
        old = server.pid
        wait_until(lambda: len(serving(old)) == 1, 30, "the worker")
        server.signal(signal.SIGUSR2)
        refused = "SIGUSR2 refused: this master (uid 65534) cannot execute"
        started = re.compile(r"new master \(pid (\d+)\) started")
        wait_until(
            lambda: refused in server.log() or started.search(server.log()) is not None,
            30,
            "the USR2's line",
        )
        if refused in server.log():  # a root-only interpreter (a pyenv under /root)
            answer = uwsgi_exchange(server.socket, uwsgi_get("/"), timeout=10).data
            assert answer.endswith(str(old).encode()), answer
            return
        new = new_master(server)
        wait_until(lambda: len(serving(new)) == 1 or not alive(new), 30, "the new worker")
        uids = Path(f"/proc/{new}/status").read_text().split("\nUid:")[1].split()
        assert uids[:2] == ["65534", "65534"], uids
    finally:
        stop_all(server)
