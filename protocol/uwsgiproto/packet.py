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
#: Where a packet's var block starts: after the 4-byte header (the schema's HEADER_SIZE, as a
#: literal: compiled, a Final literal is inlined, also in the modules that import it).
BLOCK_START: Final = 4

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
        return (
            " (this looks like HTTP sent to a uwsgi socket: use uwsgi_pass, not proxy_pass; a "
            "browser or curl needs nginx in front, or 'uwsgiapp dev', or 'uwsgiapp request')"
        )
    if head.startswith(_TLS_START):
        return " (this looks like TLS sent to a uwsgi socket)"
    return ""


def packet_end(data: bytes | bytearray, buffer_size: int) -> int:
    """Where the packet at the start of ``data`` ends and its body starts, or -1 until the
    header and the whole var block are in ``data``.

    The first half of :func:`parse_packet`, for a server that parses the var block itself
    (``data[BLOCK_START:end]``, modifier1 ``data[0]``): compiled, an int comes back, where
    :func:`parse_packet` makes a tuple and calls its parser through the generic API. Raises
    :class:`ProtocolError` as soon as the 4 header bytes break the limits (``buffer_size``:
    :attr:`Limits.buffer_size`) or name a modifier1 that is not served.
    """
    size = len(data)
    if size < BLOCK_START:
        return -1
    head = data if isinstance(data, bytes) else bytes(data[:BLOCK_START])
    modifier1 = head[0]
    datasize = head[1] | head[2] << 8
    if datasize > buffer_size or (
        modifier1 != MODIFIER_WSGI and modifier1 not in SUPPORTED_MODIFIERS
    ):
        _refuse(head, modifier1, datasize, buffer_size)
    end = BLOCK_START + datasize
    return end if size >= end else -1


def parse_packet(
    data: bytes | bytearray, limits: Limits, parse_block: Callable[[bytes | bytearray, int], V]
) -> tuple[int, int, V, int] | _NeedData:
    """The packet head at the start of ``data``: the codec's one entry for reading a request.

    Returns ``NEED_DATA`` until the header and the whole var block are in ``data``, then
    ``(modifier1, modifier2, parse_block(var_block, modifier1), end)``: the body starts at
    ``data[end:]``. Raises :class:`ProtocolError` as soon as the 4 header bytes break the
    limits (:func:`packet_end`). ``parse_block`` turns the var block into vars
    (:func:`generic_vars` gives the generic one); it must raise only ProtocolError for a bad
    block, as :func:`resume_vars` does.
    """
    end = packet_end(data, limits.buffer_size)
    if end < 0:
        return NEED_DATA
    # The same slice twice: compiled, the one where ``data`` is known to be bytes is native.
    block = data[BLOCK_START:end] if isinstance(data, bytes) else data[BLOCK_START:end]  # noqa: RUF034
    return data[0], data[3], parse_block(block, data[0]), end


def _refuse(header: bytes | bytearray, modifier1: int, datasize: int, buffer_size: int) -> NoReturn:
    """Raise the error for a header over the limits or with a modifier1 we do not serve."""
    if datasize > buffer_size:
        other = _hint(header)
        raise PacketTooLarge(
            f"invalid request block size: {datasize} (max {buffer_size})" + other,
            limit="" if other else "buffer_size",
        )
    raise UnsupportedModifier(
        f"unsupported modifier1 {modifier1} (supported: 0, 30, 100)" + _hint(header)
    )


__all__ = ["BLOCK_START", "packet_end", "parse_packet"]
