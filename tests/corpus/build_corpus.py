"""Write the synthetic packets of the corpus, byte by byte with ``struct`` (never the codec).

    python tests/corpus/build_corpus.py          # rewrite valid/*.bin and invalid/*.bin

The two ``valid/nginx_*.bin`` files are real nginx captures and are not generated. What each
packet must decode to (or fail with) is written by hand in ``manifest.json``; a test checks that
this script still reproduces the committed files, so the two cannot drift apart.
"""

from __future__ import annotations

import struct
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def header(modifier1: int, datasize: int, modifier2: int = 0) -> bytes:
    return struct.pack("<BHB", modifier1, datasize, modifier2)


def var(key: bytes, value: bytes) -> bytes:
    return struct.pack("<H", len(key)) + key + struct.pack("<H", len(value)) + value


def packet(
    pairs: list[tuple[bytes, bytes]], body: bytes = b"", modifier1: int = 0, modifier2: int = 0
) -> bytes:
    block = b"".join(var(k, v) for k, v in pairs)
    return header(modifier1, len(block), modifier2) + block + body


def _too_many_vars() -> bytes:
    # 513 distinct keys (one over the default max_vars) that still fit in 4096 bytes: every
    # one-character key but NUL, then four-character ones.
    keys = [bytes([i]) for i in range(1, 256)] + [b"V%03d" % i for i in range(258)]
    return packet([(k, b"") for k in keys])


def _tls_client_hello() -> bytes:
    # The first bytes of a TLS 1.2 ClientHello record: content type 22, version 3.1, length 165.
    return bytes.fromhex("160301 00a5 01 0000a1 0303") + bytes(range(32))


VALID: dict[str, bytes] = {
    "ping.bin": header(100, 0, 0),
    "modifier30.bin": packet(
        [
            (b"REQUEST_METHOD", b"GET"),
            (b"SCRIPT_NAME", b"/app"),
            (b"PATH_INFO", b"/app/hello"),
        ],
        modifier1=30,
    ),
    "modifier2_set.bin": packet([(b"A", b"bcdef")], body=b"\x00\x00", modifier2=7),
    "repeated_headers.bin": packet(
        [
            (b"REQUEST_METHOD", b"GET"),
            (b"HTTP_ACCEPT", b"text/html"),
            (b"HTTP_X_FORWARDED_FOR", b"10.0.0.1"),
            (b"HTTP_ACCEPT", b"application/json"),
            (b"HTTP_X_FORWARDED_FOR", b"10.0.0.2"),
            (b"HTTP_X_FORWARDED_FOR", b"10.0.0.3"),
        ]
    ),
    "repeated_cookies.bin": packet(
        [
            (b"HTTP_COOKIE", b"a=1"),
            (b"PATH_INFO", b"/"),
            (b"HTTP_COOKIE", b"b=2"),
            (b"HTTP_COOKIE", b"c=3"),
        ]
    ),
    "empty_values.bin": packet(
        [
            (b"QUERY_STRING", b""),
            (b"CONTENT_TYPE", b""),
            (b"CONTENT_LENGTH", b""),
            (b"REQUEST_METHOD", b"GET"),
        ]
    ),
    "empty_block.bin": header(0, 0, 0),
    "latin1_bytes.bin": packet([(b"PATH_INFO", b"/caf\xe9/\x00\xff"), (b"\xe9", b"\x80")]),
    "body_follows.bin": packet(
        [(b"REQUEST_METHOD", b"PUT"), (b"CONTENT_LENGTH", b"11")], body=b"hello world"
    ),
    # The largest block there is: datasize 65535 (1-byte key, 65530-byte value). A 65535-byte
    # value cannot fit in any block: 4 length bytes and a non-empty key come with it.
    "max_block_65535.bin": packet([(b"K", b"x" * 65530)]),
}

INVALID: dict[str, bytes] = {
    "http_get.bin": b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n",
    "http_post.bin": b"POST /submit HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    "tls_client_hello.bin": _tls_client_hello(),
    "oversized_datasize.bin": header(0, 21573, 0) + b"\x00" * 16,
    "unsupported_modifier.bin": header(5, 0, 0),
    "unsupported_modifier_255.bin": header(255, 5, 0) + var(b"A", b""),
    "empty_key.bin": packet([(b"A", b"1"), (b"", b"x")]),
    # Key length 200 in a 10-byte block.
    "key_overrun.bin": header(0, 10, 0) + struct.pack("<H", 200) + b"ABCDEFGH",
    # Value length 50, only 3 value bytes inside the block.
    "value_overrun.bin": header(0, 8, 0) + struct.pack("<HcH", 1, b"A", 50) + b"xyz",
    "value_length_65535.bin": header(0, 9, 0) + struct.pack("<HcH", 1, b"A", 0xFFFF) + b"abcd",
    # One stray byte after the last var, still inside datasize.
    "trailing_byte.bin": header(0, 8, 0) + var(b"A", b"bc") + b"\x00",
    "half_length_field.bin": header(0, 1, 0) + b"\x05",
    "too_many_vars.bin": _too_many_vars(),
    # One key repeated 600 times: folded into one entry, but 600 vars on the wire.
    "too_many_repeats.bin": packet([(b"A", b"")] * 600),
    # The peer closes after 10 of the 100 announced bytes.
    "truncated.bin": header(0, 100, 0) + var(b"AB", b"cdef"),
    "truncated_header.bin": b"\x00\x10",
}


def build() -> dict[str, bytes]:
    """Every generated file as ``{"valid/x.bin": bytes}``, paths relative to this directory."""
    files = {f"valid/{k}": v for k, v in VALID.items()}
    files.update({f"invalid/{k}": v for k, v in INVALID.items()})
    return files


def main() -> None:
    for rel, data in build().items():
        path = HERE / rel
        path.parent.mkdir(exist_ok=True)
        path.write_bytes(data)
        print(f"{rel}: {len(data)} bytes", file=sys.stderr)


if __name__ == "__main__":
    main()
