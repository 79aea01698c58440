"""A stats listener whose ``accept`` fails for want of file descriptors (EMFILE) says so in one
line and rests, instead of being polled again at once: the listener stays readable, so the
master's loop spun on it and logged the failure ~20,000 times a second.

Run in a child process whose descriptor limit is used up for real (RLIMIT_NOFILE lowered, the
rest filled with dups), so that the test process keeps its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHILD = r"""
import errno, json, logging, os, resource, select, socket, time
from stats_kit import sample
from uwsgiapp.stats import server as stats_server
from uwsgiapp.stats.server import StatsServer

lines = []
class Keep(logging.Handler):
    def emit(self, record):
        lines.append(record.getMessage())
logging.getLogger("uwsgiapp.error").addHandler(Keep())

def pump(until, guard=10.0):
    end = time.monotonic() + guard
    while not until() and time.monotonic() < end:
        server.poll(0.05)

NULL = os.open(os.devnull, os.O_RDONLY)
def fill():
    fds = []
    while True:
        try:
            fds.append(os.dup(NULL))
        except OSError as exc:
            assert exc.errno == errno.EMFILE, exc
            return fds

def ask(sock):
    sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
    answer = b""
    while True:
        pump(lambda: select.select([sock], [], [], 0)[0])
        data = sock.recv(65536)
        if not data:
            return answer.split(b"\r\n", 1)[0].decode()
        answer += data

server = StatsServer("127.0.0.1:0", http=True, snapshot=sample)
first = socket.create_connection(server.address)
pump(lambda: server.clients == 1)
second, third = socket.socket(), socket.socket()  # their fds taken now, connected when full
hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
resource.setrlimit(resource.RLIMIT_NOFILE, (third.fileno() + 64, hard))
spare = fill()
second.connect(server.address)
for _ in range(200):  # a master loop's polls; it never spins
    server.poll(0.0)
out = {"lines": list(lines), "waits": not select.select([server.fileno()], [], [], 0)[0]}
out["first"] = ask(first)  # closing it frees a descriptor: accepting again at once
first.close()
out["second"] = ask(second)
second.close()
pump(lambda: server.clients == 0)
stats_server.ACCEPT_PAUSE = 0.1  # with no client to close, the pause ends by itself
spare += fill()
third.connect(server.address)
server.poll(0.0)
out["counted"] = getattr(getattr(server, "_accept_failures", None), "count", None)
os.close(spare.pop())
out["third"] = ask(third)
out["logged"] = len(lines)
print(json.dumps(out))
"""


def test_out_of_descriptors_one_line_and_the_listener_rests() -> None:
    here = Path(__file__).resolve().parent
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(here), *sys.path]))
    done = subprocess.run(
        [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert len(out["lines"]) == 1, out["lines"][:3]  # not one per poll (200 before)
    line = out["lines"][0]
    assert line.startswith("stats: accept failed: [Errno 24] Too many open files; not accepting")
    assert out["waits"]  # the master's wait on fileno() is not ended at once: it does not spin
    assert out["first"] == out["second"] == out["third"] == "HTTP/1.0 200 OK"
    assert out["counted"] == 1  # a second failure, within the interval: counted, not logged
    assert out["logged"] == 1
