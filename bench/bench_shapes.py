"""Time the environ a worker builds when clients with different headers take turns.

    python bench/bench_shapes.py           # with the interpreter of the build to measure

A worker learns a layout for each key sequence it keeps seeing (:mod:`uwsgiproto.layout`).
nginx sends the same keys for every request of one client, but clients differ (a cookie, another
browser's headers), so a worker sees sequences take turns. This times
:meth:`~uwsgiapp.wsgi.environ.EnvironBuilder.build` on the real nginx GET capture alone, and
with one or two other sequences (the capture plus a ``Cookie``, plus an ``Accept-Language``)
taking turns with it, every sequence learnt. Best of several repeats, µs per block.
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

CAPTURE = ROOT / "tests" / "corpus" / "valid" / "nginx_get_hello.bin"


def blocks() -> list[bytes]:
    """The capture's var block, then the same with one and with two more headers."""
    base = parse_vars(CAPTURE.read_bytes()[4:])
    cookie = {**base, "HTTP_COOKIE": "session=0123456789abcdef"}
    language = {**cookie, "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9"}
    return [build_request(v)[4:] for v in (base, cookie, language)]


def per_block(shapes: list[bytes], number: int, repeat: int) -> float:
    """µs per block, the shapes taking turns, after every one was learnt."""
    builder = EnvironBuilder(EnvironSettings().template(), Limits())
    for _ in range(LEARN_AFTER + 1):
        for block in shapes:
            builder.build(block, 0)

    def turns() -> None:
        for block in shapes:
            builder.build(block, 0)

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
    return 0


if __name__ == "__main__":
    sys.exit(main())
