"""Reading a packet head: :func:`parse_packet`, the codec's one entry (compiled in a compiled
build; :class:`~uwsgiproto.Decoder` runs it on what it buffered, a server on its first read).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Final, NoReturn, TypeVar

from uwsgiproto.errors import PacketTooLarge, UnsupportedModifier
from uwsgiproto.events import MODIFIER_WSGI, NEED_DATA, SUPPORTED_MODIFIERS, _NeedData
from uwsgiproto.limits import Limits
from uwsgiproto.schema import HEADER_SIZE, HEADER_STRUCT

V = TypeVar("V")

# The header is read byte by byte below (compiled, indexing ``bytes`` is native; a struct's
# ``unpack_from`` is a method call, a buffer export and a tuple): the declaration must say so.
if HEADER_STRUCT.format != "<BHB" or HEADER_SIZE != 4:
    raise ImportError(f"parse_packet reads the header as <BHB; HEADER is {HEADER_STRUCT.format}")
_HEADER_SIZE: Final = 4

_HTTP_STARTS: Final = (
    b"GET ",
    b"POST",
    b"PUT ",
    b"HEAD",
    b"DELE",
    b"OPTI",
    b"PATC",
    b"CONN",
    b"TRAC",
    b"PRI ",
)
_TLS_START: Final = b"\x16\x03"


def _hint(head: bytes | bytearray) -> str:
    """Explain bytes that are plainly some other protocol."""
    if head.startswith(_HTTP_STARTS):
        return " (this looks like HTTP sent to a uwsgi socket: use uwsgi_pass, not proxy_pass)"
    if head.startswith(_TLS_START):
        return " (this looks like TLS sent to a uwsgi socket)"
    return ""


def parse_packet(
    data: bytes | bytearray, limits: Limits, parse_block: Callable[[bytes | bytearray, int], V]
) -> tuple[int, int, V, int] | _NeedData:
    """The packet head at the start of ``data``: the codec's one entry for reading a request.

    Returns ``NEED_DATA`` until the header and the whole var block are in ``data``, then
    ``(modifier1, modifier2, parse_block(var_block, modifier1), end)``: the body starts at
    ``data[end:]``. Raises :class:`ProtocolError` as soon as the 4 header bytes break the
    limits. ``parse_block`` turns the var block into vars (:func:`generic_vars` gives the
    generic one); it must raise only ProtocolError for a bad block, as :func:`resume_vars` does.
    """
    size = len(data)
    if size < _HEADER_SIZE:
        return NEED_DATA
    head = data if isinstance(data, bytes) else bytes(data[:_HEADER_SIZE])
    modifier1 = head[0]
    datasize = head[1] | head[2] << 8
    if datasize > limits.buffer_size or (
        modifier1 != MODIFIER_WSGI and modifier1 not in SUPPORTED_MODIFIERS
    ):
        _refuse(head, modifier1, datasize, limits)
    end = _HEADER_SIZE + datasize
    if size < end:
        return NEED_DATA
    # The same slice twice: compiled, the one where ``data`` is known to be bytes is native.
    block = data[_HEADER_SIZE:end] if isinstance(data, bytes) else data[_HEADER_SIZE:end]  # noqa: RUF034
    return modifier1, head[3], parse_block(block, modifier1), end


def _refuse(header: bytes | bytearray, modifier1: int, datasize: int, limits: Limits) -> NoReturn:
    """Raise the error for a header over the limits or with a modifier1 we do not serve."""
    if datasize > limits.buffer_size:
        other = _hint(header)
        raise PacketTooLarge(
            f"invalid request block size: {datasize} (max {limits.buffer_size})" + other,
            limit="" if other else "buffer_size",
        )
    raise UnsupportedModifier(
        f"unsupported modifier1 {modifier1} (supported: 0, 30, 100)" + _hint(header)
    )


__all__ = ["parse_packet"]
