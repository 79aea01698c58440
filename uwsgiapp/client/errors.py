"""The client's errors: every failure of :mod:`uwsgiapp.client` is a :class:`ClientError`."""

from __future__ import annotations

__all__ = [
    "ClientError",
    "ConnectError",
    "ResponseCut",
    "ResponseError",
    "ResponseTimeout",
    "ResponseTooLarge",
]


class ClientError(Exception):
    """Talking to the server failed."""


class ConnectError(ClientError):
    """Could not connect (no such socket, refused, timed out connecting)."""


class ResponseError(ClientError):
    """Connected, but the answer was missing, late, or not HTTP / not a pong."""


class ResponseTimeout(ResponseError):
    """The overall deadline passed before the server finished answering."""


class ResponseTooLarge(ResponseError):
    """The server sent more than the response size cap allows."""

    def __init__(self, message: str, *, limit: int) -> None:
        super().__init__(message)
        self.limit = limit


class ResponseCut(ResponseError):
    """The connection failed (a reset) after the server had sent ``received`` bytes."""

    def __init__(self, message: str, *, received: int) -> None:
        super().__init__(message)
        self.received = received
