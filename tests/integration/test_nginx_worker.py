"""The worker through a real nginx (``uwsgi_pass`` on a unix socket), validator on every request."""

from __future__ import annotations

import hashlib
import http.client
import json
import socket
import subprocess
import sys

import pytest
from support.procs import Nginx, Server

import uwsgiproto

pytestmark = pytest.mark.nginx

Stack = tuple[Server, Nginx]


def _json(body: bytes) -> dict[str, object]:
    return json.loads(body)  # type: ignore[no-any-return]


def test_get_with_query_string(worker_stack: Stack) -> None:
    _, nginx = worker_stack
    status, _, body = nginx.request("GET", "/echo/a?x=1&y=%20z")
    assert status == 200
    info = _json(body)
    assert info["path"] == "/echo/a"
    assert info["query"] == "x=1&y=%20z"
    assert info["script_name"] == ""
    assert info["method"] == "GET"
    assert info["scheme"] == "http"


@pytest.mark.parametrize("prefix", ["/sub-rewrite", "/sub-strip"])
def test_a_prefix_nginx_names_in_script_name(worker_stack: Stack, prefix: str) -> None:
    # `rewrite` + `uwsgi_param SCRIPT_NAME` (modifier1 0), or SCRIPT_NAME + modifier1 30.
    _, nginx = worker_stack
    status, _, body = nginx.request("GET", f"{prefix}/echo/a?x=1")
    assert status == 200
    info = _json(body)
    assert (info["script_name"], info["path"]) == (prefix, "/echo/a")


def test_a_param_given_again_after_the_include_replaces_it(worker_stack: Stack) -> None:
    # The uWSGI habit: `include uwsgi_params;` then `uwsgi_param HTTP_HOST $http_host;` (the
    # port kept), `REMOTE_ADDR $http_x_real_ip`, `REQUEST_SCHEME https`: nginx sends both.
    _, nginx = worker_stack
    status, _, body = nginx.request(
        "GET",
        "/override/echo",
        headers={"Host": "shop.example.com:8443", "X-Real-IP": "203.0.113.7"},
    )
    assert status == 200
    info = _json(body)
    headers = info["headers"]
    assert isinstance(headers, dict)
    assert headers["HTTP_HOST"] == "shop.example.com:8443"
    assert (info["remote_addr"], info["scheme"]) == ("203.0.113.7", "https")


def test_a_chunked_upload_arrives_with_its_length_and_no_transfer_encoding(
    worker_stack: Stack,
) -> None:
    # nginx de-chunks it for uwsgi_pass and sets CONTENT_LENGTH, yet passes the client's
    # Transfer-Encoding on: werkzeug's request.content_length would then be None.
    _, nginx = worker_stack
    payload = b"0123456789" * 1000
    conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=30)
    try:
        conn.request("POST", "/echo", body=iter([payload[:4000], payload[4000:]]))
        response = conn.getresponse()
        status, body = response.status, response.read()
    finally:
        conn.close()
    assert status == 200
    info = _json(body)
    assert (info["content_length"], info["body_len"]) == ("10000", 10000)
    headers = info["headers"]
    assert isinstance(headers, dict) and "HTTP_TRANSFER_ENCODING" not in headers


def test_unicode_path_reaches_app_as_latin1_of_utf8(worker_stack: Stack) -> None:
    _, nginx = worker_stack
    status, _, body = nginx.request("GET", "/echo/caf%C3%A9/%E2%82%AC")
    assert status == 200
    path = str(_json(body)["path"])
    # PEP 3333: the decoded bytes as latin-1 code points.
    assert path.encode("latin-1").decode("utf-8") == "/echo/café/€"


@pytest.mark.parametrize("size", [0, 1, 65535, 65536 + 7, 1024 * 1024, 10 * 1024 * 1024])
@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_bodies_up_to_10mb(worker_stack: Stack, method: str, size: int) -> None:
    _, nginx = worker_stack
    payload = bytes(range(256)) * (size // 256) + b"z" * (size % 256)
    status, _, body = nginx.request(
        method, "/echo", body=payload, headers={"Content-Type": "application/x-test"}
    )
    assert status == 200
    info = _json(body)
    assert info["body_len"] == size
    assert info["body_sha256"] == hashlib.sha256(payload).hexdigest()
    assert info["content_type"] == "application/x-test"
    headers = info["headers"]
    assert isinstance(headers, dict)
    assert "HTTP_CONTENT_LENGTH" not in headers and "HTTP_CONTENT_TYPE" not in headers


def test_readline_and_iteration_over_body(worker_stack: Stack) -> None:
    _, nginx = worker_stack
    status, _, body = nginx.request("POST", "/lines", body=b"first\nsecond\nthird\nfourth")
    assert status == 200
    assert json.loads(body) == ["first\n", "sec", ["ond\n", "third\n", "fourth"]]


def test_repeated_headers_and_cookies(worker_stack: Stack) -> None:
    _, nginx = worker_stack
    conn_headers = [("X-Multi", "a"), ("X-Multi", "b"), ("Cookie", "c1=1"), ("Cookie", "c2=2")]
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", nginx.port, timeout=10)
    conn.putrequest("GET", "/echo")
    for name, value in conn_headers:
        conn.putheader(name, value)
    conn.endheaders()
    resp = conn.getresponse()
    info = _json(resp.read())
    conn.close()
    headers = info["headers"]
    assert isinstance(headers, dict)
    assert headers["HTTP_X_MULTI"] == "a, b"
    assert headers["HTTP_COOKIE"] == "c1=1; c2=2"


def test_large_streamed_response(worker_stack: Stack) -> None:
    _, nginx = worker_stack
    status, _headers, body = nginx.request("GET", "/stream?10")
    assert status == 200
    assert len(body) == 10 * 1024 * 1024
    assert body == (b"x" * 1023 + b"\n") * 10 * 1024
    assert "chunk" not in body[:100].decode()


def test_write_callable(worker_stack: Stack) -> None:
    _, nginx = worker_stack
    assert nginx.request("GET", "/write")[2] == b"written-returned"


def test_file_wrapper_sends_whole_file(worker_stack: Stack) -> None:
    _, nginx = worker_stack
    status, headers, body = nginx.request("GET", "/file")
    assert status == 200
    assert body == bytes(range(256)) * 4096 * 3
    assert headers["Content-Length"] == str(len(body))


def test_head_request(worker_stack: Stack) -> None:
    _, nginx = worker_stack
    status, _, body = nginx.request("HEAD", "/")
    assert status == 200
    assert body == b""


def test_an_http_09_request_gets_the_body(worker_stack: Stack) -> None:
    # "GET /write" alone is HTTP/0.9: nginx 1.22 passes it on (SERVER_PROTOCOL "") and sends
    # the client the body without a head; the head it read was " 200 OK" and it answered 502.
    _, nginx = worker_stack
    with socket.create_connection(("127.0.0.1", nginx.port), timeout=10) as client:
        client.sendall(b"GET /write\r\n")
        answer = b"".join(iter(lambda: client.recv(65536), b""))
    assert answer == b"written-returned"
    assert nginx.upstream_errors() == []


@pytest.mark.parametrize("code", [204, 304])
def test_bodyless_statuses(worker_stack: Stack, code: int) -> None:
    _, nginx = worker_stack
    status, _, body = nginx.request("GET", f"/status/{code}")
    assert (status, body) == (code, b"")


def test_app_exception_is_500_and_logged(worker_stack: Stack) -> None:
    server, nginx = worker_stack
    status, _, body = nginx.request("GET", "/boom")
    assert status == 500
    assert b"Internal Server Error" in body
    assert "RuntimeError: boom from the app" in server.log()
    # The worker lives on.
    assert nginx.request("GET", "/")[2] == b"Hello World!"


def test_an_app_exception_quoting_the_request_cannot_forge_log_lines(worker_stack: Stack) -> None:
    # nginx decodes %0D%0A into PATH_INFO; the app's exception text carries it into the log.
    server, nginx = worker_stack
    forged = "2026-01-01 00:00:00,000 [1] [ERROR] forged"
    status, _, _ = nginx.request("GET", "/boom/x%0D%0A" + forged.replace(" ", "%20") + "%1B[31m")
    assert status == 500
    log = server.log()
    assert "RuntimeError: boom from the app: /boom/x\\x0D\\x0A" + forged + "\\x1B[31m" in log
    assert not any(line.startswith(forged) for line in log.splitlines())
    assert "\x1b" not in log


def test_early_401_without_reading_large_body_never_502(worker_stack: Stack) -> None:
    """uWSGI answers 502 here (it closes with unread data: a reset). 0 failures in 200 tries."""
    _, nginx = worker_stack
    payload = b"p" * (900 * 1024)
    failures = []
    for i in range(200):
        status, _, body = nginx.request("POST", "/reject", body=payload)
        if (status, body) != (401, b"no"):
            failures.append((i, status, body[:80]))
    assert failures == []
    assert not [line for line in nginx.upstream_errors() if "reset" in line]


def test_uwsgi_magic_vars_ignored(worker_stack: Stack) -> None:
    server, _ = worker_stack
    packet = uwsgiproto.build_request(
        {
            "REQUEST_METHOD": "GET",
            "PATH_INFO": "/echo",
            "QUERY_STRING": "",
            "SERVER_NAME": "x",
            "SERVER_PORT": "80",
            "SERVER_PROTOCOL": "HTTP/1.1",
            "UWSGI_SCRIPT": "os:system",
            "UWSGI_CHDIR": "/",
        }
    )
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(server.socket)
        s.sendall(packet)
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK")
    assert _json(body)["has_uwsgi_magic"] is False


def test_ping_with_the_cli(worker_stack: Stack) -> None:
    server, _ = worker_stack
    result = subprocess.run(
        [sys.executable, "-m", "uwsgiapp", "ping", server.socket, "--timeout", "5"],
        capture_output=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr


def test_malformed_packet_logged_one_line_worker_lives(worker_stack: Stack) -> None:
    server, nginx = worker_stack
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(10)
        s.connect(server.socket)
        s.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert s.recv(100) == b""  # closed without an answer
    assert nginx.request("GET", "/")[2] == b"Hello World!"
    lines = [line for line in server.log().splitlines() if "invalid uwsgi packet" in line]
    assert lines and "looks like HTTP" in lines[-1]
    assert "Traceback" not in server.log().split("invalid uwsgi packet")[-1]
