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
from collections.abc import Mapping
from typing import Any

from construct import (
    Check,
    Construct,
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

# The var block's loops live in their own module (compiled in a compiled build: this one, with its
# Construct subclass, stays interpreted); their names are this module's too.
from uwsgiproto.varblock import MAX_BLOCK as MAX_BLOCK
from uwsgiproto.varblock import build_var_block as build_var_block
from uwsgiproto.varblock import join_pairs as join_pairs
from uwsgiproto.varblock import parse_var_block as parse_var_block
from uwsgiproto.varblock import resume_var_block as resume_var_block
from uwsgiproto.varerrors import TooManyVars as TooManyVars

HEADER_SIZE = 4

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


class VarBlock(Construct):  # type: ignore[misc]
    """The var block as one construct: parses to ``dict[str, str]``, builds from a mapping or pairs.

    Same wire format and checks as :data:`REFERENCE_VAR_BLOCK`, in one loop instead of a
    GreedyRange of Structs (the loop is :mod:`uwsgiproto.varblock`'s). Use inside ``FixedSized``
    (it consumes the whole stream it is given).
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
