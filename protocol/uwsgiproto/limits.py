"""What a packet may hold: :class:`Limits` (re-exported by :mod:`uwsgiproto`)."""

from __future__ import annotations

from dataclasses import dataclass

from uwsgiproto.schema import MAX_BLOCK


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


__all__ = ["DEFAULT_LIMITS", "Limits"]
