"""Live packet fuzzing: mutated nginx captures and corpus packets sent to a running server.

``uwsgiapp serve --workers 2`` on a unix socket gets every mutation of ``mutate.py`` straight on
its socket (each on its own connection, half-closed after the last byte so a short packet ends
with EOF, not the socket timeout), first one at a time (each log line is attributed to its
input; a few inputs arrive byte by byte) and then from several client threads at once, while
another thread keeps up to 50 inputs open without the half-close (the server must end those by
itself, within its socket timeout).

What must hold: no worker dies (no respawn, the same two worker pids at the end), every
connection is closed by the server well within the socket timeout, a bad packet costs at most
one log line and never a traceback or an ERROR line, and a valid request is answered correctly
after every 1,000 mutations. Then: a client that disconnects while the app reads its body.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import os
import random
import re
import selectors
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from reliability.conftest import Report, sized
from reliability.mutate import CORPUS, MutationSource
from support.procs import (
    LogCursor,
    RawResult,
    Server,
    uwsgi_exchange,
    wait_for_workers,
    wait_until,
    worker_pids,
)

from uwsgiapp.server import throttle
from uwsgiproto import Limits, Request, build_pong, build_request, decode

SOCKET_TIMEOUT = 2.0
#: Generous: a connection still open this long after our last byte counts as a hang.
HANG_AFTER = SOCKET_TIMEOUT + 8.0
#: FUZZ_INPUTS overrides the count (to size a run).
INPUTS = int(os.environ.get("FUZZ_INPUTS", "0")) or sized(5_000, 1_000_000)
#: Inputs sent one at a time first (each log line attributed to its input).
SEQUENTIAL = sized(400, 5_000)
#: Of those, delivered one byte per write (slow: ~1 ms a byte).
BYTE_BY_BYTE = sized(4, 40)
#: Of those, delivered in 2..5 writes a few ms apart (a head split across reads).
SPLIT = sized(40, 400)
CLIENTS = sized(4, 6)
#: Inputs sent without the half-close, alongside the concurrent phase: the server must end each
#: by itself (an answer, a refusal, or a close after --socket-timeout), STALL_OPEN at a time.
STALLED = sized(100, 5_000)
STALL_OPEN = 50
CHECK_EVERY = 1_000
#: Set FUZZ_SEED to replay a run (not UWSGIAPP_*: the server would warn about an unknown option).
SEED = int(os.environ.get("FUZZ_SEED", "0")) or random.SystemRandom().randrange(1, 2**31)

PONG = build_pong()
LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [+-]\d{4} \[(\d+)\] \[([A-Z]+)\] (.*)$"
)
STATUS_LINE = re.compile(
    rb"^.* (\d\d\d) "
    rb"(OK|Bad Request|Request Entity Too Large|Request Timeout|Internal Server Error)$"
)
#: What a worker may log for one bad input (one of these, once).
PER_INPUT = {
    "invalid": "invalid uwsgi packet from ",
    "refused": "refused request from ",
    "went_away": "went away while the app read its body",
    "stalled": " stalled: ",
    "client": "client ",
}


def classify(result: RawResult) -> str:
    """answered (2xx or a pong), refused (4xx), timed_out (408), error (5xx), closed (no
    answer), hang (still open), garbled (not a well-formed answer)."""
    if result.end == "timeout":
        return "hang"
    data = result.data
    if not data:
        return "closed"
    if data == PONG:
        return "answered"
    head, sep, body = data.partition(b"\r\n\r\n")
    match = STATUS_LINE.match(head.split(b"\r\n", 1)[0])
    if not sep or match is None:
        return "garbled"
    status = int(match.group(1))
    if status == 200:
        try:
            json.loads(body)
        except ValueError:
            return "garbled"
        return "answered"
    if status == 408:
        return "timed_out"  # only for inputs without the half-close: a stalled small body
    return "refused" if 400 <= status < 500 else "error"


#: A worker's notes said once a process, whatever the input: none an input's own.
ONCE_A_PROCESS = ("a request came with no REQUEST_METHOD",)  # nginx without uwsgi_params


def kind_of(line: str) -> str:
    """The PER_INPUT kind of a worker's log message ("other" when none fits; "summary" for a
    throttle's count of the lines it held back; "once" for a note said once a process)."""
    if "not logged one by one" in line:
        return "summary"
    if any(note in line for note in ONCE_A_PROCESS):
        return "once"
    for kind, marker in PER_INPUT.items():
        if marker in line:
            return kind
    return "other"


def check_request(n: int, rng: random.Random) -> tuple[bytes, str, bytes]:
    """A valid request: the real nginx POST capture re-encoded with another path and body."""
    event, _ = decode((CORPUS / "valid" / "nginx_post_json.bin").read_bytes())
    assert isinstance(event, Request)
    body = rng.randbytes(rng.randint(0, 3000))
    path = f"/echo/check-{n}"
    variables = dict(event.vars)
    variables.update(PATH_INFO=path, REQUEST_URI=path, CONTENT_LENGTH=str(len(body)))
    return build_request(variables, body), path, body


def check_answer(result: RawResult, path: str, body: bytes) -> str:
    """'' when the echo answered the check request correctly, else what was wrong."""
    head, _, payload = result.data.partition(b"\r\n\r\n")
    if not head.startswith(b"HTTP/1.1 200 OK\r\n"):
        return f"{result.end}: {result.data[:120]!r}"
    try:
        info = json.loads(payload)
    except ValueError:
        return f"not JSON: {payload[:120]!r}"
    want = (path, len(body), hashlib.sha256(body).hexdigest())
    got = (info.get("path"), info.get("body_len"), info.get("body_sha256"))
    return "" if got == want else f"echo answered {got}, want {want}"


class Tally:
    """Outcome counts shared by the client threads."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.outcomes: Counter[str] = Counter()
        self.ends: Counter[str] = Counter()
        self.by_mutator: Counter[str] = Counter()
        self.by_mutator_outcome: dict[str, Counter[str]] = {}
        self.max_close = 0.0
        #: The input that took longest to be closed (what it was, how it ended).
        self.slowest = ""
        self.checks = 0
        self.check_failures: list[str] = []
        self.examples: dict[str, str] = {}

    def add(self, mutator: str, data: bytes, result: RawResult) -> str:
        outcome = classify(result)
        with self.lock:
            self.outcomes[outcome] += 1
            self.ends[result.end] += 1
            self.by_mutator[mutator] += 1
            self.by_mutator_outcome.setdefault(mutator, Counter())[outcome] += 1
            if result.seconds > self.max_close:
                self.max_close = result.seconds
                self.slowest = f"{mutator}: {data[:120]!r} -> {result.end} {result.data[:80]!r}"
            if (
                outcome in ("hang", "timed_out", "garbled", "error")
                and outcome not in self.examples
            ):
                self.examples[outcome] = f"{mutator}: {data[:200]!r} -> {result.data[:200]!r}"
        return outcome

    def check(self, sock: str, n: int, rng: random.Random) -> None:
        packet, path, body = check_request(n, rng)
        problem = check_answer(uwsgi_exchange(sock, packet, timeout=HANG_AFTER), path, body)
        with self.lock:
            self.checks += 1
            if problem:
                self.check_failures.append(f"check {n}: {problem}")


@pytest.fixture
def fuzz_server(tmp_path: Path) -> Iterator[Server]:
    # Each log line is matched to the input just sent: the worker must write its own lines
    # (with --log-master, as UWSGIAPP_LOG_MASTER=1 asks, the master's thread writes them ~1 ms
    # later, under the next input).
    server = Server(
        tmp_path / "server",
        "fuzz_app:app",
        workers=2,
        socket_timeout=SOCKET_TIMEOUT,
        log_master=False,
    ).start()
    try:
        wait_for_workers(server, 2)
        yield server
    finally:
        server.stop()


def _sequential(server: Server, source: MutationSource, tally: Tally, count: int) -> dict[str, Any]:
    """``count`` inputs one at a time; every log line is matched to the input that caused it."""
    cursor = LogCursor(server.log_path)
    slow_left, split_left = BYTE_BY_BYTE, SPLIT
    multi_line: list[str] = []
    silent_closes = 0
    rng = random.Random(SEED ^ 0x5EED)
    delivery: Counter[str] = Counter()
    for n in range(1, count + 1):
        if n % CHECK_EVERY == 0:
            tally.check(server.socket, n, rng)
        mutator, _seed_name, data = source.next()
        if slow_left and 4 < len(data) <= 1200 and rng.random() < 0.05:
            slow_left -= 1
            delivery["byte_by_byte"] += 1
            result = uwsgi_exchange(
                server.socket, data, timeout=HANG_AFTER, pieces=len(data), delay=0.001
            )
        elif split_left and len(data) > 4 and rng.random() < 0.2:
            split_left -= 1
            delivery["split"] += 1
            result = uwsgi_exchange(
                server.socket, data, timeout=HANG_AFTER, pieces=rng.randint(2, 5), delay=0.003
            )
        else:
            delivery["whole"] += 1
            result = uwsgi_exchange(server.socket, data, timeout=HANG_AFTER)
        outcome = tally.add(mutator, data, result)
        # The worker logs before it closes: the lines for this input are in the file now. A
        # throttle's count of the lines it held back ends its window whenever that ends (with
        # the next line to log, or at the worker's tick): no input's own.
        lines = [line for line in cursor.new_lines() if kind_of(line) not in ("summary", "once")]
        kinds = [kind_of(line) for line in lines]
        what = f"{mutator} {data[:160]!r} -> {outcome}: {lines}"
        assert len(lines) <= 1, f"more than one log line for one input: {what}"
        if outcome == "answered":
            assert lines == [], f"a log line for an answered request: {what}"
        elif outcome == "refused":
            # One line, or none once a burst's worth was said in the window (counted instead).
            assert kinds in (["refused"], []), f"a refusal logs one line at most: {what}"
        elif outcome == "closed" and data and not lines:
            silent_closes += 1
        multi_line += [line for line in lines if not LOG_LINE.match(line)]
    assert slow_left < BYTE_BY_BYTE, "no input was delivered byte by byte"
    return {
        "sequential_inputs": count,
        "delivery": dict(delivery),
        "silent_closes": silent_closes,
        "unattributable_lines": multi_line,
    }


def _concurrent(server: Server, tally: Tally, count: int, first: int) -> None:
    """``count`` inputs from CLIENTS threads; a check request every CHECK_EVERY inputs."""
    numbers = itertools.count(first + 1)  # next() on it is atomic under the GIL
    errors: list[BaseException] = []

    def client(k: int) -> None:
        source = MutationSource(SEED * 100 + k)
        rng = random.Random(SEED * 100 + k)
        try:
            while (n := next(numbers)) <= first + count:
                if n % CHECK_EVERY == 0:
                    tally.check(server.socket, n, rng)
                mutator, _, data = source.next()
                tally.add(mutator, data, uwsgi_exchange(server.socket, data, timeout=HANG_AFTER))
        except BaseException as exc:  # surfaced in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=client, args=(k,), daemon=True) for k in range(CLIENTS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        raise errors[0]


def _stalls(server: Server, stalls: Tally, count: int) -> None:
    """``count`` inputs that never end with EOF, STALL_OPEN open at once; each must be ended by
    the server (its close time measured from our last byte; HANG_AFTER still open = a hang)."""
    source = MutationSource(SEED * 100 + 99)
    selector = selectors.DefaultSelector()
    sent = 0

    def end(sock: socket.socket, how: str) -> None:
        mutator, data, sent_at, chunks = selector.get_key(sock).data
        selector.unregister(sock)
        sock.close()
        result = RawResult(b"".join(chunks), how, time.monotonic() - sent_at)
        stalls.add(mutator, data, result)

    try:
        while sent < count or selector.get_map():
            while sent < count and len(selector.get_map()) < STALL_OPEN:
                mutator, _, data = source.next()
                sent += 1
                sock = socket.socket(socket.AF_UNIX)
                sock.settimeout(HANG_AFTER)
                sock.connect(server.socket)
                how = ""
                try:
                    sock.sendall(data)
                except (BrokenPipeError, ConnectionResetError):
                    how = "send-failed"
                except TimeoutError:
                    how = "timeout"  # not reading and not closing: a hang
                sock.setblocking(False)
                selector.register(sock, selectors.EVENT_READ, (mutator, data, time.monotonic(), []))
                if how:
                    end(sock, how)
            for key, _ in selector.select(timeout=0.2):
                sock = key.fileobj
                assert isinstance(sock, socket.socket)
                try:
                    chunk = sock.recv(262144)
                except BlockingIOError:
                    continue
                except ConnectionResetError:
                    end(sock, "reset")
                    continue
                if chunk:
                    key.data[3].append(chunk)
                else:
                    end(sock, "eof")
            now = time.monotonic()
            for key in list(selector.get_map().values()):
                if now - key.data[2] > HANG_AFTER:
                    end(key.fileobj, "timeout")  # type: ignore[arg-type]
    finally:
        for key in list(selector.get_map().values()):
            key.fileobj.close()  # type: ignore[union-attr]
        selector.close()


def _scan_log(text: str, master: int) -> dict[str, Any]:
    """Count the log's lines by level, and the workers' lines by kind."""
    levels: Counter[str] = Counter()
    kinds: Counter[str] = Counter()
    others: list[str] = []
    tracebacks = respawns = continuation = 0
    for line in text.splitlines():
        if line.startswith("uwsgiapp serve: warning: ") and "env" in line:
            continue  # the CLI, before logging is set up: the environment is not the input
        if "Traceback" in line:
            tracebacks += 1
        if "starting a new one" in line:
            respawns += 1
        match = LOG_LINE.match(line)
        if match is None:
            continuation += 1
            continue
        levels[match.group(2)] += 1
        if int(match.group(1)) == master:
            continue  # start-up and shutdown lines (respawns counted above)
        kind = kind_of(match.group(3))
        kinds[kind] += 1
        if kind == "other" and len(others) < 5:
            others.append(line)
    return {
        "levels": dict(levels),
        "kinds": dict(kinds),
        "others": others,
        "tracebacks": tracebacks,
        "respawns": respawns,
        "continuation_lines": continuation,
    }


def test_live_fuzz(fuzz_server: Server, report: Report) -> None:
    server = fuzz_server
    report(
        "Live packet fuzzing",
        "mutated nginx captures and corpus packets straight on the uwsgi socket of "
        "`serve --workers 2`: no worker crash, no hang, at most one log line and no traceback "
        "per bad packet, valid requests still answered",
        seed=SEED,
        socket_timeout=SOCKET_TIMEOUT,
        clients=CLIENTS,
    )
    workers = worker_pids(server.pid)
    assert len(workers) == 2
    tally = Tally()
    started = time.monotonic()
    sequential = _sequential(server, MutationSource(SEED), tally, SEQUENTIAL)
    tally.check(server.socket, 0, random.Random(SEED))
    concurrent_started = time.monotonic()
    stalls = Tally()
    staller_errors: list[BaseException] = []

    def staller() -> None:
        try:
            _stalls(server, stalls, STALLED)
        except BaseException as exc:  # surfaced below
            staller_errors.append(exc)

    staller_thread = threading.Thread(target=staller, daemon=True)
    staller_thread.start()
    _concurrent(server, tally, INPUTS - SEQUENTIAL, SEQUENTIAL)
    concurrent_seconds = time.monotonic() - concurrent_started
    staller_thread.join()
    if staller_errors:
        raise staller_errors[0]
    tally.check(server.socket, INPUTS, random.Random(SEED))
    elapsed = time.monotonic() - started
    pids_after = worker_pids(server.pid)
    log = _scan_log(server.log(), server.pid)

    inputs = sum(tally.outcomes.values())
    report.add(
        inputs=inputs,
        outcomes=dict(tally.outcomes),
        connection_ends=dict(tally.ends),
        by_mutator=dict(sorted(tally.by_mutator.items())),
        outcomes_by_mutator={k: dict(v) for k, v in sorted(tally.by_mutator_outcome.items())},
        **sequential,
        valid_checks=tally.checks,
        valid_check_failures=len(tally.check_failures),
        log_levels=log["levels"],
        log_lines_by_kind=log["kinds"],
        tracebacks=log["tracebacks"],
        respawns=log["respawns"],
        worker_pids_unchanged=pids_after == workers,
        max_close_seconds=round(tally.max_close, 3),
        stalled_inputs=sum(stalls.outcomes.values()),
        stalled_outcomes=dict(stalls.outcomes),
        stalled_max_close_seconds=round(stalls.max_close, 3),
        slowest_close=tally.slowest,
        stalled_slowest_close=stalls.slowest,
        inputs_per_second=round((INPUTS - SEQUENTIAL) / concurrent_seconds),
        seconds=round(elapsed, 1),
        examples={**tally.examples, **{f"stalled {k}": v for k, v in stalls.examples.items()}},
    )
    assert inputs == INPUTS
    # (a) no worker crashed or was replaced.
    assert log["respawns"] == 0
    assert pids_after == workers
    # (b) no hang: every connection closed by the server, long before the socket timeout.
    assert tally.outcomes["hang"] == 0, tally.examples.get("hang")
    assert tally.outcomes["timed_out"] == 0, tally.examples.get("timed_out")
    assert tally.max_close < HANG_AFTER
    # Without the half-close too: ended by the server, at the latest after its socket timeout.
    assert sum(stalls.outcomes.values()) == STALLED
    assert stalls.outcomes["hang"] == 0, stalls.examples.get("hang")
    assert stalls.max_close < HANG_AFTER
    assert stalls.outcomes["garbled"] == stalls.outcomes["error"] == 0, stalls.examples
    # (c) one line per bad input at most, no traceback, nothing at ERROR for malformed input.
    assert log["tracebacks"] == 0
    assert log["continuation_lines"] == 0
    assert not sequential["unattributable_lines"]
    assert log["levels"].get("ERROR", 0) == 0 and log["levels"].get("CRITICAL", 0) == 0
    assert log["others"] == []
    assert log["kinds"].get("once", 0) <= 2 * len(workers)  # once a process: bounded
    kinds = log["kinds"]
    refusals = tally.outcomes["refused"] + stalls.outcomes["refused"]
    assert min(refusals, throttle.INVALID_LOG_BURST) <= kinds.get("refused", 0) <= refusals
    assert kinds.get("stalled", 0) >= stalls.outcomes["timed_out"]  # a 408 comes with its line
    per_input = sum(kinds.get(k, 0) for k in ("invalid", "went_away", "client", "stalled"))
    closed = tally.outcomes["closed"] + stalls.outcomes["closed"] + stalls.outcomes["timed_out"]
    assert per_input <= closed
    # Every response is well-formed; no 5xx (the app never fails on these inputs).
    assert tally.outcomes["garbled"] == 0, tally.examples.get("garbled")
    assert tally.outcomes["error"] == 0, tally.examples.get("error")
    # (d) valid requests answered correctly throughout.
    assert tally.checks == INPUTS // CHECK_EVERY + 2  # + one between the phases, one at the end
    assert tally.check_failures == []
    # The fuzz reached every layer: refused at the codec, refused before the app, answered.
    assert tally.outcomes["answered"] and tally.outcomes["refused"] and kinds.get("invalid")


# -- a client that disconnects while the app reads its body ------------------------------------


@pytest.fixture
def app_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The file fuzz_app appends what it saw to (the server inherits the variable)."""
    path = tmp_path / "app-report.jsonl"
    monkeypatch.setenv("FUZZ_APP_REPORT", str(path))
    return path


def _entries(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


#: The promised body of the disconnect tests (half of it is sent).
BODY = 200_000


def _body_request(path: str, length: int, sent: int) -> bytes:
    variables = {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": path,
        "REQUEST_URI": path,
        "QUERY_STRING": "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "SERVER_NAME": "localhost",
        "SERVER_PORT": "80",
        "CONTENT_LENGTH": str(length),
    }
    return build_request(variables, b"b" * sent)


def _disconnect_mid_body(
    server: Server, app_report: Path, route: str, how: str, marker: str
) -> tuple[bytes, list[str]]:
    """Send the head and half the body of a POST to ``route``; once the app is reading (its
    report says ``marker``), disconnect ``how`` ("close" or "half-close"). Returns what the
    server answered and the log lines it wrote for this connection."""
    # The master logs a worker's start after the fork that wait_for_workers saw: a line that
    # came late was taken for this connection's.
    wait_until(lambda: ") started" in server.log(), 5, "the worker's start-up line")
    cursor = LogCursor(server.log_path)
    before = len(_entries(app_report))
    sock = socket.socket(socket.AF_UNIX)
    sock.settimeout(HANG_AFTER)
    sock.connect(server.socket)
    try:
        # Over the 64 KB a worker reads before calling the app (a smaller body that does not
        # arrive never reaches the app): the app is called and blocks in its read.
        sock.sendall(_body_request(route, BODY, BODY // 2))
        wait_until(
            lambda: any(marker in json.dumps(e) for e in _entries(app_report)[before:]),
            5,
            f"the app to start reading ({route})",
        )
        time.sleep(0.05)  # let it block in the read
        started = time.monotonic()
        if how == "close":
            sock.close()
            answer = b""
        else:
            sock.shutdown(socket.SHUT_WR)
            answer = b"".join(iter(lambda: sock.recv(65536), b""))
        # The server logs before it closes; with a full close we cannot see the close, so wait
        # for the worker to be idle again (a ping is answered) and for the log to settle.
        pong = uwsgi_exchange(server.socket, bytes([100, 0, 0, 0]), timeout=HANG_AFTER)
        assert pong.data == PONG
        assert time.monotonic() - started < SOCKET_TIMEOUT, "the disconnect was not noticed"
    finally:
        sock.close()
    time.sleep(0.1)
    return answer, cursor.new_lines()


def _assert_one_quiet_line(lines: list[str], fragment: str) -> None:
    assert len(lines) == 1, lines
    match = LOG_LINE.match(lines[0])
    assert match is not None, lines
    assert match.group(2) == "INFO", lines
    assert fragment in match.group(3), lines
    assert "Traceback" not in "\n".join(lines)


@pytest.mark.parametrize("how", ["close", "half-close"])
def test_disconnect_escaping_the_app_is_one_line(
    tmp_path: Path, app_report: Path, report: Report, how: str
) -> None:
    server = Server(tmp_path / "server", "fuzz_app:app", socket_timeout=SOCKET_TIMEOUT).start()
    try:
        workers = wait_for_workers(server, 1)
        answer, lines = _disconnect_mid_body(
            server, app_report, "/__rel/read-escape", how, "reading"
        )
        report(
            f"Client disconnects mid-body ({how}), the app lets the error escape",
            "one INFO log line, no app traceback, no answer, the worker lives",
            log_lines=len(lines),
            line=lines[0] if lines else "",
        )
        assert answer == b""
        _assert_one_quiet_line(lines, "went away while the app read its body")
        assert not [e for e in _entries(app_report) if e.get("event") == "read"]
        assert worker_pids(server.pid) == workers
    finally:
        server.stop()
    assert "Traceback" not in server.log()


@pytest.mark.parametrize("how", ["close", "half-close"])
def test_disconnect_caught_by_the_app_is_an_oserror(
    tmp_path: Path, app_report: Path, report: Report, how: str
) -> None:
    server = Server(tmp_path / "server", "fuzz_app:app", socket_timeout=SOCKET_TIMEOUT).start()
    try:
        workers = wait_for_workers(server, 1)
        answer, lines = _disconnect_mid_body(
            server, app_report, "/__rel/read-catch", how, "reading"
        )
        seen = [e for e in _entries(app_report) if "caught" in e]
        report(
            f"Client disconnects mid-body ({how}), the app catches the error",
            "the app sees the server's ClientDisconnected, an OSError; reading again raises at "
            "once; one INFO log line says the client left and that the app caught it",
            caught=seen[0]["caught"] if seen else None,
            log_lines=len(lines),
        )
        assert len(seen) == 1
        info = seen[0]
        assert info["caught"] == "uwsgiapp.wsgi.input.ClientDisconnected"
        assert info["is_oserror"] is True and "OSError" in info["mro"]
        assert info["second_read"] == "ClientDisconnected"
        assert info["second_read_seconds"] < 0.5  # no second wait for a client that is gone
        # One line, as uWSGI's: the app's own answer does not say that the client left.
        _assert_one_quiet_line(lines, "went away while the app read its body")
        (line,) = lines
        if how == "half-close":
            # Our read side is open: the app's answer arrives.
            assert answer.startswith(b"HTTP/1.1 200 OK\r\n")
            answered = json.loads(answer.partition(b"\r\n\r\n")[2])
            assert answered == {k: v for k, v in info.items() if k not in ("pid", "route")}
            assert "the app caught it and went on: answered 200" in line, line
        else:
            # Its answer cannot be delivered: said in the same line, not in a second one.
            assert "the app caught it and went on: " in line, line
        assert worker_pids(server.pid) == workers
    finally:
        server.stop()
    assert "Traceback" not in server.log()


def test_disconnect_while_the_response_iterator_reads_body(
    tmp_path: Path, app_report: Path, report: Report
) -> None:
    server = Server(tmp_path / "server", "fuzz_app:app", socket_timeout=SOCKET_TIMEOUT).start()
    try:
        workers = wait_for_workers(server, 1)
        answer, lines = _disconnect_mid_body(
            server, app_report, "/__rel/read-in-iter", "half-close", "reading"
        )
        report(
            "Client disconnects while the response iterator reads the body",
            "one INFO log line, no traceback, the worker lives",
            log_lines=len(lines),
        )
        # The head and first chunk went out before the body read failed; nothing after.
        assert answer.endswith(b"\r\n\r\n[")
        _assert_one_quiet_line(lines, "client ")
        assert worker_pids(server.pid) == workers
    finally:
        server.stop()
    assert "Traceback" not in server.log()


def test_mutations_are_reproducible_from_the_seed(report: Report) -> None:
    report(
        "Fuzz inputs are reproducible",
        "the same seed gives the same mutations (a failing run is replayed with FUZZ_SEED)",
    )
    a, b = MutationSource(1234), MutationSource(1234)
    assert [a.next() for _ in range(300)] == [b.next() for _ in range(300)]
    # And the captures decode (the seeds the mutators start from are real packets).
    for name in ("nginx_get_hello.bin", "nginx_post_json.bin"):
        event, _ = decode((CORPUS / "valid" / name).read_bytes(), Limits())
        assert isinstance(event, Request)
