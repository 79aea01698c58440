"""What ``--log-master`` costs: the access log on, into a pipe, with and without it.

wrk -> nginx (loopback) -> a server whose stdout and stderr are one pipe, drained by ``cat``
(as ``docker logs`` drains a container's): uwsgiapp with ``--access-log uwsgi`` (to stdout)
and uWSGI with its request log (to stderr), each with and without its log-master. Rounds are
interleaved; per variant: req/s and the server's CPU (master and workers) per request.

    python bench/log_master.py --rounds 3 --duration 8 --workers 2 [--uwsgi PATH]
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import run  # bench/run.py: nginx, wrk, /proc helpers


def commands(workers: int, sock: Path, uwsgi: str | None) -> dict[str, list[str]]:
    """Variant name -> the server's command line."""
    ours = [sys.executable, "-m", "uwsgiapp", "serve", "hello:app", "--socket", str(sock)]
    ours += ["--workers", str(workers), "--chmod-socket", "666", "--access-log", "uwsgi"]
    out = {"uwsgiapp": ours, "uwsgiapp --log-master": [*ours, "--log-master"]}
    if uwsgi:
        theirs = [uwsgi, "--master", "--processes", str(workers), "--socket", str(sock)]
        theirs += ["--chmod-socket=666", "--wsgi-file", str(run.APPS / "hello.py")]
        theirs += ["--callable", "app", "--die-on-term"]
        out["uwsgi"] = theirs
        out["uwsgi --log-master"] = [*theirs, "--log-master"]
    return out


def one_run(cmd: list[str], sock: Path, work: Path, duration: int) -> dict[str, float]:
    """Start ``cmd`` with its output into a pipe that cat drains, load it, stop it."""
    with contextlib.suppress(FileNotFoundError):
        sock.unlink()
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(run.ROOT), str(run.ROOT / "protocol"), str(run.APPS)]),
    }
    srv = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        start_new_session=True, env=env, cwd=run.APPS,
    )  # fmt: skip
    assert srv.stdout is not None
    cat = subprocess.Popen(["cat"], stdin=srv.stdout, stdout=subprocess.DEVNULL)
    srv.stdout.close()
    port = run.free_port()
    conf = work / "nginx.conf"
    fake = run.Env(sys.executable, Path("."), work, work)
    conf.write_text(run.nginx_conf(fake, port, f"unix:{sock}"))
    ngx = run.start(["nginx", "-c", str(conf), "-e", str(work / "nginx_error.log")], work / "n.log")
    try:
        run.wait_for(lambda: run.can_connect(f"unix:{sock}"), 30, "the server")
        run.wait_for(lambda: run.can_connect(f"127.0.0.1:{port}"), 10, "nginx")
        url = f"http://127.0.0.1:{port}/"
        run.wrk(url, 32, 1, latency=False)
        time.sleep(0.3)
        c0 = run.tree_cpu_seconds(srv.pid)
        r = run.parse_wrk(run.wrk(url, 32, duration))
        c1 = run.tree_cpu_seconds(srv.pid)
        return {"rps": r["rps"], "cpu_us": (c1 - c0) * 1e6 / r["requests"]}
    finally:
        run.stop(ngx)
        run.stop(srv)
        cat.wait(10)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--duration", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--uwsgi", default=shutil.which("uwsgi"), help="uWSGI's binary (optional)")
    args = ap.parse_args()
    work = Path(tempfile.mkdtemp(prefix="lmb-"))
    (work / "tmp").mkdir()
    sock = work / "s.sock"
    variants = commands(args.workers, sock, args.uwsgi)
    results: dict[str, list[dict[str, float]]] = {name: [] for name in variants}
    for n in range(args.rounds):
        for name, cmd in variants.items():
            got = one_run(cmd, sock, work, args.duration)
            results[name].append(got)
            print(f"round {n + 1} {name}: {got['rps']:.0f} req/s, {got['cpu_us']:.1f} µs CPU/req")
    model = run.sh(["grep", "-m1", "model name", "/proc/cpuinfo"]).split(":")[-1].strip()
    print(f"\n{model}, {os.cpu_count()} CPUs; {args.workers} workers, wrk -c32, {args.duration} s")
    for name, rows in results.items():
        rps = [r["rps"] for r in rows]
        cpu = [r["cpu_us"] for r in rows]
        print(
            f"{name:24} req/s median {statistics.median(rps):7.0f} ({min(rps):.0f}-{max(rps):.0f})"
            f"  server CPU µs/req median {statistics.median(cpu):5.1f} "
            f"({min(cpu):.1f}-{max(cpu):.1f})"
        )
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
