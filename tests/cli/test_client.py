"""The uwsgi client: pure helpers, and ``uwsgiapp request`` / ``ping`` run as a user would."""

from __future__ import annotations

import contextlib
import json
import os
import re
import select
import shlex
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli.cli_testkit import FakeServers, free_port, run_cli

import uwsgiproto
from uwsgiapp.cli import (
    EXIT_BAD_RESPONSE,
    EXIT_CONNECT,
    EXIT_SERVER_ERROR,
    EXIT_TIMEOUT,
    EXIT_TOO_LARGE,
    EXIT_USAGE,
    EXIT_WRITE,
)
from uwsgiapp.client import (
    DEFAULT_MAX_RESPONSE_SIZE,
    Address,
    ClientError,
    ResponseCut,
    ResponseError,
    ResponseTimeout,
    ResponseTooLarge,
    build_vars,
    exchange,
    parse_address,
    parse_response,
    parse_size,
    request,
    stream_request,
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
        # What nginx answers 502 for (str.isdigit took '²': int() then raised a traceback).
        b"HTTP/1.1 \xb200 OK\r\n\r\n",
        b"HTTP/1.1 000 Zero\r\n\r\n",
        b"HTTP/1.1 2000 OK\r\n\r\n",
        b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\nab",
        b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\ncontent-length: 9\r\n\r\nab",
    ],
)
def test_parse_response_refuses(raw: bytes) -> None:
    with pytest.raises(ResponseError):
        parse_response(raw)


def test_parse_response_splits_lines_at_line_ends_only() -> None:
    """0x85 (in UTF-8's "Å"), a form feed: str.splitlines split a header value there."""
    r = parse_response(
        b"HTTP/1.1 200 OK\r\nX-File: \xc3\x85se\r\nX-FF: a\x0cb\nX-N: A\x85B\r\n\r\nbody"
    )
    assert r.headers == (("X-File", "\xc3\x85se"), ("X-FF", "a\x0cb"), ("X-N", "A\x85B"))
    assert r.body == b"body"


def test_parse_response_drops_what_comes_past_the_content_length() -> None:
    r = parse_response(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
    assert r.body == b"ok"


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


def test_request_options_may_stand_between_socket_and_path(fake_uwsgi: FakeServers) -> None:
    # curl's habit: `request SOCKET -i PATH` said "unrecognized arguments: PATH" (PATH was
    # taken as absent at the first option).
    r = run_cli("request", fake_uwsgi.unix, "-i", "-X", "PUT", "/between", "-H", "X-A: b")
    assert r.returncode == 0, r.stderr
    head, _, body = r.stdout.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 X\r\n")
    v = _echo(body)["vars"]
    assert (v["REQUEST_METHOD"], v["PATH_INFO"], v["HTTP_X_A"]) == ("PUT", "/between", "b")
    r = run_cli("request", fake_uwsgi.unix, "/a", "/b")  # one PATH still
    assert r.returncode == EXIT_USAGE and b"unrecognized arguments: /b" in r.stderr


def test_request_takes_a_url_as_curl_does(fake_uwsgi: FakeServers) -> None:
    # A URL given as PATH was sent as PATH_INFO "/https://example.com/a/b".
    r = run_cli("request", fake_uwsgi.unix, "https://u@example.com:8443/a/b?x=1#frag")
    assert r.returncode == 0, r.stderr
    v = _echo(r.stdout)["vars"]
    assert (v["PATH_INFO"], v["QUERY_STRING"], v["REQUEST_URI"]) == ("/a/b", "x=1", "/a/b?x=1")
    assert (v["HTTP_HOST"], v["SERVER_NAME"], v["SERVER_PORT"]) == (
        "example.com:8443",
        "example.com",
        "8443",
    )
    assert (v["HTTPS"], v["REQUEST_SCHEME"]) == ("on", "https")
    r = run_cli("request", fake_uwsgi.unix, "http://example.com", "-H", "Host: other")
    v = _echo(r.stdout)["vars"]
    assert (v["PATH_INFO"], v["HTTP_HOST"], v["REQUEST_SCHEME"]) == ("/", "other", "http")
    assert "HTTPS" not in v
    # No port in the URL: the scheme's (it was the socket's); an IPv6 host's name and port.
    v = _echo(run_cli("request", fake_uwsgi.tcp, "https://example.com/").stdout)["vars"]
    assert (v["SERVER_NAME"], v["SERVER_PORT"]) == ("example.com", "443")
    v = _echo(run_cli("request", fake_uwsgi.tcp, "http://[::1]:9/").stdout)["vars"]
    assert (v["HTTP_HOST"], v["SERVER_NAME"], v["SERVER_PORT"]) == ("[::1]:9", "[::1]", "9")
    # Credentials as curl sends them; what is no URL of ours is said, not sent as a path or
    # a traceback (security review).
    v = _echo(run_cli("request", fake_uwsgi.unix, "http://u%40x:s3c@example.com/").stdout)["vars"]
    assert v["HTTP_AUTHORIZATION"] == "Basic dUB4OnMzYw=="  # u@x:s3c
    for url, said in (
        ("ftp://example.com/x", b"ftp:// URLs are not sent"),
        ("http://[::1/x", b"bad URL 'http://[::1/x': Invalid IPv6 URL"),
        ("http://evil.com\r\nX-Injected: 1/", b"a control character in it"),
        ("http://example.com:99999999/x", b"Port out of range"),
    ):
        r = run_cli("request", fake_uwsgi.unix, url)
        assert r.returncode == EXIT_USAGE and said in r.stderr, r.stderr


def test_request_content_length_header_other_than_the_body_is_refused(
    fake_uwsgi: FakeServers,
) -> None:
    # It was dropped without a word (the var is always the body's length).
    r = run_cli("request", fake_uwsgi.unix, "/p", "-H", "Content-Length: 5")
    assert r.returncode == EXIT_USAGE
    assert b"--var CONTENT_LENGTH=5" in r.stderr and b"(none)" in r.stderr
    r = run_cli("request", fake_uwsgi.unix, "/p", "-d", "abc", "-H", "Content-Length: 3")
    assert r.returncode == 0 and _echo(r.stdout)["vars"]["CONTENT_LENGTH"] == "3"
    r = run_cli("request", fake_uwsgi.unix, "/p", "--var", "CONTENT_LENGTH=5")
    assert r.returncode == 0 and _echo(r.stdout)["vars"]["CONTENT_LENGTH"] == "5"
    # The refusal's advice followed, the -H kept; a 0 with no body (review).
    r = run_cli(
        "request", fake_uwsgi.unix, "/p", "--var", "CONTENT_LENGTH=5", "-H", "Content-Length: 5"
    )
    assert r.returncode == 0 and _echo(r.stdout)["vars"]["CONTENT_LENGTH"] == "5"
    r = run_cli("request", fake_uwsgi.unix, "/p", "-H", "Content-Length: 0")
    assert r.returncode == 0, r.stderr


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
    # curl's --data-binary, which is what -d does here: the bytes as they are, newlines kept
    r = run_cli("request", fake_uwsgi.unix, "/b", "--data-binary", "@-", input=b"a\r\nb\n")
    assert _echo(r.stdout)["body"] == "a\r\nb\n"


def test_request_sends_the_bytes_typed_under_a_non_utf8_locale(fake_uwsgi: FakeServers) -> None:
    # A container with LANG=C (or LC_ALL=POSIX) and Python's UTF-8 mode off: argv holds the
    # typed UTF-8 bytes as surrogates. A non-ASCII path or -d ended in a traceback, a header
    # or --var in "cannot encode the request"; curl sends the bytes as typed, and nginx
    # passes them on (PEP 3333: vars are those bytes as latin-1 text).
    c_locale = {"LC_ALL": "C", "LANG": "C", "PYTHONUTF8": "0"}
    args = ["/café?q=é", "-H", "X-Name: José", "--var", "X_RAW=é", "-d", "né"]
    r = run_cli("request", fake_uwsgi.unix, *args, env=c_locale)
    assert r.returncode == 0, r.stderr
    echo = _echo(r.stdout)
    v, utf8 = echo["vars"], lambda text: text.encode().decode("latin-1")
    assert (v["PATH_INFO"], v["REQUEST_URI"]) == (utf8("/café"), "/caf%C3%A9?q=%C3%A9")
    assert (v["HTTP_X_NAME"], v["X_RAW"]) == (utf8("José"), utf8("é"))
    assert echo["body"] == utf8("né")
    # The same under a UTF-8 locale: the bytes typed, not their latin-1 re-encoding.
    r = run_cli("request", fake_uwsgi.unix, *args, env={"LC_ALL": "C.UTF-8"})
    assert r.returncode == 0 and _echo(r.stdout) == echo, r.stderr


@pytest.mark.parametrize(
    ("path", "code", "message"),
    [
        ("/status/404", 0, b""),
        ("/status/503", EXIT_SERVER_ERROR, b"server answered 503"),
        ("/title", EXIT_SERVER_ERROR, b"server answered 503 \\x1B]0;PWNED\\x07\n"),
        ("/garbage", EXIT_BAD_RESPONSE, b"incomplete response head"),
        ("/silent", EXIT_BAD_RESPONSE, b"closed the connection without answering"),
    ],
)
def test_request_exit_codes(fake_uwsgi: FakeServers, path: str, code: int, message: bytes) -> None:
    r = run_cli("request", fake_uwsgi.unix, path)
    assert r.returncode == code, r.stderr
    assert message in r.stderr
    assert b"Traceback" not in r.stderr


def test_request_fail_exits_1_for_a_4xx_as_curl_f(fake_uwsgi: FakeServers) -> None:
    # A health check written for `curl -f` (a 404 is a failure) passed with `request`.
    r = run_cli("request", fake_uwsgi.unix, "/status/404", "--fail")
    assert r.returncode == EXIT_SERVER_ERROR and b"server answered 404" in r.stderr
    assert run_cli("request", fake_uwsgi.unix, "/status/404", "-f").returncode == 1
    assert run_cli("request", fake_uwsgi.unix, "/", "-f").returncode == 0


def test_request_timeout(fake_uwsgi: FakeServers) -> None:
    r = run_cli("request", fake_uwsgi.unix, "/hang", "--timeout", "0.5")
    assert r.returncode == EXIT_TIMEOUT
    assert b"within 0.5s" in r.stderr


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["request", "127.0.0.1:{port}"], EXIT_CONNECT, b"cannot connect to 127.0.0.1:"),
        (["request", "{missing}"], EXIT_CONNECT, b"No such file or directory"),
        (["request", "{sock}", "-H", "nocolon"], EXIT_USAGE, b"bad header"),
        (["request", "{sock}", "--var", "novalue"], EXIT_USAGE, b"bad var"),
        (
            ["request", "{sock}", "--modifier1", "100"],
            EXIT_USAGE,
            b"is a ping: use `uwsgiapp ping ",
        ),
        (["request", "{sock}", "-d", "@{missing}"], EXIT_USAGE, b"cannot read"),
        (["request", "host:http"], EXIT_USAGE, b"invalid port 'http'"),
        (["request"], EXIT_USAGE, b"required: SOCKET"),
        (["ping", "127.0.0.1:{port}"], EXIT_CONNECT, b"cannot connect"),
        (["ping", "{missing}"], EXIT_CONNECT, b"No such file"),
        (["ping", "{sock}", "--timeout", "-1"], EXIT_USAGE, b"bad --timeout -1"),
        (["ping", "http://localhost:8000/"], EXIT_USAGE, b"is a URL, not a socket address"),
        (["request", "https://example.com/x"], EXIT_USAGE, b"is a URL, not a socket address"),
        (["request", "fd://3"], EXIT_USAGE, b"is an inherited socket for 'serve'"),
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

        stats = b'{\n\t"version": "1"' + b" " * 10_000 + b"}"
        answers = [b"HTTP/1.1 400 Bad\r\n\r\n", b"", stats]
        t = threading.Thread(target=serve, args=(answers,))
        t.start()
        r = run_cli("ping", f"127.0.0.1:{port}")
        assert r.returncode == EXIT_BAD_RESPONSE
        assert b"expected pong 64 00 00 01" in r.stderr and b"48 54 54 50" in r.stderr
        assert b"an HTTP server's answer" in r.stderr
        r = run_cli("ping", f"127.0.0.1:{port}")
        assert r.returncode == EXIT_BAD_RESPONSE
        assert b"connection closed" in r.stderr
        # A stats server's document: its first bytes and what it is (it was 10 KB of hex).
        r = run_cli("ping", f"127.0.0.1:{port}")
        assert r.returncode == EXIT_BAD_RESPONSE and len(r.stderr) < 300, r.stderr
        assert b"a stats document" in r.stderr, r.stderr
        t.join(5)


# -- limits: an overall deadline and a response size cap, against hostile servers --------------


class _Hostile:
    """A server on a loopback TCP port and a unix socket that reads the request, then answers
    with ``behaviour``: ``flood`` (an endless body, as fast as the client reads) or ``trickle``
    (one byte every 50 ms, forever). Every thread ends when the test does."""

    def __init__(self, tmp_path: Path, behaviour: str) -> None:
        self.behaviour = behaviour
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []
        self.tcp_listener = socket.create_server(("127.0.0.1", 0))
        self.unix_path = str(tmp_path / f"{behaviour}.sock")
        self.unix_listener = socket.socket(socket.AF_UNIX)
        self.unix_listener.bind(self.unix_path)
        self.unix_listener.listen()
        self.tcp = f"127.0.0.1:{self.tcp_listener.getsockname()[1]}"
        for listener in (self.tcp_listener, self.unix_listener):
            listener.settimeout(0.05)
            self._start(self._accept_loop, listener)

    def _start(self, target: Any, *args: Any) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _accept_loop(self, listener: socket.socket) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self._start(self._answer, conn)

    def _answer(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(65536)  # the whole request packet (small, no body)
                if self.behaviour == "flood":
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\n\r\n")
                    chunk = b"x" * 65536
                    while not self.stop.is_set():
                        conn.sendall(chunk)
                else:
                    for byte in b"HTTP/1.1 200 OK\r\n\r\n" + b"y" * 10_000_000:
                        if self.stop.wait(0.05):
                            return
                        conn.sendall(bytes([byte]))
            except OSError:
                return  # the client gave up and closed: what the tests expect

    def close(self) -> None:
        self.stop.set()
        for listener in (self.tcp_listener, self.unix_listener):
            listener.close()
        for thread in self.threads:
            thread.join(10)
        assert not any(thread.is_alive() for thread in self.threads)


@pytest.fixture
def flood(tmp_path: Path) -> Iterator[_Hostile]:
    server = _Hostile(tmp_path, "flood")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def trickle(tmp_path: Path) -> Iterator[_Hostile]:
    server = _Hostile(tmp_path, "trickle")
    try:
        yield server
    finally:
        server.close()


@pytest.mark.parametrize("which", ["unix_path", "tcp"])
def test_request_gives_up_on_an_endless_response(flood: _Hostile, which: str) -> None:
    r = run_cli("request", getattr(flood, which), "/", "--max-response-size", "1M", timeout=60)
    assert r.returncode == EXIT_TOO_LARGE, r.stderr
    # The body is streamed out as it comes: what came before the cap was printed, no more.
    assert set(r.stdout) <= {ord("x")} and len(r.stdout) <= 1024 * 1024
    message = r.stderr.decode()
    assert message.startswith("uwsgiapp request: error: the response from ")
    assert "is larger than 1 MiB (stopped reading after 1048577 bytes)" in message
    assert "--max-response-size" in message
    assert message.count("\n") == 1 and "Traceback" not in message


def test_request_caps_responses_by_default(flood: _Hostile) -> None:
    r = run_cli("request", flood.unix_path, "/", timeout=60)
    assert r.returncode == EXIT_TOO_LARGE, r.stderr
    assert b"is larger than 64 MiB" in r.stderr
    assert DEFAULT_MAX_RESPONSE_SIZE == 64 * 1024 * 1024


@pytest.mark.parametrize("which", ["unix_path", "tcp"])
def test_request_deadline_is_overall_not_per_byte(trickle: _Hostile, which: str) -> None:
    start = time.monotonic()
    r = run_cli("request", getattr(trickle, which), "/", "--max-time", "1", timeout=60)
    elapsed = time.monotonic() - start
    assert r.returncode == EXIT_TIMEOUT, r.stderr
    message = r.stderr.decode()
    assert "no complete answer from " in message and "within 1s (" in message, message
    assert "bytes received)" in message and "--max-time" in message
    assert message.count("\n") == 1 and "Traceback" not in message
    # Interpreter start-up is most of this; bytes kept arriving every 50 ms the whole time.
    assert elapsed < 15, elapsed


def test_timeout_is_the_same_deadline(trickle: _Hostile) -> None:
    r = run_cli("request", trickle.tcp, "--timeout", "0.5", timeout=60)
    assert r.returncode == EXIT_TIMEOUT, r.stderr
    assert b"within 0.5s" in r.stderr


def test_exchange_deadline_and_cap_in_process(flood: _Hostile, trickle: _Hostile) -> None:
    """The library bounds time and memory too, for any caller (not only the command)."""
    packet = uwsgiproto.build_request(build_vars("/"))
    start = time.monotonic()
    with pytest.raises(ResponseTimeout, match=r"within 0.3s \(\d+ bytes received\)"):
        exchange(parse_address(trickle.tcp), packet, timeout=0.3)
    assert time.monotonic() - start < 3
    with pytest.raises(ResponseTooLarge) as info:
        exchange(parse_address(flood.unix_path), packet, max_size=100_000)
    assert info.value.limit == 100_000
    assert "stopped reading after 100001 bytes" in str(info.value)
    # ``limit`` (what a ping reads) still stops reading early, before any cap.
    assert 4 <= len(exchange(parse_address(flood.tcp), packet, limit=4)) <= 65536


def test_request_deadline_covers_a_server_that_never_reads(tmp_path: Path) -> None:
    """A big body to a server that accepts and never reads: sending is bounded as well."""
    path = str(tmp_path / "deaf.sock")
    with socket.socket(socket.AF_UNIX) as listener:
        listener.bind(path)
        listener.listen()
        body = tmp_path / "body"
        body.write_bytes(b"z" * 50_000_000)
        start = time.monotonic()
        r = run_cli("request", path, "-d", f"@{body}", "-m", "1", timeout=60)
        assert r.returncode == EXIT_TIMEOUT, r.stderr
        assert time.monotonic() - start < 20


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--max-response-size", "0"], b"bad size '0'"),
        (["--max-response-size", "lots"], b"bad size 'lots'"),
        (["--max-time", "0"], b"bad --max-time 0"),
        (["--max-time", "nan"], b"bad --max-time nan"),
        (["-m", "inf"], b"bad --max-time inf"),
    ],
)
def test_request_limit_options_are_checked(
    fake_uwsgi: FakeServers, args: list[str], message: bytes
) -> None:
    r = run_cli("request", fake_uwsgi.unix, "/", *args)
    assert r.returncode == EXIT_USAGE, r.stderr
    assert message in r.stderr and b"Traceback" not in r.stderr


def test_request_limits_allow_a_normal_answer(fake_uwsgi: FakeServers) -> None:
    r = run_cli("request", fake_uwsgi.tcp, "/ok", "--max-filesize", "64k", "-m", "20")
    assert r.returncode == 0, r.stderr
    assert _echo(r.stdout)["vars"]["PATH_INFO"] == "/ok"


@pytest.mark.parametrize(
    ("text", "size"),
    [("1", 1), ("512K", 512 * 1024), ("64m", 64 << 20), ("64MiB", 64 << 20), ("1G", 1 << 30)],
)
def test_parse_size(text: str, size: int) -> None:
    assert parse_size(text) == size


@pytest.mark.parametrize("text", ["", "0", "-1", "1.5M", "1T", "M", "lots"])
def test_parse_size_refuses(text: str) -> None:
    with pytest.raises(ValueError, match="bad size"):
        parse_size(text)


# -- streaming: the body goes out as it arrives; a closed pipe ends quietly --------------------


class _Held:
    """A unix socket server that answers with a head and a first part of the body, then holds
    the connection until ``release`` is set, then sends the rest and closes."""

    def __init__(self, path: str, first: bytes, rest: bytes, head: bytes) -> None:
        self.release = threading.Event()
        self.listener = socket.socket(socket.AF_UNIX)
        self.listener.bind(path)
        self.listener.listen()
        self.thread = threading.Thread(target=self._serve, args=(head, first, rest), daemon=True)
        self.thread.start()

    def _serve(self, head: bytes, first: bytes, rest: bytes) -> None:
        conn, _ = self.listener.accept()
        with conn:
            conn.recv(65536)
            conn.sendall(head + first)
            if self.release.wait(60):
                with contextlib.suppress(OSError):
                    conn.sendall(rest)

    def close(self) -> None:
        self.release.set()
        self.thread.join(10)
        self.listener.close()


def _cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "uwsgiapp", *args]


def _cli_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}


def _read_until(stream: Any, want: bytes, deadline: float) -> bytes:
    """Read a pipe until ``want`` has come (or fail at ``deadline``), without blocking past it."""
    got = b""
    end = time.monotonic() + deadline
    while want not in got:
        left = end - time.monotonic()
        assert left > 0, f"only {got!r} within {deadline}s"
        ready, _, _ = select.select([stream], [], [], left)
        if ready:
            chunk = os.read(stream.fileno(), 65536)
            assert chunk, f"closed after {got!r}"
            got += chunk
    return got


def test_request_streams_the_body_as_it_arrives(tmp_path: Path) -> None:
    path = str(tmp_path / "held.sock")
    server = _Held(path, b"first part\n", b"second part\n", b"HTTP/1.1 200 OK\r\n\r\n")
    try:
        proc = subprocess.Popen(
            _cli_command("request", path, "/", "-i"),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=_cli_env(),
        )
        try:
            # The server still holds the connection open: only streaming can show this now.
            got = _read_until(proc.stdout, b"first part\n", 30)
            assert got == b"HTTP/1.1 200 OK\r\n\r\nfirst part\n"
            server.release.set()
            out, err = proc.communicate(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert (proc.returncode, got + out, err) == (
            0,
            b"HTTP/1.1 200 OK\r\n\r\nfirst part\nsecond part\n",
            b"",
        )
    finally:
        server.close()


def test_request_refuses_a_content_length_over_the_cap_before_the_body(tmp_path: Path) -> None:
    path = str(tmp_path / "big.sock")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5000000\r\n\r\n"
    server = _Held(path, b"y" * 1000, b"", head)
    try:
        r = run_cli("request", path, "/", "--max-response-size", "1M")
    finally:
        server.close()
    assert r.returncode == EXIT_TOO_LARGE, r.stderr
    assert r.stdout == b""  # nothing of a body known to be too large
    assert b"is larger than 1 MiB (Content-Length: 5000000)" in r.stderr


def test_request_truncated_body_is_an_error_after_what_came(tmp_path: Path) -> None:
    path = str(tmp_path / "short.sock")
    server = _Held(path, b"only this", b"", b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n")
    server.release.set()
    try:
        r = run_cli("request", path, "/")
    finally:
        server.close()
    assert (r.returncode, r.stdout) == (EXIT_BAD_RESPONSE, b"only this")
    assert b"truncated body: got 9 of 100 bytes" in r.stderr


@pytest.mark.parametrize(
    ("method", "status", "length"),
    [
        ("HEAD", "200 OK", 200 * 1024 * 1024),  # the GET's length, over the default cap
        ("HEAD", "200 OK", 5),
        ("GET", "304 Not Modified", 200 * 1024 * 1024),
        ("GET", "204 No Content", 5),
    ],
)
def test_request_reads_no_body_where_http_has_none(
    tmp_path: Path, method: str, status: str, length: int
) -> None:
    """As nginx: the head alone, not the body the server sends after it (nor waiting for it),
    and no size cap from a Content-Length that is not this answer's."""
    path = str(tmp_path / "head.sock")
    head = f"HTTP/1.1 {status}\r\nContent-Length: {length}\r\n\r\n".encode()
    server = _Held(path, b"hello", b"more body", head)
    try:
        r = run_cli("request", "-X", method, "-i", path, "/big")
    finally:
        server.close()
    assert (r.returncode, r.stdout, r.stderr) == (0, head, b"")


def test_head_in_process(tmp_path: Path) -> None:
    path = str(tmp_path / "head.sock")
    head = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n"
    server = _Held(path, b"hello", b"", head)
    try:
        response = request(parse_address(path), method="HEAD")
    finally:
        server.close()
    assert (response.head, response.body) == (head, b"")


@pytest.mark.parametrize(
    ("answer", "body"),
    [
        (b"HTTP/1.1 200 OK\r\n\r\n", b"first-chunk"),  # no length: only the reset shows
        (b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n", b"first-chunk"),
        (b"HTTP/1.1 200 OK\r\n", b""),  # within the head
    ],
)
def test_request_reset_is_a_truncated_answer(answer: bytes, body: bytes) -> None:
    server = _Once(answer + body, reset=True)
    try:
        r = run_cli("request", server.address, "/raise")
    finally:
        server.close()
    assert (r.returncode, r.stdout) == (EXIT_BAD_RESPONSE, body), r.stderr
    said = f"uwsgiapp request: error: connection reset after {len(answer + body)} bytes\n"
    assert r.stderr == said.encode()


def test_request_reset_after_the_whole_body_is_no_error() -> None:
    """A server that answers without reading the whole request resets as it closes; a body
    that has all come (its Content-Length) is whole nonetheless."""
    server = _Once(b"HTTP/1.1 401 No\r\nContent-Length: 5\r\n\r\nnope!", reset=True)
    try:
        r = run_cli("request", server.address, "/", "-d", "a=1")
    finally:
        server.close()
    assert (r.returncode, r.stdout, r.stderr) == (0, b"nope!", b"")


def test_reset_in_process() -> None:
    server = _Once(b"HTTP/1.1 200 OK\r\n\r\nabc", reset=True)
    packet = uwsgiproto.build_request(build_vars("/"))
    try:
        with pytest.raises(ResponseCut, match="connection reset after 22 bytes") as info:
            exchange(parse_address(server.address), packet)
    finally:
        server.close()
    assert info.value.received == 22


@pytest.mark.parametrize("which", ["unix_path", "tcp"])
def test_request_into_head_ends_quietly(flood: _Hostile, which: str) -> None:
    """``uwsgiapp request ... | head -c 100``: head stops reading after 100 bytes; the command
    ends without a BrokenPipeError traceback, with the write-error status."""
    address = getattr(flood, which)
    script = (
        f"{shlex.join(_cli_command('request', address, '/'))} | head -c 100; "
        'echo "status=${PIPESTATUS[0]}" >&2'
    )
    r = subprocess.run(
        ["bash", "-c", script], capture_output=True, env=_cli_env(), timeout=60, check=False
    )
    assert r.stdout == b"x" * 100
    assert r.stderr == f"status={EXIT_WRITE}\n".encode()


def test_request_output_errors_are_one_line(fake_uwsgi: FakeServers) -> None:
    """A full disk (here /dev/full) is said in one line, with the write-error status."""
    with open("/dev/full", "wb") as full:
        r = subprocess.run(
            _cli_command("request", fake_uwsgi.unix, "/"),
            stdout=full,
            stderr=subprocess.PIPE,
            env=_cli_env(),
            timeout=30,
            check=False,
        )
    assert r.returncode == EXIT_WRITE
    assert (
        r.stderr == b"uwsgiapp request: error: cannot write the response: No space left on device\n"
    )


def test_stream_request_in_process(fake_uwsgi: FakeServers) -> None:
    address = parse_address(fake_uwsgi.tcp)
    with stream_request(address, "/s?a=1") as stream:
        assert stream.response.status == 200 and stream.response.body == b""
        body = b"".join(stream)
    assert _echo(body)["vars"]["QUERY_STRING"] == "a=1"
    whole = request(address, "/s?a=1")
    assert whole.body == body and whole.head == stream.response.head


def test_request_sends_the_bytes_typed_under_a_latin1_locale(
    fake_uwsgi: FakeServers, tmp_path: Path
) -> None:
    # Under an ISO-8859-1 locale, é typed is one byte: it went out as UTF-8's two.
    locales = tmp_path / "locales"
    locales.mkdir()
    made = subprocess.run(
        ["localedef", "-i", "en_US", "-f", "ISO-8859-1", str(locales / "en_US.ISO-8859-1")],
        capture_output=True,
        check=False,
    )
    if made.returncode not in (0, 1) or not (locales / "en_US.ISO-8859-1").exists():
        pytest.skip(f"cannot make an ISO-8859-1 locale here: {made.stderr!r}")
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("UWSGIAPP_", "LC_"))},
        "LOCPATH": str(locales),
        "LC_ALL": "en_US.ISO-8859-1",
        "PYTHONUTF8": "0",
        "PYTHONCOERCECLOCALE": "0",
    }
    args = [b"/caf\xe9", b"-H", b"X-Name: Jos\xe9", b"--var", b"X_RAW=\xe9", b"-d", b"n\xe9"]
    argv = [sys.executable.encode(), b"-m", b"uwsgiapp", b"request", fake_uwsgi.unix.encode()]
    r = subprocess.run(argv + args, env=env, capture_output=True, timeout=30, check=False)
    assert r.returncode == 0, r.stderr
    echo = _echo(r.stdout)
    v = echo["vars"]
    assert (v["PATH_INFO"], v["REQUEST_URI"]) == ("/caf\xe9", "/caf%E9")
    assert (v["HTTP_X_NAME"], v["X_RAW"], echo["body"]) == ("Jos\xe9", "\xe9", "n\xe9")


class _Once:
    """A server on loopback TCP or a unix socket that reads the first bytes of one request,
    sends ``answer`` at once and closes without reading the rest (as an early 413 does);
    ``reset``: the close resets the connection."""

    def __init__(self, answer: bytes, path: str | None = None, *, reset: bool = False) -> None:
        self.listener = socket.socket(socket.AF_UNIX if path else socket.AF_INET)
        self.listener.bind(path or ("127.0.0.1", 0))
        self.listener.listen()
        self.address = path or f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, args=(answer, reset), daemon=True)
        self.thread.start()

    def _serve(self, answer: bytes, reset: bool) -> None:
        self.listener.settimeout(30)
        conn, _ = self.listener.accept()
        with conn:
            conn.settimeout(5)
            conn.recv(4096)
            conn.sendall(answer)
            if reset:  # SO_LINGER 0: the close resets the connection
                conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))

    def close(self) -> None:
        self.thread.join(10)
        self.listener.close()


@pytest.mark.parametrize("family", ["tcp", "unix"])
def test_request_shows_an_answer_sent_before_the_upload_ended(tmp_path: Path, family: str) -> None:
    """The server answered 413 and closed while the body was being sent: the send failed
    (EPIPE, or a reset), and the answer that had come was thrown away ("Broken pipe", exit 4)."""
    answer = b"HTTP/1.1 413 Too Large\r\nContent-Length: 4\r\n\r\nbig!"
    server = _Once(answer, str(tmp_path / "s.sock") if family == "unix" else None)
    upload = tmp_path / "big.bin"
    upload.write_bytes(b"x" * (16 * 1024 * 1024))
    try:
        r = run_cli("request", server.address, "/upload", "-d", f"@{upload}", "-i")
    finally:
        server.close()
    assert (r.returncode, r.stdout, r.stderr) == (0, answer, b"")
    (tmp_path / "s.sock").unlink(missing_ok=True)
    server = _Once(b"", str(tmp_path / "s.sock") if family == "unix" else None)
    try:  # closed with no answer: the failed send is the error
        r = run_cli("request", server.address, "/upload", "-d", f"@{upload}")
    finally:
        server.close()
    assert r.returncode == EXIT_BAD_RESPONSE, r.stderr
    assert re.search(rb"connection to \S+ failed: .*(Broken pipe|reset)", r.stderr), r.stderr


@pytest.mark.parametrize(
    ("answer", "said"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: \xb2\r\n\r\nab", b"invalid Content-Length"),
        (b"HTTP/1.1 \xb200 OK\r\n\r\nab", b"not an HTTP status line"),
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nab",
         b"conflicting Content-Length headers (2, 3)"),
    ],
)  # fmt: skip
def test_request_garbage_in_the_head_is_a_bad_response(answer: bytes, said: bytes) -> None:
    """A traceback and exit 1 (which says: the server answered 5xx) before."""
    server = _Once(answer)
    try:
        r = run_cli("request", server.address, "/")
    finally:
        server.close()
    assert r.returncode == EXIT_BAD_RESPONSE, r.stderr
    assert said in r.stderr and b"Traceback" not in r.stderr, r.stderr


def test_request_writes_the_body_up_to_its_content_length() -> None:
    server = _Once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokEXTRA")
    try:
        r = run_cli("request", server.address, "/")
    finally:
        server.close()
    assert (r.returncode, r.stdout) == (0, b"ok"), r.stderr
    said = b"warning: 5 bytes came after the body's Content-Length: not written"
    assert said in r.stderr


def test_ping_reads_the_pong_only() -> None:
    """Bytes after the pong were read with it and took it for another answer."""
    server = _Once(uwsgiproto.build_pong() + b"EXTRA")
    try:
        r = run_cli("ping", server.address)
    finally:
        server.close()
    assert (r.returncode, r.stdout[:10]) == (0, b"pong from "), r.stderr


@pytest.mark.parametrize("name", ["X-\u00dc", "X-\u00df", "X A", "X:"])
def test_header_names_are_http_tokens(fake_uwsgi: FakeServers, name: str) -> None:
    """'X-Ü' went out as latin-1 beside its UTF-8 value, 'X-ß' as HTTP_X_SS."""
    with pytest.raises(ClientError, match="bad header name"):
        build_vars("/", headers=[(name, "1")])
    if ":" not in name:
        r = run_cli("request", fake_uwsgi.unix, "/", "-H", f"{name}: 1")
        assert r.returncode == EXIT_USAGE and b"bad header name" in r.stderr, r.stderr


def test_connect_tries_each_address_of_the_name(monkeypatch: pytest.MonkeyPatch) -> None:
    """A name whose first address has no server (localhost as ::1 first, the server on
    127.0.0.1 only) was refused."""
    server = _Once(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    port = int(server.address.rpartition(":")[2])
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))  # bound, never listening: refused
        dead = unused.getsockname()
        infos = [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", dead),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
        ]
        monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: infos)
        try:
            response = request(Address(host="localhost", port=port))
        finally:
            server.close()
    assert (response.status, response.body) == (200, b"ok")
