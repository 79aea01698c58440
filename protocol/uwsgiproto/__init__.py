"""Sans-IO codec for nginx's binary uwsgi protocol (``uwsgi_pass``).

Imports construct and the standard library only; never touches a socket.

Reading a request: :class:`Decoder` (``receive_data`` / ``next_event``) for bytes in any
chunking; :func:`parse_packet`, the entry the Decoder itself runs on, for a server that has the
whole head in one read (its first half, :func:`packet_end`, for one that parses the block
itself). Var blocks: :func:`parse_vars` (generic), :class:`Layout` (a compiled parser for one
repeated key sequence) and :func:`resume_vars` (finishes a block a layout left).
"""

from uwsgiproto.decoder import (
    DEFAULT_LIMITS,
    Decoder,
    Limits,
    decode,
    generic_vars,
    parse_packet,
    parse_vars,
    resume_vars,
)
from uwsgiproto.encoder import build_header, build_ping, build_pong, build_request
from uwsgiproto.errors import (
    EncodeError,
    MalformedPacket,
    PacketTooLarge,
    ProtocolError,
    UnsupportedModifier,
)
from uwsgiproto.events import (
    MODIFIER_PING,
    MODIFIER_WSGI,
    MODIFIER_WSGI_STRIP,
    NEED_DATA,
    PAUSED,
    Event,
    Ping,
    Request,
)
from uwsgiproto.layout import (
    FAST_KEY_SIGNATURE,
    MAX_KNOWN_VALUE,
    MAX_LAYOUT_KEY_BYTES,
    MAX_LAYOUT_VARS,
    Layout,
    Partial,
    can_be_known,
    count_vars,
    key_signature,
)
from uwsgiproto.packet import BLOCK_START, packet_end
from uwsgiproto.schema import HEADER_SIZE, MAX_BLOCK

__all__ = [
    "BLOCK_START",
    "DEFAULT_LIMITS",
    "FAST_KEY_SIGNATURE",
    "HEADER_SIZE",
    "MAX_BLOCK",
    "MAX_KNOWN_VALUE",
    "MAX_LAYOUT_KEY_BYTES",
    "MAX_LAYOUT_VARS",
    "MODIFIER_PING",
    "MODIFIER_WSGI",
    "MODIFIER_WSGI_STRIP",
    "NEED_DATA",
    "PAUSED",
    "Decoder",
    "EncodeError",
    "Event",
    "Layout",
    "Limits",
    "MalformedPacket",
    "PacketTooLarge",
    "Partial",
    "Ping",
    "ProtocolError",
    "Request",
    "UnsupportedModifier",
    "build_header",
    "build_ping",
    "build_pong",
    "build_request",
    "can_be_known",
    "count_vars",
    "decode",
    "generic_vars",
    "key_signature",
    "packet_end",
    "parse_packet",
    "parse_vars",
    "resume_vars",
]
