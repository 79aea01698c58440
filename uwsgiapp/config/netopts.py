"""The checks of the options that name addresses and peers (``--socket``,
``--uwsgi-allow-from``, ``--stats``, ``--stats-allow-from``), kept out of the model's
:meth:`~uwsgiapp.config.model.Config.validate`: each bad value is an (option, message) that it
raises as a :class:`~uwsgiapp.config.model.ConfigError`."""

from __future__ import annotations

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
    if config.stats.lower().startswith(("http://", "https://")):  # parse_address's speaks of nginx
        return "stats", (
            f"{config.stats!r} is a URL: give the address to listen on (host:port, or a unix "
            "socket path); --stats-http makes it answer HTTP, at http://HOST:PORT/"
        )
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
