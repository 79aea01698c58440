"""Socket activation: the sockets systemd passed (``LISTEN_FDS``), and a named socket taken
as the passed one that has its address (a unit written for uWSGI names its ``.socket``'s
``ListenStream=`` path in the ini too, and uWSGI attaches the passed socket)."""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping
from dataclasses import replace

from uwsgiapp.addresses import AddressError, server_address
from uwsgiapp.config.configload import DEFAULT_SOURCE, Resolved

__all__ = ["activated_by_address", "adopt_activated", "one_each", "systemd_sockets"]


def one_each(resolved: Resolved) -> tuple[Resolved, list[str]]:
    """``resolved`` with a socket named twice (the same address, however spelled) kept once,
    and what to warn of: the second bind failed, "Address already in use", naming no holder
    (uWSGI binds it once)."""
    from uwsgiapp.server.listeners import address_key

    sockets: dict[str, str] = {}
    twice: list[str] = []
    for spec in resolved.config.socket:
        key = address_key(spec) or spec
        if key in sockets:
            twice.append(spec)
        else:
            sockets[key] = spec
    if not twice:
        return resolved, []
    config = replace(resolved.config, socket=tuple(sockets.values()))
    named = ", ".join(twice)
    source = resolved.sources["socket"]
    return replace(resolved, config=config), [
        f"--socket {named} named twice ({source}): bound once"
    ]


def systemd_sockets(env: Mapping[str, str], pid: int | None = None) -> list[str]:
    """The sockets systemd passed this process (``LISTEN_PID`` is ours, ``LISTEN_FDS`` of them
    from fd 3), as ``fd://N`` specs; none if it passed none, or passed them to another pid."""
    count = env.get("LISTEN_FDS", "")
    if env.get("LISTEN_PID", "") != str(os.getpid() if pid is None else pid):
        return []
    if not count.isdigit() or not 0 < int(count) <= 64:
        return []
    return [f"fd://{3 + n}" for n in range(int(count))]


def adopt_activated(resolved: Resolved, activated: list[str]) -> tuple[Resolved, list[str]]:
    """``resolved`` with each named socket that is a passed one by address as that ``fd://N``
    (binding it anew failed: "another server is listening on it"), and what to warn of."""
    config = resolved.config
    found = activated_by_address(config.socket, activated, config.chdir)
    if not found:
        return resolved, []
    # One fd once: two spellings of its path (X, unix:X) made two listeners of it.
    sockets = tuple(dict.fromkeys(found.get(spec, spec) for spec in config.socket))
    resolved = replace(resolved, config=replace(config, socket=sockets))
    if resolved.sources["chmod_socket"] == DEFAULT_SOURCE:
        return resolved, []
    return resolved, [
        f"--chmod-socket: {', '.join(found)} is the socket systemd passed: its mode is the "
        ".socket unit's SocketMode=, not changed here"
    ]


def activated_by_address(
    specs: tuple[str, ...], activated: list[str], chdir: str = ""
) -> dict[str, str]:
    """The named sockets that are one of the sockets systemd passed (``fd://N``), by address:
    a unit written for uWSGI names its ``.socket``'s ``ListenStream=`` path in the ini too,
    and uWSGI attaches the passed one; binding it anew failed ("another server is listening
    on it"). A relative path is taken from ``chdir``, where it is bound."""
    passed = {key: spec for spec in activated if (key := _fd_address(spec))}
    found = {}
    for spec in specs:
        try:
            address = server_address(spec)
        except AddressError:
            continue
        if address.is_unix:  # from --chdir, where it is bound; from here too (a HUP's
            # reading runs in --chdir already, which may itself be relative)
            paths = (os.path.join(chdir, address.path), address.path)
            keys = ["unix:" + os.path.abspath(path) for path in paths]
        elif address.is_tcp:
            keys = [f"{host}:{address.port}" for host in _hosts(address.host)]
        else:
            continue
        for key in keys:
            if key in passed:
                found[spec] = passed[key]
                break
    return found


def _hosts(host: str) -> tuple[str, ...]:
    """How a passed socket that ``host`` names is keyed: ``*`` is ListenStream=3031's, [::]
    for both families, which :3031 and 0.0.0.0:3031 name too (a v6-only one is not theirs)."""
    if host in ("", "0.0.0.0"):
        return ("0.0.0.0", "*")
    if host == "::":
        return ("::", "*")
    return (host,)


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
        host = name[0]
        if sock.family == socket.AF_INET6 and host == "::":
            v6only = sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY)
            host = "::" if v6only else "*"
        return f"{host}:{name[1]}" if sock.family in (socket.AF_INET, socket.AF_INET6) else ""
    except OSError:
        return ""
    finally:
        sock.detach()
