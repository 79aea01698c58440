"""What start-up says about each socket: where it listens and who may connect."""

from __future__ import annotations

import grp
import ipaddress
import logging
import os
import pwd
import socket
import stat
from collections.abc import Callable, Iterable
from typing import Any

from uwsgiapp.addresses import AddressError, AllowList, server_address
from uwsgiapp.server.listeners import Listener

__all__ = [
    "closed_wildcard_warning",
    "closed_wildcards",
    "loopback_bind_in_a_container",
    "loopback_only_on_every_interface",
    "say_listening",
    "where",
    "who_may_connect",
]

log = logging.getLogger("uwsgiapp.error")


def say_listening(listeners: list[Listener], stats: Listener | None) -> None:
    """One line a socket (and the stats server's); a warning for a wildcard TCP bind that
    only loopback peers may use."""
    for listener in listeners:
        log.info("listening on %s%s", where(listener), who_may_connect(listener))
        if loopback_only_on_every_interface(listener):
            log.warning("%s", closed_wildcard_warning(listener.spec))
        elif loopback_bind_in_a_container(listener, os.getpid()):
            log.warning(
                "%s listens on loopback only, and this master is PID 1 (a container's): nginx "
                "in another container cannot reach it (a 502, while the health check says "
                "healthy); listen on :PORT with --uwsgi-allow-from its network",
                listener.spec,
            )
    if stats is not None:
        said = who_may_connect(
            stats, "a reader", "loopback; --stats-allow-from, else --uwsgi-allow-from"
        )
        log.info("stats on %s%s", where(stats), said)


def where(listener: Listener) -> str:
    """A listener as the log names it: a unix socket by its absolute path (what nginx's
    uwsgi_pass needs; a relative one is taken from --chdir), TCP as given; an inherited one
    (``fd://N``) with the path it was bound to."""
    if listener.path or listener.is_tcp:
        return listener.path or listener.spec
    return f"{listener.spec} ({listener.unix_name or 'unnamed unix socket'})"


def who_may_connect(
    listener: Listener, client: str = "nginx's user", option: str = "--uwsgi-allow-from"
) -> str:
    """Who may connect: for a unix socket its owner, group and mode, and the rule ``client``
    must meet; for TCP the address actually bound (``:3031`` is every interface) and the
    peers allowed (by ``option``)."""
    if listener.is_tcp:
        return _tcp_peers(listener, option)
    try:
        st = os.lstat(listener.unix_name)
    except OSError:
        return ""
    owner, group = _name(pwd.getpwuid, st.st_uid), _name(grp.getgrgid, st.st_gid)
    mode = stat.S_IMODE(st.st_mode)
    return (
        f" (owner {owner}, group {group}, mode {mode:04o}: {unix_rule(mode, owner, group, client)})"
    )


def unix_rule(mode: int, owner: str, group: str, client: str) -> str:
    """Who may connect to a unix socket of ``mode``: connecting takes write permission, and
    the owner's bits apply to the owner even where the group's would allow it."""
    if mode & 0o002:
        return "anyone on this machine may connect"
    by_owner, by_group = mode & 0o200, mode & 0o020
    if by_owner and by_group:
        who = f"{client} must be {owner} or in group {group}"
    elif by_owner:
        who = f"{client} must be {owner}"
    elif by_group:
        who = f"{client} must be in group {group}, and not {owner}"
    else:
        who = "only root may connect"
    # --chown-socket is nginx's sockets' alone: the stats socket stays the server's user's.
    options = (
        "--chmod-socket or --uid/--gid"
        if client == "a reader"
        else ("--chmod-socket, --chown-socket, or --uid/--gid")
    )
    return f"{who} (or set {options})"


def _tcp_peers(listener: Listener, option: str) -> str:
    try:
        host, port = listener.sock.getsockname()[:2]
    except (OSError, ValueError, TypeError):
        return ""
    bound = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    said = [] if bound == listener.spec else [f"bound to {bound}"]
    allow = listener.allow
    if allow is not None:
        allowed = [*sorted(allow.exact), *map(str, allow.networks)]
        peers = "any" if allow.any else ", ".join(allowed) or "none"
        said.append(f"peers allowed: {peers} ({option})")
    return f" ({'; '.join(said)})" if said else ""


def loopback_bind_in_a_container(listener: Listener, pid: int) -> bool:
    """A TCP bind to a loopback address (the default ``127.0.0.1:3031``) in a master that is
    PID 1: a container's, where nothing outside the container can reach it."""
    if pid != 1 or not listener.is_tcp:
        return False
    host = str(listener.sock.getsockname()[0])
    return host.startswith("127.") or host == "::1"


def closed_wildcard_warning(spec: str) -> str:
    """What is said of a socket :func:`closed_wildcards` names (at start and by
    ``--check-config``)."""
    return (
        f"{spec} listens on every interface but lets only loopback peers in: nginx in another "
        "container or host is refused (a 502); set --uwsgi-allow-from (uwsgi-allow-from in an "
        "ini) to its network"
    )


def closed_wildcards(sockets: Iterable[str], allow_from: Iterable[str]) -> list[str]:
    """The ``sockets`` that bind every interface (``:3031``, ``0.0.0.0:3031``, ``[::]:3031``)
    while ``allow_from`` lets only loopback peers in: what ``--check-config`` can tell from
    the options, before any bind."""
    try:
        if not AllowList.parse(allow_from).loopback_only:
            return []
    except ValueError:
        return []  # refused with the options already
    closed = []
    for spec in sockets:
        try:
            address = server_address(spec)
        except AddressError:
            continue
        if address.is_tcp and _unspecified(address.host):
            closed.append(spec)
    return closed


def _unspecified(host: str) -> bool:
    """Every interface: ``""``, ``0.0.0.0`` and its short forms the bind takes (``0``), ``::``."""
    if not host:
        return True
    try:
        return socket.inet_aton(host) == bytes(4)
    except OSError:
        try:
            return ipaddress.ip_address(host).is_unspecified
        except ValueError:
            return False  # a name: what it resolves to is for the start to see


def loopback_only_on_every_interface(listener: Listener) -> bool:
    """A wildcard bind (``:3031``, a container's port) that the default allow-list closes."""
    if listener.allow is None or not listener.is_tcp:
        return False
    return listener.sock.getsockname()[0] in ("0.0.0.0", "::") and listener.allow.loopback_only


def _name(lookup: Callable[[int], Any], number: int) -> str:
    try:
        return str(lookup(number)[0])
    except KeyError:
        return str(number)
