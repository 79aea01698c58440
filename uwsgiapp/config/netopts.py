"""The checks of the options that name addresses and peers (``--socket``,
``--uwsgi-allow-from``, ``--stats``, ``--stats-allow-from``), kept out of the model's
:meth:`~uwsgiapp.config.model.Config.validate`: each bad value is an (option, message) that it
raises as a :class:`~uwsgiapp.config.model.ConfigError`."""

from __future__ import annotations

import os
import socket
from typing import Any

from uwsgiapp.addresses import AddressError, AllowList, parse_address, server_address

#: Who may always read a TCP stats address: a container's health check and uwsgitop run there.
LOOPBACK = ("127.0.0.1", "::1")


def socket_problem(config: Any) -> tuple[str, str] | None:
    """The first ``--socket`` that is no address, as (option, message), or None."""
    if not config.socket:
        return "socket", "at least one socket is required"
    for address in config.socket:
        if address.startswith("="):  # was bound as a unix socket file named '=0'
            return "socket", (
                f"{address!r}: uWSGI's =N names an ini's shared-socket; give the address"
            )
        try:  # its form now (exit 2, and --print-config refuses it), not when it is bound
            server_address(address)
        except AddressError as exc:
            return "socket", str(exc)
    return None


def allow_from_problem(config: Any) -> tuple[str, str] | None:
    """What is wrong with ``--uwsgi-allow-from`` or ``--stats-allow-from``, or None."""
    if not any(peer.strip() for peer in config.uwsgi_allow_from):
        # An unset ${ALLOW_FROM} in a compose file: every peer, loopback too, was refused.
        return (
            "uwsgi_allow_from",
            "empty: it would refuse every peer, loopback included; leave it unset for "
            "loopback only, or name the peers ('*' for any)",
        )
    for name in ("uwsgi_allow_from", "stats_allow_from"):
        try:
            AllowList.parse(_named(getattr(config, name)))
        except ValueError as exc:
            return name, str(exc)
    return None


def blank_stats_peers(raw: Any) -> tuple[str, str] | None:
    """A ``--stats-allow-from`` given a blank text (``raw``, as its source gave it; an empty
    list is the default, as --print-config writes it): an unset ``${STATS_ALLOW}`` would widen
    the stats' peers to ``--uwsgi-allow-from``'s (maybe '*')."""
    peers = [raw] if isinstance(raw, str) else raw if isinstance(raw, (list, tuple)) else []
    if not peers or _named(tuple(map(str, peers))):
        return None
    return (
        "stats_allow_from",
        "empty: it names no peer, and the stats would take --uwsgi-allow-from's; leave it "
        "unset for that, or name the peers (loopback may always read)",
    )


def _named(peers: tuple[str, ...]) -> tuple[str, ...]:
    # A blank entry among others names no one (a value all blank, where its source is known,
    # is refused: blank_stats_peers); make_config's all-blank one is as if unset.
    return tuple(peer for peer in peers if peer.strip())


def stats_problem(config: Any) -> tuple[str, str] | None:
    """What is wrong with ``--stats`` and the options that need it, or None."""
    if not config.stats:
        for name in ("stats_http", "stats_minified"):
            if getattr(config, name):
                return name, "needs --stats ADDR"
        if _named(config.stats_allow_from):
            return "stats_allow_from", "needs --stats ADDR"
        return None
    try:
        address = parse_address(config.stats)
    except AddressError as exc:
        return "stats", str(exc)
    if address.is_abstract or address.is_fd:
        return "stats", f"expected a unix socket path or host:port, got {config.stats!r}"
    if config.stats in config.socket:
        return "stats", f"{config.stats!r} is also a --socket"
    if _named(config.stats_allow_from) and address.is_unix:
        return (
            "stats_allow_from",
            f"a unix socket's readers are chosen by its mode (--chmod-socket), not by "
            f"address: {config.stats!r} is one",
        )
    return None


def stats_peers(config: Any) -> AllowList:
    """Who may read a TCP ``--stats`` address: loopback, and ``--stats-allow-from``'s peers
    where it is set, else ``--uwsgi-allow-from``'s."""
    peers = _named(config.stats_allow_from) or config.uwsgi_allow_from
    return AllowList.parse((*peers, *LOOPBACK))


def activated_by_address(specs: tuple[str, ...], activated: list[str]) -> dict[str, str]:
    """The named sockets that are one of the sockets systemd passed (``fd://N``), by address:
    a unit written for uWSGI names its ``.socket``'s ``ListenStream=`` path in the ini too,
    and uWSGI attaches the passed one; binding it anew failed ("another server is listening
    on it")."""
    passed = {key: spec for spec in activated if (key := _fd_address(spec))}
    found = {}
    for spec in specs:
        try:
            address = server_address(spec)
        except AddressError:
            continue
        if address.is_unix:
            key = "unix:" + os.path.abspath(address.path)
        elif address.is_tcp:
            key = f"{_any(address.host)}:{address.port}"
        else:
            continue
        if key in passed:
            found[spec] = passed[key]
    return found


def _any(host: str) -> str:
    # ListenStream=3031 is [::]:3031 (both families), which :3031 and 0.0.0.0:3031 name too.
    return "*" if host in ("", "0.0.0.0", "::") else host


def _fd_address(spec: str) -> str:
    """The address of the listening socket ``fd://N``, as :func:`activated_by_address` keys
    it; "" if it has none it could be named by."""
    try:
        sock = socket.socket(fileno=int(spec.removeprefix("fd://")))
    except (OSError, ValueError):
        return ""
    try:
        name = sock.getsockname()
        if sock.family == socket.AF_UNIX:
            return "unix:" + name if isinstance(name, str) and name.startswith("/") else ""
        if sock.family in (socket.AF_INET, socket.AF_INET6):
            return f"{_any(name[0])}:{name[1]}"
        return ""
    except OSError:
        return ""
    finally:
        sock.detach()
