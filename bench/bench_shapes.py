"""Time the environ a worker builds when clients with different headers take turns, and when
the values of one key sequence vary.

    python bench/bench_shapes.py           # with the interpreter of the build to measure

A worker learns a layout for each key sequence it keeps seeing (:mod:`uwsgiproto.layout`).
nginx sends the same keys for every request of one client, but clients differ (a cookie, another
browser's headers), so a worker sees sequences take turns. This times
:meth:`~uwsgiapp.wsgi.environ.EnvironBuilder.build` on the real nginx GET capture alone, and
with one or two other sequences (the capture plus a ``Cookie``, plus an ``Accept-Language``)
taking turns with it, every sequence learnt. Best of several repeats, µs per block.

A layout also expects the values its learning blocks all carried (``Layout``'s ``known``). The
second table times the capture's one sequence with its values: all the same each time; with
``REMOTE_PORT`` taking 32 values (the benchmark: wrk's 32 connections through nginx); and with
the port and the request's URI, path and query all different every time.
"""

from __future__ import annotations

import argparse
import sys
import timeit
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import uwsgiapp  # noqa: F401  (installed)
except ImportError:  # run from a checkout without installing
    sys.path[:0] = [str(ROOT), str(ROOT / "protocol")]

from uwsgiapp.buildinfo import compiled_modules  # noqa: E402
from uwsgiapp.wsgi.environ import LEARN_AFTER, EnvironBuilder, EnvironSettings  # noqa: E402
from uwsgiproto import Limits, build_request, parse_vars  # noqa: E402
from uwsgiproto.layout import KNOWN_MISSES  # noqa: E402

CAPTURE = ROOT / "tests" / "corpus" / "valid" / "nginx_get_hello.bin"


def blocks() -> list[bytes]:
    """The capture's var block, then the same with one and with two more headers."""
    base = parse_vars(CAPTURE.read_bytes()[4:])
    cookie = {**base, "HTTP_COOKIE": "session=0123456789abcdef"}
    language = {**cookie, "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9"}
    return [build_request(v)[4:] for v in (base, cookie, language)]


def varied(ports: int, paths: int) -> list[bytes]:
    """The capture's block with ``REMOTE_PORT`` taking ``ports`` values and the URI, path and
    query taking ``paths`` (both cycling, each block of the list differing from the last)."""
    base = parse_vars(CAPTURE.read_bytes()[4:])
    out = []
    for i in range(max(ports, paths)):
        path = f"/items/{i % paths}"
        values = {**base, "REMOTE_PORT": str(40000 + i % ports)}
        if paths > 1:
            query = f"page={i % paths}"
            values |= {"PATH_INFO": path, "QUERY_STRING": query, "REQUEST_URI": f"{path}?{query}"}
        out.append(build_request(values)[4:])
    return out


def per_block(shapes: list[bytes], number: int, repeat: int) -> float:
    """µs per block, the shapes taking turns, after every one was learnt."""
    builder = EnvironBuilder(EnvironSettings().template(), Limits())
    # Past the learning and KNOWN_MISSES blocks more: a value that keeps changing is no longer
    # expected by then, as in a worker that has served a while.
    for _ in range(LEARN_AFTER + 1 + KNOWN_MISSES // len(shapes) + 1):
        for block in shapes:
            builder.build(block)

    def turns() -> None:
        for block in shapes:
            builder.build(block)

    best = min(timeit.repeat(turns, number=number, repeat=repeat))
    return best / (number * len(shapes)) * 1e6


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("--number", type=int, default=20000)
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    build = "compiled" if "uwsgiapp.wsgi.environ" in compiled_modules() else "pure Python"
    print(f"EnvironBuilder.build on the nginx GET capture ({build}), µs per block:")
    shapes = blocks()
    for count in (1, 2, 3):
        label = "one key sequence" if count == 1 else f"{count} sequences taking turns"
        print(f"  {label:28s} {per_block(shapes[:count], args.number, args.repeat):6.2f}")
    print("one key sequence, its values:")
    for label, blocks_ in (
        ("the same each time", shapes[:1]),
        ("REMOTE_PORT of 32", varied(32, 1)),
        ("port and URI new each time", varied(4096, 4096)),
    ):
        number = max(args.number // len(blocks_), 1)
        print(f"  {label:28s} {per_block(blocks_, number, args.repeat):6.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
