"""Socket addresses as users write them, for the server's ``--socket`` and the client commands.

One grammar for both sides (uWSGI's, plus a few unambiguous prefixes)::

    /run/app.sock  app.sock     a unix socket path (anything with a "/" or without a ":")
    unix:PATH                   a unix socket path, even one with a ":" in it
    @NAME                       a Linux abstract unix socket (no file)
    HOST:PORT  [V6]:PORT        TCP
    :PORT                       TCP, host left to the side (server: every interface;
                                client: loopback)
    fd://N                      an inherited, already listening socket (server only)

A URL (``http://…``) is refused with a message that says what is wanted instead: a uwsgi
socket is where nginx's ``uwsgi_pass`` points, not an HTTP address.

Also the TCP allow-list (:class:`AllowList`), which the server, the stats listener and the
config's validation share. Pure: parsing touches no socket and imports nothing of the server.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Final

__all__ = ["AddressError", "AllowList", "SocketAddress", "parse_address", "server_address"]


class AddressError(ValueError):
    """A socket address that does not parse; the message says what was expected."""


#: ``scheme://`` at the start: a URL, not a socket address (``fd://`` aside).
_URL: Final = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")

_EXPECTED: Final = (
    "a uwsgi socket address is a unix socket path (/run/app.sock, unix:PATH, @abstract), "
    "host:port or [v6]:port: where nginx's uwsgi_pass points"
)


@dataclass(frozen=True, slots=True, kw_only=True)
class SocketAddress:
    """A parsed socket address: exactly one of ``path``, ``port`` (with ``host``) or ``fd``.

    ``path`` is a unix socket path; an abstract name starts with ``"\\0"``. ``host`` is ""
    for ``:PORT`` (each side chooses its default). ``fd`` is an inherited descriptor.
    """

    path: str = ""
    host: str = ""
    port: int = 0
    fd: int | None = None

    @property
    def is_unix(self) -> bool:
        """A unix socket: a file path or an abstract name."""
        return bool(self.path)

    @property
    def is_abstract(self) -> bool:
        """A Linux abstract unix socket (no file on disk, no permissions)."""
        return self.path.startswith("\0")

    @property
    def is_fd(self) -> bool:
        """An inherited descriptor (``fd://N``)."""
        return self.fd is not None

    @property
    def is_tcp(self) -> bool:
        """A TCP address."""
        return not self.path and self.fd is None

    def __str__(self) -> str:
        if self.fd is not None:
            return f"fd://{self.fd}"
        if self.path:
            return "@" + self.path[1:] if self.is_abstract else self.path
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


def parse_address(text: str) -> SocketAddress:
    """Parse one socket address (see the module docstring); :class:`AddressError` if bad.

    Ports are 0..65535 here: whether 0 makes sense (a server may bind it, a client cannot
    connect to it) is for the caller to say.
    """
    spec = text.strip()
    if not spec:
        raise AddressError(f"empty socket address: {_EXPECTED}")
    if spec.startswith("fd://"):
        number = spec[5:]
        if not number.isdigit():
            raise AddressError(f"bad socket {text!r}: expected fd://N (a descriptor number)")
        return SocketAddress(fd=int(number))
    if spec.startswith("unix:"):
        if not spec[5:]:
            raise AddressError(f"bad socket {text!r}: empty unix socket path after 'unix:'")
        return SocketAddress(path=spec[5:])
    if _URL.match(spec):
        raise AddressError(f"{text!r} is a URL, not a socket address: {_EXPECTED}")
    if spec.startswith("@"):
        if len(spec) == 1:
            raise AddressError(f"bad socket {text!r}: empty abstract socket name after '@'")
        return SocketAddress(path="\0" + spec[1:])
    if spec.startswith("["):
        host, sep, port = spec[1:].partition("]:")
        if not sep or not host:
            raise AddressError(f"bad socket {text!r}: expected [ipv6]:port")
    elif "/" in spec or ":" not in spec:
        return SocketAddress(path=spec)
    else:
        host, _, port = spec.rpartition(":")
    if not port.isdigit() or int(port) > 65535:
        raise AddressError(f"bad socket {text!r}: invalid port {port!r} (expected 0..65535)")
    return SocketAddress(host=host, port=int(port))


def server_address(text: str) -> SocketAddress:
    """:func:`parse_address` for a socket the server listens on: an abstract unix socket is
    refused (no file to remove: a graceful stop could not turn new connections away)."""
    address = parse_address(text)
    if address.is_abstract:
        raise AddressError(
            f"socket {text!r}: abstract unix sockets (@name) are for 'request'/'ping' only; "
            "listen on a unix socket path (its mode and group say who may connect)"
        )
    return address


#: An IP network of the allow-list.
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


@dataclass(frozen=True, slots=True)
class AllowList:
    """Peers allowed on a TCP socket: exact addresses (fast set lookup) and networks."""

    exact: frozenset[str] = frozenset()
    networks: tuple[Network, ...] = ()
    any: bool = False

    @classmethod
    def parse(cls, entries: Iterable[str]) -> AllowList:
        """Parse ``'127.0.0.1'``, ``'10.0.0.0/8'``, ``'::1'`` or ``'*'`` (anyone)."""
        exact: set[str] = set()
        networks: list[Network] = []
        for raw in entries:
            entry = raw.strip()
            if entry == "*":
                return cls(any=True)
            try:
                if "/" in entry:
                    networks.append(ipaddress.ip_network(entry, strict=False))
                else:
                    addr = ipaddress.ip_address(entry)
                    # accept() gives "::ffff:10.0.0.1", and allows() compares its IPv4 part.
                    mapped = getattr(addr, "ipv4_mapped", None)
                    exact.add(str(mapped or addr))
            except ValueError as exc:
                raise ValueError(f"invalid address or network {entry!r}: {exc}") from None
        return cls(frozenset(exact), tuple(networks))

    @property
    def loopback_only(self) -> bool:
        """Only this machine's own addresses may connect (the default)."""
        return not self.any and not self.networks and self.exact <= {"127.0.0.1", "::1"}

    def allows(self, host: str) -> bool:
        """True when ``host`` (an IP string from accept) may talk to us."""
        if self.any or host in self.exact:
            return True
        if host.startswith("::ffff:"):
            return self.allows(host[7:])
        if not self.networks:
            return False
        try:
            addr = ipaddress.ip_address(host.split("%", 1)[0])
        except ValueError:
            return False
        return any(addr in net for net in self.networks)
