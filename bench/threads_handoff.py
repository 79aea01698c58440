"""What an acceptor feeding a pool of request threads would add per request, measured.

    python bench/threads_handoff.py [--jobs 20000] [--threads 4]

The two designs for ``--threads N`` do the same request work (read, app, write); they differ in
what surrounds it. In uWSGI's, the one uwsgiapp ships, each thread runs its own accept loop: the
thread that accepts a connection serves it, and nothing passes between threads. In the other,
one acceptor thread (the loop that parks slow clients) hands each complete request to a pool
over a bounded queue, and must learn when a thread is free again to accept the next one.

This measures that hand-off alone, with an empty job: the acceptor puts a job on a
``queue.SimpleQueue`` when a thread is free; a pool thread takes it, "serves" it (nothing) and
reports back on a pipe the acceptor waits on (its epoll would). Both CPU time (process) and wall
time per job are printed, beside a direct call for scale.
"""

from __future__ import annotations

import argparse
import os
import platform
import queue
import select
import threading
import time


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def direct(jobs: int) -> tuple[float, float]:
    def job() -> None:
        pass

    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(jobs):
        job()
    return time.process_time() - cpu, time.perf_counter() - wall


def pool(jobs: int, threads: int) -> tuple[float, float]:
    work: queue.SimpleQueue[int | None] = queue.SimpleQueue()
    done_r, done_w = os.pipe()

    def serve() -> None:
        while work.get() is not None:
            os.write(done_w, b"!")  # "a thread is free": the acceptor may accept again

    pool_threads = [threading.Thread(target=serve) for _ in range(threads)]
    for thread in pool_threads:
        thread.start()
    poller = select.epoll()
    poller.register(done_r, select.EPOLLIN)
    idle = threads
    cpu, wall = time.process_time(), time.perf_counter()
    sent = finished = 0
    while finished < jobs:
        while idle and sent < jobs:
            work.put(sent)
            sent += 1
            idle -= 1
        poller.poll()
        freed = len(os.read(done_r, 4096))
        idle += freed
        finished += freed
    elapsed = time.process_time() - cpu, time.perf_counter() - wall
    for _ in pool_threads:
        work.put(None)
    for thread in pool_threads:
        thread.join()
    poller.close()
    os.close(done_r)
    os.close(done_w)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--jobs", type=int, default=20000)
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args()
    print(f"CPU: {cpu_model()} ({os.cpu_count()} cores), Python {platform.python_version()}")
    for name, (cpu, wall) in (
        ("direct call (each thread accepts and serves)", direct(args.jobs)),
        (f"acceptor -> pool of {args.threads}", pool(args.jobs, args.threads)),
    ):
        print(
            f"{name:48s} CPU {cpu / args.jobs * 1e6:7.2f} us/job   "
            f"wall {wall / args.jobs * 1e6:7.2f} us/job"
        )


if __name__ == "__main__":
    main()
