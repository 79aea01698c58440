"""Build uwsgi packets: for clients (``uwsgiapp request``/``ping``) and tests.

Refuses anything a 16-bit length cannot hold instead of wrapping it (the class of bug behind
Apache mod_proxy_uwsgi's CVE-2020-11984).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from construct import ConstructError

from uwsgiproto.errors import EncodeError
from uwsgiproto.events import MODIFIER_PING
from uwsgiproto.schema import HEADER_STRUCT, MAX_BLOCK, build_var_block


def build_header(modifier1: int, datasize: int, modifier2: int = 0) -> bytes:
    """The 4-byte header; every field range-checked."""
    if not 0 <= modifier1 <= 255 or not 0 <= modifier2 <= 255:
        raise EncodeError(f"modifiers must be in 0..255, got {modifier1}, {modifier2}")
    if not 0 <= datasize <= MAX_BLOCK:
        raise EncodeError(f"var block is {datasize} bytes (max {MAX_BLOCK})")
    return HEADER_STRUCT.pack(modifier1, datasize, modifier2)


def build_request(
    vars: Mapping[str, str] | Iterable[tuple[str, str]],
    body: bytes = b"",
    modifier1: int = 0,
    modifier2: int = 0,
) -> bytes:
    """Encode a request packet: header, vars (in the given order, repeats kept), then ``body``.

    The body is appended unframed; set ``CONTENT_LENGTH`` in ``vars`` to its length (the server
    trusts nothing else). Raises :class:`EncodeError` for non-latin-1 text, empty keys or sizes
    over 65535.
    """
    pairs = _str_pairs(vars.items() if isinstance(vars, Mapping) else vars)
    if not isinstance(body, (bytes, bytearray, memoryview)):  # bytes(5) is five NULs
        raise EncodeError(f"body must be bytes, got {type(body).__name__}")
    for name, modifier in (("modifier1", modifier1), ("modifier2", modifier2)):
        if not isinstance(modifier, int) or isinstance(modifier, bool):
            raise EncodeError(f"{name} must be an int in 0..255, got {modifier!r}")
    try:
        block = build_var_block(pairs)
    except UnicodeEncodeError as exc:
        raise EncodeError(f"vars must be latin-1 text: {exc}") from None
    except ConstructError as exc:
        raise EncodeError(str(exc)) from None
    return build_header(modifier1, len(block), modifier2) + block + bytes(body)


def _str_pairs(pairs: Iterable[Any]) -> list[tuple[str, str]]:
    """``pairs`` as a list, each a key and a value of type str (an int CONTENT_LENGTH, an easy
    slip in a test, raised AttributeError deep in the encoder)."""
    checked: list[tuple[str, str]] = []
    for pair in pairs:
        try:
            key, value = pair
        except (TypeError, ValueError):
            raise EncodeError(f"vars must be (key, value) pairs, got {pair!r:.60}") from None
        if not isinstance(key, str) or not isinstance(value, str):
            wrong = value if isinstance(key, str) else key
            raise EncodeError(
                f"var keys and values must be str, got {type(wrong).__name__} {wrong!r:.40} "
                f"(in {key!r:.40})"
            )
        checked.append((key, value))
    return checked


def build_ping() -> bytes:
    """A modifier1 100 ping (no vars)."""
    return build_header(MODIFIER_PING, 0, 0)


def build_pong() -> bytes:
    """The answer to a ping: ``64 00 00 01`` (modifier2 = 1), as uWSGI sends it."""
    return build_header(MODIFIER_PING, 0, 1)
