"""What start-up says about each socket: who may connect, and where a TCP socket is bound."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from support.procs import Server, wait_for_serving, wait_until

from uwsgiapp.config import make_config
from uwsgiapp.server.listeners import bind_all, somaxconn_cap
from uwsgiapp.supervisor import boot
from uwsgiapp.supervisor.listening import (
    loopback_bind_in_a_container,
    loopback_only_on_every_interface,
    unix_rule,
    who_may_connect,
)


@pytest.mark.parametrize(
    ("spec", "allow", "said"),
    [
        # ':PORT' is every interface (uWSGI's meaning): the line says so.
        (":0", ["127.0.0.1"], r" \(bound to 0\.0\.0\.0:\d+; peers allowed: 127\.0\.0\.1 "),
        ("127.0.0.1:0", ["*"], r" \(bound to 127\.0\.0\.1:\d+; peers allowed: any "),
        ("127.0.0.1:0", ["10.0.0.0/8", "::1"], r"peers allowed: ::1, 10\.0\.0\.0/8 \("),
    ],
)
def test_a_tcp_socket_says_where_it_is_bound_and_who_may_connect(
    spec: str, allow: list[str], said: str
) -> None:
    (listener,) = bind_all([spec], backlog=8, chmod=0o660, allow_from=allow)
    try:
        assert re.search(said, who_may_connect(listener)), who_may_connect(listener)
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("mode", "rule"),
    [
        (0o660, "nginx's user must be www or in group web (or set"),
        (0o666, "anyone on this machine may connect"),
        (0o662, "anyone on this machine may connect"),  # connecting takes write only
        (0o600, "nginx's user must be www (or set"),  # the group cannot write: not it
        (0o640, "nginx's user must be www (or set"),
        (0o460, "nginx's user must be in group web, and not www (or set"),
        (0o400, "only root may connect (or set"),
        (0o000, "only root may connect (or set"),
    ],
)
def test_a_unix_socket_says_who_may_connect_by_its_write_bits(mode: int, rule: str) -> None:
    assert unix_rule(mode, "www", "web", "nginx's user").startswith(rule)
    # The stats socket's line named --chown-socket, which applies to nginx's sockets only.
    said = unix_rule(mode, "www", "web", "a reader")
    assert "--chown-socket" not in said and ("--chmod-socket" in said or "anyone" in said)


@pytest.mark.parametrize(
    ("spec", "allow", "closed"),
    [
        # A container's `socket = :8080`: nginx in another container is refused, say so.
        (":0", ["127.0.0.1", "::1"], True),
        ("0.0.0.0:0", ["127.0.0.1"], True),
        (":0", ["10.0.0.0/8"], False),
        (":0", ["*"], False),
        ("127.0.0.1:0", ["127.0.0.1"], False),
    ],
)
def test_a_wildcard_bind_that_only_loopback_may_use_is_told(
    spec: str, allow: list[str], closed: bool
) -> None:
    (listener,) = bind_all([spec], backlog=8, chmod=0o660, allow_from=allow)
    try:
        assert loopback_only_on_every_interface(listener) is closed
    finally:
        listener.close()


@pytest.mark.parametrize(
    ("spec", "pid", "said"),
    [
        ("127.0.0.1:0", 1, True),
        ("127.0.0.1:0", 4242, False),
        (":0", 1, False),
    ],
)
def test_a_loopback_bind_in_a_containers_master_is_told(spec: str, pid: int, said: bool) -> None:
    # `docker run IMAGE uwsgiapp serve app:app`: the default 127.0.0.1:3031 cannot be reached
    # from nginx's container, and the health check said healthy; nothing said why the 502s.
    (listener,) = bind_all([spec], backlog=8, chmod=0o660, allow_from=["127.0.0.1"])
    try:
        assert loopback_bind_in_a_container(listener, pid) is said
    finally:
        listener.close()


def test_somaxconn_cap(tmp_path: Path) -> None:
    proc = tmp_path / "somaxconn"
    proc.write_text("4096\n")
    assert somaxconn_cap(5000, str(proc)) == 4096
    assert somaxconn_cap(4096, str(proc)) is None
    assert somaxconn_cap(5000, str(tmp_path / "missing")) is None


def test_a_listen_queue_over_somaxconn_is_said(tmp_path: Path) -> None:
    # uWSGI refuses to start; the server works, with the kernel's shorter queue: one warning.
    cap = somaxconn_cap(1 << 30)
    if cap is None:
        pytest.skip("net.core.somaxconn cannot be read here")
    server = Server(tmp_path, "supervisor_app:app", workers=1, listen=cap + 1).start()
    try:
        wait_until(lambda: "listening on" in server.log(), 10, "the listening line")
    finally:
        server.stop()
    assert f"--listen {cap + 1} is over net.core.somaxconn ({cap})" in server.log()


def test_a_tcp_stats_line_names_its_own_allow_list(tmp_path: Path) -> None:
    # --stats-allow-from's peers, and loopback; not --uwsgi-allow-from's, said as its
    options = {"stats": "127.0.0.1:0", "stats_allow_from": ["10.0.0.0/8"]}
    server = Server(tmp_path, "supervisor_app:app", workers=1, **options).start()
    try:
        wait_until(lambda: "stats on" in server.log(), 10, "the stats line")
    finally:
        server.stop()
    said = re.search(r"stats on 127\.0\.0\.1:0 \(.*\)\n", server.log())
    assert said is not None, server.log()
    assert said.group(0).endswith(
        "; peers allowed: 127.0.0.1, ::1, 10.0.0.0/8 (loopback; --stats-allow-from, else "
        "--uwsgi-allow-from))\n"
    ), said.group(0)


def test_an_access_log_file_with_the_access_log_off_is_said(tmp_path: Path) -> None:
    # A file alone turns the log on (uwsgi format); with it turned off, the file is never made.
    path = tmp_path / "access.log"
    options = {"access_log": "off", "access_log_file": str(path)}
    server = Server(tmp_path, "supervisor_app:app", workers=1, **options).start()
    try:
        wait_until(lambda: "listening on" in server.log(), 10, "the listening line")
    finally:
        server.stop()
    assert f"--access-log-file {path} is not written: --access-log is off" in server.log()


def test_log_level_warning_keeps_the_info_lines_out(tmp_path: Path) -> None:
    # gunicorn's --log-level warning: the start, stop and worker lines go, warnings stay.
    if somaxconn_cap(1 << 30) is None:
        pytest.skip("net.core.somaxconn cannot be read here: no warning to see")
    server = Server(tmp_path, "supervisor_app:app", workers=1, log_level="warning", listen=1 << 30)
    server.start()
    # Past its start-up lines: the socket accepts before they are written, and a TERM then
    # stops the start-up quietly (an INFO line).
    wait_for_serving(server, 1)
    server.stop()
    log = server.log()
    assert "[WARNING] --listen" in log
    assert "[INFO]" not in log and "listening on" not in log


def test_a_file_that_is_both_logs_is_handed_over_once(tmp_path: Path) -> None:
    # An ini's logto names one file for both: start-up's --uid/--gid warnings about it were
    # said twice, one for each log.
    path = str(tmp_path / "app.log")
    config = make_config(app="a:app", error_log_file=path, access_log_file=path, access_log="uwsgi")
    assert boot._log_files(config) == [path]


@pytest.mark.parametrize(
    ("where", "said"),
    [
        ("", "the app is in debug mode (DEBUG = True in its code)"),
        ("environment", ""),  # said at start: "FLASK_DEBUG=1 is set"
        # --env (an ini's env =): the start-up line reads the launch environment only, and the
        # import's check took FLASK_DEBUG for said: nothing was said at all (review).
        ("--env", "the app is in debug mode (FLASK_DEBUG from --env)"),
    ],
)
def test_an_app_in_debug_mode_by_its_own_code_is_said(
    tmp_path: Path, where: str, said: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # FLASK_DEBUG=1 was said at start; DEBUG = True in the app's code (the same effect: its
    # error handlers skipped, a bare 500) was not. Said once: not twice with FLASK_DEBUG.
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "dbgapp.py").write_text(
        "class App:\n    debug = True\n\n    def __call__(self, environ, start_response):\n"
        "        start_response('200 OK', [])\n        return [b'x']\n\n\napp = App()\n"
    )
    monkeypatch.delenv("FLASK_DEBUG", raising=False)
    if where == "environment":
        monkeypatch.setenv("FLASK_DEBUG", "1")
    env = ["FLASK_DEBUG=1"] if where == "--env" else []
    server = Server(tmp_path, "dbgapp:app", workers=1, pythonpath=[str(apps)], env=env).start()
    try:
        wait_until(lambda: "worker 1 (pid" in server.log(), 10, "the worker line")
    finally:
        server.stop()
    log = server.log()
    assert log.count("the app is in debug mode") == (1 if said else 0), log
    assert said in log
    assert ("FLASK_DEBUG=1 is set" in log) == (where == "environment")


def test_an_app_whose_getattr_raises_anything_still_starts(tmp_path: Path) -> None:
    # The debug-mode check asks the app object for "debug": its own __getattr__ may raise what
    # it likes, which must not stop the start (review).
    apps = tmp_path / "apps"
    apps.mkdir()
    (apps / "oddapp.py").write_text(
        "class App:\n    def __getattr__(self, name):\n        raise KeyError(name)\n\n"
        "    def __call__(self, environ, start_response):\n"
        "        start_response('200 OK', [])\n        return [b'x']\n\n\napp = App()\n"
    )
    server = Server(tmp_path, "oddapp:app", workers=1, pythonpath=[str(apps)]).start()
    try:
        wait_until(lambda: "worker 1 (pid" in server.log(), 10, "the worker line")
    finally:
        server.stop()
    assert "debug mode" not in server.log() and "Traceback" not in server.log(), server.log()
