"""Build uwsgi packets: for clients (``uwsgiapp request``/``ping``) and tests.

Refuses anything a 16-bit length cannot hold instead of wrapping it (the class of bug behind
Apache mod_proxy_uwsgi's CVE-2020-11984).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

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
    pairs = vars.items() if isinstance(vars, Mapping) else vars
    try:
        block = build_var_block(pairs)
    except UnicodeEncodeError as exc:
        raise EncodeError(f"vars must be latin-1 text: {exc}") from None
    except ConstructError as exc:
        raise EncodeError(str(exc)) from None
    return build_header(modifier1, len(block), modifier2) + block + bytes(body)


def build_ping() -> bytes:
    """A modifier1 100 ping (no vars)."""
    return build_header(MODIFIER_PING, 0, 0)


def build_pong() -> bytes:
    """The answer to a ping: ``64 00 00 01`` (modifier2 = 1), as uWSGI sends it."""
    return build_header(MODIFIER_PING, 0, 1)
