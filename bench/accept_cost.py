"""What a worker pays to learn that its listen queue is empty: an ``accept`` that fails, against
an ``epoll`` check.

    python bench/accept_cost.py [--calls N]

The worker loop (:mod:`uwsgiapp.server.worker`) must find out, after each request, whether
another connection waits. Accepting again answers it for free when one does, but when none does
Linux still makes and frees a socket file before it says EAGAIN, and Python raises for it. An
``epoll`` wait with no timeout answers the same question. This times both, as the worker makes
them (the listener non-blocking, ``sock._accept`` and ``select.epoll.poll(0)``), on a unix and
a TCP listener (loopback) with nothing queued: user and system CPU a call, from ``os.times()``.
"""

from __future__ import annotations

import argparse
import os
import select
import socket
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from threads_handoff import cpu_model


def per_call(call: Callable[[], object], calls: int) -> tuple[float, float]:
    """User and system CPU µs a call of ``call``, over ``calls`` calls."""
    before = os.times()
    for _ in range(calls):
        call()
    after = os.times()
    return (
        (after.user - before.user) / calls * 1e6,
        (after.system - before.system) / calls * 1e6,
    )


def failed_accept(sock: socket.socket) -> Callable[[], object]:
    """One accept on an empty queue, as the worker makes it, its BlockingIOError caught."""
    accept = sock._accept  # type: ignore[attr-defined]

    def call() -> object:
        try:
            return accept()
        except BlockingIOError:
            return None

    return call


def epoll_check(sock: socket.socket) -> tuple[select.epoll, Callable[[], object]]:
    """An epoll with ``sock`` registered, and its look without sleeping."""
    epoll = select.epoll()
    epoll.register(sock.fileno(), select.EPOLLIN)
    poll = epoll.poll
    return epoll, lambda: poll(0)


def measure(calls: int) -> list[tuple[str, str, float, float]]:
    """(listener, way, user µs, system µs) for each listener kind and each way of looking."""
    rows = []
    with tempfile.TemporaryDirectory(prefix="accept-cost-") as tmp:
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(str(Path(tmp) / "s.sock"))
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.bind(("127.0.0.1", 0))
        for name, sock in (("unix", unix), ("tcp", tcp)):
            with sock:
                sock.listen(16)
                sock.setblocking(False)
                rows.append((name, "accept, queue empty", *per_call(failed_accept(sock), calls)))
                epoll, check = epoll_check(sock)
                with epoll:
                    rows.append((name, "epoll.poll(0)", *per_call(check, calls)))
    return rows


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--calls", type=int, default=200_000, help="calls timed for each row")
    args = ap.parse_args(argv)
    print(f"CPU {cpu_model()}, {os.cpu_count()} cores, Linux {os.uname().release}")
    print(f"| listener | way | user µs | system µs | total µs |  ({args.calls} calls each)")
    print("| --- | --- | ---: | ---: | ---: |")
    for name, way, user, system in measure(args.calls):
        print(f"| {name} | {way} | {user:.2f} | {system:.2f} | {user + system:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
