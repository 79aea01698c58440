"""The var block as plain functions: the fast path behind :class:`~uwsgiproto.schema.VarBlock`.

No construct class is declared here (a compiled build compiles this module with mypyc, and a
compiled class cannot subclass construct's); errors are construct's :class:`ExplicitError` and
:class:`~uwsgiproto.varerrors.TooManyVars`, which :mod:`uwsgiproto.decoder` turns into
:class:`~uwsgiproto.errors.ProtocolError`. :mod:`uwsgiproto.schema` re-exports every name.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from construct import ExplicitError

from uwsgiproto.varerrors import TooManyVars

MAX_BLOCK = 0xFFFF

_JOIN = {"HTTP_COOKIE": "; "}

#: Headers an nginx config sets with ``uwsgi_param`` (a proxy's single values; nginx refuses a
#: second Host header): given twice, by a shared snippet and a site's override, the last wins.
LAST_WINS: Final = frozenset(
    {
        "HTTP_HOST",
        "HTTP_X_FORWARDED_PROTO",
        "HTTP_X_FORWARDED_HOST",
        "HTTP_X_FORWARDED_PORT",
        "HTTP_X_FORWARDED_PREFIX",
        "HTTP_X_FORWARDED_SSL",
        "HTTP_X_FORWARDED_SCHEME",
        "HTTP_X_SCHEME",
        "HTTP_X_REAL_IP",
    }
)


def fold_repeat(key: str, first: str, then: str) -> str:
    """The value of ``key`` sent again: a header a client sent twice (nginx sends each line as
    a var) is joined, ``"a, b"`` (RFC 9110 lists) or ``"a; b"`` for cookies; anything else
    comes from nginx's config (a ``uwsgi_param`` after ``include uwsgi_params``) and the last
    one wins, as in uWSGI; so do the headers a config sets (:data:`LAST_WINS`), whose client
    lines nginx drops where it sets them: a joined ``"http, https"`` read from the left (Django's
    ``SECURE_PROXY_SSL_HEADER``) would undo the override."""
    if key.startswith("HTTP_") and key not in LAST_WINS:
        return first + _JOIN.get(key, ", ") + then
    return then


def join_pairs(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    """Fold (key, value) pairs into a dict as the decoder does: repeated keys by
    :func:`fold_repeat`."""
    out: dict[str, str] = {}
    for key, value in pairs:
        out[key] = fold_repeat(key, out[key], value) if key in out else value
    return out


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
                out[key] = fold_repeat(key, out[key], text[vstart:vend])
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
