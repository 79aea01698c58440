"""Count a request in the benchmark's regime: connections already queued, served in runs.

    cd /tmp && PYTHONSAFEPATH=1 <compiled venv>/bin/python /path/to/bench/count_queued.py
    python bench/count_queued.py --top 20          # the sources; the widest-spread functions

Under wrk -c32 through nginx a worker's queue is rarely empty (5.02 syscalls a request, 0.001
failed accepts: SPEED.md), so a request is one turn of the accept loop's run. count_servers.py
and footprint.py send one request at a time instead, which takes the light-load path, and
whether the worker wins the race between the client's connect and its send (under valgrind,
50 times slower) moves their counts by thousands of instructions. Here a forked client queues
``--round`` connections with the real nginx GET capture before the worker loop
(:class:`~uwsgiapp.server.worker.Worker`, with the status slot's hooks, as ``serve`` wires
it) runs, then reads every answer and stops the loop with SIGHUP. Under callgrind
(``--dump-instr=yes``), the run of ``--base`` requests is subtracted from the run of ``--base
+ --requests``: instructions, allocations, and the code lines and pages a request touches
(bench/footprint.py's weights). Exact counts; only the parent (the worker) is counted.
"""

from __future__ import annotations

import argparse
import gc
import os
import resource
import signal
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench
from count_request import ALLOCATORS, packet, parse_callgrind
from footprint import per_request, report, worker_profile
from threads_handoff import cpu_model

WARM_UP = 300


def serve_rounds(app: str, requests: int, size: int) -> None:
    """The callgrind subject: warm up, then serve ``requests`` in rounds of ``size``."""
    from uwsgiapp.config import make_config
    from uwsgiapp.importer import load_app
    from uwsgiapp.server.listeners import Listener
    from uwsgiapp.server.worker import Worker
    from uwsgiapp.supervisor import build_handler
    from uwsgiapp.supervisor.status import StatusTable

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    config = make_config(
        app=f"{bench.APP_MODULES[app]}:app", socket=("unused.sock",), access_log="off"
    )
    handler = build_handler(load_app(config.app, pythonpath=(str(bench.APPS),)), config)
    hooks = StatusTable(1).hooks(0, os.getpid())
    data = packet()
    path = os.path.join(tempfile.mkdtemp(), "w.sock")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(path)
    sock.listen(size + 64)
    listener = Listener(sock=sock, spec=path)

    def one_round(n: int) -> None:
        ready_r, ready_w = os.pipe()
        pid = os.fork()
        if pid == 0:  # the client: queue n connections, then read every answer
            clients = []
            for _ in range(n):
                c = socket.socket(socket.AF_UNIX)
                c.connect(path)
                c.sendall(data)
                clients.append(c)
            os.write(ready_w, b"x")
            bad = sum(not c.recv(100).startswith(b"HTTP/1.1 200") for c in clients)
            os.kill(os.getppid(), signal.SIGHUP)  # the worker's reload: it stops accepting
            os._exit(1 if bad else 0)
        os.read(ready_r, 1)
        os.close(ready_r)
        os.close(ready_w)
        Worker(handler, [listener], hooks=hooks).run()
        if os.waitpid(pid, 0)[1] != 0:
            sys.exit("a queued request was not answered 200")

    one_round(WARM_UP)  # the layouts are learnt
    gc.freeze()  # as a worker does before serving
    for _ in range(requests // size):
        one_round(size)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--app", choices=sorted(bench.APP_MODULES), default="hello")
    ap.add_argument("--requests", type=int, default=800, help="the counted requests")
    ap.add_argument("--base", type=int, default=400, help="requests of the shorter run")
    ap.add_argument("--round", type=int, default=400, help="connections queued at once")
    ap.add_argument("--top", type=int, default=0, help="list the N functions spread widest")
    ap.add_argument("--inner", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.inner is not None:
        serve_rounds(args.app, args.inner, args.round)
        return 0
    if args.base % args.round or args.requests % args.round:
        sys.exit("--base and --requests must be multiples of --round")
    print(f"app {args.app}, {args.round} connections queued a round; CPU {cpu_model()}")
    runs = []
    allocs = []
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.base, args.base + args.requests):
            out = Path(tmp) / str(n)
            out.mkdir()
            cmd = ["valgrind", "--tool=callgrind", "--dump-instr=yes"]
            cmd += [f"--callgrind-out-file={out}/cg.%p", sys.executable, __file__]
            cmd += ["--inner", str(n), "--app", args.app, "--round", str(args.round)]
            env = {**os.environ, "PYTHONHASHSEED": "0", "PYTHONPATH": str(bench.APPS)}
            done = subprocess.run(cmd, capture_output=True, text=True, env=env, check=False)
            if done.returncode != 0 or not any(out.glob("cg.*")):
                sys.exit(f"callgrind run failed:\n{done.stderr[-2000:]}")
            # The worker is the process valgrind started (the forked clients are counted apart,
            # each far smaller: they never import the app).
            counted = [
                (parse_callgrind(f.read_text(errors="replace")), f) for f in out.glob("cg.*")
            ]
            (_, calls), worker = max(counted, key=lambda c: c[0][0])
            runs.append(worker_profile([worker]))
            allocs.append(sum(calls.get(name, 0) for name in ALLOCATORS))
    print(f"  allocations a request: {(allocs[1] - allocs[0]) / args.requests:.1f}")
    report("uwsgiapp", per_request(runs[1], runs[0], args.requests), args.requests, args.top)
    return 0


if __name__ == "__main__":
    sys.exit(main())
