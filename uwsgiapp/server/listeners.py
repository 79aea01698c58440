"""Listening sockets: unix paths, TCP ``host:port``, inherited ``fd://N``; the TCP allow-list.

Binding happens once, in the process that owns the sockets (the master); workers inherit them.

**The first one out.** A stopping server's workers each drain a socket's queue and close their
copy; on TCP a connection queued after the last accept was reset after nginx sent its request
(a 502 it does not retry for a POST), whether at the last close or at the exit of a worker still
in a long request. The first worker whose drain finds the queue empty shuts the socket down for
every process, closing that window first (:func:`uwsgiapp.server.lastout.last_out`).
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import socket
import stat
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

from uwsgiapp.addresses import AddressError, AllowList, SocketAddress, server_address
from uwsgiapp.server.safefiles import UnsafeFileError, in_parent, pinned_path, socket_answers

log = logging.getLogger("uwsgiapp.error")


class ListenerError(Exception):
    """A socket spec that cannot be bound; the message names the spec."""


@dataclass(slots=True)
class Listener:
    """One bound, listening socket and how to treat its peers."""

    sock: socket.socket
    spec: str
    path: str = ""  # unix socket file we created (removed on close)
    allow: AllowList | None = None  # None: no peer check (unix sockets)
    inode: tuple[int, int] | None = field(default=None)
    #: Another master serves on this socket too (a binary upgrade's pair): its file stays.
    shared: bool = False

    @property
    def unix_name(self) -> str:
        """The path of a unix socket: the one we bound (the kernel's name for it may be the
        ``/proc/self/fd`` one it was bound through), or the one an inherited socket was bound
        to; "" for TCP, an abstract or an unnamed socket."""
        if self.path:
            return self.path
        try:
            name = self.sock.getsockname()
        except OSError:
            return ""
        return name if isinstance(name, str) and name.startswith("/") else ""

    @property
    def is_tcp(self) -> bool:
        """A TCP socket (peers checked against the allow-list)."""
        return self.sock.family in (socket.AF_INET, socket.AF_INET6)

    def close_path(self) -> None:
        """Remove our unix socket file (new connections fail; queued ones can still be accepted);
        not while another master shares it."""
        if self.path and not self.shared:
            # In the walked directory (root's failed start: a directory on the way swapped for a
            # link between a check and the unlink made root remove a file of that name there).
            with contextlib.suppress(OSError), in_parent(self.path) as (parent, name):
                st = os.lstat(name, dir_fd=parent)  # a link planted in its place is not ours
                if self.inode == (st.st_dev, st.st_ino):
                    os.unlink(name, dir_fd=parent)

    def close(self, unlink: bool = True) -> None:
        """Close the socket; remove the unix socket file if it is still the one we made."""
        with contextlib.suppress(OSError):
            self.sock.close()
        if unlink:
            self.close_path()


#: ``struct tcp_info`` up to ``tcpi_unacked``: 8 one-byte fields, then rto, ato, snd_mss,
#: rcv_mss, unacked. On a listening socket Linux reports the accept queue's length there.
_TCP_INFO = struct.Struct("<8xIIIII")


def queued_connections(sock: socket.socket) -> int | None:
    """How many connections wait in a TCP listener's accept queue; None if unknown (unix)."""
    if sock.family not in (socket.AF_INET, socket.AF_INET6) or not hasattr(socket, "TCP_INFO"):
        return None
    try:
        info = sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_INFO, 104)
    except OSError:
        return None
    if len(info) < 28:
        return None
    return int(_TCP_INFO.unpack_from(info)[4])


def _parse(spec: str) -> SocketAddress:
    """The address ``spec`` names (the grammar shared with the client, :mod:`uwsgiapp.addresses`);
    :class:`ListenerError` for one the server cannot listen on."""
    try:
        return server_address(spec)
    except AddressError as exc:
        raise ListenerError(str(exc)) from None


def address_key(spec: str) -> str:
    """What ``spec`` names, whatever its spelling: ``unix:/a.sock`` and ``/a.sock`` name the
    same socket (a :class:`Listener`'s spec is the path), ``:80`` and ``0.0.0.0:80`` too;
    "" for a spec that names nothing."""
    try:
        address = server_address(spec)
    except AddressError:
        return ""
    if address.fd is not None:
        return f"fd://{address.fd}"
    if address.is_unix:
        return "unix:" + os.path.abspath(address.path)
    return f"{address.host or '0.0.0.0'}:{address.port}"


#: Sockets a binary upgrade's new master took over from the old one, by
#: :func:`address_key`: bound already.
_adopted: dict[str, Listener] = {}


def adopt(listener: Listener) -> None:
    """``listener`` (passed in by the master this one replaces) is what :func:`bind` gives for
    its spec, instead of binding it anew (the old master still listens there)."""
    _adopted[address_key(listener.spec)] = listener


def drop_adopted() -> list[str]:
    """Close the adopted sockets no spec asked for (their files stay: the old master's); their
    specs."""
    left = sorted(listener.spec for listener in _adopted.values())
    for listener in _adopted.values():
        listener.close(unlink=False)
    _adopted.clear()
    return left


def bind(spec: str, *, backlog: int, chmod: int, allow: AllowList) -> Listener:
    """Bind and listen on one socket spec (a unix path, ``unix:PATH``, ``host:port``,
    ``[v6]:port``, ``:port`` for every interface, or ``fd://N``)."""
    taken = _adopted.pop(address_key(spec), None)
    if taken is not None:
        try:
            taken.sock.listen(backlog)  # this start's --listen
        except OSError as exc:
            taken.close(unlink=False)
            raise ListenerError(f"socket {spec!r}: the passed one cannot listen: {exc}") from None
        taken.allow = allow if taken.is_tcp else None
        return taken
    address = _parse(spec)
    if address.fd is not None:
        try:
            sock = socket.socket(fileno=address.fd)
        except OSError as exc:
            raise ListenerError(f"socket {spec!r}: not an open socket ({exc})") from None
        if sock.type != socket.SOCK_STREAM:
            sock.detach()
            raise ListenerError(f"socket {spec!r}: not a stream socket")
        sock.set_inheritable(False)  # passed to us (systemd): not on to what the app runs
        try:
            sock.listen(backlog)
        except OSError as exc:
            sock.detach()
            raise ListenerError(
                f"socket {spec!r}: cannot listen on it ({exc.strerror or exc}): a connection, "
                "not a listening socket? (systemd: Accept=no)"
            ) from None
        tcp = sock.family in (socket.AF_INET, socket.AF_INET6)
        return Listener(sock, spec, allow=allow if tcp else None)
    if address.is_tcp:
        host = address.host or "0.0.0.0"
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, address.port))
            sock.listen(backlog)
        except OSError as exc:
            sock.close()
            held = ""
            if exc.errno == errno.EADDRINUSE:
                from uwsgiapp.server.holders import who_holds  # sockdiag imports this module

                held = who_holds(address.port, host)
            elif exc.errno == errno.EACCES and address.port < 1024:
                held = _PRIVILEGED if os.geteuid() else _NO_CAPABILITY
            raise ListenerError(
                f"socket {spec!r}: cannot bind: {exc.strerror or exc}{held}"
            ) from None
        return Listener(sock, spec, allow=allow)
    return _bind_unix(address.path, backlog, chmod)


#: A port under 1024 refused to a user that is not root.
_PRIVILEGED = (
    " (a port under 1024 needs root: start as root with --uid, which binds before it drops, "
    "or grant CAP_NET_BIND_SERVICE; or listen on a higher port, or a unix socket, behind nginx)"
)


#: The same refused to root: a container's dropped capabilities (cap_drop: ALL), or SELinux.
_NO_CAPABILITY = (
    " (as root without CAP_NET_BIND_SERVICE: a container started with its capabilities "
    "dropped, or an SELinux policy; add the capability, or listen on a higher port)"
)


def _bind_unix(path: str, backlog: int, chmod: int) -> Listener:
    """Bind a unix socket file at ``path``, replacing a stale one. The directories on the way
    are walked (:func:`~uwsgiapp.server.safefiles.in_parent`: as root, a link the app user
    planted is refused), and the file is reached through the walked directory, so that a link
    swapped in on the way meanwhile cannot send the removal or the bind elsewhere."""
    try:
        with in_parent(path) as (parent, name):
            return _bind_in(path, parent, name, backlog, chmod)
    except UnsafeFileError as exc:
        raise ListenerError(f"socket {path!r}: {exc}") from None
    except OSError as exc:  # a directory on the way missing, not searchable, not a directory
        raise ListenerError(f"socket {path!r}: cannot bind: {exc.strerror or exc}") from None


def in_the_way(st: os.stat_result) -> str | None:
    """Why what ``lstat`` found at a unix socket's path stops the bind, or None: only a socket
    (a stale one, removed if nobody listens) is replaced."""
    return None if stat.S_ISSOCK(st.st_mode) else "exists and is not a socket; not replacing it"


def _bind_in(path: str, parent: int, name: str, backlog: int, chmod: int) -> Listener:
    here = pinned_path(parent, name)
    if not here and os.geteuid() == 0:  # by its whole path root's bind would follow links
        raise ListenerError(
            f"socket {path!r}: cannot be bound through its checked directory (a long file "
            "name, or no /proc): as root, give it a shorter name"
        )
    here = here or path
    try:
        st = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        pass
    else:
        why = in_the_way(st)
        if why is not None:
            raise ListenerError(f"socket {path!r}: {why}")
        _remove_stale(path, parent, name, here, st.st_uid)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    # bind() creates the file with mode 0o777 & ~umask: under this umask that is exactly
    # ``chmod``, so no chmod(path) follows (it would follow a link swapped in meanwhile).
    old_umask = os.umask(0o777 & ~chmod)
    try:
        sock.bind(here)
        st = os.lstat(name, dir_fd=parent)
    except OSError as exc:
        sock.close()
        raise ListenerError(f"socket {path!r}: cannot bind: {exc.strerror or exc}") from None
    finally:
        os.umask(old_umask)
    if not stat.S_ISSOCK(st.st_mode):
        sock.close()
        raise ListenerError(f"socket {path!r}: replaced by something else right after bind")
    sock.listen(backlog)
    # Removed at exit by its absolute name: the master may have moved to --chdir since.
    return Listener(sock, path, path=os.path.abspath(path), inode=(st.st_dev, st.st_ino))


def _remove_stale(path: str, parent: int, name: str, here: str, owner: int) -> None:
    """Remove the socket file found at ``path`` if nobody listens there (a server killed
    before it could remove it); :class:`ListenerError` if one does (naming its ``owner`` when
    another user's: in a directory others can write, any user can take the name first, and
    nginx's requests then go to that user), or if it cannot tell."""
    try:
        answers = socket_answers(parent, name, here)
    except UnsafeFileError:
        raise
    except OSError as exc:  # no permission to connect: its server may well be there
        raise ListenerError(
            f"socket {path!r}: cannot tell whether a server listens on it "
            f"({exc.strerror or exc}); not replacing it"
        ) from None
    if answers:
        whose = ""
        if owner != os.geteuid() and os.fstat(parent).st_mode & stat.S_IWOTH:
            whose = (
                f" (its file is uid {owner}'s, another user's: in a directory others can write, "
                "any user can take a socket's name first; use one only the server's user can "
                "write, such as /run/app)"
            )
        from uwsgiapp.server.holders import who_holds_file  # sockdiag imports this module

        with contextlib.suppress(OSError):  # who: a worker of a master killed with SIGKILL?
            whose += who_holds_file(os.stat(name, dir_fd=parent, follow_symlinks=False))
        raise ListenerError(f"socket {path!r}: another server is listening on it{whose}")
    with contextlib.suppress(FileNotFoundError):
        os.unlink(name, dir_fd=parent)
        log.info("removed stale socket file %s", path)


def somaxconn_cap(backlog: int, proc: str = "/proc/sys/net/core/somaxconn") -> int | None:
    """The kernel's cap on every listen queue (``net.core.somaxconn``, per network namespace)
    when ``backlog`` is over it, else None (also when it cannot be read)."""
    try:
        with open(proc) as f:
            cap = int(f.read().strip())
    except (OSError, ValueError):
        return None
    return cap if backlog > cap else None


def bind_all(
    specs: Iterable[str], *, backlog: int, chmod: int, allow_from: Iterable[str]
) -> list[Listener]:
    """Bind every spec; on any failure close what was bound and raise :class:`ListenerError`."""
    allow = AllowList.parse(allow_from)
    listeners: list[Listener] = []
    try:
        for spec in specs:
            listeners.append(bind(spec, backlog=backlog, chmod=chmod, allow=allow))
    except BaseException:
        for listener in listeners:
            listener.close()
        raise
    return listeners


@contextlib.contextmanager
def borrowed_socket(fd: int) -> Iterator[socket.socket]:
    """A socket object over someone's descriptor ``fd``, for a look (its name, its options),
    detached after. Made with no default timeout: with one (``socket.setdefaulttimeout()``, an
    app's), the wrap made the descriptor non-blocking for every process that shares it (an
    app's blocking database socket raised BlockingIOError; the master's stderr too). OSError
    for what is no socket."""
    saved = socket.getdefaulttimeout()
    socket.setdefaulttimeout(None)
    try:
        sock = socket.socket(fileno=fd)
    finally:
        socket.setdefaulttimeout(saved)
    try:
        yield sock
    finally:
        sock.detach()
