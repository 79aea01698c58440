"""``uwsgiapp serve`` started the way a user types it, answering ``uwsgiapp request`` / ``ping``;
a typical Flask + nginx uWSGI ini from the uWSGI docs starts unchanged."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from cli.cli_testkit import run_cli
from support.procs import SYSTEMD_EXEC, wait_until

from uwsgiapp.exitcodes import ServeExit

FLASK_APP = """\
import os
from flask import Flask, request

app = Flask(__name__)

@app.route("/hello")
def hello():
    return {"name": request.args.get("name", ""), "greeting": os.environ.get("GREETING", ""),
            "script_name": request.environ.get("SCRIPT_NAME", ""),
            "token": request.headers.get("X-Token", "")}

@app.route("/echo", methods=["POST"])
def echo():
    return {"body": request.get_data(as_text=True), "type": request.content_type,
            "length": request.content_length}

@app.route("/boom")
def boom():
    raise RuntimeError("boom")
"""

# The shape of the uWSGI docs' Flask + nginx deployment (module, master, processes, a unix
# socket next to the ini, chmod-socket, vacuum, die-on-term), plus env and a mount.
UWSGI_INI = """\
[uwsgi]
module = wsgi:app

master = true
processes = 2

socket = %d%n.sock
chmod-socket = 660
vacuum = true

die-on-term = true
env = GREETING=hi
manage-script-name = true
mount = /shop=wsgi:app
"""


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory (unix socket paths are limited to ~108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="uwa-cli-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


Start = Callable[..., "subprocess.Popen[bytes]"]


@pytest.fixture
def start_serve(short_dir: Path) -> Iterator[Start]:
    """Start ``python -m uwsgiapp serve ...``; stop it (TERM, then KILL) by its PID."""
    procs: list[subprocess.Popen[bytes]] = []

    def start(*args: str) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}
        proc = subprocess.Popen(
            [sys.executable, "-m", "uwsgiapp", "serve", *args],
            cwd=short_dir,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        return proc

    yield start
    for proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(5)
        if proc.stdout:
            proc.stdout.close()


def wait_for_pong(sock: str, proc: subprocess.Popen[bytes], deadline: float = 15) -> None:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if proc.poll() is not None:
            out = proc.stdout.read().decode() if proc.stdout else ""
            raise AssertionError(f"serve exited with {proc.returncode}:\n{out}")
        if run_cli("ping", "-q", "--timeout", "1", sock).returncode == 0:
            return
        time.sleep(0.1)
    raise AssertionError(f"no pong from {sock} within {deadline}s")


def test_flask_uwsgi_ini_starts_unchanged(short_dir: Path, start_serve: Start) -> None:
    (short_dir / "wsgi.py").write_text(FLASK_APP)
    (short_dir / "myproject.ini").write_text(UWSGI_INI)
    sock = str(short_dir / "myproject.sock")

    printed = run_cli("serve", "--ini", "myproject.ini", "--print-config", cwd=short_dir)
    assert printed.returncode == 0, printed.stderr
    assert printed.stderr == b""  # every key of this ini is understood
    text = printed.stdout.decode()
    assert 'app = "wsgi:app"' in text and f'socket = ["{sock}"]' in text
    assert "workers = 2" in text and 'chmod-socket = "0660"' in text

    proc = start_serve("--ini", "myproject.ini")
    wait_for_pong(sock, proc)
    assert os.stat(sock).st_mode & 0o777 == 0o660

    r = run_cli("request", sock, "/shop/hello?name=ann", "-H", "X-Token: t1")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {
        "name": "ann",
        "greeting": "hi",  # env = GREETING=hi reached the app
        "script_name": "/shop",
        "token": "t1",
    }

    r = run_cli(
        "request", sock, "/shop/echo", "-d", '{"a": 1}', "-H", "Content-Type: application/json"
    )
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == {"body": '{"a": 1}', "type": "application/json", "length": 8}

    r = run_cli("request", sock, "/shop/missing", "-i")
    assert r.returncode == 0 and r.stdout.startswith(b"HTTP/1.1 404")

    r = run_cli("request", sock, "/shop/boom")
    assert r.returncode == 1 and b"server answered 500" in r.stderr

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(15) == 0


def test_serve_tcp_with_env_and_flags(short_dir: Path, start_serve: Start) -> None:
    (short_dir / "wsgi.py").write_text(FLASK_APP)
    from cli.cli_testkit import free_port

    address = f"127.0.0.1:{free_port()}"
    proc = start_serve(
        "wsgi:app", "--socket", address, "--workers", "1", "--env", "GREETING=hello, world"
    )
    wait_for_pong(address, proc)
    r = run_cli("request", address, "/hello?name=bo")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["name"] == "bo"
    assert json.loads(r.stdout)["greeting"] == "hello, world"  # --env reached the app


def test_serve_app_that_cannot_load(short_dir: Path) -> None:
    r = run_cli(
        "serve", "no_such_module_xyz:app", "--socket", str(short_dir / "x.sock"), cwd=short_dir
    )
    assert r.returncode != 0
    assert b"No module named 'no_such_module_xyz'" in r.stdout + r.stderr


def _serve_until_one_request(short_dir: Path, *args: str) -> tuple[str, str]:
    """Start ``serve`` with ``args``, send one request, stop it: its stdout and stderr."""
    (short_dir / "wsgi.py").write_text(FLASK_APP)
    sock = str(short_dir / "app.sock")
    proc = subprocess.Popen(
        [sys.executable, "-m", "uwsgiapp", "serve", *args],
        cwd=short_dir,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_pong(sock, proc)
        assert run_cli("request", sock, "/hello?name=cy").returncode == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    assert proc.returncode == 0, (out, err)
    return out.decode(), err.decode()


@pytest.mark.parametrize(
    "args",
    [
        ("--error-log-file", "/dev/stdout", "--access-log-file", "/dev/stderr"),
        ("--ini", "container.ini"),
    ],
)
def test_logs_to_dev_stdout_and_stderr_as_containers_write_them(
    short_dir: Path, args: tuple[str, ...]
) -> None:
    # Docker set-ups name the streams (`logto = /dev/stdout`): links into /proc, which the
    # log files' no-links rule refused (exit 3) before. They are the process's own streams.
    (short_dir / "container.ini").write_text(
        "[uwsgi]\nmodule = wsgi:app\nsocket = app.sock\nlogto = /dev/stdout\n"
        "req-logger = file:/dev/stderr\n"
    )
    out, err = _serve_until_one_request(short_dir, "wsgi:app", "--socket", "app.sock", *args)
    assert "listening on" in out and "listening on" not in err
    assert "GET /hello?name=cy => generated" in err and "=> generated" not in out


def test_an_access_log_to_dev_null_is_written_to_and_left_as_it_is(short_dir: Path) -> None:
    before = os.stat("/dev/null")
    out, err = _serve_until_one_request(
        short_dir, "wsgi:app", "--socket", "app.sock", "--access-log-file", "/dev/null"
    )
    assert "=> generated" not in out + err
    after = os.stat("/dev/null")
    assert (after.st_mode, after.st_uid, after.st_gid) == (
        before.st_mode,
        before.st_uid,
        before.st_gid,
    )


ENV_APP = """
import os

def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    seen = [name for name in ("LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES") if name in os.environ]
    return [repr(seen).encode()]
"""


def test_a_socket_systemd_passed_is_served_and_left_to_systemd(short_dir: Path) -> None:
    # A .socket unit holds the socket while the service restarts: nginx's connections wait
    # in its backlog instead of failing. uwsgiapp takes it with no --socket (as gunicorn and
    # uWSGI do), hides LISTEN_* from the app, and leaves the file to systemd at exit.
    (short_dir / "envapp.py").write_text(ENV_APP)
    path = str(short_dir / "app.sock")
    held = socket.socket(socket.AF_UNIX)
    held.bind(path)
    held.listen(16)
    try:
        for restart in (False, True):  # a restart: the same socket, served again
            # --chown-socket cannot give away a file it did not make: said, not done silently.
            chown = ["--chown-socket", str(os.getuid())] if restart else []
            proc = subprocess.Popen(
                [sys.executable, "-c", SYSTEMD_EXEC, str(held.fileno()), "envapp:app", *chown],
                cwd=short_dir,
                pass_fds=(held.fileno(),),
                stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT,
            )
            try:
                wait_for_pong(path, proc)
                r = run_cli("request", path, "/")
                assert r.returncode == 0 and r.stdout == b"[]", r
            finally:
                proc.send_signal(signal.SIGTERM)
                out = proc.communicate(timeout=15)[0].decode()
            assert proc.returncode == 0, out
            assert f"listening on fd://3 ({path})" in out, out
            assert os.path.exists(path)  # systemd's, not removed
            said = f"--chown-socket: fd://3 ({path}) was passed in, not bound here: not chowned"
            assert (said in out) == restart, out
    finally:
        held.close()


@pytest.mark.parametrize("named", ["unix", "ini", "tcp", "relative", "twice"])
def test_a_socket_systemd_passed_is_taken_where_its_address_is_named(
    short_dir: Path, named: str
) -> None:
    """A unit written for uWSGI: the .socket's ListenStream= path in the ini too. uWSGI
    attaches the passed socket; the start failed with exit 3 ("another server is listening
    on it"), the passed one said unused."""
    (short_dir / "envapp.py").write_text(ENV_APP)
    log = short_dir / "error.log"
    logs = ["--error-log-file", str(log)]
    if named == "tcp":
        held = socket.create_server(("127.0.0.1", 0))
        address = f"127.0.0.1:{held.getsockname()[1]}"
        args = ["--socket", address]
    else:
        address = str(short_dir / "app.sock")
        held = socket.socket(socket.AF_UNIX)
        held.bind(address)
        held.listen(16)
        args = ["--socket", f"unix:{address}"]
        if named == "ini":
            (short_dir / "app.ini").write_text(f"[uwsgi]\nsocket = {address}\n")
            args = ["--ini", "app.ini"]
        if named == "relative":  # taken from --chdir, where it is bound
            (short_dir / "site").mkdir()
            args = ["--chdir", "site", "--socket", "../app.sock", "--pythonpath", str(short_dir)]
        if named == "twice":  # two spellings: one socket (two listeners of one fd crashed)
            args += ["--socket", address, "--chmod-socket", "600"]
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", SYSTEMD_EXEC, str(held.fileno()), "envapp:app", *args, *logs],
            cwd=short_dir,
            pass_fds=(held.fileno(),),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_for_pong(address, proc)
            r = run_cli("request", address, "/")
            assert r.returncode == 0 and r.stdout == b"[]", r
            proc.send_signal(signal.SIGHUP)  # read again: the same socket, no change said
            wait_until(lambda: "new worker ready" in log.read_text(), 15, "the reload")
        finally:
            proc.send_signal(signal.SIGTERM)
            said_early = proc.communicate(timeout=15)[0].decode()  # before the log: on stderr
        out = said_early + log.read_text()
        assert proc.returncode == 0, out
        shown = f"bound to {address};" if named == "tcp" else address
        assert f"listening on fd://3 ({shown}" in out, out
        assert "unused" not in out and "changed since the start" not in out, out
        said = "is the socket systemd passed: its mode is the .socket unit's SocketMode="
        assert (said in out) == (named == "twice"), out
        assert named == "tcp" or os.path.exists(address)  # systemd's, not removed
    finally:
        held.close()


@pytest.mark.parametrize("capture", [False, True], ids=["plain", "capture-output"])
def test_a_failed_start_is_said_on_stderr_when_the_error_log_is_a_file(
    short_dir: Path, capture: bool
) -> None:
    # gunicorn says it on the terminal too; with the log in a file, ours said nothing there.
    (short_dir / "ok.py").write_text("def app(environ, start_response):\n    return []\n")
    log = short_dir / "error.log"
    sock = short_dir / "missing-dir" / "app.sock"
    args = ["serve", "ok:app", "--socket", str(sock), "--error-log-file", str(log)]
    r = run_cli(*args, *(["--capture-output"] if capture else []), cwd=short_dir)
    assert r.returncode == ServeExit.START_FAILED
    err = r.stderr.decode()
    assert f"uwsgiapp: stopped with exit code 3; the error log is {log}" in err, err
    said = f"socket '{sock}': cannot bind: No such file or directory"
    assert f"uwsgiapp: {said}\n" in err and said in log.read_text(), err


def test_a_failed_import_is_said_on_stderr_with_its_exception(short_dir: Path) -> None:
    # The error's first line alone ended in "for app 'broken:app':", the cause left out.
    (short_dir / "broken.py").write_text("import nonexistent_mod\napp = None\n")
    log = short_dir / "error.log"
    args = ["serve", "broken:app", "--socket", str(short_dir / "app.sock")]
    r = run_cli(*args, "--error-log-file", str(log), cwd=short_dir)
    assert r.returncode == ServeExit.APP_LOAD
    lines = r.stderr.decode().splitlines()
    (said,) = [line for line in lines if "cannot load app" in line]
    assert ": ModuleNotFoundError: No module named 'nonexistent_mod' (this uwsgiapp runs " in (
        said
    ), lines
    assert "Traceback" in log.read_text()  # the whole of it stays in the log


@pytest.mark.parametrize("broken", ["error-log", "chdir", "pidfile"])
def test_a_failed_start_never_names_an_error_log_that_was_not_written(
    short_dir: Path, broken: str
) -> None:
    # A read-only root filesystem (docker run --read-only) or a missing directory: the error
    # log could not be opened, or was never reached, yet stderr ended with "the error log is
    # /tmp/app.log", sending the reader to a file that does not exist.
    (short_dir / "ok.py").write_text("def app(environ, start_response):\n    return []\n")
    log = short_dir / ("missing-dir/error.log" if broken == "error-log" else "error.log")
    args = ["serve", "ok:app", "--socket", "app.sock", "--error-log-file", str(log)]
    if broken == "chdir":
        args += ["--chdir", str(short_dir / "missing-dir")]
    if broken == "pidfile":
        args += ["--pidfile", str(short_dir / "missing-dir" / "app.pid")]
    r = run_cli(*args, cwd=short_dir)
    assert r.returncode == ServeExit.START_FAILED
    err = r.stderr.decode()
    if broken == "pidfile":  # the log was written: stderr names it, with the reason
        assert f"the error log is {log}" in err, err
        said = f"--pidfile: cannot write {short_dir}/missing-dir/app.pid: No such file or directory"
        assert f"uwsgiapp: {said}\n" in err and said in log.read_text(), err
        return
    assert "the error log is" not in err and not log.exists(), err
    if broken == "error-log":
        said = f"uwsgiapp: --error-log-file: cannot open {log}: No such file or directory\n"
        assert err.endswith(said), err


@pytest.mark.skipif(os.geteuid() != 0, reason="--uid from root needs root")
@pytest.mark.skipif(shutil.which("setpriv") is None, reason="needs util-linux's setpriv")
def test_root_without_the_capabilities_to_drop_says_which_and_what_to_do(
    short_dir: Path,
) -> None:
    # `docker run --user 0 --cap-drop ALL ... --uid 10001`: root that cannot change user. It
    # said "cannot drop privileges: [Errno 1] Operation not permitted".
    (short_dir / "ok.py").write_text("def app(environ, start_response):\n    return []\n")
    sock = short_dir / "app.sock"
    serve = [sys.executable, "-m", "uwsgiapp", "serve", "ok:app", "--socket", str(sock)]
    serve += ["--uid", "65534", "--gid", "65534"]
    no_caps = ["setpriv", "--bounding-set=-setuid,-setgid,-chown", *serve]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}
    for argv, what in ((no_caps, "serve"), ([*no_caps, "--check-config"], "check")):
        r = subprocess.run(argv, cwd=short_dir, env=env, capture_output=True, timeout=30)
        assert r.returncode == ServeExit.START_FAILED, r
        err = r.stderr.decode()
        said = "--uid/--gid: this root process lacks CAP_"
        assert said in err and "docker run --user UID:GID" in err, (what, err)
        needed = ["CAP_SETGID", "CAP_SETUID"] + (["CAP_CHOWN"] if what == "serve" else [])
        assert all(name in err for name in needed), (what, err)
        assert not sock.exists()


def test_a_clean_stop_says_nothing_on_stderr_when_the_error_log_is_a_file(
    short_dir: Path,
) -> None:
    _, err = _serve_until_one_request(
        short_dir, "wsgi:app", "--socket", "app.sock", "--error-log-file", "error.log"
    )
    assert "stopped with exit code" not in err and "the error log is" not in err, err


def test_workers_do_not_hold_the_terminal_the_master_keeps_for_a_failed_start(
    short_dir: Path,
) -> None:
    # The master keeps a copy of the terminal's stderr to say a failed start there; workers
    # (and what the app forks) inherited it, holding a reader's pipe open past the master.
    from support.procs import worker_pids

    (short_dir / "wsgi.py").write_text(FLASK_APP)
    args = ["--socket", "app.sock", "--error-log-file", "error.log", "--capture-output"]
    proc = subprocess.Popen(
        [sys.executable, "-m", "uwsgiapp", "serve", "wsgi:app", "--workers", "2", *args],
        cwd=short_dir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_pong(str(short_dir / "app.sock"), proc)
        terminal = os.readlink(f"/proc/self/fd/{proc.stderr.fileno()}")  # type: ignore[union-attr]
        held = {
            pid: [
                os.readlink(f"/proc/{pid}/fd/{fd}")
                for fd in os.listdir(f"/proc/{pid}/fd")
                if os.path.exists(f"/proc/{pid}/fd/{fd}")
            ]
            for pid in (proc.pid, *worker_pids(proc.pid))
        }
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=15)
    assert len(held) == 3 and terminal in held.pop(proc.pid)
    assert all(terminal not in links for links in held.values()), (terminal, held)


@pytest.mark.parametrize("lazy", [False, True], ids=["preloaded", "lazy-apps"])
def test_a_crash_while_importing_the_app_leaves_its_stack(short_dir: Path, lazy: bool) -> None:
    # A C extension that segfaults at import (one built for another ABI): the master died
    # without a line (preloaded), the workers with no stack (--lazy-apps).
    (short_dir / "crashing.py").write_text(
        "import ctypes\n\ndef load_extension():\n    ctypes.string_at(0)\n\nload_extension()\n"
    )
    args = ["serve", "crashing:app", "--socket", str(short_dir / "s.sock")]
    r = run_cli(*args, *(["--lazy-apps"] if lazy else []), cwd=short_dir, timeout=60)
    err = r.stderr.decode()
    assert r.returncode != 0
    assert "Fatal Python error: Segmentation fault" in err, err
    assert 'crashing.py", line 4 in load_extension' in err, err


@pytest.mark.skipif(os.geteuid() != 0, reason="--uid from root needs root")
def test_a_sys_path_entry_the_dropped_user_cannot_read_is_said_at_start(
    short_dir: Path,
) -> None:
    # The start was clean (the app's import served from what root had loaded), then a module
    # first imported in a request failed with a 500 (ModuleNotFoundError) and no hint.
    short_dir.chmod(0o700)  # root's: the dropped user cannot read the app's directory
    (short_dir / "ok.py").write_text("def app(environ, start_response):\n    return []\n")
    serve = [sys.executable, "-m", "uwsgiapp", "serve", "ok:app", "--socket", "app.sock"]
    serve += ["--uid", "65534", "--gid", "65534"]
    env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}
    proc = subprocess.Popen(serve, cwd=short_dir, env=env, stderr=subprocess.PIPE, text=True)
    try:
        said = ""
        deadline = time.monotonic() + 30
        while "sys.path entr" not in said and time.monotonic() < deadline:
            line = proc.stderr.readline() if proc.stderr else ""
            if not line:
                break
            said += line
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=30)
    assert "(uid 65534) cannot read" in said and f"{short_dir}" in said, said
    assert "a module first imported after the start fails" in said, said
