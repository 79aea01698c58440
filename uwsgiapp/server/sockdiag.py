"""Accept-queue lengths of listening sockets, for the stats: TCP through ``TCP_INFO``, unix
through the kernel's sock_diag netlink interface (what ``ss -xl`` shows as Recv-Q).

/proc/net/unix does not carry queue lengths, so for a unix listener we ask NETLINK_SOCK_DIAG
for the socket with our socket's inode and ``UDIAG_SHOW_RQLEN``: for a listener the kernel
reports the accept queue in ``udiag_rqueue`` (and the backlog in ``udiag_wqueue``). Every
failure (no netlink, no unix_diag module, a kernel that answers something else) is None.
"""

from __future__ import annotations

import errno
import os
import socket
import struct

from uwsgiapp.server.listeners import queued_connections

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST = 0x01
NLMSG_ERROR = 0x02
UDIAG_SHOW_RQLEN = 0x10
UNIX_DIAG_RQLEN = 4
TCP_LISTEN = 10
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


def _request(inode: int, seq: int) -> bytes:
    body = _UNIX_DIAG_REQ.pack(
        socket.AF_UNIX, 0, 0, 1 << TCP_LISTEN, inode, UDIAG_SHOW_RQLEN, _NO_COOKIE, _NO_COOKIE
    )
    header = _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST, seq, 0)
    return header + body


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
            with socket.socket(
                socket.AF_NETLINK,  # type: ignore[attr-defined,unused-ignore]
                socket.SOCK_DGRAM | socket.SOCK_CLOEXEC,
                NETLINK_SOCK_DIAG,
            ) as diag:
                diag.settimeout(0.5)
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
