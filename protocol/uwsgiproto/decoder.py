"""Sans-IO uwsgi decoder: feed bytes, pull events. No sockets, no clocks, no logging.

    decoder = Decoder(Limits(buffer_size=4096))
    decoder.receive_data(chunk)
    event = decoder.next_event()   # NEED_DATA | Request | Ping (then PAUSED), or ProtocolError
    body_start = decoder.trailing_data   # bytes after the vars already received

One packet per connection: after the event, the decoder is done and holds the body bytes that
arrived with the head. Construct errors become :class:`ProtocolError` here and nowhere else.

:func:`parse_packet` is the one way a packet head is read: :meth:`Decoder.next_event` calls it on
what it buffered, and a server that has the whole head in its first read (nginx sends it in one
write) calls it on that read directly, with its own var-block parser, and skips the buffering.
"""

from __future__ import annotations

from collections.abc import Callable

from construct import ConstructError

from uwsgiproto.errors import MalformedPacket, PacketTooLarge, ProtocolError
from uwsgiproto.events import MODIFIER_PING, NEED_DATA, PAUSED, Ping, Request, _NeedData, _Paused
from uwsgiproto.limits import DEFAULT_LIMITS, Limits
from uwsgiproto.packet import BLOCK_START, _hint, parse_packet
from uwsgiproto.schema import TooManyVars, resume_var_block


def parse_vars(block: bytes | bytearray, limits: Limits = DEFAULT_LIMITS) -> dict[str, str]:
    """Parse a var block with the fast construct; every failure is a :class:`ProtocolError`."""
    # VAR_BLOCK's own loop, called without construct's per-parse stream/context set-up. It
    # counts repeated keys itself: len() of the joined dict would let repeats pass the limit.
    return resume_vars(block, block.decode("latin-1"), 0, {}, limits)[0]


def resume_vars(
    block: bytes | bytearray, text: str, pos: int, out: dict[str, str], limits: Limits
) -> tuple[dict[str, str], int]:
    """:func:`~uwsgiproto.schema.resume_var_block` with every failure a :class:`ProtocolError`.

    For the rest of a block after a :class:`~uwsgiproto.layout.Layout` matched its start.
    """
    try:
        return resume_var_block(block, text, pos, out, limits.max_vars)
    except TooManyVars as exc:
        raise PacketTooLarge(str(exc), limit="max_vars") from None
    except ConstructError as exc:
        raise MalformedPacket(f"invalid var block: {exc}") from None


def generic_vars(limits: Limits) -> Callable[[bytes | bytearray, int], dict[str, str]]:
    """The generic var-block parser for :func:`parse_packet` (the one the Decoder uses)."""
    return lambda block, modifier1: parse_vars(block, limits)


class Decoder:
    """Decode one uwsgi packet head from bytes received in any chunking."""

    __slots__ = ("_block", "_buf", "_done", "_event", "_parse", "limits")

    def __init__(self, limits: Limits = DEFAULT_LIMITS) -> None:
        self.limits = limits
        self._parse = generic_vars(limits)
        self._buf = bytearray()
        self._event: Request | Ping | None = None
        self._done = False
        self._block = b""

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

    @property
    def var_block(self) -> bytes:
        """After the event: the packet's var block as it arrived (empty before)."""
        return self._block

    def next_event(self) -> Request | Ping | _NeedData | _Paused:
        """The packet's event once complete, else ``NEED_DATA``; ``PAUSED`` after the event.

        Raises :class:`ProtocolError` for a packet that breaks the protocol or the limits.
        """
        if self._done:
            return PAUSED
        buf = self._buf
        found = parse_packet(buf, self.limits, self._parse)
        if found is NEED_DATA:
            return NEED_DATA
        modifier1, modifier2, variables, end = found
        self._block = bytes(buf[BLOCK_START:end])
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
    if isinstance(event, (_NeedData, _Paused)):  # a fresh decoder is never PAUSED
        decoder.eof()
        raise MalformedPacket("empty packet")
    return event, decoder.trailing_data


__all__ = [
    "DEFAULT_LIMITS",
    "Decoder",
    "Limits",
    "ProtocolError",
    "decode",
    "generic_vars",
    "parse_packet",
    "parse_vars",
    "resume_vars",
]
