"""Where the time goes in one uwsgiapp worker: cProfile under real load (wrk -> nginx -> worker).

Runs a single uwsgiapp worker loop *in this process* (the same Handler and Worker that
`uwsgiapp serve` forks, minus the master), behind a private nginx on a free loopback port, and
drives it with wrk twice: first unprofiled, to measure the worker's real CPU µs per request
(os.times of this process), then under cProfile. Prints the functions with the most own time,
as a share of the profiled total and scaled to µs per request of the unprofiled run.

    python bench/profile_worker.py                       # hello world, 5 s each phase
    python bench/profile_worker.py --app flask --seconds 8 --top 40
    python bench/profile_worker.py --access-log uwsgi    # cost of the access log
    python bench/profile_worker.py --save /tmp/worker.prof   # for snakeviz / pstats

With py-spy installed (`pip install py-spy`), a live forked worker of `uwsgiapp serve` can be
sampled instead: `py-spy top --pid <worker pid>` or `py-spy record -d 10 --pid <worker pid>`.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import os
import pstats
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: nginx config, process helpers, wrk
from uwsgiapp.config import make_config
from uwsgiapp.importer import load_app
from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.worker import Worker
from uwsgiapp.supervisor import bind, build_handler


class KeepingWorker(Worker):
    """A worker whose stop keeps its listeners open: the next phase serves from them again."""

    def _drained(self, listener: Listener) -> None:
        pass


def drive(
    worker: Worker,
    url: str,
    conns: int,
    seconds: int,
    profiler: cProfile.Profile | None,
    client: Callable[[str, int, int], str] = bench.wrk,
) -> tuple[int, float, str]:
    """Serve until a ``client`` run (wrk) of ``seconds`` ends; return (requests, CPU s, output).

    Each phase is one run of the worker's loop, so the worker must keep its listeners when a
    run ends (a :class:`KeepingWorker`, see :func:`live_worker`).
    """
    out: list[str] = []

    def load() -> None:
        out.append(client(url, conns, seconds))
        os.kill(os.getpid(), signal.SIGTERM)  # the worker's graceful stop: loop ends, run returns

    worker.alive, worker.drain_backlog = True, False
    before, t0 = worker.requests, os.times()
    thread = threading.Thread(target=load, daemon=True)
    thread.start()
    if profiler is not None:
        profiler.runcall(worker.run)
    else:
        worker.run()
    t1 = os.times()
    thread.join()
    cpu = (t1.user + t1.system) - (t0.user + t0.system)
    return worker.requests - before, cpu, out[0]


@contextlib.contextmanager
def live_worker(app: str = "hello", access_log: str = "off") -> Iterator[tuple[Worker, str]]:
    """A uwsgiapp worker in this process behind a private nginx: yields (worker, nginx url).

    Nothing is served until the caller runs the worker (see :func:`drive`).
    """
    with bench.run_dir() as rd:
        sock = rd / "worker.sock"
        config = make_config(
            app=f"{bench.APP_MODULES[app]}:app",
            socket=(str(sock),),
            pythonpath=(str(bench.APPS),),
            chmod_socket=0o666,
            access_log=access_log,
            access_log_file=os.devnull,
        )
        listeners = bind(config)
        wsgi_app = load_app(config.app, chdir=config.chdir, pythonpath=config.pythonpath)
        worker = KeepingWorker(build_handler(wsgi_app, config), listeners)
        out_dir = rd / "out"
        out_dir.mkdir()
        env = bench.Env(sys.executable, Path(sys.executable).parent, rd, out_dir)
        port = bench.free_port()
        conf = rd / "nginx.conf"
        conf.write_text(bench.nginx_conf(env, port, f"unix:{sock}"))
        ngx = bench.start(
            ["nginx", "-c", str(conf), "-e", str(out_dir / "err.log")], out_dir / "ng"
        )
        try:
            bench.wait_for(lambda: bench.can_connect(f"127.0.0.1:{port}"), 10, "nginx")
            if ngx.poll() is not None:
                sys.exit("nginx did not start (see its error log)")
            yield worker, f"http://127.0.0.1:{port}/"
        finally:
            bench.stop(ngx, signal.SIGQUIT)
            for listener in listeners:
                listener.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--app", choices=sorted(bench.APP_MODULES), default="hello")
    ap.add_argument("--seconds", type=int, default=5, help="wrk seconds per phase")
    ap.add_argument("--conns", type=int, default=32)
    ap.add_argument("--top", type=int, default=30, help="how many functions to list")
    ap.add_argument("--access-log", default="off", choices=("off", "uwsgi", "json"))
    ap.add_argument(
        "--clock",
        choices=("cpu", "wall"),
        default="cpu",
        help="profiler clock: cpu (process time; default) or wall (lower overhead, but counts "
        "time this process is preempted by nginx/wrk on a small machine)",
    )
    ap.add_argument("--save", default="", help="also write the raw profile here")
    args = ap.parse_args(argv)

    with live_worker(args.app, args.access_log) as (worker, url):
        drive(worker, url, args.conns, 1, None)  # warm-up
        n_plain, cpu_plain, wrk_plain = drive(worker, url, args.conns, args.seconds, None)
        # CPU clock: time blocked in epoll or on a socket is not the worker's cost.
        clock = time.process_time if args.clock == "cpu" else time.perf_counter
        profiler = cProfile.Profile(clock)
        n_prof, cpu_prof, _ = drive(worker, url, args.conns, args.seconds, profiler)
    errors = bench.parse_wrk(wrk_plain)
    us_plain = cpu_plain / n_plain * 1e6
    print(
        f"app {args.app}, access log {args.access_log}; one worker in-process behind nginx, "
        f"wrk -t1 -c{args.conns} -d{args.seconds}s"
    )
    print(
        f"unprofiled: {n_plain} requests, worker CPU {us_plain:.1f} µs/request "
        f"({n_plain / args.seconds:.0f} req/s, non-2xx {errors['non2xx']}, "
        f"socket errors {errors['sock_errors']})"
    )
    print(
        f"profiled:   {n_prof} requests, worker CPU {cpu_prof / n_prof * 1e6:.1f} µs/request "
        f"({args.clock} clock; profiler overhead inflates cheap calls, so shares are approximate)"
    )
    stats = pstats.Stats(profiler)
    if args.save:
        stats.dump_stats(args.save)
    # Own time of every function; with the wall clock, time idle in epoll is not work.
    total = sum(
        v[2]
        for k, v in stats.stats.items()  # type: ignore[attr-defined]
        if "epoll" not in k[2] or args.clock == "cpu"
    )
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][2], reverse=True)  # type: ignore[attr-defined]
    print()
    print(
        f"{'own %':>6} {'µs/req':>7} {'calls/req':>9}  function (own time; µs scaled to unprofiled)"
    )
    for (filename, line, func), (_cc, ncalls, tottime, _ct, _callers) in rows[: args.top]:
        share = tottime / total if total else 0.0
        where = short_path(filename)
        name = f"{where}:{line}({func})" if line else func
        print(f"{100 * share:6.1f} {share * us_plain:7.2f} {ncalls / n_prof:9.2f}  {name}")
    print("\nby cumulative time (including callees):")
    print(f"{'cum %':>6} {'µs/req':>7} {'calls/req':>9}  function")
    rows = sorted(stats.stats.items(), key=lambda kv: kv[1][3], reverse=True)  # type: ignore[attr-defined]
    for (filename, line, func), (_cc, ncalls, _tt, cumtime, _callers) in rows[:15]:
        share = cumtime / total if total else 0.0
        name = f"{short_path(filename)}:{line}({func})" if line else func
        print(f"{100 * share:6.1f} {share * us_plain:7.2f} {ncalls / n_prof:9.2f}  {name}")
    return 0


def short_path(filename: str) -> str:
    """Paths relative to the repo or to site-packages / the stdlib: no local paths in reports."""
    if "site-packages/" in filename:
        return filename.split("site-packages/", 1)[1]
    try:
        return str(Path(filename).resolve().relative_to(bench.ROOT))
    except ValueError:
        pass
    if "/lib/python" in filename:
        return filename.split("/lib/python", 1)[1].split("/", 1)[-1]
    return filename


if __name__ == "__main__":
    sys.exit(main())
