"""The uwsgi packet, declared with construct.

Two declarations of the same wire format live here:

* the **reference** schema (:data:`REFERENCE_PACKET`), plain declarative construct —
  ``GreedyRange(Var) + Terminated`` inside ``FixedSized(datasize)`` — readable and trusted, but
  ~180 µs per real nginx packet because GreedyRange never compiles;
* the **fast** schema (:data:`PACKET`), the same header with the var block handled by
  :class:`VarBlock`, a ``Construct`` subclass whose ``_parse``/``_build`` are one tight loop with
  every check of the reference kept. Property tests prove both agree on every input.

Errors raised here are construct errors; :mod:`uwsgiproto.decoder` turns them into
:class:`~uwsgiproto.errors.ProtocolError` at one boundary.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

from construct import (
    Check,
    Construct,
    ExplicitError,
    FixedSized,
    GreedyRange,
    Int8ul,
    Int16ul,
    PascalString,
    SizeofError,
    Struct,
    Terminated,
    len_,
    stream_read_entire,
    stream_write,
    this,
)

HEADER_SIZE = 4
MAX_BLOCK = 0xFFFF

#: modifier1 (u8), datasize (u16le, vars block only — the body is not counted), modifier2 (u8).
HEADER = Struct(
    "modifier1" / Int8ul,
    "datasize" / Int16ul,
    "modifier2" / Int8ul,
)

#: The header's struct format, derived from the construct declaration (its fields are all fixed
#: size) so that this schema stays the single source of truth: "<BHB".
HEADER_STRUCT = struct.Struct("<" + "".join(sc.subcon.fmtstr[1:] for sc in HEADER.subcons))

#: One var: u16le key length, key, u16le value length, value. Keys are never empty.
VAR = Struct(
    "key" / PascalString(Int16ul, "latin-1"),
    Check(len_(this.key) > 0),
    "value" / PascalString(Int16ul, "latin-1"),
)

#: The reference var block: vars until the block ends, nothing left over.
REFERENCE_VAR_BLOCK = Struct("vars" / GreedyRange(VAR), Terminated)

#: The reference packet head (the body follows it, unframed).
REFERENCE_PACKET = Struct(
    "modifier1" / Int8ul,
    "datasize" / Int16ul,
    "modifier2" / Int8ul,
    "block" / FixedSized(this.datasize, REFERENCE_VAR_BLOCK),
)

_JOIN = {"HTTP_COOKIE": "; "}


def join_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Fold (key, value) pairs into a dict, joining repeated keys as nginx < 1.23 sends them.

    Repeated headers become ``"a, b"`` (RFC 9110 list syntax); cookies become ``"a; b"``.
    """
    out: dict[str, str] = {}
    for key, value in pairs:
        if key in out:
            out[key] = out[key] + _JOIN.get(key, ", ") + value
        else:
            out[key] = value
    return out


class TooManyVars(ExplicitError):  # type: ignore[misc]
    """More vars on the wire than allowed (repeated keys count once per occurrence)."""


def parse_var_block(block: bytes | bytearray, max_vars: int = MAX_BLOCK) -> dict[str, str]:
    """Parse a whole var block into a dict; the fast path behind :class:`VarBlock`.

    ``max_vars`` bounds the vars *on the wire*: a repeated key folds into one dict entry but still
    counts, so repeats cannot slip past the limit. Raises :class:`construct.ExplicitError` naming
    the offset of the first problem (:class:`TooManyVars` for the limit).
    """
    return resume_var_block(block, block.decode("latin-1"), 0, {}, max_vars)[0]


def resume_var_block(
    block: bytes | bytearray, text: str, pos: int, out: dict[str, str], max_vars: int
) -> tuple[dict[str, str], int]:
    """Parse the vars of ``block`` from offset ``pos`` on, into ``out``; return it and the count.

    ``text`` is ``block.decode("latin-1")``. ``out`` holds the vars before ``pos``, one entry
    each (offset 0 and an empty dict parse the whole block). The count is of vars on the wire,
    repeats included. Errors as for :func:`parse_var_block`.
    """
    # The common case in one loop with no test inside it: every check is made once at the end
    # (a repeated key makes the dict smaller than the count, an empty key leaves a "" entry, an
    # overrun leaves pos past the end or raises IndexError). Anything odd is parsed again, from
    # the start, by the careful loop, which joins repeats and names the offset of the problem.
    # latin-1 maps byte i to code point i, so offsets in ``text`` equal offsets in ``block``.
    end = len(block)
    count = len(out)
    try:
        while pos < end:
            kstart = pos + 2
            vlpos = kstart + (block[pos] | block[pos + 1] << 8)
            vstart = vlpos + 2
            vend = vstart + (block[vlpos] | block[vlpos + 1] << 8)
            out[text[kstart:vlpos]] = text[vstart:vend]
            pos = vend
            count += 1
    except IndexError:
        return _parse_var_block_checked(block, text, max_vars)
    if pos != end or count != len(out) or count > max_vars or "" in out:
        return _parse_var_block_checked(block, text, max_vars)
    return out, count


def _parse_var_block_checked(
    block: bytes | bytearray, text: str, max_vars: int
) -> tuple[dict[str, str], int]:
    """:func:`resume_var_block` for blocks with repeated keys or errors: checks as it goes."""
    # Length bytes past the end raise IndexError (caught once, outside the loop); a value slice
    # past the end is caught by the final ``pos != end``.
    end = len(block)
    pos = 0
    out: dict[str, str] = {}
    repeats = 0
    try:
        while pos < end:
            klen = block[pos] | (block[pos + 1] << 8)
            if not klen:
                raise ExplicitError(f"empty key at offset {pos}")
            vlpos = pos + 2 + klen
            vstart = vlpos + 2
            vend = vstart + (block[vlpos] | (block[vlpos + 1] << 8))
            key = text[pos + 2 : vlpos]
            if key in out:
                # The rare path pays for the count, so the common one stays a bare dict store;
                # checking here also stops a block of repeats before it is all joined.
                repeats += 1
                if len(out) + repeats > max_vars:
                    raise TooManyVars(f"too many vars: {len(out) + repeats}+ (max {max_vars})")
                out[key] = out[key] + _JOIN.get(key, ", ") + text[vstart:vend]
            else:
                out[key] = text[vstart:vend]
            pos = vend
    except IndexError:
        raise ExplicitError(f"var at offset {pos} overruns the block ({end} bytes)") from None
    if pos != end:
        raise ExplicitError(f"last value overruns the block by {pos - end} bytes")
    if len(out) + repeats > max_vars:
        raise TooManyVars(f"too many vars: {len(out) + repeats} (max {max_vars})")
    return out, len(out) + repeats


def build_var_block(pairs: Iterable[tuple[str, str]]) -> bytes:
    """Encode (key, value) pairs as a var block; refuses what a u16 length cannot hold."""
    parts: list[bytes] = []
    total = 0
    for key, value in pairs:
        kb = key.encode("latin-1")
        vb = value.encode("latin-1")
        if not kb:
            raise ExplicitError("empty key")
        if len(kb) > MAX_BLOCK:
            raise ExplicitError(f"key {key[:40]!r}... is {len(kb)} bytes (max {MAX_BLOCK})")
        if len(vb) > MAX_BLOCK:
            raise ExplicitError(f"value of {key!r} is {len(vb)} bytes (max {MAX_BLOCK})")
        parts.append(len(kb).to_bytes(2, "little") + kb + len(vb).to_bytes(2, "little") + vb)
        total += 4 + len(kb) + len(vb)
        if total > MAX_BLOCK:
            raise ExplicitError(f"var block would be {total}+ bytes (max {MAX_BLOCK})")
    return b"".join(parts)


class VarBlock(Construct):  # type: ignore[misc]
    """The var block as one construct: parses to ``dict[str, str]``, builds from a mapping or pairs.

    Same wire format and checks as :data:`REFERENCE_VAR_BLOCK`, in one loop instead of a
    GreedyRange of Structs. Use inside ``FixedSized`` (it consumes the whole stream it is given).
    """

    def _parse(self, stream: Any, context: Any, path: str) -> dict[str, str]:
        return parse_var_block(stream_read_entire(stream, path))

    def _build(self, obj: Any, stream: Any, context: Any, path: str) -> Any:
        pairs = obj.items() if isinstance(obj, Mapping) else obj
        data = build_var_block(pairs)
        # construct's stream_write wants the real length (a negative one is a StreamError).
        stream_write(stream, data, len(data), path)
        return obj

    def _sizeof(self, context: Any, path: str) -> int:
        raise SizeofError("a var block has no fixed size", path=path)


VAR_BLOCK = VarBlock()

#: The packet head on the fast path: same header, var block parsed by :class:`VarBlock`.
PACKET = Struct(
    "modifier1" / Int8ul,
    "datasize" / Int16ul,
    "modifier2" / Int8ul,
    "vars" / FixedSized(this.datasize, VAR_BLOCK),
)
