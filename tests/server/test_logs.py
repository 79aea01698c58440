"""The access log formats, written to a real file (and reopened as USR1 does)."""

from __future__ import annotations

import builtins
import datetime
import io
import json
import logging
import os
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from handler_kit import CORPUS, hello, logged_response, make_handler, packet, run

from uwsgiapp.server.accesslog import SERVED, keep_only
from uwsgiapp.server.errortail import tail_line
from uwsgiapp.server.exchange import Exchange
from uwsgiapp.server.logs import make_access_log, reopen_logs
from uwsgiapp.wsgi.errors import QuickStop
from uwsgiproto import build_request


@pytest.fixture(autouse=True)
def _served_from_zero(monkeypatch: pytest.MonkeyPatch) -> None:
    """The uwsgi line's ``req`` counts from 0 in each test, as in a new worker."""
    monkeypatch.setattr(SERVED, "count", 0)


def resp(status: str | None, body: int, head: int | None = None, headers: int = 0) -> Exchange:
    """A finished response of ``body`` bytes after its head (40 bytes unless said; none
    without a status)."""
    if head is None:
        head = 0 if status is None else 40
    return logged_response(status, body + head, head, headers)


#: uWSGI's default request line, as log parsers written for uWSGI match it (ossobv/vcutil's
#: uwsgi-log, grok patterns); checked below against a line uWSGI 2.0.31 wrote.
UWSGI_LINE = re.compile(
    r"\[pid: (\d+)\|app: (-|\d+)\|req: (-|\d+)/(-|\d+)\] (\S+) \((.*?)\) "
    r"\{(\d+) vars in (\d+) bytes\} \[(\w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4})\] (\S+) (\S+) "
    r"=> generated (\d+) bytes in (\d+) msecs \((\S+) (\d+)\) (\d+) headers in (\d+) bytes "
    r"\((\d+) switches on core (\d+)\)"
)
UWSGI_WROTE = (
    "[pid: 20237|app: 0|req: 1553/3552] 127.0.0.1 () {28 vars in 302 bytes} "
    "[Fri Dec  4 21:55:56 2026] GET /slow => generated 5 bytes in 300 msecs (HTTP/1.1 200) "
    "1 headers in 45 bytes (1 switches on core 0)"
)

ENVIRON = {
    "REMOTE_ADDR": "10.0.0.7",
    "REQUEST_METHOD": "POST",
    "REQUEST_URI": "/a/b?x=1",
    "PATH_INFO": "/a/b",
    "SERVER_PROTOCOL": "HTTP/1.1",
}
#: ENVIRON's var block, as nginx would send it: 5 vars in 112 bytes.
BLOCK = build_request(ENVIRON)[4:]


@pytest.fixture(autouse=True)
def _restore_access_logger() -> Iterator[None]:
    yield
    logger = logging.getLogger("uwsgiapp.access")
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
        handler.close()


def test_off_means_no_logger() -> None:
    assert make_access_log("off") is None


def test_uwsgi_format_line(tmp_path: Path) -> None:
    # uWSGI's default line, field for field: its parsers matched none of ours before.
    assert UWSGI_LINE.fullmatch(UWSGI_WROTE)
    path = tmp_path / "access.log"
    access = make_access_log("uwsgi", str(path))
    assert access is not None
    started = time.time() - 0.0425
    # The packet's vars, not the environ's: the empty SCRIPT_NAME the environ adds (nginx
    # sends none) and a key the app added are not counted.
    environ = {**ENVIRON, "SCRIPT_NAME": "", "HTTP_X_APP": "added"}
    access(environ, resp("201 Created", 1234, head=45, headers=2), 0.0425, BLOCK)
    access({}, resp(None, 0), 0.0, b"")
    first, second = path.read_text().splitlines()
    m = UWSGI_LINE.fullmatch(first)
    assert m, first
    # 5 CGI variables: uWSGI counts names and values apart (10); their bytes and 4 bytes of
    # sizes each, as in the packet (uWSGI 2.0.31 logs "{10 vars in 96 bytes}" for a packet of
    # 5 variables in 96 bytes).
    assert m.groups()[:8] == (str(os.getpid()), "0", "1", "1", "10.0.0.7", "", "10", "112")
    logged = time.strptime(m[9], "%a %b %d %H:%M:%S %Y")[:6]
    assert logged == time.localtime(int(started))[:6]  # when the request started
    assert m.groups()[9:] == (
        "POST", "/a/b?x=1", "1234", "42", "HTTP/1.1", "201", "2", "45", "1", "0"
    )  # fmt: skip
    # The day is padded with a space, as ctime's (and uWSGI's): "Dec  4", not "Dec 04".
    assert re.search(r"\[\w{3} \w{3} ( \d|[12]\d|3[01]) ", first), first
    m = UWSGI_LINE.fullmatch(second)
    assert m and m[3] == "2" and m[11] == "-" and m[15] == "0" and m[16] == "0", second
    assert (m[7], m[8]) == ("0", "0"), second


#: grok's COMBINEDAPACHELOG (what Logstash, Elastic's and GoAccess's COMBINED take from
#: gunicorn's default access line), written as a regular expression.
COMBINED = re.compile(
    r"(\S+) (\S+) (\S+) \[(\d\d/\w{3}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4})\] "
    r'"(\w+) (\S+) HTTP/(\d\.\d)" (\d{3}) (\d+|-) "((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"'
)


def test_combined_format_line(tmp_path: Path) -> None:
    # gunicorn's default access line (Apache's combined): a team's log pipeline parses it.
    path = tmp_path / "access.log"
    access = make_access_log("combined", str(path))
    assert access is not None
    started = time.time() - 0.25
    agent = 'curl/8.5 "quoted" \\ back'
    environ = {**ENVIRON, "HTTP_USER_AGENT": agent, "HTTP_REFERER": "https://a.example/"}
    access(environ, resp("201 Created", 1234, head=45), 0.25, BLOCK)
    access({**ENVIRON, "REMOTE_USER": "ann"}, resp(None, 0), 0.0, b"")
    first, second = path.read_text().splitlines()
    m = COMBINED.fullmatch(first)
    assert m, first
    assert m.groups()[:3] == ("10.0.0.7", "-", "-")
    when = datetime.datetime.strptime(m[4], "%d/%b/%Y:%H:%M:%S %z")
    assert abs(when.timestamp() - int(started)) < 1.5
    assert m.groups()[4:9] == ("POST", "/a/b?x=1", "1.1", "201", "1234")
    assert (m[10], m[11]) == ("https://a.example/", 'curl/8.5 \\"quoted\\" \\\\ back')
    m = COMBINED.fullmatch(second)
    assert m, second
    assert (m[3], m[8], m[9], m[10], m[11]) == ("ann", "499", "-", "-", "-")


@pytest.mark.parametrize(
    ("fmt", "status"),
    [("uwsgi", "(HTTP/1.1 0)"), ("json", '"status": 499'), ("combined", '" 499 -')],
)
def test_a_status_never_sent_is_logged_as_none(tmp_path: Path, fmt: str, status: str) -> None:
    # The app's start_response is recorded until the head goes out: its client left while it
    # read the body, and the logger raised TypeError on an int status ("internal error
    # serving", no access line; refused by start_response now); a str was logged as sent.
    path = tmp_path / "access.log"
    access = make_access_log(fmt, str(path))

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        environ["wsgi.input"].read()  # the client is gone before its body is all in
        return [b"never"]

    body = b"x" * 200_000  # over what the intake reads with the head
    whole = packet("POST", "/upload", body)
    run(make_handler(app, access_log=access, timeout=0.5), whole[:-100_000], shut_wr=True)
    (line,) = path.read_text().splitlines()
    assert "/upload" in line and status in line, line


@pytest.mark.parametrize(
    ("fmt", "status"),
    [("uwsgi", "(HTTP/1.1 0)"), ("json", '"status": 499'), ("combined", '" 499 -')],
)
def test_a_head_whose_write_failed_is_not_logged_as_sent(
    tmp_path: Path, fmt: str, status: str
) -> None:
    # nginx gave up (its client left: nginx's own log says 499) before the app answered: the
    # head's write failed with EPIPE, yet the line said 200, as if the response went out.
    path = tmp_path / "access.log"
    access = make_access_log(fmt, str(path))
    client, server = socket.socketpair()
    client.sendall(packet("GET", "/slow"))
    client.close()
    make_handler(hello, access_log=access).handle(server.detach(), "test")
    (line,) = path.read_text().splitlines()
    assert "/slow" in line and status in line, line


def test_a_head_written_before_the_body_failed_is_logged_as_sent(tmp_path: Path) -> None:
    # Head and body in one write, cut part-way (the client left after reading the head): the
    # head had gone out, nginx logged its 200, yet the line said 499.
    path = tmp_path / "access.log"
    access = make_access_log("combined", str(path))
    body = b"x" * 60_000

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Length", str(len(body)))])
        return [body]

    client, server = socket.socketpair()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    client.sendall(packet("GET", "/big"))
    handler = make_handler(app, access_log=access)
    thread = threading.Thread(target=handler.handle, args=(server.detach(), "test"))
    thread.start()
    assert client.recv(200).startswith(b"HTTP/1.1 200 OK")
    client.close()
    thread.join(10)
    (line,) = path.read_text().splitlines()
    assert '"GET /big HTTP/1.1" 200 ' in line, line


@pytest.mark.parametrize(
    ("fmt", "status"),
    [("uwsgi", "(HTTP/1.1 0)"), ("json", '"status": 502'), ("combined", '" 502 -')],
)
def test_a_request_the_server_cut_before_any_status_is_not_the_clients(
    tmp_path: Path, fmt: str, status: str
) -> None:
    # A stop's deadline (QuickStop), the app's sys.exit(): nginx answers 502 for the close,
    # and the line said 499, "client closed request"; --log-5xx dropped it.
    path = tmp_path / "access.log"
    inner = make_access_log(fmt, str(path))
    assert inner is not None

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise QuickStop(0)

    with pytest.raises(AssertionError, match="handle\\(\\) raised QuickStop"):
        run(make_handler(app, access_log=keep_only(inner, "5", 0, 0)), packet("GET", "/slow"))
    (line,) = path.read_text().splitlines()
    assert "/slow" in line and status in line, line


def test_the_uwsgi_lines_req_counts_the_requests_the_filters_leave_out(tmp_path: Path) -> None:
    # --log-4xx: the lines said req 1/1, 2/2, 3/3 for the 2nd, 4th and 6th requests (it
    # counted lines); uWSGI counts requests (1, 3, 5 for a 404 after each 200).
    path = tmp_path / "access.log"
    inner = make_access_log("uwsgi", str(path))
    assert inner is not None
    access = keep_only(inner, "4", 0, 0)
    for _ in range(3):
        access(ENVIRON, resp("200 OK", 1), 0.0, BLOCK)
        access(ENVIRON, resp("404 Not Found", 1), 0.0, BLOCK)
    lines = path.read_text().splitlines()
    reqs = [(m[3], m[4]) for m in map(UWSGI_LINE.fullmatch, lines) if m]
    assert reqs == [("2", "2"), ("4", "4"), ("6", "6")], lines


@pytest.mark.parametrize("fmt", ["uwsgi", "json", "combined"])
def test_the_filters_keep_only_the_requests_they_name(tmp_path: Path, fmt: str) -> None:
    # uWSGI's disable-logging with log-4xx/log-5xx/log-slow/log-big (Bloomberg's config).
    path = tmp_path / "access.log"
    inner = make_access_log(fmt, str(path))
    assert inner is not None
    access = keep_only(inner, "5", 0.5, 100_000)
    answers = [
        ("200 OK", 10, 0.1, False),
        ("404 Not Found", 9, 0.1, False),
        ("503 Service Unavailable", 9, 0.1, True),
        ("200 OK", 10, 0.5, True),  # slow: at least the threshold
        ("200 OK", 100_000, 0.1, True),  # big: the body's bytes, not the head's
        ("200 OK", 99_999, 0.1, False),
        (None, 0, 0.1, False),  # the client left before any head
    ]
    for status, body, seconds, _ in answers:
        access(ENVIRON, resp(status, body, head=40), seconds, BLOCK)
    lines = path.read_text().splitlines()
    kept = [a for a in answers if a[3]]
    assert len(lines) == len(kept), lines
    for line, (status, body, _, _) in zip(lines, kept, strict=True):
        assert str(body) in line and (status or "")[:3] in line
    assert keep_only(inner, "4", 0.0, 0) is not inner


def test_json_format_line(tmp_path: Path) -> None:
    path = tmp_path / "access.json"
    access = make_access_log("json", str(path))
    assert access is not None
    started = time.time() - 1.5
    environ = {**ENVIRON, "HTTP_X_REQUEST_ID": "2eb8b1ee", "HTTP_USER_AGENT": "curl/7.88"}
    access(environ, resp("404 Not Found", 9, head=40), 1.5, BLOCK)
    access(ENVIRON, resp("200 OK", 1), 0.1, BLOCK)
    record, plain = map(json.loads, path.read_text().splitlines())
    # What joins the line to the app's own and nginx's (gunicorn's %({x-request-id}i)s,
    # uWSGI's %(var.HTTP_X_REQUEST_ID) and %(wid)): "" where the request has none.
    assert (record["request_id"], record["user_agent"], record["referer"]) == (
        "2eb8b1ee", "curl/7.88", ""
    )  # fmt: skip
    assert (plain["request_id"], plain["user_agent"], plain["worker"]) == ("", "", 0)
    assert record["status"] == 404
    assert record["uri"] == "/a/b?x=1"
    assert record["bytes"] == 9
    assert record["duration_ms"] == 1500.0
    assert record["pid"] == os.getpid()
    # RFC 3339 with milliseconds (Go's layouts take it), when the request started.
    when = datetime.datetime.fromisoformat(record["time"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d\d:\d\d", record["time"])
    assert abs(when.timestamp() - started) < 0.5


def test_json_format_says_the_requests_text_as_the_client_wrote_it(tmp_path: Path) -> None:
    # The environ holds the request's bytes decoded as latin-1: dumped as they were, a UTF-8
    # /café read back as /cafÃ© (nginx's own JSON line, and the uwsgi line, say /café).
    path = tmp_path / "access.json"
    access = make_access_log("json", str(path))
    assert access is not None

    def wire(text: str) -> str:
        return text.encode().decode("latin-1")

    environ = {
        **ENVIRON,
        "REQUEST_URI": wire("/café?q=über") + "\xff",  # and a byte that is no UTF-8
        "HTTP_USER_AGENT": wire("Grüße/1.0"),
        "HTTP_REFERER": wire("https://example.org/ü"),
    }
    access(environ, resp("200 OK", 1), 0.1, BLOCK)
    # An app's None where text was (it logged null; as_sent took it for text and the line
    # was lost with an internal error); what moves or breaks a line once decoded, escaped.
    access(
        {**ENVIRON, "HTTP_REFERER": None, "REQUEST_URI": wire("/a\u202eb\u2028c")},
        resp("200 OK", 1),
        0.1,
        BLOCK,
    )
    text = path.read_text()
    assert text.isascii()
    record, odd = map(json.loads, text.splitlines())
    assert record["uri"] == "/café?q=über\\xff"
    assert (record["user_agent"], record["referer"]) == ("Grüße/1.0", "https://example.org/ü")
    assert odd["referer"] is None and odd["uri"] == "/a\\u202Eb\\u2028c"


def test_reopen_after_the_file_was_moved(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    access = make_access_log("uwsgi", str(path))
    assert access is not None
    access(ENVIRON, resp("200 OK", 1), 0.0, BLOCK)
    path.rename(tmp_path / "access.log.1")
    reopen_logs()
    access(ENVIRON, resp("200 OK", 2), 0.0, BLOCK)
    assert "generated 1 bytes" in (tmp_path / "access.log.1").read_text()
    assert "generated 2 bytes" in path.read_text()


def test_the_pid_is_the_logging_process_even_after_fork(tmp_path: Path) -> None:
    # The logger is made once (in the master, with --preload-like set-ups) and used in workers.
    path = tmp_path / "access.log"
    log = make_access_log("uwsgi", str(path))
    assert log is not None
    child = os.fork()
    if child == 0:  # pragma: no cover - the child's exit code is the assertion
        try:
            log(ENVIRON, resp("200 OK", 1), 0.0, BLOCK)
        finally:
            os._exit(0)
    os.waitpid(child, 0)
    log(ENVIRON, resp("200 OK", 1), 0.0, BLOCK)
    pids = re.findall(r"\[pid: (\d+)\|", path.read_text())
    assert pids == [str(child), str(os.getpid())]


def test_stack_dumps_follow_the_error_log_when_it_is_reopened(tmp_path: Path) -> None:
    # logrotate moves the file, USR1 reopens it: a later dump must land in the new file, not
    # in the old one's fd (which a client socket may have taken by then).
    log = tmp_path / "error.log"
    script = f"""
import os, signal, time
from uwsgiapp.server.logs import arm_fault_dumps, setup_error_log
from uwsgiapp.server.logs import reopen_logs
hole = os.open(os.devnull, os.O_RDONLY)
setup_error_log({str(log)!r})
signal.signal(signal.SIGUSR2, lambda s, f: None)
arm_fault_dumps((signal.SIGUSR2,))
os.rename({str(log)!r}, {str(log)!r} + ".1")
os.close(hole)  # the reopened log gets this lower fd, not its old one
reopen_logs()
os.kill(os.getpid(), signal.SIGUSR2)
time.sleep(0.1)
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert "most recent call first" in log.read_text()
    assert "most recent call first" not in (tmp_path / "error.log.1").read_text()


def test_the_line_holds_the_request_bytes_as_nginx_sent_them(tmp_path: Path) -> None:
    # The environ is latin-1 decoded: a UTF-8 path must come out as its own bytes, not mojibake.
    path = tmp_path / "access.log"
    log = make_access_log("uwsgi", str(path))
    assert log is not None
    uri = "/caf\u00c3\u00a9?q=\u00ff"  # the bytes /caf\xc3\xa9?q=\xff, decoded as latin-1
    log({**ENVIRON, "REQUEST_URI": uri}, resp("200 OK", 1), 0.0, BLOCK)
    assert b" /caf\xc3\xa9?q=\xff => generated" in path.read_bytes()


def test_a_stream_without_a_file_still_gets_the_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    out = io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    log = make_access_log("uwsgi", "-")
    assert log is not None
    log(ENVIRON, resp("200 OK", 1), 0.0, BLOCK)
    log(ENVIRON, resp("204 No Content", 0), 0.0, BLOCK)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    assert [UWSGI_LINE.fullmatch(line)[15] for line in lines] == ["200", "204"]  # type: ignore[index]


FORGED = "2026-01-01 00:00:00,000 [1] [ERROR] forged"


def _logged_traceback(raise_it: Callable[[], None]) -> str:
    """What the error log's formatter writes for ``logger.exception`` of what ``raise_it``
    raises."""
    from uwsgiapp.server.logformat import ERROR_FORMAT, ErrorFormatter

    out = io.StringIO()
    handler = logging.StreamHandler(out)
    handler.setFormatter(ErrorFormatter(ERROR_FORMAT))
    logger = logging.getLogger("test.error.formatter")
    logger.addHandler(handler)
    logger.propagate = False
    try:
        raise_it()
    except Exception:
        logger.exception("the app failed")
    finally:
        logger.removeHandler(handler)
    text = out.getvalue()
    assert text.splitlines()[0].endswith("[ERROR] the app failed")
    assert not any(line.lstrip(" |").startswith(FORGED) for line in text.splitlines()), text
    assert "\x1b" not in text and "\r" not in text
    return text


def test_traceback_texts_are_escaped_in_every_chained_exception() -> None:
    def raise_it() -> None:
        try:
            try:
                raise KeyError("first")
            except KeyError:
                raise ValueError(f"bad path /x\r\n{FORGED} (context)") from None
        except ValueError as exc:
            try:
                raise OSError(f"io\x1b[31m\n{FORGED} (during)") from exc
            except OSError:
                raise RuntimeError(f"outer\n{FORGED} (outer)")  # noqa: B904

    text = _logged_traceback(raise_it)
    assert f"ValueError: bad path /x\\x0D\\x0A{FORGED} (context)" in text
    assert f"OSError: io\\x1B[31m\\x0A{FORGED} (during)" in text
    assert f"RuntimeError: outer\\x0A{FORGED} (outer)" in text
    assert "KeyError" not in text  # `from None` is still honoured
    # the chain is all there, in order
    assert text.index("ValueError") < text.index("direct cause") < text.index("OSError")
    assert text.index("OSError") < text.index("During handling") < text.index("RuntimeError")


@pytest.mark.skipif(sys.version_info < (3, 11), reason="exception groups and notes are 3.11's")
def test_traceback_texts_are_escaped_in_groups_and_notes() -> None:
    group_type: Any = getattr(builtins, "ExceptionGroup")  # noqa: B009  (3.11+)

    def raise_it() -> None:
        inner = ValueError(f"inner\n{FORGED} (inner)")
        inner.add_note(f"note\n{FORGED} (note)")
        raise group_type("group\x1b[31m", [inner, OSError(f"io\n{FORGED} (io)")])

    text = _logged_traceback(raise_it)
    for where in ("inner", "note", "io"):
        assert f"\\x0A{FORGED} ({where})" in text, where
    assert "group\\x1B[31m (2 sub-exceptions)" in text


def test_a_traceback_another_formatter_cached_is_escaped_all_the_same() -> None:
    from uwsgiapp.server.logformat import ERROR_FORMAT, ErrorFormatter

    try:
        raise ValueError(f"bad\n{FORGED}")
    except ValueError:
        record = logging.makeLogRecord(
            {"msg": "failed", "levelname": "ERROR", "exc_info": sys.exc_info()}
        )
    plain = logging.Formatter().format(record)  # caches the raw traceback in record.exc_text
    assert f"\n{FORGED}" in plain
    ours = ErrorFormatter(ERROR_FORMAT).format(record)
    assert f"ValueError: bad\\x0A{FORGED}" in ours and f"\n{FORGED}" not in ours
    assert record.exc_text is not None and f"\n{FORGED}" in record.exc_text  # left as it was


def test_usr1_reopens_the_apps_own_log_files_too(tmp_path: Path) -> None:
    # Django's LOGGING writes files of its own: after logrotate's move, USR1 must move them
    # too (gunicorn's USR1 reopens every file handler), or the app keeps writing the old one.
    path = tmp_path / "django.log"
    logger = logging.getLogger("test.app.own.files")
    handler = logging.FileHandler(path)
    logger.addHandler(handler)
    logger.propagate = False
    try:
        logger.warning("before")
        path.rename(tmp_path / "django.log.1")
        assert reopen_logs()
        logger.warning("after")
        handler.flush()
    finally:
        logger.removeHandler(handler)
        handler.close()
    assert (tmp_path / "django.log.1").read_text() == "before\n"
    assert path.read_text() == "after\n"


@pytest.mark.parametrize(
    ("capture", "uwsgi_logged"),
    [
        ("nginx_get_hello.bin", "{38 vars in 586 bytes}"),
        ("nginx_post_json.bin", "{42 vars in 669 bytes}"),
    ],
)
def test_the_vars_are_counted_as_uwsgi_counts_them(
    tmp_path: Path, capture: str, uwsgi_logged: str
) -> None:
    # What uWSGI 2.0.31 logged for these real nginx packets: the packet's vars, the header
    # copies nginx adds (HTTP_CONTENT_TYPE, HTTP_CONTENT_LENGTH) included, though the environ
    # drops them (PEP 3333).
    path = tmp_path / "access.log"
    access = make_access_log("uwsgi", str(path))
    run(make_handler(hello, access_log=access), (CORPUS / "valid" / capture).read_bytes())
    assert uwsgi_logged in path.read_text()


def test_the_terminal_tail_of_an_error_keeps_its_exception() -> None:
    # The first line alone ("cannot load app ...:") left the cause out.
    def record(msg: str, exc: BaseException | None = None) -> logging.LogRecord:
        info = (type(exc), exc, None) if exc is not None else None
        return logging.LogRecord("uwsgiapp.error", logging.ERROR, "", 0, msg, None, info)

    assert tail_line(record("cannot bind: busy")) == "cannot bind: busy"
    with_traceback = "cannot load app 'a:app':\nTraceback ...\n  File ...\nKeyError: 'x'\n"
    assert tail_line(record(with_traceback)) == "cannot load app 'a:app': KeyError: 'x'"
    assert tail_line(record("postfork raised", ValueError("bad"))) == (
        "postfork raised: ValueError: bad"
    )


@pytest.mark.parametrize(
    ("name", "escaped"),
    [("myapp", True), ("uwsgiapp_site", True), ("uwsgiappdemo.views", True),
     ("uwsgiapp", False), ("uwsgiapp.error", False)],
)  # fmt: skip
def test_the_text_error_log_escapes_the_apps_records_only(name: str, escaped: bool) -> None:
    """An app's logger named like ours but not ours (uwsgiapp_site) was taken for the
    server's: its request text went in with its CR/LF."""
    from uwsgiapp.server.logformat import ERROR_FORMAT, ErrorFormatter

    record = logging.LogRecord(name, logging.WARNING, __file__, 1, "a\n2026 [ERROR] x", None, None)
    line = ErrorFormatter(ERROR_FORMAT).format(record)
    assert ("a\\x0A2026 [ERROR] x" in line) == escaped and ("\n" in line) != escaped, line
