"""One socket-address grammar for ``serve --socket`` and ``request`` / ``ping``: the parser's
table, what each side makes of it, and a real ``serve --socket unix:PATH``."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from uwsgiapp import client
from uwsgiapp.addresses import AddressError, AllowList, SocketAddress, parse_address
from uwsgiapp.server.listeners import ListenerError, bind


@pytest.mark.parametrize(
    ("text", "expected", "shown"),
    [
        ("/run/app.sock", SocketAddress(path="/run/app.sock"), "/run/app.sock"),
        ("app.sock", SocketAddress(path="app.sock"), "app.sock"),
        ("./a:b.sock", SocketAddress(path="./a:b.sock"), "./a:b.sock"),
        ("unix:/run/a:b.sock", SocketAddress(path="/run/a:b.sock"), "/run/a:b.sock"),
        ("unix:rel.sock", SocketAddress(path="rel.sock"), "rel.sock"),
        ("@name", SocketAddress(path="\0name"), "@name"),
        ("127.0.0.1:3031", SocketAddress(host="127.0.0.1", port=3031), "127.0.0.1:3031"),
        ("localhost:0", SocketAddress(host="localhost", port=0), "localhost:0"),
        (":3031", SocketAddress(host="", port=3031), ":3031"),
        ("[::1]:3031", SocketAddress(host="::1", port=3031), "[::1]:3031"),
        ("::1:3031", SocketAddress(host="::1", port=3031), "[::1]:3031"),
        ("fd://3", SocketAddress(fd=3), "fd://3"),
        ("  /spaced.sock ", SocketAddress(path="/spaced.sock"), "/spaced.sock"),
    ],
)
def test_parse_address_table(text: str, expected: SocketAddress, shown: str) -> None:
    address = parse_address(text)
    assert address == expected
    assert str(address) == shown
    kinds = (address.is_unix, address.is_tcp, address.is_fd)
    assert sum(kinds) == 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty socket address"),
        ("   ", "empty socket address"),
        ("unix:", "empty unix socket path"),
        ("@", "empty abstract socket name"),
        ("host:http", "invalid port 'http'"),
        ("host:65536", "invalid port '65536'"),
        ("host:-1", "invalid port '-1'"),
        ("[::1]3031", "expected [ipv6]:port"),
        ("[]:3031", "expected [ipv6]:port"),
        ("fd://x", "expected fd://N"),
        ("http://localhost:8000/", "is a URL, not a socket address"),
        ("https://example.com", "is a URL, not a socket address"),
        ("uwsgi://127.0.0.1:3031", "is a URL, not a socket address"),
    ],
)
def test_parse_address_refuses(text: str, message: str) -> None:
    with pytest.raises(AddressError, match=message.replace("[", r"\[")) as info:
        parse_address(text)
    assert isinstance(info.value, ValueError)
    if "URL" in message:
        assert "host:port" in str(info.value) and "uwsgi_pass" in str(info.value)


def test_each_side_reads_the_same_grammar() -> None:
    """The client connects to loopback for ``:PORT`` and refuses what only a server can use."""
    assert client.parse_address(":3031") == SocketAddress(host="127.0.0.1", port=3031)
    assert client.parse_address("unix:/x") == parse_address("/x")
    assert client.parse_address("@n") == parse_address("@n")
    with pytest.raises(ValueError, match="port 0"):
        client.parse_address("host:0")
    with pytest.raises(ValueError, match="for 'serve'"):
        client.parse_address("fd://3")


@pytest.fixture
def short_dir() -> Iterator[Path]:
    """A short directory (unix socket paths are limited to ~108 bytes)."""
    path = Path(tempfile.mkdtemp(prefix="uwa-addr-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


def test_server_binds_the_shared_grammar(short_dir: Path) -> None:
    allow = AllowList.parse(["127.0.0.1"])
    path = short_dir / "a:b.sock"
    listener = bind(f"unix:{path}", backlog=8, chmod=0o600, allow=allow)
    try:
        assert listener.path == str(path) and listener.allow is None
        assert os.stat(path).st_mode & 0o777 == 0o600
    finally:
        listener.close()
    assert not path.exists()
    listener = bind("127.0.0.1:0", backlog=8, chmod=0o600, allow=allow)
    try:
        assert listener.is_tcp and listener.allow is allow
    finally:
        listener.close()
    for spec, message in [
        ("http://localhost:8000", "is a URL"),
        ("@abstract", "abstract unix sockets"),
        ("host:99999", "invalid port"),
    ]:
        with pytest.raises(ListenerError, match=message):
            bind(spec, backlog=8, chmod=0o600, allow=allow)


APP = """\
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"served on " + environ["PATH_INFO"].encode()]
"""


def _cli(*args: str, cwd: Path, timeout: float = 30) -> subprocess.CompletedProcess[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}
    return subprocess.run(
        [sys.executable, "-m", "uwsgiapp", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def test_serve_socket_unix_prefix(short_dir: Path) -> None:
    """``serve --socket unix:PATH`` listens on PATH; ``request unix:PATH`` reaches it."""
    (short_dir / "addrapp.py").write_text(APP)
    sock = short_dir / "app.sock"
    env = {k: v for k, v in os.environ.items() if not k.startswith("UWSGIAPP_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "uwsgiapp", "serve", "addrapp:app", "--socket", f"unix:{sock}",
         "--workers", "1"],
        cwd=short_dir,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        end = time.monotonic() + 60
        while _cli("ping", "-q", "--timeout", "1", f"unix:{sock}", cwd=short_dir).returncode:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else b""
            assert time.monotonic() < end, "no pong within 60 s"
            time.sleep(0.1)
        r = _cli("request", f"unix:{sock}", "/x", cwd=short_dir)
        assert (r.returncode, r.stdout) == (0, b"served on /x"), r.stderr
        r = _cli("request", str(sock), "/y", cwd=short_dir)
        assert r.stdout == b"served on /y"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(10)
            if proc.stdout:
                proc.stdout.close()
    assert proc.returncode == 0
    assert not sock.exists()  # the file the server made is removed at stop


def test_serve_refuses_a_url_socket(short_dir: Path) -> None:
    (short_dir / "addrapp.py").write_text(APP)
    r = _cli("serve", "addrapp:app", "--socket", "http://127.0.0.1:8000", cwd=short_dir)
    assert r.returncode != 0
    out = r.stdout + r.stderr
    assert b"is a URL, not a socket address" in out and b"Traceback" not in out
