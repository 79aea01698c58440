"""Handler on a socketpair, apps that fail: a 500 before the head, a cut after it, the request
text in error-log lines, close() on the response iterable.

Helpers (the socketpair client, outcomes, apps) are in handler_kit.py.
"""

from __future__ import annotations

import logging
import socket
from collections.abc import Iterator
from typing import Any

import pytest
from handler_kit import (
    Environ,
    Logs,
    StartResponse,
    Tracked,
    make_handler,
    nginx_vars,
    one_line,
    packet,
    problems,
    run,
)

from uwsgiapp.server.logformat import ERROR_FORMAT
from uwsgiproto import build_request

# wsgiref.validate only *warns* about some contract breaches: make them fail the request.
pytestmark = pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")


# -- app errors ----------------------------------------------------------------------------------


def test_app_raising_before_start_response_is_500(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise ValueError("app bug")

    out = run(make_handler(app), packet())
    assert out.status_line == "HTTP/1.1 500 Internal Server Error"
    assert int(out.header("Content-Length") or -1) == len(out.body)
    (record,) = problems(logs)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None and record.exc_info[0] is ValueError
    assert "GET /hello" in record.getMessage()


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        (SystemExit(3), "SystemExit(3) (sys.exit)"),
        (KeyboardInterrupt(), "KeyboardInterrupt"),
        (GeneratorExit(), "GeneratorExit"),
    ],
)
def test_an_exception_the_worker_does_not_survive_names_the_request(
    logs: Logs, raised: BaseException, said: str
) -> None:
    # The worker ends (as under uWSGI); the log said only "worker 1 crashed" for any but
    # sys.exit, with no request: what the app raised, where, and in which request.
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise raised

    with pytest.raises(AssertionError, match=f"handle\\(\\) raised {type(raised).__name__}"):
        run(make_handler(app), packet())  # raised on: the worker ends
    (record,) = problems(logs)
    assert record.levelno == logging.ERROR
    assert f"the app raised {said} in GET /hello: this worker exits" in record.getMessage()
    assert record.exc_info is not None and record.exc_info[1] is raised


def test_app_raising_after_start_response_before_body_is_500(logs: Logs) -> None:
    response = Tracked([b"never"], fail_at=0)

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain"), ("X-Secret", "1")])
        return response

    out = run(make_handler(app), packet())
    assert out.status == 500
    assert out.header("X-Secret") is None  # the app's head was replaced, not sent
    assert response.closed == 1
    (record,) = problems(logs)
    assert record.exc_info is not None


def test_app_raising_mid_iteration_cuts_the_connection(logs: Logs) -> None:
    response = Tracked([b"first chunk", b"second", b"third"], fail_at=2)

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return response

    out = run(make_handler(app), packet())
    assert out.status == 200
    assert out.body == b"first chunksecond"  # truncated: nothing more, no 500 glued on
    assert response.closed == 1
    (record,) = problems(logs)
    assert record.levelno == logging.ERROR
    assert record.exc_info is not None
    assert "cutting" in record.getMessage()


def test_cut_with_unread_body_is_a_reset_not_a_clean_eof() -> None:
    # On a unix socket the only reset is closing with unread data: draining the body first
    # (shutdown + read) would hand nginx a clean EOF and the truncated body as complete.
    # (A body that arrived whole with the head leaves nothing unread: then it is a plain EOF.)
    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked([b"part"], fail_at=1)

    # All of it in the socket before the server reads: the kernel reports the reset only if
    # bytes are still unread when the server closes (a client slow to write them, on a busy
    # machine, would see a plain EOF whatever the server did).
    out = run(make_handler(app), b"", preload=packet("POST", "/x", b"y" * 100_000))
    assert out.body == b"part"
    assert out.reset


def tcp_pair() -> tuple[socket.socket, socket.socket]:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(listener.getsockname())
        server, _ = listener.accept()
    return client, server


def test_cut_over_tcp_is_a_reset() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked([b"part"], fail_at=1)

    out = run(make_handler(app), packet(), pair=tcp_pair())
    assert out.body == b"part"
    assert out.reset


def test_cut_over_tcp_with_unread_body_is_a_reset() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Tracked([b"part"], fail_at=1)

    out = run(make_handler(app), packet("POST", "/x", b"y" * 5000), pair=tcp_pair())
    assert out.body == b"part"
    assert out.reset


def test_app_returning_none_is_500(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [])

    assert run(make_handler(app), packet()).status == 500
    assert len(problems(logs)) == 1


def test_app_returning_str_is_500() -> None:
    def app(environ: Environ, start_response: StartResponse) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return "hello"

    assert run(make_handler(app), packet()).status == 500


def test_body_without_start_response_is_500(logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        return [b"no head"]

    out = run(make_handler(app), packet())
    assert out.status == 500
    assert b"no head" not in out.raw
    (record,) = problems(logs)
    assert "start_response" in one_line(record)


def test_empty_response_without_start_response_is_500() -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        return []

    assert run(make_handler(app), packet()).status == 500


# -- request text in error-log lines ---------------------------------------------------------------

#: A raw uwsgi client's URI that would start a forged log line and colour the terminal.
FORGED = "/a\r\n2026-01-01 00:00:00,000 [1] [ERROR] forged \x1b[31mred\x1b[0m"


@pytest.mark.parametrize("field", ["REQUEST_URI", "PATH_INFO"])
@pytest.mark.parametrize("failure", ["bad-response", "app-raised"])
def test_request_text_cannot_forge_error_log_lines(field: str, failure: str, logs: Logs) -> None:
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        if failure == "app-raised":
            raise ValueError("app bug")
        start_response("200 OK", [("X-A", "v\r\nInjected: yes")])
        return [b"x"]

    if field == "REQUEST_URI":
        variables = nginx_vars("GET", FORGED)
    else:  # no REQUEST_URI: the line shows PATH_INFO (nginx's decoded path: %0A is a newline)
        variables = nginx_vars("GET", FORGED, REQUEST_URI="")
    out = run(make_handler(app), build_request(variables))
    assert out.status == 500
    (record,) = problems(logs)
    # As the error log writes it: the request's text stays on the record's one line, with its
    # controls written as \xNN (then, for an app's exception, the traceback's own lines).
    lines = logging.Formatter(ERROR_FORMAT).format(record).split("\n")
    if failure == "bad-response":
        one_line(record)
        assert len(lines) == 1, lines
    else:
        assert lines[1] == "Traceback (most recent call last):", lines
    line = lines[0]
    assert "\r" not in line and "\x1b" not in line, line
    assert "GET /a\\x0D\\x0A2026-01-01 00:00:00,000 [1] [ERROR] forged \\x1B[31mred\\x1B[0m" in line


def test_the_error_line_says_a_utf8_uri_as_the_client_wrote_it(logs: Logs) -> None:
    # The environ's latin-1 text, written as UTF-8 by the log: /cafÃ© where nginx says /café.
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise ValueError("app bug")

    uri = "/café?q=über".encode().decode("latin-1")
    assert run(make_handler(app), build_request(nginx_vars("GET", uri))).status == 500
    # Decoded, a right-to-left override or a line separator would move or break the line.
    forged = "/x\u202e\u2028\x9b".encode().decode("latin-1")
    assert run(make_handler(app), build_request(nginx_vars("GET", forged))).status == 500
    first, second = (
        logging.Formatter(ERROR_FORMAT).format(record).split("\n")[0] for record in problems(logs)
    )
    assert "(GET /café?q=über)" in first, first
    assert "(GET /x\\u202E\\u2028\\u009B)" in second, second


def test_the_request_id_is_in_the_app_error_line(logs: Logs) -> None:
    # nginx's $request_id (uwsgi_param HTTP_X_REQUEST_ID): the line the app's 500 leaves can be
    # joined to its access line and to nginx's; a forged one stays on the line.
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        raise ValueError("app bug")

    variables = nginx_vars("GET", "/boom", HTTP_X_REQUEST_ID="2eb8b1ee\r\nforged")
    assert run(make_handler(app), build_request(variables)).status == 500
    (record,) = problems(logs)
    first = logging.Formatter(ERROR_FORMAT).format(record).split("\n")[0]
    assert "(GET /boom, request id 2eb8b1ee\\x0D\\x0Aforged)" in first, first


# -- close() on the iterable ---------------------------------------------------------------------


def test_close_called_once_on_success() -> None:
    response = Tracked([b"a", b"b"])

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return response

    assert run(make_handler(app), packet()).body == b"ab"
    assert response.closed == 1


@pytest.mark.parametrize(("method", "level"), [("GET", logging.INFO), ("HEAD", logging.DEBUG)])
def test_close_called_when_the_client_is_gone(logs: Logs, method: str, level: int) -> None:
    # nginx closes a HEAD's connection once it has the head: expected, so not at INFO.
    response = Tracked([bytes(1 << 20)] * 8)

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return response

    client, server = socket.socketpair()
    fd = server.detach()
    client.sendall(packet(method, "/big?x=1"))
    client.close()
    make_handler(app).handle(fd, "test")
    assert response.closed == 1
    assert response.yielded < 8
    (record,) = problems(logs, logging.DEBUG)
    assert record.levelno == level
    line = one_line(record)
    assert line.endswith(f"({method} /big?x=1)")
    assert line.startswith("client 127.0.0.1 via test: ")  # nginx's REMOTE_ADDR, then the peer


def test_the_request_id_is_in_the_client_gone_line(logs: Logs) -> None:
    # nginx gave up on the request (its uwsgi_read_timeout: a 504) while the app worked: the
    # line for the response nobody read names nginx's $request_id, to join it to nginx's 504.
    def app(environ: Environ, start_response: StartResponse) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [bytes(1 << 20)] * 8

    client, server = socket.socketpair()
    fd = server.detach()
    client.sendall(build_request(nginx_vars("GET", "/slow", HTTP_X_REQUEST_ID="9f2c\x1bx")))
    client.close()
    make_handler(app).handle(fd, "test")
    (record,) = problems(logs, logging.INFO)
    assert one_line(record).endswith("(GET /slow, request id 9f2c\\x1Bx)"), one_line(record)


def test_close_raising_is_logged(logs: Logs) -> None:
    class BadClose(Tracked):
        def close(self) -> None:
            raise OSError("close failed")

    def app(environ: Environ, start_response: StartResponse) -> Tracked:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return BadClose([b"fine"])

    handler = make_handler(app)
    counted: list[int] = []
    handler.responder.on_app_error = lambda: counted.append(1)  # the stats' exceptions count
    out = run(handler, packet())
    assert out.body == b"fine"
    (record,) = problems(logs)
    # Which request's close() it was, and counted as the app's exception as uWSGI counts it.
    assert record.getMessage() == "app's response close() raised (GET /hello)"
    assert record.exc_info is not None and counted == [1]


def test_a_write_timeout_after_the_head_over_tcp_is_a_reset(logs: Logs) -> None:
    # nginx stopped reading (its client is slow, uwsgi_buffering off): at --socket-timeout the
    # rest is given up, and a clean close would let nginx pass the cut body on as complete.
    def app(environ: Environ, start_response: StartResponse) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])  # no Content-Length
        for _ in range(400):
            yield b"x" * 65536

    out = run(make_handler(app, timeout=0.3), packet(), pair=tcp_pair(), read_after_handle=True)
    assert out.status == 200
    assert out.reset
    # A warning that says the response is cut and why (it was an INFO "client stalled",
    # gone at --log-level warning, of a client that may have been reading all along).
    (record,) = problems(logs)
    assert record.levelno == logging.WARNING
    assert "write timed out after 0.3s" in one_line(record)
    assert "the response is cut: nginx took none of it for --socket-timeout" in one_line(record)
