"""Count the user-space instructions one request costs a whole server, uwsgiapp against uWSGI.

    python bench/count_servers.py                          # hello, 2000 requests
    python bench/count_servers.py --app flask --access-log
    python bench/count_servers.py --uwsgiapp-python .venv-compiled/bin/python --anchor-venv V

Each server runs as the benchmark starts it (``bench/run.py``'s command: a master and one
worker on a unix socket) under valgrind's callgrind, every process of it counted; the worker's
count is the figure (the master's is shown apart: it does its periodic work meanwhile, which
grows with the time a request takes under valgrind, some 50 times its real time). A client in
this process sends the real nginx GET capture (path ``/``) over a fresh connection per request,
one at a time, and reads each response to its end. Each server runs twice, with a warm-up and
then ``--base`` or ``--base + --requests`` requests, and is stopped with SIGTERM to its master
(every process writes its counts as it exits); the difference between the two runs' totals,
divided by ``--requests``, is the cost of one request: start-up, warm-up and exit cancel out.

Instructions are counted, not timed: the figure does not move with the machine's load or its
CPU model (an AMD and an Intel host run the same instructions, at their own speed), which a
side-by-side timing cannot promise. What it leaves out is the kernel's work: both servers make
the same five syscalls a request (bench/SPEED.md), so that part is alike but not counted here.

``--simulate`` also runs valgrind's cache and branch simulators and prints, per request, the
misses of a simulated L1 and last-level cache and the mispredicted branches: the part of the
user time that instructions do not show (a request that runs half the instructions but touches
as much code misses the instruction cache as often). They are a model of the host's caches, as
valgrind reads their sizes, with the kernel's work between requests left out.
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench
from count_request import ALLOCATORS, packet, parse_callgrind
from threads_handoff import cpu_model

SERVERS = ("uwsgiapp", "uwsgi")
#: Requests before the counted ones, in both runs: uwsgiapp learns the key layout in these.
WARM_UP = 50
#: Seconds a server gets to start, or to exit and write its counts, under valgrind.
SLOW = 180.0


def request(path: Path, data: bytes) -> bytes:
    """One request over a new connection; the whole response (the server closes)."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(SLOW)
        s.connect(str(path))
        s.sendall(data)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def callgrind_events(text: str) -> dict[str, int]:
    """Every event's total in a callgrind profile (``Ir``; with the cache and branch simulators
    also ``D1mr``, ``Bcm``...), by the names of its ``events:`` line."""
    names: list[str] = []
    for line in text.splitlines():
        if line.startswith("events:"):
            names = line.split()[1:]
        elif line.startswith("summary:") or line.startswith("totals:"):
            values = [int(v) for v in line.split()[1:]]
            return dict(zip(names, values + [0] * (len(names) - len(values)), strict=True))
    return {}


def callgrind_counts(path: Path) -> tuple[int, int]:
    """(instructions, calls into CPython's object allocator) of a callgrind output file."""
    total, calls = parse_callgrind(path.read_text(errors="replace"))
    if not total:
        raise RuntimeError(f"no total in {path.name}")
    return total, sum(calls.get(name, 0) for name in ALLOCATORS)


def counted_run(
    variant: bench.Variant,
    env: bench.Env,
    requests: int,
    keep: Path | None = None,
    stats: bool = False,
    simulate: bool = False,
    tool_args: tuple[str, ...] = (),
) -> tuple[int, int, int, dict[str, int]]:
    """Instructions of the master, instructions of the workers, the workers' allocations and
    all the workers' events, in one server run that served ``WARM_UP + requests``
    (``stats``: serving stats as well; ``simulate``: valgrind's cache and branch simulators on;
    ``tool_args``: more callgrind options, e.g. ``--dump-instr=yes`` for bench/footprint.py)."""
    with tempfile.TemporaryDirectory(prefix="count-", dir=env.run_dir) as tmp:
        out = Path(tmp)
        sock = out / "server.sock"
        cmd = bench.server_command(variant, env, str(sock), out / "access.log")
        if stats:  # the same option in both servers
            cmd += ["--stats", str(out / "stats.sock")]
        sim = ["--cache-sim=yes", "--branch-sim=yes"] if simulate else []
        cmd = [
            "valgrind",
            "--tool=callgrind",
            *sim,
            *tool_args,
            f"--callgrind-out-file={out}/cg.%p",
            *cmd,
        ]
        # A fixed hash seed: str hashes, and with them dict probes, are alike in both runs.
        pyenv = {**bench.server_environ(env), "PYTHONHASHSEED": "0"}
        srv = bench.start(cmd, out / "server.log", env=pyenv, cwd=bench.APPS)
        try:
            bench.wait_for(
                lambda: srv.poll() is not None or bench.can_connect(f"unix:{sock}"),
                SLOW,
                f"{variant.name} under valgrind",
            )
            if srv.poll() is not None:
                raise RuntimeError(f"{variant.name} exited: {(out / 'server.log').read_text()}")
            data = packet()
            for _ in range(WARM_UP + requests):
                answer = request(sock, data)
                if not answer.startswith(b"HTTP/1.1 200"):
                    raise RuntimeError(f"{variant.name} answered {answer[:80]!r}")
            os.kill(srv.pid, signal.SIGTERM)  # the master only: it stops its workers itself
            srv.wait(SLOW)
            time.sleep(1.0)  # a worker that outlives its master by a moment writes last
        finally:
            bench.stop(srv)
        if keep is not None:  # for callgrind_annotate
            keep.mkdir(parents=True, exist_ok=True)
            for f in out.glob("cg.*"):
                role = "master" if f.name == f"cg.{srv.pid}" else "worker"
                shutil.copy(f, keep / f"{variant.name}.{requests}.{role}.{f.name[3:]}.callgrind")
        master = out / f"cg.{srv.pid}"
        workers = [f for f in out.glob("cg.*") if f != master]
        if not master.exists() or not workers:
            raise RuntimeError(f"{variant.name}: callgrind wrote no counts for its processes")
        counts = [callgrind_counts(f) for f in workers]
        events: collections.Counter[str] = collections.Counter()
        for f in workers:
            events.update(callgrind_events(f.read_text(errors="replace")))
        return (
            callgrind_counts(master)[0],
            sum(ir for ir, _ in counts),
            sum(allocs for _, allocs in counts),
            dict(events),
        )


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--app", choices=sorted(bench.APP_MODULES), default="hello")
    ap.add_argument("--requests", type=int, default=2000, help="the counted requests")
    ap.add_argument("--base", type=int, default=200, help="requests of the shorter run")
    ap.add_argument("--access-log", action="store_true", help="both servers log each request")
    ap.add_argument("--keep", type=Path, help="copy the callgrind profiles into this directory")
    ap.add_argument(
        "--stats", action="store_true", help="both servers serve their stats (--stats <socket>)"
    )
    ap.add_argument(
        "--simulate",
        action="store_true",
        help="also valgrind's cache and branch simulators: misses and mispredictions a request",
    )
    ap.add_argument("--anchor-venv", type=Path, help="venv with uwsgi (as for bench/run.py)")
    ap.add_argument(
        "--uwsgiapp-python", help="count the uwsgiapp installed in this interpreter's venv"
    )
    args = ap.parse_args(argv)
    if shutil.which("valgrind") is None:
        sys.exit("valgrind is not installed")
    anchor_bin = args.anchor_venv / "bin" if args.anchor_venv else bench.default_anchor_bin()
    if not (anchor_bin / "uwsgi").exists():
        sys.exit(f"no uwsgi in {anchor_bin}: pass --anchor-venv (bench/run.py's anchors)")
    model = cpu_model()
    log = "on (to a file)" if args.access_log else "off"
    stats = ", stats served" if args.stats else ""
    print(f"app {args.app}, access log {log}{stats}, 1 worker, unix socket; CPU {model}")
    per_request: dict[str, float] = {}
    simulated: dict[str, dict[str, float]] = {}
    print(
        "  a request in the worker: instructions, allocations (calls into CPython's object "
        "allocator); the master's instructions meanwhile grow with the time valgrind takes"
    )
    with bench.run_dir() as rd:
        env = bench.make_env(args.uwsgiapp_python, anchor_bin, rd, rd)
        for server in SERVERS:
            # uwsgiapp.web runs on uwsgiapp only: its yardstick is uWSGI with the Flask app
            app = "flask" if server != "uwsgiapp" and args.app == "web" else args.app
            variant = bench.Variant(server, app, 1, "unix", args.access_log)
            short = counted_run(variant, env, args.base, args.keep, args.stats, args.simulate)
            long = counted_run(
                variant, env, args.base + args.requests, args.keep, args.stats, args.simulate
            )
            simulated[server] = {
                name: (n - short[3].get(name, 0)) / args.requests for name, n in long[3].items()
            }
            per_request[server] = (long[1] - short[1]) / args.requests
            master = (long[0] - short[0]) / args.requests
            allocs = (long[2] - short[2]) / args.requests
            print(
                f"  {server:9s} {per_request[server]:9.0f} instructions {allocs:7.1f} allocations"
                f"  (master {master:6.0f})  {app}"
            )
    print(
        f"  uwsgiapp / uWSGI: {per_request['uwsgiapp'] / per_request['uwsgi']:.2f} "
        f"(user space, the worker, {args.requests} requests)"
    )
    if args.simulate:
        print_simulated(simulated)
    return 0


#: The simulators' events, as valgrind names them (its default caches: the host's L1 and last
#: level, read from CPUID) and as this script prints them.
SIMULATED = {
    "I1mr": "L1 instruction misses",
    "D1mr": "L1 data read misses",
    "D1mw": "L1 data write misses",
    "ILmr": "last-level instruction misses",
    "DLmr": "last-level data read misses",
    "DLmw": "last-level data write misses",
    "Bc": "conditional branches",
    "Bcm": "conditional mispredicted",
    "Bi": "indirect branches",
    "Bim": "indirect mispredicted",
}


def print_simulated(simulated: dict[str, dict[str, float]]) -> None:
    """The simulated misses and mispredictions of a request in each server's worker."""
    print("  simulated (valgrind's caches and branch predictor, not the CPU's), a request:")
    print(f"  {'':32s}" + "".join(f"{server:>10s}" for server in SERVERS) + "     ratio")
    for name, label in SIMULATED.items():
        row = [simulated[server].get(name, 0.0) for server in SERVERS]
        ratio = f"{row[0] / row[1]:10.2f}" if row[1] else f"{'-':>10s}"
        print(f"  {label:32s}" + "".join(f"{v:10.1f}" for v in row) + ratio)


if __name__ == "__main__":
    sys.exit(main())
