"""Handler on a socketpair, reading the request: GET, nginx captures, heads in pieces,
modifier 30 and --mount, ping, malformed packets, and what a hostile uwsgi client can send.

Helpers (the socketpair client, outcomes, apps) are in handler_kit.py.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest
from handler_kit import (
    CORPUS,
    PONG,
    Environ,
    Logs,
    StartResponse,
    echo,
    hello,
    make_handler,
    never_called,
    nginx_vars,
    one_line,
    packet,
    problems,
    run,
)

from uwsgiapp.server.intake import Handler
from uwsgiapp.wsgi.environ import EnvironSettings
from uwsgiapp.wsgi.input import EMPTY_INPUT
from uwsgiapp.wsgi.response import FileWrapper
from uwsgiproto import Limits, build_header, build_ping, build_request

# wsgiref.validate only *warns* about some contract breaches: make them fail the request.
pytestmark = pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")


# -- GET, the common path ------------------------------------------------------------------------


def test_get(logs: Logs) -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(dict(environ))
        return hello(environ, start_response)

    out = run(make_handler(validator(app)), packet(uri="/hello?x=1"))
    assert out.raw == (
        b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\n\r\nHello, World!"
    )
    assert not out.reset
    (environ,) = seen
    assert environ["PATH_INFO"] == "/hello"
    assert environ["QUERY_STRING"] == "x=1"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["wsgi.input"].input is EMPTY_INPUT  # behind the validator's wrapper
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.multiprocess"] is True
    assert environ["wsgi.file_wrapper"] is FileWrapper
    assert problems(logs) == []


def test_real_nginx_get_capture(logs: Logs) -> None:
    out = run(
        make_handler(validator(hello)), (CORPUS / "valid" / "nginx_get_hello.bin").read_bytes()
    )
    assert out.status_line == "HTTP/1.1 200 OK"
    assert out.body == b"Hello, World!"
    assert problems(logs) == []


def test_real_nginx_post_capture(logs: Logs) -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(dict(environ))
        return echo(environ, start_response)

    out = run(make_handler(validator(app)), (CORPUS / "valid" / "nginx_post_json.bin").read_bytes())
    assert out.status == 200
    assert out.body == b'{"name": "world", "n": 42}'
    assert "HTTP_CONTENT_LENGTH" not in seen[0]
    assert "HTTP_CONTENT_TYPE" not in seen[0]
    assert problems(logs) == []


def test_status_line_uses_server_protocol() -> None:
    variables = nginx_vars()
    del variables["SERVER_PROTOCOL"]
    out = run(make_handler(validator(hello)), build_request(variables))
    assert out.status_line == "HTTP/1.0 200 OK"
    out = run(make_handler(validator(hello)), packet(SERVER_PROTOCOL="HTTP/1.0"))
    assert out.status_line == "HTTP/1.0 200 OK"


def test_an_http_09_request_is_answered_with_an_http_1_0_status_line(logs: Logs) -> None:
    # nginx passes "GET /x" (HTTP/0.9) on with SERVER_PROTOCOL "": the app sees that, and the
    # head it gets is one nginx can read (uWSGI's HTTP/1.0), not " 200 OK" and a 502.
    seen: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["SERVER_PROTOCOL"])
        return hello(environ, start_response)

    out = run(make_handler(app), packet(SERVER_PROTOCOL=""))
    assert out.status_line == "HTTP/1.0 200 OK"
    assert seen == [""]
    assert problems(logs) == []


def test_minimal_packet_gets_defaults() -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ)
        return hello(environ, start_response)

    out = run(make_handler(validator(app)), build_request({}))
    assert out.status_line == "HTTP/1.0 200 OK"
    assert seen[0]["REQUEST_METHOD"] == "GET"


def test_magic_vars_never_reach_the_app() -> None:
    seen: list[Environ] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ)
        return hello(environ, start_response)

    run(make_handler(app), packet(UWSGI_SCRIPT="evil:app", UWSGI_CHDIR="/"))
    assert not [k for k in seen[0] if k.startswith("UWSGI_")]


def test_one_handler_serves_many_connections() -> None:
    handler = make_handler(validator(hello))
    for _ in range(5):
        assert run(handler, packet()).body == b"Hello, World!"


def test_https_scheme() -> None:
    seen: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["wsgi.url_scheme"])
        return hello(environ, start_response)

    run(make_handler(validator(app)), packet(REQUEST_SCHEME="https", HTTPS="on"))
    assert seen == ["https"]


@pytest.mark.parametrize("size", [8000, 60000])
def test_head_larger_than_one_read(size: int) -> None:
    # A vars block bigger than the first read (16 KiB): the slow path assembles it.
    out = run(make_handler(validator(hello), buffer_size=65535), packet(HTTP_X_BIG="x" * size))
    assert out.status == 200


@pytest.mark.parametrize("first", [2, 4, 100])
def test_head_partly_in_the_first_read(first: int) -> None:
    data = packet("POST", "/echo", b"abc", HTTP_X_PAD="p" * 300)
    rest = [data[first : first + 10], data[first + 10 :]]
    out = run(make_handler(validator(echo)), rest, pause=0.05, preload=data[:first])
    assert out.body == b"abc"


def test_head_split_over_writes() -> None:
    data = packet("POST", "/echo", b"abc")
    pieces = [data[:1], data[1:3], data[3:4], data[4:20], data[20:-2], data[-2:]]
    out = run(make_handler(validator(echo)), pieces, pause=0.02)
    assert out.status == 200
    assert out.body == b"abc"


# -- modifier 30 and mount ---------------------------------------------------------------------


def script_and_path(handler: Handler, data: bytes) -> tuple[str, str]:
    seen: list[tuple[str, str]] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append((environ["SCRIPT_NAME"], environ["PATH_INFO"]))
        return hello(environ, start_response)

    handler.app = validator(app)
    assert run(handler, data).status == 200
    return seen[0]


@pytest.mark.parametrize("modifier1", [0, 30])
def test_script_name_from_nginx_is_honoured_with_either_modifier(modifier1: int) -> None:
    handler = make_handler(hello)
    # nginx sent the full path: the prefix comes off PATH_INFO.
    sent = packet(uri="/app/x", modifier1=modifier1, SCRIPT_NAME="/app")
    assert script_and_path(handler, sent) == ("/app", "/x")
    # nginx rewrote it away (`rewrite ^/app(/.*)$ $1 break;`): both as they came, as in uWSGI.
    sent = packet(uri="/x", modifier1=modifier1, SCRIPT_NAME="/app")
    assert script_and_path(handler, sent) == ("/app", "/x")


def test_mount() -> None:
    handler = make_handler(hello, mount="/app")
    assert script_and_path(handler, packet(uri="/app/x")) == ("/app", "/x")
    assert script_and_path(handler, packet(uri="/apple")) == ("", "/apple")


# -- ping ----------------------------------------------------------------------------------------


def test_ping(logs: Logs) -> None:
    out = run(make_handler(never_called), build_ping())
    assert out.raw == PONG
    assert problems(logs) == []


def test_ping_split() -> None:
    ping = build_ping()
    assert run(make_handler(never_called), [ping[:2], ping[2:]], pause=0.02).raw == PONG


def test_ping_then_close() -> None:
    out = run(make_handler(never_called), build_ping(), shut_wr=True)
    assert out.raw == PONG


# -- malformed packets ---------------------------------------------------------------------------

MALFORMED = {
    "http_get": b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n",
    "http_post": b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nab",
    "tls": b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + bytes(40),
    "empty_key": build_header(0, 6) + b"\x00\x00\x02\x00ab",
    "key_overrun": build_header(0, 6) + b"\x10\x00abcd",
    "huge_datasize": build_header(0, 65535) + b"\x01\x00a\x01\x00b",
    "over_buffer_size": build_header(0, 5000) + bytes(5000),
    "unsupported_modifier": build_header(5, 0),
    "unsupported_modifier_255": build_header(255, 0, 255),
    "trailing_byte": build_header(0, 7) + b"\x01\x00a\x01\x00bX",
    "truncated_block": packet()[:30],
    "truncated_header": b"\x00\x10",
}


@pytest.mark.parametrize("name", sorted(MALFORMED))
def test_malformed_packet_is_closed_silently_and_logged_once(name: str, logs: Logs) -> None:
    handler = make_handler(never_called)
    out = run(handler, MALFORMED[name], shut_wr=True)
    assert out.raw == b""
    (record,) = problems(logs)
    assert record.levelno == logging.WARNING
    assert "test" in one_line(record)  # names the peer
    # the same handler carries on
    handler.app = validator(hello)
    logs.clear()
    assert run(handler, packet()).body == b"Hello, World!"
    assert problems(logs) == []


@pytest.mark.parametrize("path", sorted((CORPUS / "invalid").glob("*.bin")), ids=lambda p: p.stem)
def test_corpus_invalid_packets(path: Path, logs: Logs) -> None:
    out = run(make_handler(never_called), path.read_bytes(), shut_wr=True)
    assert out.raw == b""
    (record,) = problems(logs)
    one_line(record)


def test_http_to_uwsgi_socket_says_so(logs: Logs) -> None:
    run(make_handler(never_called), MALFORMED["http_get"], shut_wr=True)
    (record,) = problems(logs)
    assert "HTTP" in record.getMessage()


def test_connect_and_close_is_not_a_warning(logs: Logs) -> None:
    out = run(make_handler(never_called), b"", shut_wr=True)
    assert out.raw == b""
    assert problems(logs) == []


def test_stalled_head_is_cut_after_the_timeout(logs: Logs) -> None:
    out = run(make_handler(never_called, timeout=0.3), packet()[:10])
    assert out.raw == b""
    assert 0.25 < out.seconds < 2.0
    (record,) = problems(logs, logging.INFO)
    assert "timed out" in one_line(record)


# -- a hostile uwsgi client (not nginx) ------------------------------------------------------------


@pytest.mark.parametrize(
    "extra",
    [{}, {"CONTENT_LENGTH": "x"}],
    ids=["app-response", "refused"],
)
def test_server_protocol_cannot_inject_headers(extra: dict[str, str]) -> None:
    out = run(
        make_handler(hello, limit_post=10),
        packet(SERVER_PROTOCOL="HTTP/1.1\r\nX-Injected: 1\r\n", **extra),
    )
    assert b"X-Injected" not in out.raw
    assert out.status_line.startswith("HTTP/1.0 ")


@pytest.mark.parametrize(
    "protocol",
    [
        "HTTP/1.1\n",
        "HTTP/1.\r",
        "HTTP/1.1\r\nX-Injected: 1",
        "HTTP/1.1\x00",
        "HTTP\x7f",
        "HTTP/1.1 X",
    ],
)
def test_server_protocol_with_a_control_character_or_space_is_refused_before_the_app(
    logs: Logs, protocol: str
) -> None:
    # Found by live fuzzing: the app was called, then blamed at ERROR level ("bad response
    # (status '200 OK' contains CR or LF)") with a 500, for the client's own bad var.
    called: list[str] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        called.append(environ["PATH_INFO"])
        return hello(environ, start_response)

    extra = {"SERVER_PROTOCOL": protocol}
    variables = {k: v for k, v in nginx_vars(**extra).items() if k != "CONTENT_LENGTH"}
    posted = packet("POST", "/upload", b"body", **extra)
    # With and without CONTENT_LENGTH; a body with --post-buffering (its own serve) too.
    for raw, spool in ((packet(**extra), 0), (build_request(variables), 0), (posted, 8192)):
        logs.clear()
        out = run(make_handler(app, post_buffering=spool), raw)
        assert out.status_line == "HTTP/1.0 400 Bad Request"
        assert [r.levelname for r in problems(logs)] == ["WARNING"]
        assert "invalid SERVER_PROTOCOL" in one_line(problems(logs)[0])
    assert called == []


def test_custom_file_wrapper_from_the_settings_is_kept() -> None:
    class Wrapper(FileWrapper):
        pass

    seen: list[Any] = []

    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        seen.append(environ["wsgi.file_wrapper"])
        return hello(environ, start_response)

    handler = Handler(
        app,
        limits=Limits(),
        settings=EnvironSettings(file_wrapper=Wrapper),
        socket_timeout=1.0,
    )
    run(handler, packet())
    assert seen == [Wrapper]


def test_a_request_with_no_method_is_said_once_as_a_missing_uwsgi_params(tmp_path: Path) -> None:
    """A location without 'include uwsgi_params;': every URL reached the app as GET /, a POST
    too, and nothing said so."""
    from support.procs import Server, uwsgi_exchange

    from uwsgiapp.client import ping
    from uwsgiapp.client.transport import parse_address

    server = Server(tmp_path, "supervisor_app:app", workers=1).start()
    try:
        ping(parse_address(server.socket), timeout=10)  # a ping's block is empty: not said
        assert "no REQUEST_METHOD" not in server.log()
        for _ in range(3):  # nginx's headers, and nothing of uwsgi_params
            packet = build_request({"HTTP_HOST": "example.com", "HTTP_ACCEPT": "*/*"})
            answer = uwsgi_exchange(server.socket, packet, timeout=10).data
            assert answer.startswith(b"HTTP/1.0 200")
    finally:
        server.stop()
    said = [line for line in server.log().splitlines() if "no REQUEST_METHOD" in line]
    assert len(said) == 1 and "'include uwsgi_params;'" in said[0], server.log()
