"""Errors a new user hits first name their fix: a large cookie (over --buffer-size) and a unix
socket nginx's user may not open."""

from __future__ import annotations

import grp
import os
import pwd
import re
from pathlib import Path

import pytest
from support.procs import Server, stack, wait_until

from uwsgiproto import Decoder, Limits, PacketTooLarge, build_request

pytestmark = pytest.mark.nginx


def test_the_codec_names_the_limit_that_was_exceeded() -> None:
    packet = build_request({"HTTP_COOKIE": "x" * 5000})
    with pytest.raises(PacketTooLarge) as info:
        decoder = Decoder(Limits(buffer_size=4096))
        decoder.receive_data(packet)
        decoder.next_event()
    assert info.value.limit == "buffer_size"
    many = build_request({f"K{i}": "" for i in range(600)})
    with pytest.raises(PacketTooLarge) as info:
        decoder = Decoder(Limits(buffer_size=65535))
        decoder.receive_data(many)
        decoder.next_event()
    assert info.value.limit == "max_vars"
    with pytest.raises(PacketTooLarge) as info:  # HTTP on a uwsgi socket: not a size problem
        decoder = Decoder()
        decoder.receive_data(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        decoder.next_event()
    assert info.value.limit == "" and "proxy_pass" in str(info.value)


def test_a_large_cookie_through_nginx_names_buffer_size(
    tmp_path: Path, nginx_available: None
) -> None:
    # An ini's buffer-size = 4096 (uWSGI's default); ours (65535) takes what nginx passes.
    with stack(tmp_path, "nginx_app:app") as (server, nginx):
        code, _, _ = nginx.request("GET", "/", headers={"Cookie": "session=" + "x" * 5000})
        assert code == 200
    with stack(tmp_path / "small", "nginx_app:app", buffer_size=4096) as (server, nginx):
        code, _, _ = nginx.request("GET", "/", headers={"Cookie": "session=" + "x" * 5000})
        assert code == 502
        wait_until(lambda: "invalid request block size" in server.log(), 5, "the log line")
    line = next(x for x in server.log().splitlines() if "invalid request block size" in x)
    assert "raise --buffer-size" in line and "large_client_header_buffers" in line, line
    assert "(max 4096)" in line


def test_a_response_head_over_nginx_s_buffer_is_named_once_a_worker(
    tmp_path: Path, nginx_available: None
) -> None:
    # nginx's default uwsgi_buffer_size (a page) answers a 5 KB head with a 502 ("upstream
    # sent too big header") while our access log said 200: nothing on our side named it.
    with stack(tmp_path, "bad_apps:app", access_log="uwsgi") as (server, nginx):
        assert nginx.request("GET", "/header-5k")[0] == 502
        assert nginx.request("GET", "/header-5k?again")[0] == 502
        assert nginx.request("GET", "/hello")[0] == 200
        wait_until(lambda: "GET /hello" in server.log(), 5, "the third access line")
    said = [x for x in server.log().splitlines() if "over nginx's default uwsgi_buffer_size" in x]
    assert len(said) == 1, server.log()
    assert "(GET /header-5k)" in said[0] and "raise it" in said[0], said[0]


def test_start_up_says_who_may_open_the_unix_socket(tmp_path: Path) -> None:
    server = Server(tmp_path, "supervisor_app:app").start()
    try:
        wait_until(lambda: "listening on" in server.log(), 10, "the listening line")
    finally:
        server.stop()
    owner = pwd.getpwuid(os.geteuid()).pw_name
    group = grp.getgrgid(os.getegid()).gr_name
    line = next(x for x in server.log().splitlines() if "listening on" in x)
    expected = (
        f"listening on {server.socket} (owner {owner}, group {group}, mode 0660: "
        f"nginx's user must be {owner} or in group {group} (or set --chmod-socket, "
        "--chown-socket, or --uid/--gid))"
    )
    assert line.endswith(expected), line


def test_a_world_writable_socket_says_so(tmp_path: Path) -> None:
    server = Server(tmp_path, "supervisor_app:app", chmod_socket=0o666).start()
    try:
        wait_until(lambda: "listening on" in server.log(), 10, "the listening line")
    finally:
        server.stop()
    assert re.search(r"mode 0666: anyone on this machine may connect\)$", server.log(), re.M)
