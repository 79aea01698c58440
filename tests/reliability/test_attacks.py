"""Attacks that once worked (issue 14), replayed at size against a real ``uwsgiapp serve``.

Each was reproduced on the old code and has a focused regression test elsewhere; here they run
longer (``make reliability``) and report what they measured:

- hammering a cheap URL with ``--max-requests`` (recycling used to halt the master: exit 5);
- TERM right after HUP (the master used to wait forever, its socket gone);
- more idle connections than a worker parks (parked ones used to starve for minutes);
- control characters in every request field a log line shows (forged log lines);
- as root, links planted where the app user keeps its logs and pidfile (root compromise).
"""

from __future__ import annotations

import os
import pwd
import random
import signal
import socket
import stat
import time
from pathlib import Path

import pytest
from reliability.conftest import Report, sized
from support.load import Load
from support.procs import (
    LogCursor,
    Server,
    short_tmpdir,
    stack,
    uwsgi_exchange,
    wait_for_workers,
    wait_until,
    worker_pids,
)

from uwsgiproto import build_request

pytestmark = pytest.mark.nginx


def _get(path: str = "/", **extra: str) -> bytes:
    return build_request(
        {"REQUEST_METHOD": "GET", "PATH_INFO": path, "SERVER_PROTOCOL": "HTTP/1.1", **extra}
    )


def test_max_requests_recycling_under_a_flood_through_nginx(
    tmp_path: Path, report: Report, nginx_available: None
) -> None:
    requests = sized(3_000, 60_000)
    report(
        "a cheap URL hammered with --max-requests 50",
        "Recycling is never a boot failure: the master keeps serving, nothing fails.",
    )
    with stack(tmp_path, "supervisor_app:app", workers=2, max_requests=50) as (server, nginx):
        wait_for_workers(server, 2)
        with Load(nginx.port, lambda i: "/", clients=8, limit=requests) as load:
            load.wait_for(requests, timeout=sized(120, 900))
        result = load.stop()
        assert server.proc is not None and server.proc.poll() is None, server.log()[-2000:]
        recycles = server.log().count("(max-requests), recycling")
        report.add(requests=result.total, failures=len(result.failures), recycles=recycles)
    assert result.total == requests and result.failures == [], result.failures[:5]
    assert recycles >= requests // 50 - 2
    assert "died while starting" not in server.log() and "Traceback" not in server.log()


def test_term_right_after_hup_always_ends(tmp_path: Path, report: Report) -> None:
    rounds = sized(3, 20)
    report("TERM right after HUP", "The master exits 0 within the graceful timeout every time.")
    slowest = 0.0
    for i in range(rounds):
        server = Server(tmp_path / f"r{i}", "supervisor_app:app", workers=2, graceful_timeout=10)
        server.start()
        try:
            wait_for_workers(server, 2)
            os.kill(server.pid, signal.SIGHUP)
            os.kill(server.pid, signal.SIGTERM)
            started = time.monotonic()
            assert server.wait(10) == 0, server.log()
            slowest = max(slowest, time.monotonic() - started)
        finally:
            server.stop()
        assert "SIGKILL" not in server.log(), server.log()
    report.add(rounds=rounds, slowest_stop_s=round(slowest, 2))


def test_more_idle_connections_than_parking_holds(tmp_path: Path, report: Report) -> None:
    idle = sized(1_100, 1_100)
    probes = sized(20, 200)
    timeout = 3.0
    report(
        f"{idle} idle connections on 2 workers (512 parked each at most)",
        "Requests behind them are answered at once; parked ones close at --socket-timeout.",
    )
    server = Server(tmp_path, "supervisor_app:app", workers=2, socket_timeout=timeout).start()
    held: list[socket.socket] = []
    try:
        wait_for_workers(server, 2)
        for _ in range(idle):
            sock = socket.socket(socket.AF_UNIX)
            sock.connect(server.socket)
            held.append(sock)
        # Until the workers have taken them all from the listen queue (each silent one is given
        # a few ms to send its first bytes), a new connect() finds the queue full (EAGAIN).
        started = time.monotonic()
        wait_until(lambda: _connects(server.socket), 30, "room in the listen queue")
        report.add(queue_full_s=round(time.monotonic() - started, 2))
        worst = 0.0
        for _ in range(probes):
            started = time.monotonic()
            answer = uwsgi_exchange(server.socket, _get("/pid"), timeout=10)
            worst = max(worst, time.monotonic() - started)
            assert answer.data.startswith(b"HTTP/1.1 200"), answer.end
        # Every held connection is closed by the server: parked ones at the timeout, the
        # rest at once.
        deadline = time.monotonic() + timeout + 10
        closed = 0
        for sock in held:
            sock.settimeout(max(0.1, deadline - time.monotonic()))
            try:
                if sock.recv(1) == b"":
                    closed += 1
            except OSError:
                closed += 1
        report.add(idle=idle, probes=probes, worst_probe_s=round(worst, 3), closed=closed)
        assert worst < 2.0
        assert closed == idle
        assert worker_pids(server.pid) and server.proc is not None and server.proc.poll() is None
    finally:
        for sock in held:
            sock.close()
        server.stop()
    assert "parking is full" in server.log()


def _connects(path: str) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(1)
        try:
            sock.connect(path)
        except BlockingIOError:
            return False
    return True


_CONTROLS = [chr(c) for c in (*range(0x20), 0x7F)]


def _nasty(rng: random.Random) -> str:
    text = "".join(rng.choice(["a", "/", "%", *_CONTROLS]) for _ in range(rng.randint(1, 30)))
    return "/" + text


def test_control_characters_never_forge_log_lines(tmp_path: Path, report: Report) -> None:
    requests = sized(200, 10_000)
    rng = random.Random(14)
    access_log = tmp_path / "access.log"
    error_log = tmp_path / "error.log"
    report(
        "control characters in every logged request field",
        "One access-log line per request, one error-log line per event, none forged.",
    )
    server = Server(
        tmp_path / "server",
        "bad_apps:app",
        access_log="uwsgi",
        access_log_file=str(access_log),
        error_log_file=str(error_log),
    ).start()
    try:
        cursor = LogCursor(error_log)
        for _ in range(requests):
            uri = _nasty(rng)
            packet = _get(
                "/raise" + _nasty(rng),
                REQUEST_URI="/raise" + uri,
                REQUEST_METHOD=rng.choice(["GET", "GET\r\nX", "\x1b[2JGET"]),
                REMOTE_ADDR="127.0.0.1\n10.0.0.1",
            )
            uwsgi_exchange(server.socket, packet, timeout=10)
        wait_until(lambda: len(access_log.read_bytes().split(b"\n")) > requests, 10, "lines")
        errors = [line for line in cursor.new_lines() if "app raised" in line]
    finally:
        server.stop()
    lines = access_log.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) - 1 == requests
    assert all(line.startswith(b"[pid: ") for line in lines[:-1])
    assert all(0x20 <= b < 0x7F or b >= 0x80 for line in lines for b in line)
    assert len(errors) == requests
    text = error_log.read_text(errors="replace")
    assert "\x1b" not in text
    report.add(requests=requests, access_lines=len(lines) - 1, error_lines=len(errors))


def test_links_planted_by_the_app_user_are_never_followed_as_root(
    tmp_path: Path, report: Report
) -> None:
    if os.geteuid() != 0:
        pytest.skip("starting as root needs root")
    try:
        user = pwd.getpwnam("nobody")
    except KeyError:
        pytest.skip("needs the user nobody")
    report(
        "links in the app user's log/pidfile directory, server started as root",
        "Every log path is refused (exit 3) and the pidfile link is replaced; the target "
        "root file keeps its owner, mode and content.",
    )
    victim = tmp_path / "shadow"
    tmp_path.chmod(0o755)
    victim.write_text("root secret\n")
    victim.chmod(0o600)
    outcomes: dict[str, int | None] = {}
    for option in ("error_log_file", "access_log_file", "pidfile"):
        app_dir = Path(short_tmpdir())
        os.chown(app_dir, user.pw_uid, user.pw_gid)
        link = app_dir / "planted"
        link.symlink_to(victim)
        server = Server(tmp_path / option, "supervisor_app:app", uid=user.pw_name)
        server.options.update({option: str(link), "access_log": "uwsgi"})
        server.start(wait=False)
        try:
            if option == "pidfile":
                # The socket is bound before the pidfile is written: wait for the file itself
                # (a server that followed the link would leave it a link until the timeout).
                wait_until(
                    lambda p=link: not p.is_symlink() and p.read_text().strip().isdigit(),
                    15,
                    "the pidfile written in place of the link",
                )
                server.signal(signal.SIGTERM)
            outcomes[option] = server.wait(15)
        finally:
            server.stop()
        st = victim.lstat()
        assert (st.st_uid, stat.S_IMODE(st.st_mode)) == (0, 0o600), option
        assert victim.read_text() == "root secret\n", option
    report.add(**{f"exit_{k}": v for k, v in outcomes.items()})
    assert outcomes == {"error_log_file": 3, "access_log_file": 3, "pidfile": 0}
