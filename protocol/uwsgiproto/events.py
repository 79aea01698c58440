"""Values the decoder produces: frozen, slotted, keyword-only, validated on creation."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Final


class _NeedData(enum.Enum):
    NEED_DATA = "NEED_DATA"

    def __repr__(self) -> str:
        return "NEED_DATA"


NEED_DATA: Final = _NeedData.NEED_DATA
"""Returned by :meth:`uwsgiproto.Decoder.next_event` until a whole packet head has arrived."""


class _Paused(enum.Enum):
    PAUSED = "PAUSED"

    def __repr__(self) -> str:
        return "PAUSED"


PAUSED: Final = _Paused.PAUSED
"""Returned by :meth:`uwsgiproto.Decoder.next_event` once its event was returned (as h11 does):
one packet per connection, and what follows it is the body, not another packet."""

#: modifier1 values: plain WSGI, WSGI with SCRIPT_NAME stripped from PATH_INFO, ping.
MODIFIER_WSGI: Final = 0
MODIFIER_WSGI_STRIP: Final = 30
MODIFIER_PING: Final = 100
SUPPORTED_MODIFIERS: Final = frozenset({MODIFIER_WSGI, MODIFIER_WSGI_STRIP, MODIFIER_PING})


def _check_byte(name: str, value: int) -> None:
    if not 0 <= value <= 255:
        raise ValueError(f"{name} must be in 0..255, got {value!r}")


@dataclass(frozen=True, slots=True, kw_only=True)
class Request:
    """A request packet head: the two modifiers and the vars (latin-1 ``str`` -> ``str``).

    Repeated keys are already joined (``", "``; ``"; "`` for ``HTTP_COOKIE``). The body is not
    part of the event: its length is ``CONTENT_LENGTH`` and it follows on the stream.
    """

    modifier1: int
    modifier2: int = 0
    vars: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _check_byte("modifier1", self.modifier1)
        _check_byte("modifier2", self.modifier2)


@dataclass(frozen=True, slots=True, kw_only=True)
class Ping:
    """A modifier1 100 packet: answer with :func:`uwsgiproto.build_pong`, never call the app."""

    modifier2: int = 0

    def __post_init__(self) -> None:
        _check_byte("modifier2", self.modifier2)


Event = Request | Ping
