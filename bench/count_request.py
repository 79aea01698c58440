"""Count what one request costs a uwsgiapp worker, without a clock: syscalls and allocations.

    python bench/count_request.py                     # both parts (needs strace and valgrind)
    python bench/count_request.py --only syscalls     # or: --only allocations
    python bench/count_request.py --app flask

**syscalls**: a worker in this process behind a private nginx (as in bench/profile_worker.py)
serves wrk for a few seconds with ``strace -c`` attached to its thread; calls per request, by
name. strace slows the worker, so more connections wait in its queue than without it: epoll
waits per request are fewer than in an untraced run.

**allocations and instructions**: the worker's Handler, in a child process under valgrind's
callgrind, serves the real nginx GET capture (19 vars, path rewritten to ``/``) delivered over
socketpairs, after a warm-up in which it learns the key layout. The same run with a handler that
only closes the fd is subtracted. Allocations are calls into CPython's object allocator (every
object, str, dict and buffer the request creates, freed or not); instructions are user space
only. Both are exact counts, so unlike timings they do not move with the machine's load.
"""

from __future__ import annotations

import argparse
import collections
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import profile_worker
import run as bench
from uwsgiapp.config import Config, make_config
from uwsgiapp.importer import load_app
from uwsgiapp.supervisor import build_handler
from uwsgiapp.supervisor.status import StatusTable, count_requests
from uwsgiproto import build_request, parse_vars

CAPTURE = bench.ROOT / "tests" / "corpus" / "valid" / "nginx_get_hello.bin"
#: CPython's allocator entry points (release builds route PyMem_* and PyObject_* here).
ALLOCATORS = frozenset({"_PyObject_Malloc", "_PyObject_Calloc", "_PyObject_Realloc"})
WARM_UP = 200
BATCH = 200


def count_syscalls(app: str, seconds: int, conns: int) -> tuple[int, dict[str, int]]:
    """Serve wrk with strace attached to this thread; (requests, calls by syscall name)."""
    if shutil.which("strace") is None:
        sys.exit("strace is not installed")
    with profile_worker.live_worker(app) as (worker, url), tempfile.TemporaryDirectory() as tmp:
        profile_worker.drive(worker, url, conns, 1, None)  # warm-up: the layout is learnt
        out = Path(tmp) / "strace.txt"
        # Without -f: this thread only (the main thread's id is the pid), not wrk's waiter.
        tracer = subprocess.Popen(
            ["strace", "-c", "-o", str(out), "-p", str(os.getpid())],
            stderr=subprocess.DEVNULL,
        )
        time.sleep(1.0)  # strace attaches
        requests, _cpu, _ = profile_worker.drive(worker, url, conns, seconds, None)
        tracer.send_signal(signal.SIGINT)
        tracer.wait(10)
        calls: dict[str, int] = {}
        for line in out.read_text().splitlines():
            fields = line.split()
            # % time, seconds, usecs/call, calls, [errors,] syscall
            if len(fields) >= 5 and fields[0][0].isdigit() and fields[-1] != "total":
                calls[fields[-1]] = int(fields[3])
    return requests, calls


def packet() -> bytes:
    variables = parse_vars(CAPTURE.read_bytes()[4:])
    variables["PATH_INFO"] = variables["REQUEST_URI"] = "/"
    return build_request(variables)


def inner(app: str, mode: str, requests: int, stats: bool = False, log: bool = False) -> None:
    """The callgrind subject: warm up, then serve ``requests`` (mode real) or only close them."""
    with tempfile.TemporaryDirectory() as tmp:
        config = make_config(
            app=f"{bench.APP_MODULES[app]}:app",
            socket=("unused.sock",),
            # as the bench's -log variants: uWSGI's line format, to a file
            access_log="uwsgi" if log else "off",
            access_log_file=str(Path(tmp) / "access.log"),
        )
        _serve_counted(config, mode, requests, stats)


def _serve_counted(config: Config, mode: str, requests: int, stats: bool) -> None:
    handler = build_handler(load_app(config.app, pythonpath=(str(bench.APPS),)), config)
    # The status hooks the worker loop calls around each connection, as in 'serve'.
    hooks = StatusTable(1).hooks(0, os.getpid())
    if stats:  # as a worker of 'serve --stats' is wired
        hooks = count_requests(handler, hooks)
    data = packet()
    served = 0

    def serve(count: int, real: bool) -> None:
        nonlocal served
        for _ in range(0, count, BATCH):
            pairs = []
            for _ in range(BATCH):
                client, server = socket.socketpair()
                client.sendall(data)
                pairs.append((client, server.detach()))
            for client, fd in pairs:
                if real:
                    hooks.begin()
                    handler.begin(fd, "count")
                    served += 1
                    hooks.end(served)
                else:
                    os.close(fd)
                client.close()

    serve(WARM_UP, True)
    serve(requests, mode == "real")


def callgrind(
    app: str, mode: str, requests: int, stats: bool, log: bool
) -> tuple[int, dict[str, int]]:
    """(instructions, calls by function) of one inner run under callgrind."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "callgrind.out"
        cmd = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            sys.executable,
            __file__,
            "--inner",
            mode,
            "--requests",
            str(requests),
            "--app",
            app,
            *(["--stats"] if stats else []),
            *(["--access-log"] if log else []),
        ]
        # A fixed hash seed: str hashes, and with them dict probes, are the same in every run.
        env = {**os.environ, "PYTHONHASHSEED": os.environ.get("COUNT_SEED", "0")}
        done = subprocess.run(cmd, capture_output=True, text=True, check=False, env=env)
        if done.returncode != 0 or not out.exists():
            sys.exit(f"callgrind run failed:\n{done.stderr[-2000:]}")
        return parse_callgrind(out.read_text())


def parse_callgrind(text: str) -> tuple[int, dict[str, int]]:
    """Total instructions and the number of calls into each function of a callgrind profile."""
    names: dict[str, str] = {}
    calls: collections.Counter[str] = collections.Counter()
    total = 0
    callee = ""
    for line in text.splitlines():
        if line.startswith("summary:") or line.startswith("totals:"):
            total = int(line.split()[1])
        elif line.startswith("cfn="):
            m = re.match(r"cfn=\((\d+)\)(?: (.*))?", line)
            if m:
                if m.group(2):
                    names[m.group(1)] = m.group(2)
                callee = names.get(m.group(1), "")
        elif line.startswith("fn="):
            m = re.match(r"fn=\((\d+)\)(?: (.*))?", line)
            if m and m.group(2):
                names[m.group(1)] = m.group(2)
        elif line.startswith("calls="):
            calls[callee.split("'")[0]] += int(line[6:].split()[0])
    return total, dict(calls)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--app", choices=sorted(bench.APP_MODULES), default="hello")
    ap.add_argument("--only", choices=("syscalls", "allocations"), default="")
    ap.add_argument("--seconds", type=int, default=3, help="wrk seconds under strace")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--requests", type=int, default=2000, help="requests under callgrind")
    ap.add_argument(
        "--stats", action="store_true", help="count requests as a worker of 'serve --stats'"
    )
    ap.add_argument(
        "--access-log",
        action="store_true",
        help="with the access log on (uWSGI's format, to a file, as the bench's -log variants)",
    )
    ap.add_argument("--inner", choices=("real", "null"), help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inner:
        inner(args.app, args.inner, args.requests, args.stats, args.access_log)
        return 0
    log = "on (to a file)" if args.access_log else "off"
    print(f"app {args.app}, access log {log}, stats {'on' if args.stats else 'off'}")
    if args.only in ("", "syscalls"):
        requests, syscalls = count_syscalls(args.app, args.seconds, args.conns)
        print(f"\nsyscalls per request (strace -c on the worker, {requests} requests via nginx):")
        for name, n in sorted(syscalls.items(), key=lambda kv: -kv[1]):
            if n / requests >= 0.005:
                print(f"  {n / requests:6.2f}  {name}")
        print(f"  {sum(syscalls.values()) / requests:6.2f}  in all")
    if args.only in ("", "allocations"):
        if shutil.which("valgrind") is None:
            sys.exit("valgrind is not installed")
        # Two threads: the runs are independent, and each takes a minute or so under valgrind.
        results: dict[str, tuple[int, dict[str, int]]] = {}
        runs = [
            threading.Thread(
                target=lambda m=mode: results.__setitem__(
                    m, callgrind(args.app, m, args.requests, args.stats, args.access_log)
                )
            )
            for mode in ("real", "null")
        ]
        for t in runs:
            t.start()
        for t in runs:
            t.join()
        (real_ir, real_calls), (null_ir, null_calls) = results["real"], results["null"]
        n = args.requests
        allocs = sum(real_calls.get(f, 0) - null_calls.get(f, 0) for f in ALLOCATORS)
        print(f"\nper request in the handler (callgrind, {n} requests over socketpairs):")
        print(f"  {(real_ir - null_ir) / n:9.0f}  instructions (user space)")
        print(f"  {allocs / n:9.1f}  allocations (calls into CPython's object allocator)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
