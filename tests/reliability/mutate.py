"""Mutators for live packet fuzzing: turn real nginx captures and the corpus into bad input.

Each mutator is a pure function ``(rng, seed, pool) -> bytes``: ``seed`` is one corpus packet,
``pool`` all of them (for splicing), ``rng`` the caller's seeded ``random.Random`` (so a run is
reproduced from its seed). Length fields are edited in place with ``struct`` — never through the
encoder, which refuses what we want to send.
"""

from __future__ import annotations

import random
import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from uwsgiproto import Limits, ProtocolError, Request, build_request, decode
from uwsgiproto.schema import MAX_BLOCK

CORPUS = Path(__file__).resolve().parents[1] / "corpus"

Mutator = Callable[[random.Random, bytes, Sequence[bytes]], bytes]

U16 = struct.Struct("<H")
HEAD = struct.Struct("<BHB")

#: Bytes that tend to matter to parsers: NUL, CR/LF, separators, sign bits, all ones.
INTERESTING = b"\x00\x01\x0a\x0d\x20\x2b\x2d\x30\x39\x3a\x7f\x80\xfe\xff"


@dataclass(frozen=True, slots=True)
class Seed:
    """One corpus packet."""

    name: str
    data: bytes


def load_seeds() -> list[Seed]:
    """Every packet of ``tests/corpus`` (valid/ and invalid/; the real nginx captures included)."""
    seeds = [
        Seed(f"{path.parent.name}/{path.name}", path.read_bytes())
        for path in sorted(CORPUS.glob("*/*.bin"))
    ]
    assert any(s.name == "valid/nginx_get_hello.bin" for s in seeds), "corpus is missing"
    return seeds


# -- helpers ---------------------------------------------------------------------------------


def length_fields(data: bytes) -> list[int]:
    """Offsets of the 2-byte key/value length fields, walking the block as far as it holds."""
    if len(data) < 4:
        return []
    end = min(len(data), 4 + U16.unpack_from(data, 1)[0])
    offsets = []
    pos = 4
    while pos + 2 <= end:
        offsets.append(pos)
        pos += 2 + U16.unpack_from(data, pos)[0]
    return offsets


def _off(rng: random.Random, value: int) -> int:
    """``value`` off by ±1, ±2, ±small, ±big, or an edge (0, 0xffff), kept in 0..0xffff."""
    kind = rng.randrange(6)
    if kind == 0:
        new = value + rng.choice((-1, 1))
    elif kind == 1:
        new = value + rng.choice((-2, 2))
    elif kind == 2:
        new = value + rng.choice((-1, 1)) * rng.randint(3, 64)
    elif kind == 3:
        new = value + rng.choice((-1, 1)) * rng.randint(65, MAX_BLOCK)
    elif kind == 4:
        new = rng.choice((0, MAX_BLOCK, MAX_BLOCK - 1, 0x8000, 0x7FFF))
    else:
        new = value ^ (1 << rng.randrange(16))
    return new % (MAX_BLOCK + 1)


def _request_of(seed: bytes, pool: Sequence[bytes]) -> Request:
    """The seed as a decoded request; a real nginx capture when the seed is not one."""
    for candidate in (seed, *pool):
        if len(candidate) > 16384:  # no room left for a longer CONTENT_LENGTH
            continue
        try:
            event, _ = decode(candidate, _LIMITS)
        except ProtocolError:
            continue
        if isinstance(event, Request):
            return event
    raise AssertionError("no valid request in the pool")


def _block(pairs: Sequence[tuple[bytes, bytes]]) -> bytes:
    return b"".join(U16.pack(len(k)) + k + U16.pack(len(v)) + v for k, v in pairs)


# -- mutators --------------------------------------------------------------------------------


def bitflip(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """Flip 1..8 random bits (weighted to the first 64 bytes, where the lengths are)."""
    data = bytearray(seed or b"\x00")
    for _ in range(rng.randint(1, 8)):
        span = len(data) if rng.random() < 0.5 else min(len(data), 64)
        data[rng.randrange(span)] ^= 1 << rng.randrange(8)
    return bytes(data)


def byte_set(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """Overwrite 1..4 bytes with parser-sensitive values (NUL, CR, LF, sign, 0xff)."""
    data = bytearray(seed or b"\x00")
    for _ in range(rng.randint(1, 4)):
        data[rng.randrange(len(data))] = rng.choice(INTERESTING)
    return bytes(data)


def truncate(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """Cut the packet anywhere: inside the header, a length field, a key, a value, the body."""
    if len(seed) <= 1:
        return b""
    if rng.random() < 0.3:
        return seed[: rng.randrange(min(len(seed), 8))]
    return seed[: rng.randrange(len(seed))]


def datasize_off(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """The 2-byte datasize off by ±1 / ±small / ±big / an edge value."""
    if len(seed) < 4:
        seed = seed + bytes(4 - len(seed))
    m1, size, m2 = HEAD.unpack_from(seed)
    return HEAD.pack(m1, _off(rng, size), m2) + seed[4:]


def datasize_huge(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """A datasize near or past the limits, with as many bytes as it claims, or not."""
    size = rng.choice((4095, 4096, 4097, 8192, 0x7FFF, 0x8000, MAX_BLOCK - 1, MAX_BLOCK))
    m1 = rng.choice((0, 0, 30, 100, rng.randrange(256)))
    head = HEAD.pack(m1, size, 0)
    kind = rng.randrange(3)
    if kind == 0:
        return head + seed[4:]
    if kind == 1:  # exactly as many bytes as claimed: valid-looking vars, then filler
        block = seed[4:][:size]
        return head + block + b"A" * (size - len(block))
    return head + rng.randbytes(rng.randrange(size + 64))


def varlen_off(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """One key or value length field off by ±1 / ±big / an edge value."""
    offsets = length_fields(seed)
    if not offsets:
        return datasize_off(rng, seed, pool)
    data = bytearray(seed)
    for _ in range(1 if rng.random() < 0.8 else rng.randint(2, 4)):
        pos = rng.choice(offsets)
        U16.pack_into(data, pos, _off(rng, U16.unpack_from(data, pos)[0]))
    return bytes(data)


def varlen_consistent(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """A length field off, and the datasize changed by the same amount (harder to spot)."""
    offsets = length_fields(seed)
    if not offsets:
        return datasize_off(rng, seed, pool)
    data = bytearray(seed)
    pos = rng.choice(offsets)
    old = U16.unpack_from(data, pos)[0]
    delta = rng.choice((-2, -1, 1, 2, rng.randint(-200, 200)))
    new = min(max(old + delta, 0), MAX_BLOCK)
    U16.pack_into(data, pos, new)
    m1, size, m2 = HEAD.unpack_from(data)
    HEAD.pack_into(data, 0, m1, min(max(size + new - old, 0), MAX_BLOCK), m2)
    return bytes(data)


def modifiers(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """Other modifier1/modifier2 values (ping with a body, 30 without SCRIPT_NAME, unknown)."""
    if len(seed) < 4:
        seed = seed + bytes(4 - len(seed))
    m1, size, m2 = HEAD.unpack_from(seed)
    if rng.random() < 0.6:
        m1 = rng.choice((0, 30, 100, 1, 5, 29, 31, 99, 101, 255, rng.randrange(256)))
    else:
        m2 = rng.randrange(256)
    return HEAD.pack(m1, size, m2) + seed[4:]


def content_length(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """A valid packet with a hostile CONTENT_LENGTH, or a body that disagrees with it."""
    event = _request_of(seed, pool)
    body = rng.choice((b"", b"x" * rng.randint(1, 64), rng.randbytes(rng.randint(1, 3000))))
    value = rng.choice(
        (
            "-1",
            "-0",
            "+5",
            " 5",
            "5 ",
            "0x10",
            "1e3",
            "1.5",
            "abc",
            "\u00b2",  # a latin-1 digit that str.isdigit() accepts
            "9" * rng.randint(10, 40),
            "0" * rng.randint(17, 40) + "7",
            "18446744073709551617",
            str(len(body) + rng.randint(1, 100)),  # promises more than sent
            str(max(len(body) - rng.randint(1, 10), 0)),  # promises less
            str(len(body)),
            "",
        )
    )
    pairs = [(k, v) for k, v in event.vars.items() if k != "CONTENT_LENGTH"]
    pairs.insert(rng.randrange(len(pairs) + 1), ("CONTENT_LENGTH", value))
    if rng.random() < 0.2:  # repeated CONTENT_LENGTH: joined with ", " by the codec
        pairs.append(("CONTENT_LENGTH", str(len(body))))
    return build_request(pairs, body, event.modifier1, event.modifier2)


def splice(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """The start of one packet and the end of another, or two packets back to back."""
    other = rng.choice(pool)
    if rng.random() < 0.3:
        return seed + other  # pipelined: the second packet is "body" or trailing bytes
    return seed[: rng.randrange(len(seed) + 1)] + other[rng.randrange(len(other) + 1) :]


def insert_delete(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """Insert random bytes or delete a range, shifting everything after it."""
    pos = rng.randrange(len(seed) + 1)
    if rng.random() < 0.5 or not seed:
        return seed[:pos] + rng.randbytes(rng.randint(1, 16)) + seed[pos:]
    return seed[:pos] + seed[pos + rng.randint(1, 16) :]


def var_flood(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """Many vars, repeats of one key, empty keys or values, one huge value: a self-consistent
    block (correct lengths) that tests limits, not framing."""
    kind = rng.randrange(5)
    if kind == 0:
        pairs = [(b"K%d" % i, b"v") for i in range(rng.choice((511, 512, 513, 600, 2000)))]
    elif kind == 1:
        pairs = [(b"HTTP_COOKIE", b"a=%d" % i) for i in range(rng.choice((100, 512, 513, 900)))]
    elif kind == 2:
        pairs = [(b"", b"empty key"), (b"PATH_INFO", b"/")]
        rng.shuffle(pairs)
    elif kind == 3:
        pairs = [(b"PATH_INFO", b"/"), (b"HTTP_X", b"v" * rng.choice((4000, 4090, 65000)))]
    else:
        pairs = [(rng.randbytes(rng.randint(1, 8)), rng.randbytes(rng.randint(0, 8)))]
        pairs *= rng.randint(1, 300)
    block = _block(pairs)[:MAX_BLOCK]
    return HEAD.pack(0, len(block), 0) + block


def garbage(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """Random bytes of a random size (empty included)."""
    size = rng.choice((0, rng.randint(1, 4), rng.randint(5, 64), rng.randint(65, 4096)))
    if rng.random() < 0.05:
        size = rng.randint(4097, 200_000)
    return rng.randbytes(size)


_PATHS = ("/", "/index.html", "/a?b=c", "*", "/" + "x" * 5000)


def http(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """An HTTP request sent to the uwsgi socket (``proxy_pass`` instead of ``uwsgi_pass``)."""
    method = rng.choice(("GET", "POST", "PUT", "HEAD", "DELETE", "OPTIONS", "PATCH", "CONNECT"))
    version = rng.choice(("HTTP/1.1", "HTTP/1.0", "HTTP/0.9"))
    path = rng.choice(_PATHS)
    if rng.random() < 0.1:
        return b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + rng.randbytes(rng.randint(0, 64))
    body = b"a=1&b=2" if method in ("POST", "PUT", "PATCH") else b""
    lines = [f"{method} {path} {version}", "Host: 127.0.0.1"]
    if body:
        lines.append(f"Content-Length: {len(body)}")
    text = "\r\n".join(lines).encode() + b"\r\n\r\n" + body
    return text[: rng.randint(1, len(text))] if rng.random() < 0.2 else text


def tls(rng: random.Random, seed: bytes, pool: Sequence[bytes]) -> bytes:
    """A TLS ClientHello (or an SSLv2-style hello) sent to the uwsgi socket."""
    if rng.random() < 0.15:
        # SSLv2-compatible hello: a 2-byte length with the top bit set, then msg type 1.
        hello = b"\x01\x03\x01\x00\x0c\x00\x00\x00\x10" + rng.randbytes(12 + 16)
        return bytes([0x80 | (len(hello) >> 8), len(hello) & 0xFF]) + hello
    suites = b"".join(U16.pack(rng.randrange(0x10000)) for _ in range(rng.randint(1, 40)))
    sni_name = b"localhost"
    sni = (
        b"\x00\x00"
        + U16.pack(len(sni_name) + 5)
        + U16.pack(len(sni_name) + 3)
        + b"\x00"
        + U16.pack(len(sni_name))
        + sni_name
    )
    body = (
        b"\x03\x03"
        + rng.randbytes(32)
        + b"\x20"
        + rng.randbytes(32)
        + struct.pack(">H", len(suites))
        + suites
        + b"\x01\x00"
        + struct.pack(">H", len(sni))
        + sni
    )
    handshake = b"\x01" + struct.pack(">I", len(body))[1:] + body
    version = rng.choice((b"\x03\x01", b"\x03\x03", b"\x03\x00"))
    return b"\x16" + version + struct.pack(">H", len(handshake)) + handshake


MUTATORS: dict[str, Mutator] = {
    "bitflip": bitflip,
    "byte_set": byte_set,
    "truncate": truncate,
    "datasize_off": datasize_off,
    "datasize_huge": datasize_huge,
    "varlen_off": varlen_off,
    "varlen_consistent": varlen_consistent,
    "modifiers": modifiers,
    "content_length": content_length,
    "splice": splice,
    "insert_delete": insert_delete,
    "var_flood": var_flood,
    "garbage": garbage,
    "http": http,
    "tls": tls,
}

#: How often each mutator is picked (relative). Structure-aware ones weigh more than noise.
WEIGHTS: dict[str, int] = {
    "bitflip": 14,
    "byte_set": 8,
    "truncate": 10,
    "datasize_off": 8,
    "datasize_huge": 3,
    "varlen_off": 12,
    "varlen_consistent": 6,
    "modifiers": 4,
    "content_length": 10,
    "splice": 5,
    "insert_delete": 6,
    "var_flood": 2,
    "garbage": 6,
    "http": 3,
    "tls": 3,
}

_LIMITS = Limits(buffer_size=MAX_BLOCK, max_vars=100_000)


class MutationSource:
    """A seeded stream of ``(mutator name, seed name, bytes)``."""

    def __init__(self, seed: int, seeds: Sequence[Seed] | None = None) -> None:
        self.rng = random.Random(seed)
        self.seeds = list(seeds if seeds is not None else load_seeds())
        self.pool = [s.data for s in self.seeds]
        self.names = list(MUTATORS)
        self.weights = [WEIGHTS[n] for n in self.names]
        # The real nginx captures are what the server sees in production: favour them.
        self.seed_weights = [8 if "nginx_" in s.name else 1 for s in self.seeds]

    def next(self) -> tuple[str, str, bytes]:
        """One mutation."""
        rng = self.rng
        name = rng.choices(self.names, self.weights)[0]
        seed = rng.choices(self.seeds, self.seed_weights)[0]
        data = MUTATORS[name](rng, seed.data, self.pool)
        if rng.random() < 0.1:  # stack a second mutation now and then
            data = MUTATORS[rng.choices(self.names, self.weights)[0]](rng, data, self.pool)
        return name, seed.name, data
