"""Sans-IO codec for nginx's binary uwsgi protocol (``uwsgi_pass``).

Imports construct and the standard library only; never touches a socket.
"""

from protocol.decoder import DEFAULT_LIMITS, Decoder, Limits, decode
from protocol.encoder import build_header, build_ping, build_pong, build_request
from protocol.errors import (
    EncodeError,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    UnsupportedModifier,
)
from protocol.events import (
    MODIFIER_PING,
    MODIFIER_WSGI,
    MODIFIER_WSGI_STRIP,
    NEED_DATA,
    Event,
    Ping,
    Request,
)

__all__ = [
    "DEFAULT_LIMITS",
    "MODIFIER_PING",
    "MODIFIER_WSGI",
    "MODIFIER_WSGI_STRIP",
    "NEED_DATA",
    "Decoder",
    "EncodeError",
    "Event",
    "Limits",
    "MalformedPacket",
    "PacketTooLarge",
    "Ping",
    "ProtocolError",
    "Request",
    "UnsupportedModifier",
    "build_header",
    "build_ping",
    "build_pong",
    "build_request",
    "decode",
]
