"""POSTs reset by a graceful stop: two uwsgiapp servers on TCP behind one nginx, TERM on one.

nginx passes a request on to its next server when it could not send it (a refused or timed-out
connect), never a POST whose connection was reset after it was sent: that one is a 502. A
stopping server must therefore refuse (or drop) new connections, never reset one it queued.
Each round:

1. start two ``uwsgiapp serve`` (``--workers``, ``--threads``) on loopback TCP ports and a
   private nginx with both as one upstream (its own config, port and temp dirs);
2. send POSTs from ``--clients`` threads (keep-alive to nginx, a new upstream connection per
   request, as nginx does) until ``--before`` were answered, TERM the first server's master,
   wait for its exit, go on until ``--after`` more were answered;
3. count nginx's errors for the stopped server: "reset" or "prematurely closed" after the
   request was sent (not "while connecting": those were passed on), and the 502s the clients saw.

``--busy N`` runs N busy loops meanwhile (a loaded machine: a stopping worker is preempted more
often, which is when a window between its last accept and its close shows). Everything is on
loopback; every process started here is stopped by its process group.

    python bench/stop_resets.py --rounds 30 --busy 4 --threads 4
"""

from __future__ import annotations

import argparse
import http.client
import os
import platform
import re
import signal
import subprocess
import sys
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import run as bench  # bench/run.py: process helpers, nginx's uwsgi_params, apps

BODY = b"x" * 100


def sent_then_reset(lines: Iterable[str], upstream: str) -> list[str]:
    """nginx error lines of requests sent to ``upstream`` whose connection then broke."""
    return [
        line
        for line in lines
        if f"uwsgi://{upstream}" in line
        and ("reset" in line or "prematurely closed" in line)
        and "while connecting" not in line
    ]


def nginx_conf(run_dir: Path, port: int, upstreams: list[str]) -> str:
    """A private nginx: one worker, ``upstreams`` as one group (max_fails 1, as the default)."""
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = bench.nginx_temp_paths(run_dir / "tmp")
    servers = " ".join(f"server {u};" for u in upstreams)
    return f"""{user}worker_processes 1;
daemon off;
pid {run_dir}/nginx.pid;
error_log {run_dir}/nginx_error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  {temps}
  upstream backend {{ {servers} }}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    location / {{ {bench.UWSGI_PARAMS} uwsgi_pass backend; }}
  }}
}}
"""


@dataclass
class Load:
    """POSTs from client threads until stopped; what came back."""

    port: int
    clients: int
    ok: int = 0
    failed: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def start(self) -> list[threading.Thread]:
        threads = [threading.Thread(target=self._client, daemon=True) for _ in range(self.clients)]
        for thread in threads:
            thread.start()
        return threads

    def _client(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        while not self._stop.is_set():
            try:
                conn.request("POST", "/", BODY, {"Content-Type": "text/plain"})
                response = conn.getresponse()
                response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
                status, exc_text = 0, repr(exc)
            with self._lock:
                if status == 200:
                    self.ok += 1
                else:
                    self.failed.append(str(status) if status else exc_text)
        conn.close()

    def wait_for(self, count: int, timeout: float = 30) -> None:
        bench.wait_for(lambda: self.ok >= count, timeout, f"{count} answered POSTs")

    def stop(self, threads: list[threading.Thread]) -> None:
        self._stop.set()
        for thread in threads:
            thread.join(35)


def one_round(args: argparse.Namespace, run_dir: Path) -> tuple[int, int]:
    """(resets nginx logged for the stopped server, requests that failed) in one stop."""
    ports = [bench.free_port() for _ in range(2)]
    upstreams = [f"127.0.0.1:{port}" for port in ports]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(bench.ROOT), str(bench.ROOT / "protocol")]),
    }
    servers = []
    nginx = None
    threads: list[threading.Thread] = []
    load = None
    try:
        for number, upstream in enumerate(upstreams):
            cmd = [args.python, "-m", "uwsgiapp", "serve", "hello:app", "--socket", upstream]
            cmd += ["--workers", str(args.workers), "--threads", str(args.threads)]
            cmd += ["--access-log", "off", "--pythonpath", str(bench.APPS)]
            servers.append(bench.start(cmd, run_dir / f"server{number}.log", env=env))
        for number, upstream in enumerate(upstreams):
            try:
                bench.wait_for(
                    lambda u=upstream: bench.can_connect(u), 20, f"uwsgiapp on {upstream}"
                )
            except RuntimeError:  # its log says why (a port a client's connection took meanwhile)
                log = (run_dir / f"server{number}.log").read_text(errors="replace")
                raise RuntimeError(
                    f"uwsgiapp on {upstream} did not start:\n{log[-2000:]}"
                ) from None
        port = bench.free_port()
        (run_dir / "nginx.conf").write_text(nginx_conf(run_dir, port, upstreams))
        (run_dir / "nginx_error.log").write_text("")
        nginx = bench.start(
            [args.nginx, "-p", str(run_dir), "-c", str(run_dir / "nginx.conf")],
            run_dir / "nginx.out",
        )
        bench.wait_for(lambda: bench.can_connect(f"127.0.0.1:{port}"), 10, "nginx")
        load = Load(port, args.clients)
        threads = load.start()
        load.wait_for(args.before)
        os.kill(servers[0].pid, signal.SIGTERM)  # the master: it tells its workers
        servers[0].wait(30)
        load.wait_for(load.ok + args.after)
    finally:
        if load is not None:
            load.stop(threads)
        bench.stop(nginx)
        for server in servers:
            bench.stop(server)
    lines = (run_dir / "nginx_error.log").read_text(errors="replace").splitlines()
    return len(sent_then_reset(lines, upstreams[0])), len(load.failed) if load else 0


def busy_loops(count: int, seconds: float) -> list[subprocess.Popen[bytes]]:
    """``count`` processes spinning for at most ``seconds`` (stopped by the caller)."""
    spin = f"import time\nend = time.monotonic() + {seconds}\nwhile time.monotonic() < end: pass"
    return [
        subprocess.Popen([sys.executable, "-c", spin], start_new_session=True) for _ in range(count)
    ]


def cpu_model() -> str:
    with open("/proc/cpuinfo") as f:
        found = re.search(r"^model name\s*:\s*(.+)$", f.read(), re.M)
    return found.group(1).strip() if found else platform.processor() or "unknown CPU"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--before", type=int, default=500, help="POSTs answered before the TERM")
    ap.add_argument("--after", type=int, default=500, help="and after the stopped one exited")
    ap.add_argument("--busy", type=int, default=0, help="busy loops meanwhile")
    ap.add_argument("--python", default=sys.executable, help="the interpreter running uwsgiapp")
    ap.add_argument("--nginx", default="nginx")
    args = ap.parse_args(argv)
    print(f"{cpu_model()}, {os.cpu_count()} CPUs; {args.rounds} stops of 1 of 2 servers")
    print(f"(--workers {args.workers} --threads {args.threads}), {args.busy} busy loops")
    spinning = busy_loops(args.busy, args.rounds * 30.0)
    resets: list[int] = []
    failed = 0
    try:
        for number in range(args.rounds):
            with bench.run_dir() as run_dir:
                reset, failures = one_round(args, run_dir)
            resets.append(reset)
            failed += failures
            print(f"stop {number + 1}: {reset} reset after sent, {failures} failed", flush=True)
    finally:
        for proc in spinning:
            bench.stop(proc)
    hit = [r for r in resets if r]
    print(
        f"stops with a POST reset: {len(hit)} of {len(resets)}; resets in all: {sum(resets)}"
        f" (most in one stop: {max(resets, default=0)}); requests failed: {failed}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
