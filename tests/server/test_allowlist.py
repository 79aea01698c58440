"""The TCP allow-list: a uwsgi socket never answers a peer outside ``--uwsgi-allow-from``.

Unit tests of :class:`AllowList`, then a real ``uwsgiapp serve`` on a TCP socket, reached from
two loopback source addresses (127.0.0.1 and 127.0.0.2 are both this machine).
"""

from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest
from support.procs import Server, free_port, wait_until

import uwsgiproto
from uwsgiapp.addresses import AllowList
from uwsgiapp.server.throttle import Throttle


@pytest.mark.parametrize(
    ("entries", "allowed", "refused"),
    [
        (["127.0.0.1", "::1"], ["127.0.0.1", "::1", "::ffff:127.0.0.1"], ["127.0.0.2", "::2"]),
        (["10.0.0.0/8"], ["10.0.0.1", "10.255.255.255", "::ffff:10.1.2.3"], ["11.0.0.1"]),
        (["192.168.1.0/24"], ["192.168.1.7"], ["192.168.2.7", "10.0.0.1", "::1"]),
        (["10.1.2.3/8"], ["10.9.9.9"], ["172.16.0.1"]),  # host bits set: the network
        (["fd00::/8"], ["fd12::1"], ["fe80::1", "10.0.0.1"]),
        (["::ffff:10.0.0.1"], ["::ffff:10.0.0.1"], ["10.0.0.2"]),
        (["  127.0.0.1  "], ["127.0.0.1"], ["127.0.0.2"]),
        (["*"], ["8.8.8.8", "::1", "10.0.0.1"], []),
        ([], [], ["127.0.0.1", "::1"]),
    ],
)
def test_allows_exactly_what_was_listed(
    entries: list[str], allowed: list[str], refused: list[str]
) -> None:
    allow = AllowList.parse(entries)
    for host in allowed:
        assert allow.allows(host), (entries, host)
    for host in refused:
        assert not allow.allows(host), (entries, host)


@pytest.mark.parametrize("host", ["", "not-an-ip", "fe80::1%eth0x", "1.2.3", "::ffff:"])
def test_what_is_not_an_address_is_refused(host: str) -> None:
    assert not AllowList.parse(["10.0.0.0/8", "127.0.0.1"]).allows(host)


@pytest.mark.parametrize("entry", ["", "localhost", "10.0.0.0/33", "1.2.3.4.5", "10.0.0.0/x"])
def test_bad_entries_are_errors_naming_the_entry(entry: str) -> None:
    with pytest.raises(ValueError, match="invalid address or network"):
        AllowList.parse(["127.0.0.1", entry])


@pytest.mark.parametrize("given", [(), ("",), (" ", "")])
def test_an_empty_list_is_refused_naming_the_option(given: tuple[str, ...]) -> None:
    # An unset ${ALLOW_FROM} in a compose file started a server that refused every peer,
    # loopback too (nginx: 502), while the log said only "peers allowed: none".
    from uwsgiapp.config import ConfigError, make_config

    with pytest.raises(ConfigError, match="empty: it would refuse every peer") as caught:
        make_config(app="x:y", uwsgi_allow_from=given)
    assert caught.value.option == "uwsgi_allow_from"


def test_a_bad_entry_stops_serve_naming_the_option(tmp_path: Path) -> None:
    port = free_port()
    server = Server(tmp_path, "supervisor_app:app", socket=f"127.0.0.1:{port}")
    server.options["uwsgi_allow_from"] = ["10.0.0.0/99"]
    server.start(wait=False)
    try:
        code = server.wait(15)
    finally:
        server.stop()
    assert code == 2
    assert "--uwsgi-allow-from" in server.log() and "'10.0.0.0/99'" in server.log()
    assert "Traceback" not in server.log()


def _exchange(port: int, source: str) -> bytes:
    packet = uwsgiproto.build_request(
        {"REQUEST_METHOD": "GET", "PATH_INFO": "/pid", "SERVER_PROTOCOL": "HTTP/1.1"}
    )
    with socket.socket() as sock:
        sock.settimeout(10)
        sock.bind((source, 0))
        sock.connect(("127.0.0.1", port))
        sock.sendall(packet)
        data = b""
        try:
            while chunk := sock.recv(65536):
                data += chunk
        except ConnectionResetError:
            pass
        return data


def test_a_refused_peer_gets_nothing_and_one_log_line(tmp_path: Path) -> None:
    port = free_port()
    server = Server(tmp_path, "supervisor_app:app", socket=f"127.0.0.1:{port}")
    server.options["uwsgi_allow_from"] = ["127.0.0.2"]
    server.start()
    try:
        assert _exchange(port, "127.0.0.2").startswith(b"HTTP/1.1 200")
        assert _exchange(port, "127.0.0.1") == b""
        # The first refusal is a line at once; later ones within 10 s are counted (the line may
        # be Server.start's own connection, which came from 127.0.0.1 too).
        wait_until(
            lambda: "refused connection from 127.0.0.1" in server.log(), 5, "the refusal's line"
        )
        assert _exchange(port, "127.0.0.2").startswith(b"HTTP/1.1 200")  # the worker lives on
    finally:
        server.stop()
    assert "refused connection from 127.0.0.2" not in server.log()


def test_a_flood_of_refused_peers_is_one_line_then_a_count(tmp_path: Path) -> None:
    # A pod network outside the list sends every request here: one line each would flood
    # the log at the request rate.
    port = free_port()
    server = Server(tmp_path, "supervisor_app:app", socket=f"127.0.0.1:{port}")
    server.options["uwsgi_allow_from"] = ["127.0.0.2"]
    server.start()
    try:
        for _ in range(21):
            assert _exchange(port, "127.0.0.1") == b""
        assert _exchange(port, "127.0.0.2").startswith(b"HTTP/1.1 200")
    finally:
        server.stop()  # the worker tells what it counted as it exits
    refused = [line for line in server.log().splitlines() if "refused" in line]
    assert len(refused) == 2, refused
    where = f"on 127.0.0.1:{port}"
    assert refused[0].endswith(
        f"refused connection from 127.0.0.1 {where}: not in uwsgi-allow-from"
    )
    # The first may be Server.start's own connection (it waits for the socket to accept).
    more = re.search(
        rf"refused (\d+) more connections \(the last from 127\.0\.0\.1 {where}\)", refused[1]
    )
    assert more and 20 <= int(more.group(1)) <= 21, refused[1]


def test_the_throttle_logs_the_first_at_once_then_counts() -> None:
    said: list[tuple[int, str]] = []
    throttle: Throttle[str] = Throttle(0.2, lambda n, last: said.append((n, last)))
    throttle.add("a")
    throttle.add("b")
    throttle.add("c")
    assert said == [(1, "a")] and not throttle.due()
    wait_until(throttle.due, 2, "the interval to pass")
    throttle.flush()
    throttle.flush()  # nothing counted since: no line
    assert said == [(1, "a"), (2, "c")]
    # A detail of None is a detail too (the shed-connections line has none).
    nones: list[int] = []
    plain: Throttle[None] = Throttle(10.0, lambda n, _: nones.append(n))
    plain.add(None)
    plain.add(None)
    plain.flush()
    assert nones == [1, 1]


def test_the_default_allows_loopback_only(tmp_path: Path) -> None:
    port = free_port()
    server = Server(tmp_path, "supervisor_app:app", socket=f"127.0.0.1:{port}").start()
    try:
        assert _exchange(port, "127.0.0.1").startswith(b"HTTP/1.1 200")
        # 127.0.0.2 is loopback too, but not in the default list (127.0.0.1 and ::1).
        assert _exchange(port, "127.0.0.2") == b""
    finally:
        server.stop()
    assert "refused connection from 127.0.0.2" in server.log()
