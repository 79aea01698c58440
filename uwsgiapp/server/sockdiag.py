"""Accept-queue lengths of listening sockets, for the stats: TCP through ``TCP_INFO``, unix
through the kernel's sock_diag netlink interface (what ``ss -xl`` shows as Recv-Q); and, for a
stop's first one out (:mod:`uwsgiapp.server.lastout`), the TCP handshakes under way.

/proc/net/unix does not carry queue lengths, so for a unix listener we ask NETLINK_SOCK_DIAG
for the socket with our socket's inode and ``UDIAG_SHOW_RQLEN``: for a listener the kernel
reports the accept queue in ``udiag_rqueue`` (and the backlog in ``udiag_wqueue``). Every
failure (no netlink, no unix_diag module, a kernel that answers something else) is None.
"""

from __future__ import annotations

import _socket
import errno
import logging
import os
import socket
import struct

from uwsgiapp.server.listeners import queued_connections

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x01
NLMSG_ERROR = 0x02
NLMSG_DONE = 0x03
NLM_F_DUMP = 0x300
UDIAG_SHOW_RQLEN = 0x10
UNIX_DIAG_RQLEN = 4
TCP_LISTEN = 10
TCP_SYN_RECV = 3
_NO_COOKIE = 0xFFFFFFFF

#: struct nlmsghdr: len, type, flags, seq, pid.
_NLMSGHDR = struct.Struct("=IHHII")
#: struct unix_diag_req: family, protocol, pad, states, ino, show, cookie[2].
_UNIX_DIAG_REQ = struct.Struct("=BBHIIIII")
#: struct unix_diag_msg: family, type, state, pad, ino, cookie[2].
_UNIX_DIAG_MSG = struct.Struct("=BBBBIII")
#: struct rtattr: len, type; then struct unix_diag_rqlen: rqueue, wqueue.
_RTATTR = struct.Struct("=HH")
_RQLEN = struct.Struct("=II")
#: struct inet_diag_req_v2: family, protocol, ext, pad, states; then any socket id.
_INET_DIAG_REQ = struct.Struct("=BBBBI48x")
#: struct inet_diag_msg: family, state, timer, retrans, then its socket id: sport, dport, src.
_INET_DIAG_MSG = struct.Struct(">BBBBHH16s")

log = logging.getLogger("uwsgiapp.error")


def diag_socket(timeout: float = 0.5) -> socket.socket:
    """A netlink socket to ask sock_diag with (the caller closes it: ``with``)."""
    diag = socket.socket(
        socket.AF_NETLINK,  # type: ignore[attr-defined,unused-ignore]
        socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
        NETLINK_SOCK_DIAG,
    )
    diag.settimeout(timeout)
    return diag


def _message(body: bytes, flags: int = NLM_F_REQUEST, seq: int = 1) -> bytes:
    """A sock_diag request: its netlink header, then ``body``."""
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, flags, seq, 0) + body


def _request(inode: int, seq: int) -> bytes:
    body = _UNIX_DIAG_REQ.pack(
        socket.AF_UNIX, 0, 0, 1 << TCP_LISTEN, inode, UDIAG_SHOW_RQLEN, _NO_COOKIE, _NO_COOKIE
    )
    return _message(body, seq=seq)


def parse_reply(data: bytes, inode: int) -> int | None:
    """The accept-queue length in a sock_diag reply about ``inode``; None if not in it."""
    offset = 0
    while offset + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, offset)
        if length < _NLMSGHDR.size or kind == NLMSG_ERROR:
            return None
        end = min(offset + length, len(data))
        body = offset + _NLMSGHDR.size
        if (
            kind == SOCK_DIAG_BY_FAMILY
            and body + _UNIX_DIAG_MSG.size <= end
            and _UNIX_DIAG_MSG.unpack_from(data, body)[4] == inode
        ):
            return _rqueue(data, body + _UNIX_DIAG_MSG.size, end)
        offset += (length + 3) & ~3
    return None


def _rqueue(data: bytes, offset: int, end: int) -> int | None:
    while offset + _RTATTR.size <= end:
        length, kind = _RTATTR.unpack_from(data, offset)
        if length < _RTATTR.size:
            return None
        if kind == UNIX_DIAG_RQLEN and offset + _RTATTR.size + _RQLEN.size <= end:
            return int(_RQLEN.unpack_from(data, offset + _RTATTR.size)[0])
        offset += (length + 3) & ~3
    return None


#: What a kernel without netlink's sock_diag for unix sockets answers (for good).
_ABSENT = frozenset({errno.EAFNOSUPPORT, errno.EPROTONOSUPPORT, errno.ENOENT, errno.EINVAL})


class SockDiag:
    """Asks the kernel about unix listeners through a netlink socket opened for each question.

    One open socket kept for the master's life was never closed at its exit (``python -W
    error`` printed an unclosed-socket ResourceWarning at every stop); opening one costs
    about 6 µs (the queue watch asks once a second, the stats once a poll with a client).
    """

    def __init__(self) -> None:
        self._seq = 0
        self.unavailable = not hasattr(socket, "AF_NETLINK")

    def unix_queue(self, sock: socket.socket) -> int | None:
        """Connections waiting in unix listener ``sock``'s accept queue; None if unknown."""
        if self.unavailable:
            return None
        try:
            inode = os.fstat(sock.fileno()).st_ino
            with diag_socket() as diag:
                self._seq += 1
                diag.send(_request(inode, self._seq))
                reply = diag.recv(65536)
        except OSError as exc:
            # No netlink or no unix_diag: do not ask on every read. A descriptor limit, a
            # timeout, a full buffer: this answer only (it was for the master's whole life).
            self.unavailable = exc.errno in _ABSENT
            return None
        return parse_reply(reply, inode)

    def queue(self, sock: socket.socket) -> int | None:
        """Accept-queue length of a TCP or unix listener; None if unknown (or closed)."""
        if sock.fileno() < 0:
            return None
        if sock.family == socket.AF_UNIX:
            return self.unix_queue(sock)
        return queued_connections(sock)


# -- TCP handshakes under way ----------------------------------------------------------------
# A dump of one family's TCP sockets in state SYN_RECV, which the kernel filters as it walks
# its table (/proc/net/tcp formats every socket: 0.35 s with 70,000 in TIME_WAIT, which a busy
# server behind nginx has).


def count_handshakes(replies: bytes, port: int, local: bytes = b"") -> tuple[int, bool]:
    """The handshakes under way to ``port`` at address ``local`` (packed; b"": any, as a
    wildcard listener's) in a sock_diag dump's ``replies`` (its sockets in state SYN_RECV),
    and whether the dump ended there. :class:`OSError` for an error reply."""
    count, offset = 0, 0
    while offset + _NLMSGHDR.size <= len(replies):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(replies, offset)
        if kind == NLMSG_DONE:
            return count, True
        if kind == NLMSG_ERROR or length < _NLMSGHDR.size or offset + length > len(replies):
            raise OSError("sock_diag answered with an error")
        if kind == SOCK_DIAG_BY_FAMILY and length >= _NLMSGHDR.size + _INET_DIAG_MSG.size:
            family, state, _, _, sport, _, src = _INET_DIAG_MSG.unpack_from(
                replies, offset + _NLMSGHDR.size
            )
            if state == TCP_SYN_RECV and sport == port and _ours(family, src, local):
                count += 1
        offset += (length + 3) & ~3
    return count, False


def _ours(family: int, src: bytes, local: bytes) -> bool:
    """Whether a handshake to address ``src`` (of ``family``) is to a listener on ``local``
    (the kernel reports one to an IPv6 listener in IPv6 terms, a v4-mapped address)."""
    if not local:
        return True
    if family == socket.AF_INET:
        return len(local) == 4 and src[:4] == local
    return src == local


def handshakes_under_way(port: int, local: bytes = b"") -> int:
    """:func:`count_handshakes` of this network namespace's TCP sockets, IPv4 and IPv6 (0
    for a family the kernel answers no such dump for: nothing is waited for)."""
    count = 0
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            count += _dump_handshakes(family, port, local)
        except (OSError, AttributeError) as exc:  # a sandbox's (RestrictAddressFamilies=)
            log.debug("the handshakes under way cannot be counted: %s", exc)
    return count


def _dump_handshakes(family: int, port: int, local: bytes) -> int:
    # _socket's: gevent's patched socket would wait in a hub the server never runs.
    diag = _socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_SOCK_DIAG)
    try:
        diag.settimeout(1.0)
        body = _INET_DIAG_REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << TCP_SYN_RECV)
        diag.send(_message(body, NLM_F_REQUEST | NLM_F_DUMP))
        count, done = 0, False
        while not done:  # the kernel answers in datagrams of at most 32 KiB
            found, done = count_handshakes(diag.recv(65536), port, local)
            count += found
        return count
    finally:
        diag.close()
