"""One error root for everything the codec refuses.

The HTTP status a server should answer with lives on the exception (``status_hint``), so callers
never need an isinstance chain to decide what to do.
"""

from __future__ import annotations


class ProtocolError(Exception):
    """Bytes that are not a valid uwsgi packet. The only exception the decoder raises."""

    status_hint: int = 400

    def __init__(self, message: str, *, status_hint: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        if status_hint is not None:
            self.status_hint = status_hint


class MalformedPacket(ProtocolError):
    """The packet structure is broken: an overrun length, an empty key, trailing bytes."""


class PacketTooLarge(ProtocolError):
    """The vars block is larger than the configured ``buffer_size`` or holds too many vars.

    ``limit`` names the :class:`~uwsgiproto.decoder.Limits` field that was exceeded
    (``"buffer_size"`` or ``"max_vars"``), so a server can say which of its settings to raise.
    """

    status_hint = 431

    def __init__(self, message: str, *, limit: str = "", status_hint: int | None = None) -> None:
        super().__init__(message, status_hint=status_hint)
        self.limit = limit


class UnsupportedModifier(ProtocolError):
    """A modifier1 this codec does not serve (only 0, 30 and 100 are)."""

    status_hint = 501


class EncodeError(ValueError):
    """A request that cannot be encoded without wrapping a 16-bit length."""
