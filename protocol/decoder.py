"""Sans-IO uwsgi decoder: feed bytes, pull events. No sockets, no clocks, no logging.

    decoder = Decoder(Limits(buffer_size=4096))
    decoder.receive_data(chunk)
    event = decoder.next_event()   # NEED_DATA | Request | Ping, or raises ProtocolError
    body_start = decoder.trailing_data   # bytes after the vars already received

One packet per connection: after the event, the decoder is done and holds the body bytes that
arrived with the head. Construct errors become :class:`ProtocolError` here and nowhere else.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from construct import ConstructError

from protocol.errors import MalformedPacket, PacketTooLarge, ProtocolError, UnsupportedModifier
from protocol.events import (
    MODIFIER_PING,
    NEED_DATA,
    SUPPORTED_MODIFIERS,
    Ping,
    Request,
    _NeedData,
)
from protocol.schema import HEADER, HEADER_SIZE, MAX_BLOCK, TooManyVars, resume_var_block

# The header's struct format, derived from the construct declaration (its fields are all fixed
# size) so the schema stays the single source of truth: "<BHB".
HEADER_STRUCT = struct.Struct("<" + "".join(sc.subcon.fmtstr[1:] for sc in HEADER.subcons))

_HTTP_STARTS = (
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
_TLS_START = b"\x16\x03"


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What a packet may hold. ``buffer_size`` bounds the vars block as uWSGI's option does."""

    buffer_size: int = 4096
    max_vars: int = 512

    def __post_init__(self) -> None:
        if not 1 <= self.buffer_size <= MAX_BLOCK:
            raise ValueError(f"buffer_size must be in 1..{MAX_BLOCK}, got {self.buffer_size}")
        if self.max_vars < 1:
            raise ValueError(f"max_vars must be >= 1, got {self.max_vars}")


DEFAULT_LIMITS = Limits()


def _hint(head: bytes | bytearray) -> str:
    """Explain bytes that are plainly some other protocol."""
    if head.startswith(_HTTP_STARTS):
        return " (this looks like HTTP sent to a uwsgi socket: use uwsgi_pass, not proxy_pass)"
    if head.startswith(_TLS_START):
        return " (this looks like TLS sent to a uwsgi socket)"
    return ""


def parse_head(header: bytes | bytearray, limits: Limits = DEFAULT_LIMITS) -> tuple[int, int, int]:
    """Check a 4-byte header against the limits; return (modifier1, datasize, modifier2)."""
    modifier1, datasize, modifier2 = HEADER_STRUCT.unpack_from(header)
    if datasize > limits.buffer_size:
        other = _hint(header)
        raise PacketTooLarge(
            f"invalid request block size: {datasize} (max {limits.buffer_size})" + other,
            limit="" if other else "buffer_size",
        )
    if modifier1 not in SUPPORTED_MODIFIERS:
        raise UnsupportedModifier(
            f"unsupported modifier1 {modifier1} (supported: 0, 30, 100)" + _hint(header)
        )
    return modifier1, datasize, modifier2


def parse_vars(block: bytes | bytearray, limits: Limits = DEFAULT_LIMITS) -> dict[str, str]:
    """Parse a var block with the fast construct; every failure is a :class:`ProtocolError`."""
    # VAR_BLOCK's own loop, called without construct's per-parse stream/context set-up. It
    # counts repeated keys itself: len() of the joined dict would let repeats pass the limit.
    return resume_vars(block, block.decode("latin-1"), 0, {}, limits)[0]


def resume_vars(
    block: bytes | bytearray, text: str, pos: int, out: dict[str, str], limits: Limits
) -> tuple[dict[str, str], int]:
    """:func:`~protocol.schema.resume_var_block` with every failure a :class:`ProtocolError`.

    For the rest of a block after a :class:`~protocol.layout.Layout` matched its start.
    """
    try:
        return resume_var_block(block, text, pos, out, limits.max_vars)
    except TooManyVars as exc:
        raise PacketTooLarge(str(exc), limit="max_vars") from None
    except ConstructError as exc:
        raise MalformedPacket(f"invalid var block: {exc}") from None


class Decoder:
    """Decode one uwsgi packet head from bytes received in any chunking."""

    __slots__ = ("_buf", "_done", "_event", "limits")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._buf = bytearray()
        self._event: Request | Ping | None = None
        self._done = False

    def receive_data(self, data: bytes) -> None:
        """Append bytes from the peer (an empty ``data`` is not EOF here; see :meth:`eof`)."""
        self._buf += data

    @property
    def buffered(self) -> int:
        """How many bytes are held (before the event: head bytes; after: body bytes)."""
        return len(self._buf)

    @property
    def trailing_data(self) -> bytes:
        """After the event: the body bytes that arrived with the head (may be empty)."""
        return bytes(self._buf) if self._done else b""

    def next_event(self) -> Request | Ping | _NeedData:
        """Return the packet's event once complete, else ``NEED_DATA``; raise ProtocolError."""
        if self._done:
            raise RuntimeError("this decoder already produced its event (one packet per decoder)")
        buf = self._buf
        if len(buf) < HEADER_SIZE:
            return NEED_DATA
        modifier1, datasize, modifier2 = parse_head(buf, self.limits)
        end = HEADER_SIZE + datasize
        if len(buf) < end:
            return NEED_DATA
        variables = parse_vars(bytes(buf[HEADER_SIZE:end]), self.limits)
        del buf[:end]
        self._done = True
        event: Request | Ping
        if modifier1 == MODIFIER_PING:
            event = Ping(modifier2=modifier2)
        else:
            event = Request(modifier1=modifier1, modifier2=modifier2, vars=variables)
        self._event = event
        return event

    def eof(self) -> None:
        """The peer closed: raise if a packet was started but not finished."""
        if not self._done and self._buf:
            raise MalformedPacket(
                f"connection closed mid-packet after {len(self._buf)} bytes" + _hint(self._buf)
            )


def decode(data: bytes, limits: Limits = DEFAULT_LIMITS) -> tuple[Request | Ping, bytes]:
    """Decode a whole packet at once: (event, body bytes). Incomplete input is an error."""
    decoder = Decoder(limits)
    decoder.receive_data(data)
    event = decoder.next_event()
    if event is NEED_DATA:
        decoder.eof()
        raise MalformedPacket("empty packet")
    assert not isinstance(event, _NeedData)
    return event, decoder.trailing_data


__all__ = [
    "DEFAULT_LIMITS",
    "Decoder",
    "Limits",
    "ProtocolError",
    "decode",
    "parse_head",
    "parse_vars",
    "resume_vars",
]
