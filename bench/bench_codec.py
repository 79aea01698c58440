"""Time decoding the real nginx GET capture: construct fast path vs reference schema vs struct.

    python bench/bench_codec.py            # about 10 s
    python bench/bench_codec.py --quick    # about 2 s, noisier

Every contender turns the same 590-byte packet (header + 19 vars, as nginx 1.22 sent it) into
``{str: str}``; each is checked against the others before timing. "learnt" is the parser a worker
compiles for a key sequence it keeps seeing (:mod:`uwsgiproto.layout`). The figure is the best of
several repeats (the least disturbed run), in µs per decode. The target: the fast path within 2x
of a plain struct loop.
"""

from __future__ import annotations

import argparse
import functools
import struct
import sys
import timeit
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
try:
    import uwsgiproto  # noqa: F401  (installed, e.g. in .venv)
except ImportError:  # run from a checkout without installing
    sys.path[:0] = [str(ROOT), str(ROOT / "protocol")]

from uwsgiproto import Decoder, Request, decode  # noqa: E402
from uwsgiproto.layout import Layout  # noqa: E402
from uwsgiproto.schema import PACKET, REFERENCE_PACKET, join_pairs, parse_var_block  # noqa: E402

CAPTURE = ROOT / "tests" / "corpus" / "valid" / "nginx_get_hello.bin"
TARGET_RATIO = 2.0

_HEAD = struct.Struct("<BHB")
_U16 = struct.Struct("<H")


def struct_loop(data: bytes) -> dict[str, str]:
    """The yardstick: header and vars read with ``struct``, latin-1 decoded once, then sliced.

    Same checks and result as the codec (empty key, overruns, repeated keys joined), written as
    plainly as a fast struct loop can be.
    """
    _modifier1, size, _modifier2 = _HEAD.unpack_from(data)
    end = 4 + size
    if len(data) < end:
        raise ValueError("short packet")
    text = data[:end].decode("latin-1")
    unpack = _U16.unpack_from
    pos = 4
    out: dict[str, str] = {}
    while pos < end:
        (klen,) = unpack(data, pos)  # struct.error past the end of data
        if not klen:
            raise ValueError("empty key")
        kstart = pos + 2
        pos = kstart + klen
        if pos + 2 > end:
            raise ValueError("key overruns the block")
        (vlen,) = unpack(data, pos)
        vstart = pos + 2
        pos = vstart + vlen
        key = text[kstart : kstart + klen]
        value = text[vstart:pos]
        out[key] = out[key] + ", " + value if key in out else value
    if pos != end:
        raise ValueError("value overruns the block")
    return out


def naive_struct_loop(data: bytes) -> dict[str, str]:
    """The loop as first written: every key and value decoded on its own."""
    _modifier1, size, _modifier2 = _HEAD.unpack_from(data)
    end = 4 + size
    pos = 4
    out: dict[str, str] = {}
    unpack = _U16.unpack_from
    while pos < end:
        (klen,) = unpack(data, pos)
        if not klen:
            raise ValueError("empty key")
        key = data[pos + 2 : pos + 2 + klen].decode("latin-1")
        pos += 2 + klen
        (vlen,) = unpack(data, pos)
        value = data[pos + 2 : pos + 2 + vlen].decode("latin-1")
        pos += 2 + vlen
        out[key] = out[key] + ", " + value if key in out else value
    if pos != end:
        raise ValueError("overrun")
    return out


def decoder_fast(data: bytes) -> dict[str, str]:
    decoder = Decoder()
    decoder.receive_data(data)
    event = decoder.next_event()
    assert isinstance(event, Request)
    return dict(event.vars)


def var_block_fast(data: bytes) -> dict[str, str]:
    return parse_var_block(data[4:])


@functools.cache
def _capture_layout() -> Layout:
    # What a worker compiles after seeing this key sequence a few times (uwsgiapp.wsgi.environ).
    return Layout(parse_var_block(CAPTURE.read_bytes()[4:]))


def var_block_layout(data: bytes) -> dict[str, str]:
    block = data[4:]
    result = _capture_layout().run(block, block.decode("latin-1"))
    if type(result) is not dict:
        raise ValueError("the capture left its own layout")
    return result


def packet_fast(data: bytes) -> dict[str, str]:
    result: dict[str, str] = PACKET.parse(data).vars
    return result


def packet_reference(data: bytes) -> dict[str, str]:
    return join_pairs((v.key, v.value) for v in REFERENCE_PACKET.parse(data).block.vars)


CONTENDERS: list[tuple[str, Callable[[bytes], dict[str, str]]]] = [
    ("struct loop (in this bench)", struct_loop),
    ("struct loop, naive (per-field decode)", naive_struct_loop),
    ("fast: parse_var_block", var_block_fast),
    ("learnt: Layout.run (same key sequence)", var_block_layout),
    ("fast: Decoder (feed + event)", decoder_fast),
    ("fast: PACKET.parse", packet_fast),
    ("reference: REFERENCE_PACKET.parse", packet_reference),
]


def measure(data: bytes, budget_s: float, rounds: int = 7) -> dict[str, float]:
    """Best-of-``rounds`` µs per call for every contender, the rounds interleaved.

    Interleaving makes a burst of load on the machine hit every contender alike, so the ratios
    stay meaningful even when the absolute figures wobble.
    """
    timers = {name: timeit.Timer(functools.partial(fn, data)) for name, fn in CONTENDERS}
    numbers: dict[str, int] = {}
    for name, timer in timers.items():
        number, took = timer.autorange()
        numbers[name] = max(1, int(number * (budget_s / rounds) / max(took, 1e-9)))
    best = dict.fromkeys(timers, float("inf"))
    for _ in range(rounds):
        for name, timer in timers.items():
            per_call = timer.timeit(numbers[name]) / numbers[name] * 1e6
            best[name] = min(best[name], per_call)
    return best


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="shorter runs (noisier)")
    args = parser.parse_args(argv)
    budget = 0.3 if args.quick else 1.5

    data = CAPTURE.read_bytes()
    event, _body = decode(data)
    assert isinstance(event, Request)
    expected = dict(event.vars)
    for name, fn in CONTENDERS:
        if fn(data) != expected:
            raise SystemExit(f"{name} disagrees with the decoder on the capture")

    results = measure(data, budget)
    base = results[CONTENDERS[0][0]]
    print(
        f"decode of {CAPTURE.name} ({len(data)} bytes, {len(expected)} vars), Python "
        f"{sys.version.split()[0]}"
    )
    print(f"{'contender':<40} {'µs/decode':>10} {'x struct':>9}")
    for name, us in results.items():
        print(f"{name:<40} {us:>10.2f} {us / base:>8.2f}x")
    ratio = results["fast: parse_var_block"] / base
    decoder_ratio = results["fast: Decoder (feed + event)"] / base
    verdict = "ok" if ratio <= TARGET_RATIO else "OVER TARGET"
    print(
        f"fast/struct ratio: {ratio:.2f}x (parse_var_block), {decoder_ratio:.2f}x (Decoder); "
        f"target ≤ {TARGET_RATIO:.0f}x: {verdict}"
    )
    return 0 if ratio <= TARGET_RATIO else 1


if __name__ == "__main__":
    raise SystemExit(main())
