"""The connections an import of the app left open in the master.

A preloaded app that connects at import (a Django ``wsgi.py`` that runs a query, a Redis
client that pings) hands every forked worker the same socket: workers that use it at once
interleave their queries on one server session and read each other's answers, or hang (the
pre-fork shared connection bug). Start-up and each HUP name such connections, as they name the
threads an import started (:func:`uwsgiapp.supervisor.importthreads.say_import_threads`), and
the SQLite databases it left open (SQLite forbids carrying a connection across a fork: its
locks are the process's, so workers writing through it corrupt the file).
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import stat

from uwsgiapp import hooks
from uwsgiapp.server.listeners import borrowed_socket

__all__ = [
    "connection_warning",
    "is_open",
    "open_fds",
    "peer_of",
    "postfork_and_say",
    "say_import_connections",
    "sqlite_of",
    "sqlite_warning",
]

#: The first bytes of every SQLite 3 database file.
SQLITE_MAGIC = b"SQLite format 3\0"

log = logging.getLogger("uwsgiapp.error")


def open_fds() -> set[int]:
    """The process's open file descriptors (empty where ``/proc/self/fd`` is missing)."""
    try:
        listed = {int(name) for name in os.listdir("/proc/self/fd")}
    except OSError:
        return set()
    # The listing's own descriptor, closed by now, is among them: a later listing would
    # otherwise take the connection that reuses its number for one that was there before.
    return {fd for fd in listed if is_open(fd)}


def is_open(fd: int) -> bool:
    """Whether ``fd`` is an open file descriptor of this process."""
    try:
        os.fstat(fd)
    except OSError:
        return False
    return True


def peer_of(fd: int) -> str | None:
    """Where the connected stream socket ``fd`` leads (``host:port``, a unix path), or None
    for any other descriptor: a file, a listening or unconnected socket, a datagram one (a
    syslog handler's ``/dev/log``, which forked workers may share)."""
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            return None
        with borrowed_socket(fd) as sock:  # not made non-blocking by the app's default timeout
            if sock.type != socket.SOCK_STREAM:
                return None
            peer = sock.getpeername()
    except OSError:  # not connected (ENOTCONN)
        return None
    if isinstance(peer, tuple):
        host, port = peer[0], peer[1]
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    if isinstance(peer, bytes):
        peer = peer.decode(errors="replace")
    return peer or "an unnamed unix socket"


def connection_warning(what: str, peers: list[str]) -> str:
    """The warning for the connections ``what`` (an import) left open, or "" for none."""
    if not peers:
        return ""
    shown = ", ".join(peers[:5]) + (", ..." if len(peers) > 5 else "")
    return (
        f"{what} left {len(peers)} connection{'' if len(peers) == 1 else 's'} open in the master"
        f" (to {shown}): every worker is forked sharing it, and workers using one connection at"
        " once mix each other's queries and answers; close it at the end of the import"
        " (Django: django.db.connections.close_all()), or open it in each worker (--lazy-apps,"
        " or a uwsgiapp.postfork function)"
    )


def sqlite_of(fd: int) -> str | None:
    """The path of the SQLite database ``fd`` is open on (its first bytes say so; read with
    ``pread``, which leaves the offset as it was), or None."""
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode) or os.pread(fd, 16, 0) != SQLITE_MAGIC:
            return None
        return os.readlink(f"/proc/self/fd/{fd}")
    except OSError:  # write-only, gone, or no /proc
        return None


def sqlite_warning(what: str, paths: list[str]) -> str:
    """The warning for the SQLite databases ``what`` (an import) left open, or "" for none."""
    if not paths:
        return ""
    return (
        f"{what} left the SQLite database{'' if len(paths) == 1 else 's'} {', '.join(paths)}"
        " open in the master: every worker is forked sharing its connection, which SQLite"
        " forbids (its locks are the process's: workers writing through it corrupt the file);"
        " close it at the end of the import, or open it in each worker (--lazy-apps, or a"
        " uwsgiapp.postfork function)"
    )


#: What the last import left open while ``uwsgiapp.postfork`` functions were registered, which
#: may open it anew in each worker: ``what``, and each descriptor's identity and peer or path.
#: The first worker forked after the import says what they left as it was
#: (:func:`postfork_and_say`); the master forgets it at that fork.
_pending: list[tuple[str, dict[int, tuple[tuple[int, int], str]], bool]] = []
os.register_at_fork(after_in_parent=_pending.clear)


def say_import_connections(before: set[int], what: str) -> None:
    """Warn of the connected sockets and SQLite databases opened since ``before``
    (:func:`open_fds`) was taken; where ``uwsgiapp.postfork`` functions are registered, leave
    it to the first worker, once they ran (a postfork function that reopens the connection in
    each worker is the advice: the master's warning stood anyway)."""
    new = sorted(open_fds() - before)
    peers = {fd: peer for fd in new if (peer := peer_of(fd)) is not None}
    databases = {fd: path for fd in new if (path := sqlite_of(fd)) is not None}
    _pending.clear()
    if hooks.functions():
        for found, database in ((peers, False), (databases, True)):
            if found:
                _pending.append((what, {fd: (_identity(fd), v) for fd, v in found.items()},
                                 database))  # fmt: skip
        return
    _say(what, list(peers.values()), sorted(set(databases.values())))


def postfork_and_say(number: int) -> None:
    """Worker ``number``: run the postfork functions (:class:`~uwsgiapp.hooks.PostforkError`
    as they raise it); then, in the first worker forked after the import, warn of what the
    import left open in the master that they did not close or reopen: the same descriptor
    on the same socket or file, still without close-on-exec. Cleared of it before they run,
    a descriptor they reopened (sockets and SQLite's files are opened close-on-exec) is told
    apart even where it got the same number and file back."""
    marked: dict[int, bool] = {}
    for fd in {fd for _, found, _ in _pending for fd in found}:
        with contextlib.suppress(OSError):
            marked[fd] = os.get_inheritable(fd)
            os.set_inheritable(fd, True)
    hooks.run_postfork()
    prefix = f"worker {number}, its postfork functions run: " if hooks.functions() else ""
    kept_fds: set[int] = set()
    for what, found, database in _pending:
        kept = [fd for fd, (identity, _) in found.items() if _kept(fd, identity, marked)]
        kept_fds.update(kept)
        said = [found[fd][1] for fd in kept]
        if said:
            _say(what, [] if database else said, sorted(set(said)) if database else [], prefix)
    for fd in kept_fds & marked.keys():  # its own again: close-on-exec as it was
        with contextlib.suppress(OSError):
            os.set_inheritable(fd, marked[fd])


def _kept(fd: int, identity: tuple[int, int], marked: dict[int, bool]) -> bool:
    """Whether ``fd`` is still the one the import opened (its mark still on it)."""
    try:
        return _identity(fd) == identity and (fd not in marked or os.get_inheritable(fd))
    except OSError:
        return False


def _say(what: str, peers: list[str], databases: list[str], prefix: str = "") -> None:
    for warning in (connection_warning(what, peers), sqlite_warning(what, databases)):
        if warning:
            log.warning("%s%s", prefix, warning)


def _identity(fd: int) -> tuple[int, int]:
    """What a descriptor is open on (a socket's own inode; a file's), or (-1, -1) if closed."""
    try:
        st = os.fstat(fd)
    except OSError:
        return (-1, -1)
    return (st.st_dev, st.st_ino)
