"""The uwsgi client: pure helpers, and ``uwsgiapp request`` / ``ping`` run as a user would."""

from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import pytest
from cli.cli_testkit import FakeServers, free_port, run_cli

from uwsgiapp.cli import EXIT_BAD_RESPONSE, EXIT_CONNECT, EXIT_SERVER_ERROR, EXIT_USAGE
from uwsgiapp.client import (
    Address,
    ResponseError,
    build_vars,
    parse_address,
    parse_response,
)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:3031", Address(host="127.0.0.1", port=3031)),
        ("localhost:80", Address(host="localhost", port=80)),
        (":3031", Address(host="127.0.0.1", port=3031)),
        ("[::1]:3031", Address(host="::1", port=3031)),
        ("/run/app.sock", Address(path="/run/app.sock")),
        ("app.sock", Address(path="app.sock")),
        ("unix:/a:b.sock", Address(path="/a:b.sock")),
        ("@abstract", Address(path="\0abstract")),
    ],
)
def test_parse_address(text: str, expected: Address) -> None:
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["", "host:0", "host:99999", "host:http", "[::1]3031", "unix:"])
def test_parse_address_refuses(text: str) -> None:
    with pytest.raises(ValueError):
        parse_address(text)


def test_build_vars_like_nginx() -> None:
    pairs = build_vars(
        "/caf%C3%A9/a b?x=1&y=%20",
        method="post",
        headers=[
            ("Content-Type", "text/plain"),
            ("Content-Length", "999"),
            ("X-Forwarded-For", "1.2.3.4"),
            ("Accept", "a"),
            ("accept", "b"),
            ("Cookie", "a=1"),
            ("Cookie", "b=2"),
            ("Host", "example.com:8080"),
        ],
        body=b"hello",
        address=Address(host="127.0.0.1", port=3031),
    )
    v = dict(pairs)
    assert len(v) == len(pairs)
    assert v["REQUEST_METHOD"] == "POST"
    assert v["PATH_INFO"] == "/café/a b".encode().decode("latin-1")
    assert v["REQUEST_URI"] == "/caf%C3%A9/a%20b?x=1&y=%20"
    assert v["QUERY_STRING"] == "x=1&y=%20"
    assert v["CONTENT_TYPE"] == "text/plain"
    assert v["CONTENT_LENGTH"] == "5"
    assert "HTTP_CONTENT_TYPE" not in v and "HTTP_CONTENT_LENGTH" not in v
    assert v["HTTP_X_FORWARDED_FOR"] == "1.2.3.4"
    assert v["HTTP_ACCEPT"] == "a, b"
    assert v["HTTP_COOKIE"] == "a=1; b=2"
    assert (v["SERVER_NAME"], v["SERVER_PORT"], v["HTTP_HOST"]) == (
        "example.com",
        "8080",
        "example.com:8080",
    )
    assert v["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert v["REMOTE_ADDR"] == "127.0.0.1"


def test_build_vars_defaults() -> None:
    v = dict(build_vars("nothing-leading", address=Address(path="/s.sock")))
    assert v["PATH_INFO"] == "/nothing-leading"
    assert v["CONTENT_LENGTH"] == "" and v["CONTENT_TYPE"] == ""
    assert (v["SERVER_NAME"], v["SERVER_PORT"], v["HTTP_HOST"]) == ("localhost", "80", "localhost")
    assert v["QUERY_STRING"] == ""
    assert dict(build_vars("/", body=b""))["CONTENT_LENGTH"] == "0"
    assert dict(build_vars("/", extra=[("HTTPS", "on"), ("PATH_INFO", "/x")]))["PATH_INFO"] == "/x"


def test_parse_response() -> None:
    r = parse_response(b"HTTP/1.1 404 Not Found\r\nA: 1\r\nContent-Length: 2\r\n\r\nno")
    assert (r.status, r.reason, r.body, r.header("content-length")) == (
        404,
        "Not Found",
        b"no",
        "2",
    )
    assert r.head.endswith(b"\r\n\r\n")


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"garbage",
        b"HTTP/1.1 200 OK\r\nA: 1",
        b"FOO 200\r\n\r\n",
        b"HTTP/1.1 200\r\nbad\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
    ],
)
def test_parse_response_refuses(raw: bytes) -> None:
    with pytest.raises(ResponseError):
        parse_response(raw)


def _echo(stdout: bytes) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(stdout)
    return data


@pytest.mark.parametrize("which", ["unix", "tcp"])
def test_request_command(fake_uwsgi: FakeServers, which: str) -> None:
    sock = getattr(fake_uwsgi, which)
    r = run_cli("request", sock, "/p%2Fq?a=1", "-H", "X-Token: abc", "-H", "User-Agent: t")
    assert r.returncode == 0, r.stderr
    echo = _echo(r.stdout)
    v = echo["vars"]
    assert (v["REQUEST_METHOD"], v["PATH_INFO"], v["QUERY_STRING"]) == ("GET", "/p/q", "a=1")
    assert v["REQUEST_URI"] == "/p%2Fq?a=1"
    assert (v["HTTP_X_TOKEN"], v["HTTP_USER_AGENT"]) == ("abc", "t")
    assert v["CONTENT_LENGTH"] == ""
    assert echo["modifier1"] == 0


def test_request_post_data_and_include(fake_uwsgi: FakeServers, tmp_path: Path) -> None:
    r = run_cli("request", fake_uwsgi.unix, "/form", "-d", "a=1&b=2", "-i", "--modifier1", "30")
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 X\r\n") and b"Content-Type: application/json" in head
    echo = _echo(body)
    assert echo["body"] == "a=1&b=2" and echo["modifier1"] == 30
    assert echo["vars"]["REQUEST_METHOD"] == "POST"
    assert echo["vars"]["CONTENT_LENGTH"] == "7"
    assert echo["vars"]["CONTENT_TYPE"] == "application/x-www-form-urlencoded"

    data = tmp_path / "payload.json"
    data.write_bytes(b'{"k": "\xc3\xa9"}')
    r = run_cli(
        "request", fake_uwsgi.tcp, "/j", "-X", "PUT", "-d", f"@{data}",
        "-H", "Content-Type: application/json", "--var", "HTTPS=on",
    )  # fmt: skip
    echo = _echo(r.stdout)
    assert echo["body"].encode("latin-1") == data.read_bytes()
    assert echo["vars"]["CONTENT_LENGTH"] == str(len(data.read_bytes()))
    assert echo["vars"]["CONTENT_TYPE"] == "application/json"
    assert echo["vars"]["REQUEST_METHOD"] == "PUT"
    assert echo["vars"]["HTTPS"] == "on"

    r = run_cli("request", fake_uwsgi.unix, "/stdin", "-d", "@-", input=b"from stdin")
    assert _echo(r.stdout)["body"] == "from stdin"


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        ("/status/404", 0, b""),
        ("/status/503", EXIT_SERVER_ERROR, b"server answered 503"),
        ("/garbage", EXIT_BAD_RESPONSE, b"incomplete response head"),
        ("/silent", EXIT_BAD_RESPONSE, b"closed the connection without answering"),
    ],
)
def test_request_exit_codes(fake_uwsgi: FakeServers, path: str, code: int, message: bytes) -> None:
    r = run_cli("request", fake_uwsgi.unix, path)
    assert r.returncode == code, r.stderr
    assert message in r.stderr
    assert b"Traceback" not in r.stderr


def test_request_timeout(fake_uwsgi: FakeServers) -> None:
    r = run_cli("request", fake_uwsgi.unix, "/hang", "--timeout", "0.5")
    assert r.returncode == EXIT_BAD_RESPONSE
    assert b"within 0.5s" in r.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["request", "127.0.0.1:{port}"], EXIT_CONNECT, b"cannot connect to 127.0.0.1:"),
        (["request", "{missing}"], EXIT_CONNECT, b"No such file or directory"),
        (["request", "{sock}", "-H", "nocolon"], EXIT_USAGE, b"bad header"),
        (["request", "{sock}", "--var", "novalue"], EXIT_USAGE, b"bad var"),
        (["request", "{sock}", "-d", "@{missing}"], EXIT_USAGE, b"cannot read"),
        (["request", "host:http"], EXIT_USAGE, b"bad port"),
        (["request"], EXIT_USAGE, b"required: SOCKET"),
        (["ping", "127.0.0.1:{port}"], EXIT_CONNECT, b"cannot connect"),
        (["ping", "{missing}"], EXIT_CONNECT, b"No such file"),
    ],
)
def test_client_errors(
    fake_uwsgi: FakeServers, tmp_path: Path, args: list[str], code: int, message: bytes
) -> None:
    fill = {"port": str(free_port()), "missing": str(tmp_path / "nope"), "sock": fake_uwsgi.unix}
    r = run_cli(*(a.format(**fill) for a in args))
    assert r.returncode == code, r.stderr
    assert message in r.stderr, r.stderr
    assert b"Traceback" not in r.stderr


@pytest.mark.parametrize("which", ["unix", "tcp"])
def test_ping(fake_uwsgi: FakeServers, which: str) -> None:
    r = run_cli("ping", getattr(fake_uwsgi, which))
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"pong from ")
    r = run_cli("ping", "-q", getattr(fake_uwsgi, which))
    assert (r.returncode, r.stdout) == (0, b"")


def test_ping_wrong_answer_and_silence(tmp_path: Path) -> None:
    """A server answering something else, or nothing, is not healthy."""
    import threading

    with socket.socket() as srv:
        srv.bind(("127.0.0.1", 0))
        srv.listen()
        port = srv.getsockname()[1]

        def serve(answers: list[bytes]) -> None:
            for answer in answers:
                conn, _ = srv.accept()
                with conn:
                    conn.recv(16)
                    conn.sendall(answer)

        t = threading.Thread(target=serve, args=([b"HTTP/1.1 400 Bad\r\n\r\n", b""],))
        t.start()
        r = run_cli("ping", f"127.0.0.1:{port}")
        assert r.returncode == EXIT_BAD_RESPONSE
        assert b"expected pong 64 00 00 01" in r.stderr and b"48 54 54 50" in r.stderr
        r = run_cli("ping", f"127.0.0.1:{port}")
        assert r.returncode == EXIT_BAD_RESPONSE
        assert b"connection closed" in r.stderr
        t.join(5)
