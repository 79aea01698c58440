"""End-to-end benchmark: wrk -> nginx (1 worker, loopback) -> {uwsgiapp, uWSGI, gunicorn}.

Every variant is one server x one app x a worker count x a transport. For each round (rounds are
interleaved, so drift on the machine hits every variant alike) and each variant:

1. start the server in its own session (its process group is ours to stop, nothing else);
2. start a private nginx (generated config, temp dirs and a free port of its own) and check that
   *this* nginx holds the port and that GET / answers 200 "Hello World!";
3. warm up with wrk for 1 s, then snapshot the CPU time of the server's process tree (master and
   every descendant, utime+stime+cutime+cstime from /proc/<pid>/stat) and of nginx;
4. run ``wrk -t1 -c<conns> -d<duration>s --latency``, snapshot again, read RSS of each worker;
5. stop nginx and the server by process group; wait for the socket to go away.

A run where the server or nginx used no CPU is recorded as an error: it means the load went
somewhere else (for instance an nginx left over from another job on the same port).

    python bench/run.py              # everything: 3 servers x 3 apps x {1,2} x {unix,tcp}, 3 rounds
    python bench/run.py --quick      # ~2 minutes: the variants the targets need, short runs
    python bench/run.py --only 'hello-1w-unix' --rounds 5 --duration 10 --no-write

Writes bench/RESULTS.md and bench/results.png (unless --no-write); raw JSON and server logs go
to $BENCH_OUT (default bench/out/). The anchors (uWSGI, gunicorn, Flask, matplotlib) come from
the venv of the running interpreter or --anchor-venv / $BENCH_ANCHOR_VENV (`make bench` builds
.bench-venv).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime
import http.client
import json
import os
import platform
import re
import resource
import shlex
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
APPS = BENCH / "apps"
EXPECT_BODY = b"Hello World!"
CLK_TCK = os.sysconf("SC_CLK_TCK")
PAGE_KB = os.sysconf("SC_PAGE_SIZE") // 1024

SERVERS = ("uwsgiapp", "uwsgi", "gunicorn")
APP_MODULES = {"hello": "hello", "flask": "flask_app", "web": "web_app"}

# The standard set of uwsgi_param lines nginx ships (what `include uwsgi_params` gives).
UWSGI_PARAMS = """
uwsgi_param QUERY_STRING $query_string; uwsgi_param REQUEST_METHOD $request_method;
uwsgi_param CONTENT_TYPE $content_type; uwsgi_param CONTENT_LENGTH $content_length;
uwsgi_param REQUEST_URI $request_uri; uwsgi_param PATH_INFO $document_uri;
uwsgi_param DOCUMENT_ROOT $document_root; uwsgi_param SERVER_PROTOCOL $server_protocol;
uwsgi_param REQUEST_SCHEME $scheme; uwsgi_param HTTPS $https if_not_empty;
uwsgi_param REMOTE_ADDR $remote_addr; uwsgi_param REMOTE_PORT $remote_port;
uwsgi_param SERVER_PORT $server_port; uwsgi_param SERVER_NAME $server_name;
"""


# --- variants ----------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Variant:
    server: str  # uwsgiapp | uwsgi | gunicorn
    app: str  # hello | flask | web
    workers: int
    transport: str  # unix | tcp
    access_log: bool = False

    @property
    def name(self) -> str:
        log = "-log" if self.access_log else ""
        return f"{self.server}-{self.app}-{self.workers}w-{self.transport}{log}"


def all_variants() -> list[Variant]:
    out = [
        Variant(s, a, w, t)
        for a in APP_MODULES
        for w in (1, 2)
        for t in ("unix", "tcp")
        for s in SERVERS
    ]
    out += [
        Variant("uwsgiapp", "hello", 1, "unix", True),
        Variant("uwsgi", "hello", 1, "unix", True),
    ]
    return out


def quick_variants() -> list[Variant]:
    """What the targets need, and nothing else."""
    return [
        Variant("uwsgiapp", "hello", 1, "unix"),
        Variant("uwsgi", "hello", 1, "unix"),
        Variant("gunicorn", "hello", 1, "unix"),
        Variant("uwsgiapp", "hello", 2, "unix"),
        Variant("uwsgi", "hello", 2, "unix"),
        Variant("uwsgiapp", "flask", 1, "unix"),
        Variant("uwsgi", "flask", 1, "unix"),
        Variant("uwsgiapp", "web", 1, "unix"),
        Variant("uwsgiapp", "hello", 1, "unix", True),
        Variant("uwsgi", "hello", 1, "unix", True),
    ]


@dataclasses.dataclass
class Env:
    """Where things are for this run."""

    python: str  # interpreter that runs uwsgiapp
    anchor_bin: Path  # bin/ of the venv holding uwsgi and gunicorn
    run_dir: Path  # sockets, nginx config and temp dirs (short path: unix socket names)
    out_dir: Path  # logs, raw results
    installed: bool = False  # uwsgiapp as installed in that interpreter (else these sources)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def server_command(v: Variant, env: Env, bind: str, access_log: Path) -> list[str]:
    module = APP_MODULES[v.app]
    if v.server == "uwsgiapp":
        cmd = [env.python, "-m", "uwsgiapp", "serve", f"{module}:app", "--socket", bind]
        cmd += ["--workers", str(v.workers), "--chmod-socket", "666", "--listen", "1024"]
        cmd += ["--pythonpath", str(APPS)]
        if v.access_log:
            cmd += ["--access-log", "uwsgi", "--access-log-file", str(access_log)]
        else:
            cmd += ["--access-log", "off"]
        return cmd
    if v.server == "uwsgi":
        cmd = [str(env.anchor_bin / "uwsgi"), "--master", "--processes", str(v.workers)]
        cmd += ["--socket", bind, "--chmod-socket=666", "--listen", "1024", "--need-app"]
        cmd += ["--pythonpath", str(APPS), "--wsgi-file", str(APPS / f"{module}.py")]
        cmd += ["--callable", "app", "--die-on-term", "--logto", str(access_log)]
        if not v.access_log:
            cmd.append("--disable-logging")
        return cmd
    if v.server == "gunicorn":
        addr = f"unix:{bind}" if v.transport == "unix" else bind
        cmd = [str(env.anchor_bin / "gunicorn"), "-k", "sync", "-w", str(v.workers)]
        cmd += ["--protocol", "uwsgi", "-b", addr, "--chdir", str(APPS), "--backlog", "1024"]
        cmd += ["--log-level", "warning", f"{module}:app"]
        return cmd
    raise ValueError(v.server)


def server_environ(env: Env) -> dict[str, str]:
    """The environment a server of this run starts with: the apps (and, unless an installed
    build is benched, these sources) on its path."""
    pythonpath = [str(APPS)] if env.installed else [str(ROOT), str(ROOT / "protocol"), str(APPS)]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(pythonpath)}


def make_env(uwsgiapp_python: str | None, anchor_bin: Path, run_dir: Path, out_dir: Path) -> Env:
    """The run's :class:`Env`: ``uwsgiapp_python`` (an installed build) or these sources."""
    if not uwsgiapp_python:
        return Env(sys.executable, anchor_bin, run_dir, out_dir)
    # absolute (servers start in the apps' directory), not resolved (a venv's python is a
    # link, and the venv is what the link's path names)
    python = os.path.abspath(uwsgiapp_python)
    return Env(python, anchor_bin, run_dir, out_dir, installed=True)


def nginx_temp_paths(tmp: Path) -> str:
    """nginx's temp directories, all under ``tmp`` (a private nginx writes nothing elsewhere)."""
    kinds = ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    return " ".join(f"{kind}_temp_path {tmp}/{kind};" for kind in kinds)


def nginx_conf(env: Env, port: int, upstream: str) -> str:
    user = "user root;\n" if os.geteuid() == 0 else ""
    temps = nginx_temp_paths(env.run_dir / "tmp")
    return f"""{user}worker_processes 1;
daemon off;
pid {env.run_dir}/nginx.pid;
error_log {env.out_dir}/nginx_error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  keepalive_requests 1000000;
  {temps}
  server {{
    listen 127.0.0.1:{port} backlog=4096;
    server_name localhost;
    location / {{ {UWSGI_PARAMS} uwsgi_pass {upstream}; }}
  }}
}}
"""


# --- /proc -------------------------------------------------------------------------------------


@dataclasses.dataclass
class Proc:
    pid: int
    ppid: int
    pgrp: int
    ticks: int  # utime + stime + cutime + cstime (reaped children's time lands in cutime/cstime)
    rss_kb: int
    sys_ticks: int = 0  # stime + cstime: the kernel's part of ticks


def proc_table() -> dict[int, Proc]:
    table = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                raw = f.read()
        except OSError:  # gone meanwhile
            continue
        # Field 2 (comm) may hold spaces and parens: split after its last ')'.
        fields = raw[raw.rindex(")") + 2 :].split()
        pid = int(entry)
        ticks = sum(int(x) for x in fields[11:15])
        sys_ticks = int(fields[12]) + int(fields[14])
        table[pid] = Proc(
            pid, int(fields[1]), int(fields[2]), ticks, int(fields[21]) * PAGE_KB, sys_ticks
        )
    return table


def process_tree(root: int, table: dict[int, Proc] | None = None) -> list[Proc]:
    """``root``, every descendant, and anything else in its process group."""
    table = proc_table() if table is None else table
    children: dict[int, list[int]] = {}
    for p in table.values():
        children.setdefault(p.ppid, []).append(p.pid)
    seen: set[int] = set()
    todo = [root] + [p.pid for p in table.values() if p.pgrp == root]
    while todo:
        pid = todo.pop()
        if pid in seen or pid not in table:
            continue
        seen.add(pid)
        todo.extend(children.get(pid, ()))
    return [table[pid] for pid in sorted(seen)]


def tree_cpu_seconds(root: int) -> float:
    return sum(p.ticks for p in process_tree(root)) / CLK_TCK


def tree_sys_seconds(root: int) -> float:
    """The kernel's part of :func:`tree_cpu_seconds` (system time)."""
    return sum(p.sys_ticks for p in process_tree(root)) / CLK_TCK


def worker_rss_kb(root: int) -> tuple[list[int], int]:
    """(RSS of each worker, number of processes): workers are the processes other than the
    master; a lone process is its own worker."""
    tree = process_tree(root)
    workers = [p for p in tree if p.pid != root] or tree
    return [p.rss_kb for p in workers], len(tree)


# --- processes we start ------------------------------------------------------------------------


def start(cmd: list[str], log: Path, **kw: Any) -> subprocess.Popen[bytes]:
    with open(log, "ab") as f:
        f.write(f"\n$ {shlex.join(cmd)}\n".encode())
        f.flush()
        return subprocess.Popen(
            cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True, **kw,
        )  # fmt: skip


def stop(p: subprocess.Popen[bytes] | None, sig: int = signal.SIGTERM, timeout: float = 10) -> None:
    """Stop the process group we created for ``p`` (pgid == pid: start_new_session)."""
    if p is None:
        return
    leftovers = [q.pid for q in process_tree(p.pid) if q.pid != p.pid]
    if p.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(p.pid, sig)
        try:
            p.wait(timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait(5)
    # Workers that outlived their master (same group, or re-parented descendants we saw).
    with contextlib.suppress(ProcessLookupError):
        os.killpg(p.pid, signal.SIGKILL)
    for pid in leftovers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def can_connect(addr: str) -> bool:
    try:
        if addr.startswith("unix:"):
            s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            s.settimeout(0.3)
            s.connect(addr[5:])
        else:
            host, port = addr.rsplit(":", 1)
            s = socket.create_connection((host, int(port)), 0.3)
        s.close()
        return True
    except OSError:
        return False


def wait_for(pred: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(0.05)
    raise RuntimeError(f"timed out waiting for {what}")


def probe(port: int) -> tuple[int, bytes]:
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=3)
    try:
        c.request("GET", "/")
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


# --- wrk ---------------------------------------------------------------------------------------


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(text)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[m.group(2)]


def parse_wrk(out: str) -> dict[str, Any]:
    r: dict[str, Any] = {}
    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    r["rps"] = float(m.group(1)) if m else None
    m = re.search(r"(\d+) requests in", out)
    r["requests"] = int(m.group(1)) if m else 0
    for pct in ("50", "99"):
        m = re.search(rf"^\s+{pct}(?:\.000)?%\s+(\S+)", out, re.M)
        r[f"p{pct}_ms"] = _ms(m.group(1)) if m else None
    m = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    r["non2xx"] = int(m.group(1)) if m else 0
    m = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    r["sock_errors"] = sum(int(x) for x in m.groups()) if m else 0
    return r


def wrk(url: str, conns: int, seconds: int, latency: bool = True) -> str:
    cmd = ["wrk", "-t1", f"-c{conns}", f"-d{seconds}s", *(["--latency"] if latency else []), url]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=seconds + 30)
    return done.stdout + done.stderr


def background_busy(seconds: float = 1.0) -> float:
    """CPU busy % of the whole machine while we do nothing: other jobs skew every figure."""
    a = machine_busy()
    time.sleep(seconds)
    b = machine_busy()
    total = b[0] - a[0]
    return 100.0 * (total - (b[1] - a[1])) / total if total else 0.0


def loadavg() -> str:
    with open("/proc/loadavg") as f:
        return " ".join(f.read().split()[:3])


def machine_busy() -> tuple[int, int]:
    with open("/proc/stat") as f:
        vals = [int(x) for x in f.readline().split()[1:]]
    return sum(vals), vals[3] + vals[4]


# --- one measured run --------------------------------------------------------------------------


def run_one(v: Variant, env: Env, conns: int, duration: int) -> dict[str, Any]:
    tag = v.name
    server_log = env.out_dir / f"{tag}.server.log"
    access_log = env.out_dir / f"{tag}.access.log"
    with contextlib.suppress(FileNotFoundError):
        access_log.unlink()  # one run's worth at a time
    if v.transport == "unix":
        path = env.run_dir / f"{v.server}.sock"
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        bind, upstream = str(path), f"unix:{path}"
    else:
        port = free_port()
        bind = upstream = f"127.0.0.1:{port}"
    upstream_addr = upstream if v.transport == "unix" else bind
    nginx_port = int(os.environ.get("BENCH_NGINX_PORT", "0")) or free_port()
    if can_connect(f"127.0.0.1:{nginx_port}"):
        raise RuntimeError(f"port {nginx_port} is already taken by another process")
    srv = ngx = None
    try:
        srv = start(
            server_command(v, env, bind, access_log), server_log, env=server_environ(env), cwd=APPS
        )
        wait_for(lambda: srv.poll() is not None or can_connect(upstream_addr), 30, f"{tag} socket")
        if srv.poll() is not None:
            raise RuntimeError(f"server exited with {srv.returncode}; see {server_log}")
        conf = env.run_dir / "nginx.conf"
        conf.write_text(nginx_conf(env, nginx_port, upstream))
        ngx = start(
            ["nginx", "-c", str(conf), "-e", str(env.out_dir / "nginx_error.log")], server_log
        )
        wait_for(
            lambda: ngx.poll() is not None or can_connect(f"127.0.0.1:{nginx_port}"), 10, "nginx"
        )
        status, body = 0, b""
        for _ in range(50):
            if ngx.poll() is not None:
                raise RuntimeError(f"nginx exited with {ngx.returncode} (port in use?); see logs")
            with contextlib.suppress(OSError):
                status, body = probe(nginx_port)
                if status == 200:
                    break
            time.sleep(0.1)
        if status != 200 or body != EXPECT_BODY:
            raise RuntimeError(f"probe through nginx failed: {status} {body[:200]!r}")
        url = f"http://127.0.0.1:{nginx_port}/"
        wrk(url, conns, 1, latency=False)  # warm-up: imports, caches, lazy init, TCP state
        time.sleep(0.2)
        rss0, _ = worker_rss_kb(srv.pid)
        s0, n0 = tree_cpu_seconds(srv.pid), tree_cpu_seconds(ngx.pid)
        k0 = tree_sys_seconds(srv.pid)
        w0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        m0, t0 = machine_busy(), time.monotonic()
        out = wrk(url, conns, duration)
        m1, wall = machine_busy(), time.monotonic() - t0
        s1, n1 = tree_cpu_seconds(srv.pid), tree_cpu_seconds(ngx.pid)
        k1 = tree_sys_seconds(srv.pid)
        w1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        rss1, nprocs = worker_rss_kb(srv.pid)
        if ngx.poll() is not None or srv.poll() is not None:
            raise RuntimeError("nginx or the server died during the run")
        r = parse_wrk(out)
        if not r["requests"] or not r["rps"]:
            raise RuntimeError(f"wrk gave no result: {out[-500:]!r}")
        if s1 - s0 <= 0 or n1 - n0 <= 0:
            raise RuntimeError(
                f"no CPU used by the server ({s1 - s0:.2f} s) or nginx ({n1 - n0:.2f} s): "
                "the load went elsewhere"
            )
        per_req = 1e6 / r["requests"]
        wrk_cpu = (w1.ru_utime + w1.ru_stime) - (w0.ru_utime + w0.ru_stime)
        total, idle = m1[0] - m0[0], m1[1] - m0[1]
        r.update(
            server_us=(s1 - s0) * per_req,
            server_sys_us=(k1 - k0) * per_req,
            nginx_us=(n1 - n0) * per_req,
            wrk_us=wrk_cpu * per_req,
            busy_pct=100.0 * (total - idle) / total if total else None,
            rss_worker_kb=statistics.mean(rss1),
            rss_growth_kb=statistics.mean(rss1) - statistics.mean(rss0),
            procs=nprocs,
            wall_s=wall,
        )
        with open(env.out_dir / f"{tag}.wrk.txt", "a") as f:
            f.write(out + "\n")
        return r
    finally:
        stop(ngx, signal.SIGQUIT if ngx is not None and ngx.poll() is None else signal.SIGTERM)
        stop(srv)
        if v.transport == "unix":
            with contextlib.suppress(FileNotFoundError):
                Path(bind).unlink()
        else:
            wait_for(lambda: not can_connect(bind), 10, "port release")


# --- summary -----------------------------------------------------------------------------------


def med(rows: list[dict[str, Any]], key: str) -> float | None:
    vals = [r[key] for r in rows if r.get(key) is not None]
    return statistics.median(vals) if vals else None


def summarize(results: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, rows in results.items():
        ok = [r for r in rows if "error" not in r]
        s: dict[str, Any] = {"runs": len(ok), "failed": len(rows) - len(ok)}
        if ok:
            for key in (
                "rps",
                "p50_ms",
                "p99_ms",
                "server_us",
                "server_sys_us",
                "nginx_us",
                "wrk_us",
                "busy_pct",
            ):
                s[key] = med(ok, key)
            s["rps_min"] = min(r["rps"] for r in ok)
            s["rps_max"] = max(r["rps"] for r in ok)
            s["errors"] = sum(r["non2xx"] + r["sock_errors"] for r in ok)
            s["rss_worker_mb"] = med(ok, "rss_worker_kb") / 1024  # type: ignore[operator]
            growth = sum(r["rss_growth_kb"] for r in ok) / 1024
            s["rss_growth_mb_per_100k"] = growth / sum(r["requests"] for r in ok) * 1e5
            s["procs"] = max(r["procs"] for r in ok)
        else:
            s["error"] = rows[-1].get("error") if rows else "not run"
        out[name] = s
    return out


@dataclasses.dataclass
class Target:
    text: str
    value: float | None
    limit: float
    higher_is_better: bool
    #: The same ratio within each round (both variants ran back to back there): its spread is
    #: this machine's noise on the figure, which the ratio of medians alone does not show.
    rounds: list[float] = dataclasses.field(default_factory=list)

    @property
    def spread(self) -> str:
        """``median (min..max) of N rounds`` of the ratio within each round, or "-"."""
        if not self.rounds:
            return "-"
        return (
            f"{statistics.median(self.rounds):.2f} ({min(self.rounds):.2f}.."
            f"{max(self.rounds):.2f}) of {len(self.rounds)}"
        )

    @property
    def verdict(self) -> str:
        if self.value is None:
            return "n/a (variant not run)"
        ok = self.value >= self.limit if self.higher_is_better else self.value <= self.limit
        return "**holds**" if ok else "**missed**"


def round_ratios(results: dict[str, list[dict[str, Any]]], a: str, b: str, key: str) -> list[float]:
    """``a``'s ``key`` over ``b``'s in each round where both ran (rounds are interleaved: the
    n-th row of every variant is from round n)."""
    return [
        ra[key] / rb[key]
        for ra, rb in zip(results.get(a, []), results.get(b, []), strict=False)
        if ra.get(key) is not None and rb.get(key)
    ]


def targets(
    summary: dict[str, dict[str, Any]], results: dict[str, list[dict[str, Any]]] | None = None
) -> list[Target]:
    def get(name: str, key: str) -> float | None:
        val = summary.get(name, {}).get(key)
        return float(val) if val is not None else None

    def ratio(a: str, b: str, key: str) -> float | None:
        x, y = get(a, key), get(b, key)
        return x / y if x is not None and y else None

    def each(a: str, b: str, key: str) -> list[float]:
        return round_ratios(results or {}, a, b, key)

    def diff(a: str, b: str, key: str) -> float | None:
        x, y = get(a, key), get(b, key)
        return x - y if x is not None and y is not None else None

    ours, uw, gu = "uwsgiapp-hello-1w-unix", "uwsgi-hello-1w-unix", "gunicorn-hello-1w-unix"
    flask_u = "uwsgi-flask-1w-unix"
    ratios = [
        ("hello 1w unix: server CPU/req vs uWSGI", ours, uw, "server_us", 1.0, False),
        ("hello 1w unix: req/s vs uWSGI", ours, uw, "rps", 1.0, True),
        ("hello 1w unix: req/s vs gunicorn --protocol uwsgi", ours, gu, "rps", 3.5, True),
        (
            "hello 2w unix: req/s vs uWSGI 2 processes",
            "uwsgiapp-hello-2w-unix",
            "uwsgi-hello-2w-unix",
            "rps",
            1.0,
            True,
        ),
        (
            "Flask 1w unix: server CPU/req vs uWSGI+Flask",
            "uwsgiapp-flask-1w-unix",
            flask_u,
            "server_us",
            1.0,
            False,
        ),
        (
            "uwsgiapp.web 1w unix: server CPU/req vs uWSGI+Flask",
            "uwsgiapp-web-1w-unix",
            flask_u,
            "server_us",
            0.35,
            False,
        ),
        (
            "hello 1w unix, access log on: server CPU/req vs uWSGI with its request log",
            "uwsgiapp-hello-1w-unix-log",
            "uwsgi-hello-1w-unix-log",
            "server_us",
            1.1,
            False,
        ),
    ]
    return [
        *(
            Target(text, ratio(a, b, key), limit, higher, each(a, b, key))
            for text, a, b, key, limit, higher in ratios
        ),
        Target("hello: RSS/worker minus uWSGI's (MB)", diff(ours, uw, "rss_worker_mb"), 10, False),
        Target(
            "Flask: RSS/worker minus uWSGI+Flask's (MB)",
            diff("uwsgiapp-flask-1w-unix", flask_u, "rss_worker_mb"),
            10,
            False,
        ),
        Target(
            "hello: RSS growth per 100k requests (MB)",
            get(ours, "rss_growth_mb_per_100k"),
            1,
            False,
        ),
    ]


# --- report ------------------------------------------------------------------------------------


def sh(cmd: list[str]) -> str:
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"? ({exc})"
    text = (done.stdout + done.stderr).strip()
    return text.splitlines()[0] if text else "?"


def machine_info(env: Env) -> dict[str, str]:
    cpu = "?"
    with contextlib.suppress(OSError), open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with contextlib.suppress(OSError), open("/proc/meminfo") as f:
        mem = f"{int(f.readline().split()[1]) // 1024} MB"
    anchor_py = str(env.anchor_bin / "python")
    pkgs = "import importlib.metadata as m\nfor n in ('gunicorn', 'flask', 'werkzeug'):\n"
    pkgs += "    try: print(n, m.version(n), end=' ')\n"
    pkgs += "    except m.PackageNotFoundError: print(n, 'missing', end=' ')\n"
    return {
        "cpu": f"{cpu} x {os.cpu_count()}",
        "memory": mem,
        "kernel": platform.release(),
        "python (uwsgiapp)": sh([env.python, "-V"]),
        "uwsgiapp": sh(["git", "-C", str(ROOT), "describe", "--always", "--dirty"])
        + (
            f", installed build: {sh([env.python, '-P', '-m', 'uwsgiapp', '--version'])}"
            if env.installed
            else ", from the sources (pure Python)"
        ),
        "nginx": sh(["nginx", "-v"]).replace("nginx version: ", ""),
        "wrk": sh(["wrk", "-v"]).split(" Copyright")[0],
        "uWSGI": sh([str(env.anchor_bin / "uwsgi"), "--version"]),
        "anchor packages": sh([anchor_py, "-c", pkgs]),
    }


def fmt(x: float | None, spec: str) -> str:
    return "-" if x is None else format(x, spec)


def results_table(variants: list[Variant], summary: dict[str, dict[str, Any]]) -> list[str]:
    lines = [
        "| variant | procs | req/s | min..max | p50 ms | p99 ms | errors "
        "| server µs/req | of it system | nginx µs/req | RSS/worker MB |",
        "|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|",
    ]
    for v in variants:
        s = summary[v.name]
        if not s["runs"]:
            lines.append(f"| {v.name} | | FAILED: {s.get('error', '')} | | | | | | | | |")
            continue
        failed = f" ({s['failed']} runs failed)" if s["failed"] else ""
        lines.append(
            f"| {v.name} | {s['procs']} | {s['rps']:.0f} | {s['rps_min']:.0f}..{s['rps_max']:.0f} "
            f"| {fmt(s['p50_ms'], '.2f')} | {fmt(s['p99_ms'], '.2f')} | {s['errors']}{failed} "
            f"| **{s['server_us']:.1f}** | {fmt(s.get('server_sys_us'), '.1f')} "
            f"| {s['nginx_us']:.1f} | {s['rss_worker_mb']:.1f} |"
        )
    return lines


def chart(variants: list[Variant], summary: dict[str, dict[str, Any]], path: Path) -> str:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return "matplotlib is not installed: no chart (`make bench` installs it)"
    shown = [v for v in variants if summary[v.name]["runs"]]
    names = [v.name for v in shown]
    colors = {"uwsgiapp": "#2a7ab0", "uwsgi": "#7f7f7f", "gunicorn": "#d98c2b"}
    col = [colors[v.server] for v in shown]
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(13, 0.32 * len(names) + 1.6), sharey=True)
    ys = range(len(names))
    ax1.barh(ys, [summary[n]["rps"] for n in names], color=col)
    ax1.set_title("req/s through nginx (higher is better)")
    ax2.barh(ys, [summary[n]["server_us"] for n in names], color=col)
    ax2.set_title("server CPU µs per request (lower is better)")
    ax1.set_yticks(list(ys), names, fontsize=8)
    ax1.invert_yaxis()
    for ax in (ax1, ax2):
        ax.grid(axis="x", alpha=0.3)
    fig.suptitle("wrk -> nginx -> server, loopback, median of rounds")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return ""


#: Commands of the report's sections that failed; main() names them again at the end.
FAILED_SECTIONS: list[str] = []


def output_text(done: subprocess.CompletedProcess[str]) -> str:
    """What a report shows of a finished command: its output, and its error when it failed."""
    if not done.returncode:
        return done.stdout.rstrip()
    FAILED_SECTIONS.append(shlex.join(_local_paths_out([str(a) for a in done.args])))
    return done.stdout.rstrip() + f"\n(exit {done.returncode}) {done.stderr[-2000:]}"


def micro_benches(python: str, quick: bool) -> list[tuple[str, str]]:
    out = []
    runs = {
        "bench_codec.py": ["--quick"] if quick else [],
        "bench_web.py": ["--iterations", "5000", "--repeat", "3"] if quick else [],
    }
    for script, extra in runs.items():
        path = BENCH / script
        if not path.exists():
            continue
        cmd = [python, str(path), *extra]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
            if done.returncode != 0 and extra and "unrecognized arguments" in done.stderr:
                cmd = [python, str(path)]
                done = subprocess.run(cmd, capture_output=True, text=True, timeout=600, cwd=ROOT)
            text = output_text(done)
        except subprocess.TimeoutExpired:
            text = "timed out"
        rel = [Path(cmd[1]).relative_to(ROOT).as_posix(), *cmd[2:]]
        out.append((f"python {shlex.join(rel)}", text))
    return out


def count_sections(env: Env) -> list[tuple[str, str]]:
    """``bench/count_servers.py`` for the apps of the targets: instructions a request, counted."""
    out = []
    for extra in ([], ["--access-log"], ["--app", "flask"], ["--app", "web"]):
        cmd = [sys.executable, str(BENCH / "count_servers.py"), *extra]
        cmd += ["--anchor-venv", str(env.anchor_bin.parent)]
        if env.installed:
            cmd += ["--uwsgiapp-python", env.python]
        try:
            done = subprocess.run(cmd, capture_output=True, text=True, timeout=1800, cwd=ROOT)
            text = output_text(done)
        except subprocess.TimeoutExpired:
            text = "timed out"
        shown = ["python", "bench/count_servers.py", *extra]
        if env.installed:
            shown += ["--uwsgiapp-python", ".venv-compiled/bin/python"]
        out.append((shlex.join(shown), text))
    return out


def profile_section(python: str, quick: bool) -> tuple[str, str] | None:
    script = BENCH / "profile_worker.py"
    if not script.exists():
        return None
    args = ["--seconds", "3" if quick else "6", "--top", "25"]
    cmd = [python, str(script), *args]
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=180, cwd=ROOT)
        text = output_text(done)
    except subprocess.TimeoutExpired:
        text = "timed out"
    return f"python bench/profile_worker.py {shlex.join(args)}", text


def write_report(
    args: argparse.Namespace,
    env: Env,
    variants: list[Variant],
    summary: dict[str, dict[str, Any]],
    results: dict[str, list[dict[str, Any]]],
    started: datetime.datetime,
    extras: list[tuple[str, str]],
    profile: tuple[str, str] | None,
    load: dict[str, Any],
) -> None:
    info = machine_info(env)
    took = (datetime.datetime.now() - started).seconds
    cmdline = (
        "python bench/run.py " + shlex.join(_local_paths_out(sys.argv[1:]))
        if sys.argv[1:]
        else "python bench/run.py"
    )
    lines = [
        "# Benchmark results",
        "",
        "Generated by `bench/run.py`; do not edit by hand. Rerun with `make bench` (full) or",
        "`make bench-quick` (about 2 minutes).",
        "",
        f"- date: {started:%Y-%m-%d %H:%M} (took {took // 60} min {took % 60} s)",
        f"- command: `{cmdline}`",
        f"- load: `wrk -t1 -c{args.conns} -d{args.duration}s` → nginx (1 worker, loopback) "
        f"→ server; {args.rounds} interleaved rounds per variant, median shown",
    ]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += [
        "- background load: "
        + ", ".join(f"{k} {v:.0f}" if isinstance(v, float) else f"{k} {v}" for k, v in load.items())
        + " (other jobs on the machine lower every req/s; CPU µs/req is less affected)"
    ]
    lines += [
        "",
        "Variant names are `server-app-workers-transport`; `-log` = access log on (uwsgiapp: "
        "uwsgi format to a file; uWSGI: its request log to a file). Servers: `uwsgiapp` = "
        "`uwsgiapp serve`, `uwsgi` = uWSGI with `--master`, `gunicorn` = gunicorn sync workers "
        "with `--protocol uwsgi`. "
        "**server µs/req** is the CPU time of the server's whole process tree (master + workers, "
        "from /proc) divided by requests: on 2 cores nginx and wrk saturate the machine near 40k "
        "req/s, so this is the figure that separates fast servers; **of it system** is the "
        "kernel's part of it (system time: the syscalls, the socket and file work). "
        "procs = processes in the tree.",
        "",
        "![req/s and server CPU per request](results.png)",
        "",
        "## Results",
        "",
        *results_table(variants, summary),
        "",
        "## Targets (issue 20; memory and leak targets from issue 8)",
        "",
        "| target | measured | limit | verdict | the ratio within each round: median (range) |",
        "|---|--:|--:|---|--:|",
    ]
    for t in targets(summary, results):
        sign = "≥" if t.higher_is_better else "≤"
        lines.append(
            f"| {t.text} | {fmt(t.value, '.2f')} | {sign} {t.limit:g} | {t.verdict} | {t.spread} |"
        )
    for server in ("uwsgiapp", "uwsgi"):
        off = summary.get(f"{server}-hello-1w-unix", {}).get("server_us")
        on = summary.get(f"{server}-hello-1w-unix-log", {}).get("server_us")
        if off and on:
            lines += [
                "",
                f"{server}: the access log (to a file) costs {on - off:.1f} µs/request of "
                f"server CPU ({on:.1f} on vs {off:.1f} off).",
            ]
    if profile:
        lines += [
            "",
            "## Where the time goes in one uwsgiapp worker",
            "",
            "The pure-Python sources (cProfile does not see compiled functions); what the "
            "compiled build runs instead is counted in [SPEED.md](SPEED.md).",
            "",
            f"`{profile[0]}`",
            "",
            "```",
            profile[1],
            "```",
        ]
    for cmd, text in extras:
        lines += ["", f"## `{cmd}`", "", "```", text, "```"]
    lines += [
        "",
        "## Stats on vs off (issue 18)",
        "",
        "See [STATS.md](STATS.md) (not rewritten by `bench/run.py`).",
        "",
        "## The compiled hot path, counted (issue 20)",
        "",
        "See [SPEED.md](SPEED.md): instructions, allocations and syscalls per request before and "
        "after each lever (not rewritten by `bench/run.py`).",
        "",
        "## Threads per worker (issue 19)",
        "",
        "See [THREADS.md](THREADS.md) (not rewritten by `bench/run.py`).",
    ]
    lines += [
        "",
        "## Commands",
        "",
        *(f"- {v.name}: `{shlex.join(shorten(display_command(v, env)))}`" for v in variants),
        "",
    ]
    (BENCH / "RESULTS.md").write_text("\n".join(lines))


def display_command(v: Variant, env: Env) -> list[str]:
    return server_command(v, env, "<socket>", Path("<log>"))


def _local_paths_out(args: list[str]) -> list[str]:
    """Arguments for the report: paths inside the repository relative, others as <path>."""
    out = []
    for arg in args:
        if arg.startswith("/"):
            path = Path(arg)
            arg = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else "<path>"
        out.append(arg)
    return out


def shorten(cmd: list[str]) -> list[str]:
    """Commands as a reader would type them: no local absolute paths in the report."""
    out = []
    for i, part in enumerate(cmd):
        if i == 0:
            part = "python" if part == sys.executable else Path(part).name
        out.append(part.replace(str(APPS), "bench/apps"))
    return out


# --- main --------------------------------------------------------------------------------------


def default_anchor_bin() -> Path:
    env = os.environ.get("BENCH_ANCHOR_VENV")
    if env:
        return Path(env) / "bin"
    local = ROOT / ".bench-venv" / "bin"
    return local if (local / "uwsgi").exists() else Path(sys.executable).parent


@contextlib.contextmanager
def run_dir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="uwsgiapp-bench-"))
    path.chmod(0o755)  # nginx workers may run as another user
    (path / "tmp").mkdir()
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument(
        "--quick", action="store_true", help="the target variants only, short runs (~2 min)"
    )
    ap.add_argument("--rounds", type=int, default=None, help="rounds per variant (default 3)")
    ap.add_argument(
        "--duration", type=int, default=None, help="seconds per wrk run (default 6, quick 3)"
    )
    ap.add_argument("--conns", type=int, default=32, help="wrk connections (default 32)")
    ap.add_argument("--only", default=None, help="regex on variant names")
    ap.add_argument("--anchor-venv", default=None, help="venv with uwsgi, gunicorn, flask")
    ap.add_argument(
        "--uwsgiapp-python",
        default=None,
        help="run the uwsgiapp installed in this interpreter (e.g. the compiled build's venv) "
        "instead of these sources",
    )
    ap.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md alone")
    ap.add_argument("--no-extras", action="store_true", help="skip the micro-benches and profile")
    ap.add_argument(
        "--counts",
        action="store_true",
        help="also count instructions a request against uWSGI (bench/count_servers.py, valgrind;"
        " after the timed runs, some minutes)",
    )
    ap.add_argument("--list", action="store_true", help="list the variants and exit")
    args = ap.parse_args(argv)
    args.rounds = args.rounds or 3
    args.duration = args.duration or (3 if args.quick else 6)
    for tool in ("nginx", "wrk"):
        if shutil.which(tool) is None:
            sys.exit(f"{tool} not found (Debian: apt-get install nginx wrk)")
    anchor_bin = Path(args.anchor_venv) / "bin" if args.anchor_venv else default_anchor_bin()
    variants = quick_variants() if args.quick else all_variants()
    if args.only:
        variants = [v for v in variants if re.search(args.only, v.name)]
    out_dir = Path(os.environ.get("BENCH_OUT", BENCH / "out"))
    out_dir.mkdir(parents=True, exist_ok=True)
    started = datetime.datetime.now()
    load = {"loadavg at start": loadavg(), "idle-machine busy % at start": background_busy()}
    with run_dir() as rd:
        env = make_env(args.uwsgiapp_python, anchor_bin, rd, out_dir)
        if args.list:
            for v in variants:
                print(
                    f"{v.name:32s} {shlex.join(server_command(v, env, '<socket>', Path('<log>')))}"
                )
            return 0
        missing = [b for b in ("uwsgi", "gunicorn") if not (anchor_bin / b).exists()]
        if missing and any(v.server != "uwsgiapp" for v in variants):
            sys.exit(
                f"{', '.join(missing)} not in {anchor_bin}: run `make bench` or pass --anchor-venv"
            )
        results: dict[str, list[dict[str, Any]]] = {v.name: [] for v in variants}
        for rnd in range(args.rounds):
            # Rotate the order each round so no variant always follows the same neighbour.
            order = variants[rnd % len(variants) :] + variants[: rnd % len(variants)]
            for v in order:
                try:
                    r = run_one(v, env, args.conns, args.duration)
                    line = (
                        f"{r['rps']:8.0f} req/s  p50 {r['p50_ms']:.2f}  p99 {r['p99_ms']:.2f} ms  "
                        f"server {r['server_us']:5.1f} µs/req (sys {r['server_sys_us']:4.1f})  "
                        f"nginx {r['nginx_us']:4.1f}  "
                        f"rss/worker {r['rss_worker_kb'] / 1024:5.1f} MB  procs {r['procs']}  "
                        f"errors {r['non2xx'] + r['sock_errors']}  busy {r['busy_pct']:.0f}%"
                    )
                except Exception as exc:  # keep going; the failure is recorded and reported
                    r = {"error": str(exc)}
                    line = f"ERROR {exc}"
                results[v.name].append(r)
                print(f"[{rnd + 1}/{args.rounds}] {v.name:30s} {line}", flush=True)
        summary = summarize(results)
        load["loadavg at end"] = loadavg()
        load["idle-machine busy % at end"] = background_busy()
        stamp = started.strftime("%Y%m%d-%H%M%S")
        raw = {"args": vars(args), "results": results, "summary": summary}
        (out_dir / f"results-{stamp}.json").write_text(json.dumps(raw, indent=1))
        print("\n".join(["", *results_table(variants, summary), ""]))
        for t in targets(summary, results):
            print(
                f"{t.text:55s} {fmt(t.value, '.2f'):>7s}  limit {t.limit:g}  {t.verdict}"
                f"  (each round: {t.spread})"
            )
        if args.no_write:
            return 0
        extras: list[tuple[str, str]] = []
        profile = None
        if not args.no_extras:
            profile = profile_section(sys.executable, args.quick)
            extras = micro_benches(sys.executable, args.quick)
        if args.counts:
            extras = count_sections(env) + extras
        note = chart(variants, summary, BENCH / "results.png")
        if note:
            print(note)
        write_report(args, env, variants, summary, results, started, extras, profile, load)
        print(f"wrote {BENCH / 'RESULTS.md'} and {BENCH / 'results.png'}; raw: {out_dir}")
        for failed in FAILED_SECTIONS:
            print(f"WARNING: {failed} failed; RESULTS.md shows its error", file=sys.stderr)
    return 1 if FAILED_SECTIONS else 0


if __name__ == "__main__":
    sys.exit(main())
