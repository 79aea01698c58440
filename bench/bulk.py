"""Big bodies and streams through a real nginx: uwsgiapp, uWSGI and gunicorn, one worker each.

    python bench/bulk.py [--servers uwsgiapp,uwsgi,gunicorn] [--sizes 1,100] [--threads 4]
                         [--only up,down,stream] [--post-buffering 8192]

Each server runs bench/apps/bulk_app.py on a unix socket behind one nginx (same config for all):
``/buf/`` (nginx's defaults: bodies and responses buffered), ``/unbuf/``
(``uwsgi_request_buffering off``), ``/stream/`` (``uwsgi_buffering off``). Uploads are made
here (a repeating pattern, never stored) and hashed on both sides; downloads are checked
byte for byte. Each line: MB/s (wall, client to response end), and the worker's peak RSS
(``VmHWM``, reset before each request through ``/proc/PID/clear_refs``). Streams: the delay
from each yield (the app's clock, in the chunk) to its arrival here.
UWSGIAPP: the uwsgiapp command (default: the one beside this python); BENCH_VENV: the venv
with uWSGI and gunicorn (default: the project's .bench-venv).
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

from run import stop
from threads_handoff import cpu_model

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
VENV = Path(os.environ.get("BENCH_VENV", HERE.parent / ".bench-venv"))
OURS = os.environ.get("UWSGIAPP", str(Path(sys.executable).parent / "uwsgiapp"))
MB = 1024 * 1024
PATTERN = bytes(range(256)) * 256
SERVERS = {
    "uwsgiapp": f"{OURS} serve bulk_app:app --pythonpath {APPS} --socket {{sock}} --workers 1"
    " --limit-post 0 {threads}{postbuf}",
    "uwsgi": f"{VENV}/bin/uwsgi --master --processes 1 --socket {{sock}} --chdir {APPS}"
    f" --wsgi-file {APPS}/bulk_app.py --callable app --disable-logging {{threads}}{{postbuf}}",
    "gunicorn": f"{VENV}/bin/gunicorn -w 1 --protocol uwsgi -b {{bind}} --chdir {APPS}"
    " --log-level warning --timeout 600 {threads}bulk_app:app",
}
NGINX = """
{user} worker_processes 1; daemon off; pid {d}/nginx.pid; error_log {d}/error.log;
events {{ worker_connections 256; }}
http {{
  access_log off; client_body_temp_path {d}/cb; uwsgi_temp_path {d}/ut;
  client_max_body_size 0; uwsgi_read_timeout 600s; uwsgi_send_timeout 600s;
  server {{
    listen 127.0.0.1:{port};
    location /buf/ {{ include /etc/nginx/uwsgi_params; uwsgi_pass {upstream}; }}
    location /unbuf/ {{ include /etc/nginx/uwsgi_params; uwsgi_request_buffering off;
                        uwsgi_pass {upstream}; }}
    location /stream/ {{ include /etc/nginx/uwsgi_params; uwsgi_buffering off;
                         uwsgi_pass {upstream}; }}
  }}
}}
"""


def body(n: int) -> Iterator[bytes]:
    """``n`` bytes of the pattern, in 64 KiB pieces."""
    sent = 0
    while sent < n:
        piece = PATTERN if n - sent >= len(PATTERN) else PATTERN[: n - sent]
        sent += len(piece)
        yield piece


def expected_digest(n: int) -> str:
    h = hashlib.sha256()
    for piece in body(n):
        h.update(piece)
    return h.hexdigest()


def worker_pid(master: int) -> int:
    children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
    return int(children[0])


def peak_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def reset_peak(pid: int) -> None:
    Path(f"/proc/{pid}/clear_refs").write_text("5")


def upload(port: int, path: str, n: int, chunked: bool, form: bool) -> tuple[str, float]:
    """POST ``n`` pattern bytes; returns (what the app answered, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    headers = {"Content-Type": "application/octet-stream"}
    pieces: Iterator[bytes] = body(n)
    if form:
        head = (
            b'--XyZ\r\nContent-Disposition: form-data; name="file"; filename="f"\r\n'
            b"Content-Type: application/octet-stream\r\n\r\n"
        )
        tail = b"\r\n--XyZ--\r\n"
        headers["Content-Type"] = "multipart/form-data; boundary=XyZ"
        pieces = _framed(head, n, tail)
        if not chunked:
            headers["Content-Length"] = str(len(head) + n + len(tail))
    elif not chunked:
        headers["Content-Length"] = str(n)
    started = time.perf_counter()
    try:
        conn.request("POST", path, body=pieces, headers=headers, encode_chunked=chunked)
        resp = conn.getresponse()
        text = f"{resp.status} {resp.read().decode(errors='replace')[:90]}"
    except (OSError, http.client.HTTPException) as exc:
        text = f"error {exc!r}"[:90]
    finally:
        conn.close()
    return text, time.perf_counter() - started


def _framed(head: bytes, n: int, tail: bytes) -> Iterator[bytes]:
    yield head
    yield from body(n)
    yield tail


def download(
    port: int, path: str, n: int, method: str = "GET", headers: dict[str, str] | None = None
) -> tuple[str, float]:
    """GET ``path`` and check its body against the pattern; (verdict, seconds)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    started = time.perf_counter()
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        h = hashlib.sha256()
        got = 0
        while data := resp.read(MB):
            h.update(data)
            got += len(data)
        ok = "ok" if (method == "HEAD" or h.hexdigest() == expected_digest(got)) else "CORRUPT"
        verdict = f"{resp.status} {got}B {ok} len={resp.getheader('Content-Length')}"
        if resp.getheader("Content-Range"):
            verdict += f" range={resp.getheader('Content-Range')}"
    except (OSError, http.client.HTTPException) as exc:
        verdict = f"error {exc!r}"
    finally:
        conn.close()
    return verdict, time.perf_counter() - started


def stream_delays(port: int, path: str, count: int) -> str:
    """Read ``count`` lines of app timestamps from a stream; the delays yield -> here (ms)."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        buf = b""
        delays: list[float] = []
        while len(delays) < count:
            data = sock.recv(65536)
            now = time.time()
            if not data:
                break
            buf += data
            if b"\r\n\r\n" in buf and not delays and buf.startswith(b"HTTP"):
                buf = buf.split(b"\r\n\r\n", 1)[1]
            *lines, buf = buf.split(b"\n")
            for line in lines:
                line = line.strip()
                if b"." in line and line.replace(b".", b"").isdigit():
                    delays.append((now - float(line)) * 1000)
    if not delays:
        return "no chunk arrived"
    return (
        f"{len(delays)} chunks, delay median {statistics.median(delays):.1f} ms max "
        f"{max(delays):.1f} ms"
    )


class Stack:
    """One server behind one nginx, on a unix socket in ``tmp``."""

    def __init__(self, tmp: Path, name: str, threads: int, postbuf: int, tcp: bool = False) -> None:
        self.sock = str(tmp / f"{name}.sock")
        upstream = bind = f"unix:{self.sock}"
        if tcp:
            self.sock = bind = upstream = f"127.0.0.1:{_free_port()}"
        self.port = _free_port()
        (tmp / "cb").mkdir(exist_ok=True)
        (tmp / "ut").mkdir(exist_ok=True)
        conf = tmp / "nginx.conf"
        user = "user root root;" if os.geteuid() == 0 else ""  # to reach the 0700 temp dir
        conf.write_text(NGINX.format(d=tmp, port=self.port, upstream=upstream, user=user))
        opts = {"threads": "", "postbuf": ""}
        if threads > 1:
            opts["threads"] = (
                f"-k gthread --threads {threads} "
                if name == "gunicorn"
                else f" --threads {threads}"
            )
        if postbuf:
            opts["postbuf"] = f" --post-buffering {postbuf}"
        command = SERVERS[name].format(sock=self.sock, bind=bind, **opts)
        self.log_path = tmp / f"{name}.log"
        env = dict(os.environ, BULK_EVENTS=str(tmp / "events.log"))
        with open(self.log_path, "wb") as log:
            self.server = subprocess.Popen(
                command.split(),
                start_new_session=True,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
            )
        self.nginx = subprocess.Popen(
            ["/usr/sbin/nginx", "-c", str(conf), "-p", str(tmp), "-e", str(tmp / "error.log")],
            start_new_session=True,
        )
        deadline = time.monotonic() + 30
        while not _listening(self.sock) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        self.worker = worker_pid(self.server.pid)

    def close(self) -> None:
        stop(self.nginx, timeout=10)
        stop(self.server, timeout=15)


def _listening(address: str) -> bool:
    if address.startswith("/"):
        return os.path.exists(address)
    try:
        host, port = address.rsplit(":", 1)
        socket.create_connection((host, int(port)), timeout=1).close()
    except OSError:
        return False
    return True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_server(name: str, args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="bulk-") as tmpdir:
        stack = Stack(Path(tmpdir), name, args.threads, args.post_buffering, args.tcp)
        try:
            for line in scenarios(stack, args):
                print(f"{name:9} {line}", flush=True)
        finally:
            stack.close()


def _measure(stack: Stack, what: str, n: int, call: Callable[[], tuple[str, float]]) -> str:
    reset_peak(stack.worker)
    verdict, seconds = call()
    rate = n / MB / seconds if seconds else 0.0
    return (
        f"{what:34} {n // MB:5} MB {rate:8.1f} MB/s peak {peak_mb(stack.worker):7.1f} MB "
        f"| {verdict}"
    )


def scenarios(stack: Stack, args: argparse.Namespace) -> Iterator[str]:
    port = stack.port
    for size in args.sizes:
        n = size * MB
        if "up" in args.only:
            for loc in ("buf", "unbuf"):
                for how in ("read", "readn", "readline", "iter", "stream", "files", "partial"):
                    if how in ("read", "readline", "iter") and size > 100:
                        continue  # one 1 GB bytes object (or line): the app's choice, not ours
                    for chunked in (False, True):
                        if chunked and how not in ("readn", "read"):
                            continue
                        label = f"up {loc} {how}{' chunked' if chunked else ''}"
                        path = f"/{loc}/up/{how}" + ("?n=1048576" if how == "partial" else "")
                        call = functools.partial(upload, port, path, n, chunked, how == "files")
                        yield _measure(stack, label, n, call)
        if "down" in args.only:
            for loc in ("buf", "stream"):
                for how in (
                    "bytes",
                    "gen",
                    "write",
                    "file",
                    "textfile",
                    "bytesio",
                    "nofileno",
                    "send_file",
                ):
                    if how in ("bytes", "bytesio", "nofileno") and size > 100:
                        continue
                    call = functools.partial(download, port, f"/{loc}/down/{how}?n={n}", n)
                    yield _measure(stack, f"down {loc} {how}", n, call)
    if "range" in args.only:
        n = 100 * MB
        for how in ("send_file", "file"):
            path = f"/buf/down/{how}?n={n}"
            ranged = {"Range": "bytes=1048576-2097151"}
            yield _measure(
                stack,
                f"range {how}",
                MB,
                functools.partial(download, port, path, MB, headers=ranged),
            )
            yield _measure(
                stack, f"HEAD {how}", n, functools.partial(download, port, path, n, method="HEAD")
            )
    if "stream" in args.only:
        yield "stream /stream/ pause 0.2: " + stream_delays(
            port, "/stream/down/stream?n=400&pause=0.2", 10
        )
        yield "stream /buf/ (X-Accel-Buffering: no) pause 0.2: " + stream_delays(
            port, "/buf/down/stream?n=400&pause=0.2", 10
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--servers", default="uwsgiapp,uwsgi,gunicorn")
    parser.add_argument("--sizes", default="1,100", help="MB, comma-separated")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--post-buffering", type=int, default=0)
    parser.add_argument("--tcp", action="store_true", help="TCP on loopback, not unix sockets")
    parser.add_argument("--only", default="up,down,range,stream")
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    args.only = args.only.split(",")
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores)")
    for name in args.servers.split(","):
        run_server(name, args)


if __name__ == "__main__":
    main()
