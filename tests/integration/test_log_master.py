"""--log-master: workers' log lines reach a pipe whole, however long and however many write.

The server's stdout and stderr are one pipe (as under Docker or systemd), read by a thread of
the test; the workers write 10-50 KB JSON records (a traceback each) all at once.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import select
import signal
import socket
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from support.procs import Nginx, Server, uwsgi_exchange, wait_until, worker_pids

import uwsgiproto


class Piped:
    """``uwsgiapp serve logmaster_app:app`` with stdout and stderr one pipe, read by a thread
    (which stops reading while ``reading`` is clear)."""

    def __init__(self, tmp_path: Path, **options: Any) -> None:
        options.setdefault("error_log_format", "json")
        self.server = Server(tmp_path / "server", "logmaster_app:app", **options)
        self.lines: list[bytes] = []
        self.reading = threading.Event()
        self.reading.set()

    def __enter__(self) -> Piped:
        self.proc = subprocess.Popen(
            self.server.command(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            cwd=self.server.workdir,
        )
        self.server.proc = self.proc
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        wait_until(self._ready, 15, "the server to listen")
        return self

    def _ready(self) -> bool:
        assert self.proc.poll() is None, b"\n".join(self.lines)
        with socket.socket(socket.AF_UNIX) as s:
            s.connect(self.server.socket)
        return True

    def _read(self) -> None:
        assert self.proc.stdout is not None
        fd, held = self.proc.stdout.fileno(), b""
        while True:
            self.reading.wait()
            if not select.select([fd], [], [], 0.05)[0]:
                continue  # reading is looked at again at least every 50 ms
            data = os.read(fd, 65536)
            if not data:
                break
            *whole, held = (held + data).split(b"\n")
            self.lines += whole
        if held:
            self.lines.append(held)

    def __exit__(self, *exc: object) -> None:
        self.reading.set()
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._reader.join(30)

    def get(self, path: str, query: str = "", timeout: float = 60) -> bytes:
        """One request straight to the server's socket: what it answered."""
        packet = uwsgiproto.build_request(
            {
                "REQUEST_METHOD": "GET",
                "PATH_INFO": path,
                "QUERY_STRING": query,
                "REQUEST_URI": f"{path}?{query}",
                "SERVER_PROTOCOL": "HTTP/1.1",
            }
        )
        return uwsgi_exchange(self.server.socket, packet, timeout=timeout).data

    def split(self) -> tuple[list[dict[str, Any]], list[bytes]]:
        """The lines read: (those that parse as JSON objects, those that do not)."""
        good, bad = [], []
        for line in self.lines:
            try:
                good.append(json.loads(line))
            except ValueError:
                bad.append(line)
        return good, bad

    def messages(self, prefix: str) -> list[str]:
        """The app's records whose message starts with ``prefix``."""
        good, _ = self.split()
        return [r["message"] for r in good if r.get("message", "").startswith(prefix)]


def _records_query(tag: str, count: int, size: int, pause: float = 0) -> str:
    return f"tag={tag}&count={count}&size={size}&pause={pause}"


def test_json_records_of_many_workers_reach_the_pipe_whole(
    tmp_path: Path, nginx_available: None
) -> None:
    rng = random.Random(3)
    asks = [(f"c{i}", rng.randint(10_000, 50_000)) for i in range(32)]
    with Piped(tmp_path, workers=4, log_master=True, access_log="json") as piped:
        nginx = Nginx(tmp_path / "nginx", piped.server.upstream).start()
        try:
            with ThreadPoolExecutor(8) as pool:
                answers = list(
                    pool.map(
                        lambda a: nginx.request("GET", f"/records?{_records_query(a[0], 4, a[1])}"),
                        asks,
                    )
                )
        finally:
            nginx.stop()
        assert [status for status, _, _ in answers] == [200] * len(asks)
        served_by = {body for _, _, body in answers}
    good, bad = piped.split()
    assert not bad, [line[:200] for line in bad]
    records = [r for r in good if r.get("logger") == "uwsgiapp.app"]
    assert sorted(r["message"] for r in records) == sorted(
        f"rec {tag} {i}" for tag, _ in asks for i in range(4)
    )
    sizes = dict(asks)
    assert all(len(r["traceback"]) > sizes[r["message"].split()[1]] for r in records)
    access = [r for r in good if "status" in r]  # the records name their request too
    assert sum(1 for r in access if r["uri"].startswith("/records")) == len(asks)
    assert all(r["uri"].startswith("/records") for r in records)
    assert len(served_by) > 1  # several workers wrote at once


def test_lines_written_in_pieces_reach_the_pipe_whole(tmp_path: Path) -> None:
    # One line in three writes, 50 ms apart, while other workers write records.
    with Piped(tmp_path, workers=3, log_master=True) as piped, ThreadPoolExecutor(8) as pool:
        jobs = [pool.submit(piped.get, "/piece", f"tag=p{i}") for i in range(6)]
        jobs += [
            pool.submit(piped.get, "/records", _records_query(f"t{i}", 3, 30_000)) for i in range(6)
        ]
        assert all(job.result().startswith(b"HTTP/1.1 200") for job in jobs)
    good, bad = piped.split()
    assert not bad, [line[:200] for line in bad]
    pieces = sorted(r["piece"] for r in good if "piece" in r)
    assert pieces == sorted(f"p{i}" for i in range(6))
    assert all(len(r["fill"]) == 20000 for r in good if "piece" in r)
    assert len(piped.messages("rec t")) == 18


def test_the_threads_of_a_worker_write_their_records_and_access_lines_whole(
    tmp_path: Path,
) -> None:
    # Access lines of 12 KB (a long query) and 30 KB records, from 4 threads of each worker.
    pad = "q" * 12_000
    with (
        Piped(tmp_path, workers=2, threads=4, log_master=True, access_log="json") as piped,
        ThreadPoolExecutor(8) as pool,
    ):
        jobs = [
            pool.submit(piped.get, "/records", _records_query(f"t{i}", 3, 30_000) + "&pad=" + pad)
            for i in range(16)
        ]
        assert all(job.result().startswith(b"HTTP/1.1 200") for job in jobs)
    good, bad = piped.split()
    assert not bad, [line[:200] for line in bad]
    assert len(piped.messages("rec t")) == 48
    assert sum(1 for r in good if "status" in r and r["uri"].endswith(pad)) == 16


def test_a_worker_killed_mid_line_has_its_piece_written_on_a_line_of_its_own(
    tmp_path: Path,
) -> None:
    with Piped(tmp_path, workers=2, log_master=True) as piped:
        wait_until(lambda: len(worker_pids(piped.server.pid)) == 2, 10, "2 workers")
        before = worker_pids(piped.server.pid)
        with ThreadPoolExecutor(2) as pool:
            load = pool.submit(piped.get, "/records", _records_query("k", 20, 20_000, 0.01))
            assert piped.get("/die", "tag=gone") == b""
            assert load.result().startswith(b"HTTP/1.1 200")
        wait_until(lambda: len(worker_pids(piped.server.pid) - before) == 1, 10, "a respawn")
    good, bad = piped.split()
    # A piece is no JSON object: under --error-log-format json, a record of its own.
    assert bad == [], [line[:200] for line in bad]
    (piece,) = [r for r in good if r.get("logger") == "output"]
    assert piece["message"] == '{"dying": "gone' and piece["level"] == "INFO"
    assert piece["pid"] in before
    assert len(piped.messages("rec k")) == 20


def test_the_workers_output_is_json_records_under_the_json_error_log(tmp_path: Path) -> None:
    # --error-log-format json with --log-master: the app's prints and what C code writes to
    # fds 1 and 2 were plain lines among the records (a collector parsing JSON dropped them).
    with Piped(tmp_path, workers=1, log_master=True) as piped:
        assert piped.get("/print", "tag=hello").startswith(b"HTTP/1.1 200")
    good, bad = piped.split()
    assert bad == [], [line[:200] for line in bad]
    printed = [r for r in good if r.get("logger") == "output"]
    assert [r["message"] for r in printed] == ["printed hello", "to stderr \\xff hello"]
    assert {r["level"] for r in printed} == {"INFO"}  # stdout and stderr are one pipe here
    assert any(r.get("own") == "hello" for r in good)  # the app's own JSON line, as it was
    # Without the JSON error log they stay the lines the app wrote.
    with Piped(tmp_path / "text", workers=1, log_master=True, error_log_format="text") as plain:
        assert plain.get("/print", "tag=hi").startswith(b"HTTP/1.1 200")
    assert b"printed hi" in plain.lines and b'{"own": "hi"}' in plain.lines


def test_a_hup_under_logging_load_loses_no_line(tmp_path: Path) -> None:
    done: list[str] = []
    stop = threading.Event()

    def client(name: str) -> None:
        n = 0
        while not stop.is_set():
            tag = f"{name}-{n}"
            if piped.get("/records", _records_query(tag, 3, 12_000)).startswith(b"HTTP/1.1 200"):
                done.append(tag)
            n += 1

    with Piped(tmp_path, workers=2, log_master=True) as piped:
        old = worker_pids(piped.server.pid)
        with ThreadPoolExecutor(3) as pool:
            clients = [pool.submit(client, f"h{i}") for i in range(3)]
            wait_until(lambda: len(done) >= 10, 20, "requests before the HUP")
            piped.server.signal(signal.SIGHUP)
            wait_until(lambda: not old & worker_pids(piped.server.pid), 20, "the old workers gone")
            count = len(done)
            wait_until(lambda: len(done) >= count + 10, 20, "requests after the HUP")
            stop.set()
            for job in clients:
                job.result()
    good, bad = piped.split()
    assert not bad, [line[:200] for line in bad]
    got = set(piped.messages("rec h"))
    assert got >= {f"rec {tag} {i}" for tag in done for i in range(3)}
    assert any("reload" in r.get("message", "") for r in good)


def test_term_writes_every_line_before_the_master_exits(tmp_path: Path) -> None:
    with Piped(tmp_path, workers=2, threads=2, log_master=True) as piped:
        with ThreadPoolExecutor(4) as pool:
            jobs = [
                pool.submit(piped.get, "/records", _records_query(f"s{i}", 10, 20_000, 0.05))
                for i in range(4)
            ]
            wait_until(lambda: len(piped.messages("rec s")) >= 4, 10, "the requests under way")
            piped.server.signal(signal.SIGTERM)
            assert all(job.result().startswith(b"HTTP/1.1 200") for job in jobs)
        assert piped.proc.wait(30) == 0
    good, bad = piped.split()
    assert not bad, [line[:200] for line in bad]
    assert len(piped.messages("rec s")) == 40
    assert good[-1]["message"].startswith("all workers stopped"), good[-1]


def test_a_reader_that_stopped_reading_does_not_stop_the_respawn(tmp_path: Path) -> None:
    with Piped(tmp_path, workers=2, log_master=True) as piped:
        wait_until(lambda: len(worker_pids(piped.server.pid)) == 2, 10, "2 workers")
        piped.reading.clear()  # the target pipe fills: the thread blocks, then the workers
        time.sleep(0.3)  # a read under way ends
        with ThreadPoolExecutor(2) as pool:
            jobs = [
                pool.submit(piped.get, "/records", _records_query(f"f{i}", 40, 20_000))
                for i in range(2)
            ]
            seen = len(piped.lines)
            victim, *_ = worker_pids(piped.server.pid)
            os.kill(victim, signal.SIGKILL)
            wait_until(
                lambda: len(worker_pids(piped.server.pid) - {victim}) == 2, 10, "the respawn"
            )
            assert len(piped.lines) == seen  # nothing was read meanwhile
            piped.reading.set()
            for job in jobs:
                job.result()
    _, bad = piped.split()
    assert len(bad) <= 1, [line[:200] for line in bad]  # the killed worker's last piece


def _open_paths(pid: int) -> set[str]:
    fds = Path(f"/proc/{pid}/fd")
    paths = set()
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            paths.add(os.readlink(fd))
    return paths


def test_usr1_reopens_the_files_in_the_master_and_workers_hold_none(tmp_path: Path) -> None:
    error_log, access_log = tmp_path / "error.log", tmp_path / "access.log"
    options = {"error_log_file": str(error_log), "access_log_file": str(access_log)}
    with Piped(tmp_path, workers=2, log_master=True, access_log="json", **options) as piped:
        wait_until(lambda: len(worker_pids(piped.server.pid)) == 2, 10, "2 workers")
        # A worker closes what it inherited just after the fork: it holds none once started
        # (one that kept a file would fail this wait).
        logs = {str(error_log), str(access_log)}
        wait_until(
            lambda: not any(logs & _open_paths(pid) for pid in worker_pids(piped.server.pid)),
            10,
            "workers that hold no log file",
        )
        assert piped.get("/records", _records_query("before", 2, 20_000)).startswith(b"HTTP/1.1")
        # Written by the master a moment after the answer (what it holds when the file moves
        # goes to the new one).
        wait_until(lambda: "rec before 1" in error_log.read_text(), 10, "the records before")
        wait_until(lambda: "tag=before" in access_log.read_text(), 10, "the access line before")
        error_log.rename(tmp_path / "error.log.1")
        access_log.rename(tmp_path / "access.log.1")
        piped.server.signal(signal.SIGUSR1)
        wait_until(error_log.exists, 10, "the new error log")
        assert piped.get("/records", _records_query("after", 2, 20_000)).startswith(b"HTTP/1.1")
    old, new = (tmp_path / "error.log.1").read_text(), error_log.read_text()
    assert "rec before 1" in old and "rec after" not in old
    assert "rec after 1" in new and "all workers stopped" in new
    assert '"uri": "/records?tag=after' in access_log.read_text()
    assert '"uri": "/records?tag=before' in (tmp_path / "access.log.1").read_text()
    assert all(json.loads(line) for line in new.splitlines())


STUCK = ("/sleep", "/sleep-in-c")


def test_a_harakiri_s_lines_and_stack_dumps_are_whole_records(tmp_path: Path) -> None:
    # The worker's Python stack (its USR2 handler, through its pipe) and, for one stuck where
    # the handler cannot run, faulthandler's dump (the master's record, through its queue):
    # each one JSON line amid other workers' records.
    def load(tag: str) -> list[bytes]:
        # Requests within --harakiri (0.5 s each: a harakiri cuts its request at once), one
        # after another until the dumps are in, so that records are written around them.
        answers: list[bytes] = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and not dumped():
            query = _records_query(f"{tag}-{len(answers)}", 10, 20_000, 0.05)
            answers.append(piped.get("/records", query))
        return answers

    def dumped() -> bool:
        return any("stacks of the worker" in m for m in piped.messages(""))

    with Piped(tmp_path, workers=4, harakiri=1, log_master=True) as piped:
        with ThreadPoolExecutor(4) as pool:
            stuck = [pool.submit(piped.get, path, "seconds=30") for path in STUCK]
            loads = [pool.submit(load, f"b{i}") for i in range(2)]
            assert [job.result() for job in stuck] == [b"", b""]
            answers = [answer for job in loads for answer in job.result()]
        wait_until(dumped, 10, "dump")
    assert answers and all(answer.startswith(b"HTTP/1.1 200") for answer in answers)
    good, bad = piped.split()
    assert not bad, [line[:200] for line in bad]
    said = " ".join(r.get("message", "") + r.get("traceback", "") for r in good)
    assert "HARAKIRI" in said and "faulthandler" in said and "_sleep_in_c" in said
    assert "stuck in GET /sleep" in said and "in _sleep" in said
    assert len(piped.messages("rec b")) == 10 * len(answers)
