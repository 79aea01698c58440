"""Resident memory per worker with 2 processes x 8 threads, after every thread has served.

    python bench/threads_rss.py        (needs the anchor-bench venv for uWSGI and gunicorn)

Each server is started on a unix socket with the I/O-bound app (bench/apps/sleep50.py), sent
200 uwsgi requests 16 at a time (every thread of both workers serves some), then each worker's
VmRSS is read from /proc and the server is stopped by its process group.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from run import stop
from threads_handoff import cpu_model
from uwsgiapp.supervisor.observe import rss_mb
from uwsgiproto import build_request

HERE = Path(__file__).resolve().parent
APPS = HERE / "apps"
#: The anchor-bench venv with uWSGI and gunicorn (its setup.sh's default place).
VENV = Path(os.environ.get("BENCH_VENV", "/tmp/anchor-bench/venv"))
OURS = Path(sys.executable).parent / "uwsgiapp"
COMMANDS = {
    "uwsgiapp --workers 2 --threads 8": f"{OURS} serve sleep50:app --pythonpath {APPS} "
    "--socket {sock} --workers 2 --threads 8",
    "uWSGI --processes 2 --threads 8": f"{VENV}/bin/uwsgi --master --processes 2 --threads 8 "
    f"--socket {{sock}} --wsgi-file {APPS}/sleep50.py --callable app --disable-logging",
    "gunicorn -w 2 --threads 8 (gthread)": f"{VENV}/bin/gunicorn -k gthread -w 2 --threads 8 "
    f"--protocol uwsgi -b unix:{{sock}} --chdir {APPS} --log-level warning sleep50:app",
}
PACKET = build_request(
    {"REQUEST_METHOD": "GET", "PATH_INFO": "/", "SERVER_PROTOCOL": "HTTP/1.1"}
    | {"SERVER_NAME": "b", "SERVER_PORT": "80", "QUERY_STRING": ""}
)


def one(path: str) -> None:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(PACKET)
        while sock.recv(65536):
            pass


def measure(command: str, sock: str) -> list[float]:
    proc = subprocess.Popen(
        command.format(sock=sock).split(),
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 20
        while not os.path.exists(sock) and time.monotonic() < deadline:
            time.sleep(0.1)
        time.sleep(1.0)
        for _ in range(200 // 16):
            batch = [threading.Thread(target=one, args=(sock,)) for _ in range(16)]
            for thread in batch:
                thread.start()
            for thread in batch:
                thread.join()
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        return sorted(rss_mb(int(pid)) for pid in children)
    finally:
        stop(proc, timeout=15)


def main() -> None:
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores)")
    with tempfile.TemporaryDirectory(prefix="rss-") as tmp:
        for name, command in COMMANDS.items():
            sizes = measure(command, os.path.join(tmp, "s.sock"))
            shown = ", ".join(f"{mb:.1f}" for mb in sizes)
            print(f"{name:40s} RSS per worker (MB): {shown}")


if __name__ == "__main__":
    main()
