"""The last one out of a stopping TCP server (see :mod:`uwsgiapp.server.listeners`).

The last process to hold a listening socket closes the window between its last ``accept`` and
its ``close``, where a connection nginx had made (and sent a request on) was reset: a 502 that
nginx does not retry for a POST. It has the socket drop new connections' SYNs, waits for the
handshakes under way to finish (their last ACK still passes), takes the queue, closes the
socket, then serves what it took. A connect dropped is tried again by the kernel a second
later, finds the socket closed and is refused: nginx passes it to its next server.

Not waited for: a handshake the kernel answered with a SYN cookie (its SYN queue overflowed)
leaves no socket to count, and one under way as the socket closes is reset, as before.
"""

from __future__ import annotations

import _socket
import logging
import select
import socket
import struct
import time

from uwsgiapp import unpatched
from uwsgiapp.server.listeners import Listener

log = logging.getLogger("uwsgiapp.error")

_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
#: A classic BPF program, run on each packet to the listener with the TCP header at offset 0:
#: drop a packet with SYN set (a new connection); keep the rest (a handshake's last ACK, or the
#: data that carries it: a connection its client already counts as made).
_DROP_SYNS = b"".join(
    struct.pack("HBBI", *insn)
    for insn in (
        (0x30, 0, 0, 13),  # ldb [13]: the flags
        (0x45, 0, 1, 0x02),  # jset #SYN: to the next, else skip it
        (0x06, 0, 0, 0),  # ret #0: drop
        (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: keep all of it
    )
)
#: The longest the last one out waits for handshakes under way, from the filter's attach. Their
#: last ACK comes within a round trip; one lost is sent again with the client's data within its
#: retransmission timeout (200 ms at first). Under the kernel's first SYN retry (1 s), so that
#: a connect dropped meanwhile is refused at that retry. What is still under way is reset.
HANDSHAKES_WAIT = 0.6
# sock_diag (netlink): a dump of one family's TCP sockets in state SYN_RECV, which the kernel
# filters as it walks its table (/proc/net/tcp formats every socket: 0.35 s with 70,000 in
# TIME_WAIT, which a busy server behind nginx has).
_NETLINK_SOCK_DIAG = 4
_SOCK_DIAG_BY_FAMILY = 20
_NLM_F_REQUEST_DUMP = 0x301
_NLMSG_ERROR, _NLMSG_DONE = 2, 3
_TCP_SYN_RECV = 3
_NLMSG = struct.Struct("=IHHII")  # struct nlmsghdr: length, type, flags, seq, pid
_DIAG_REQ = struct.Struct("=BBBBI48x")  # inet_diag_req_v2: family, protocol, ext, pad, states
#: inet_diag_msg: family, state, timer, retrans, then its socket's id: sport, dport, src.
_DIAG_MSG = struct.Struct(">BBBBHH16s")
_V4_MAPPED = bytes(10) + b"\xff\xff"
#: How often the handshakes are counted again while none finishes (one may end unqueued: a
#: client's reset).
_RECOUNT = 0.1


def refuse_new_connections(sock: socket.socket) -> bool:
    """Have a TCP listener drop new connections' SYNs; handshakes under way still finish and
    those queued can still be accepted. Its peers try again a second later (a SYN's first
    retransmission). False where the kernel takes no filter."""
    import ctypes  # once, at a server's stop

    program = ctypes.create_string_buffer(_DROP_SYNS, len(_DROP_SYNS))
    fprog = struct.pack("HP", len(_DROP_SYNS) // 8, ctypes.addressof(program))
    try:  # struct sock_fprog: the program's length, then its address
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def count_handshakes(replies: bytes, port: int, local: bytes = b"") -> tuple[int, bool]:
    """The handshakes under way to ``port`` at address ``local`` (packed; b"": any, as a
    wildcard listener's) in a sock_diag dump's ``replies`` (its sockets in state SYN_RECV),
    and whether the dump ended there. :class:`OSError` for an error reply."""
    count, offset = 0, 0
    while offset + _NLMSG.size <= len(replies):
        length, kind, _, _, _ = _NLMSG.unpack_from(replies, offset)
        if kind == _NLMSG_DONE:
            return count, True
        if kind == _NLMSG_ERROR or length < _NLMSG.size or offset + length > len(replies):
            raise OSError("sock_diag answered with an error")
        if kind == _SOCK_DIAG_BY_FAMILY and length >= _NLMSG.size + _DIAG_MSG.size:
            family, state, _, _, sport, _, src = _DIAG_MSG.unpack_from(
                replies, offset + _NLMSG.size
            )
            if state == _TCP_SYN_RECV and sport == port and _ours(family, src, local):
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


def _local_address(sock: socket.socket) -> bytes:
    """A TCP listener's address, packed; b"" for a wildcard one (every address)."""
    host = sock.getsockname()[0].partition("%")[0]  # an IPv6 scope is no part of it
    packed = socket.inet_pton(sock.family, host)
    return b"" if not packed.strip(b"\0") else packed


def handshakes_under_way(port: int, local: bytes = b"") -> int:
    """:func:`count_handshakes` of this network namespace's TCP sockets, IPv4 and IPv6 (0
    for a family the kernel answers no such dump for: nothing is waited for)."""
    count = 0
    for family in (socket.AF_INET, socket.AF_INET6):
        try:
            count += _dump(family, port, local)
        except (OSError, AttributeError) as exc:  # a sandbox's (RestrictAddressFamilies=)
            log.debug("the handshakes under way cannot be counted: %s", exc)
    return count


def _dump(family: int, port: int, local: bytes) -> int:
    diag = _socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, _NETLINK_SOCK_DIAG)
    try:
        diag.settimeout(1.0)
        header = _NLMSG.pack(
            _NLMSG.size + _DIAG_REQ.size, _SOCK_DIAG_BY_FAMILY, _NLM_F_REQUEST_DUMP, family, 0
        )
        diag.send(header + _DIAG_REQ.pack(family, socket.IPPROTO_TCP, 0, 0, 1 << _TCP_SYN_RECV))
        count, done = 0, False
        while not done:  # the kernel answers in datagrams of at most 32 KiB
            found, done = count_handshakes(diag.recv(65536), port, local)
            count += found
        return count
    finally:
        diag.close()


class TakenQueue:
    """What the last one out accepted from a listener's queue before closing it, served as
    the listener's queue would be (:func:`~uwsgiapp.server.burst.accept_run`)."""

    def __init__(self, listener: Listener) -> None:
        self.spec = listener.spec
        self.allow = listener.allow
        self.sock = self  # accept_run calls sock._accept()
        self._taken: list[tuple[int, object]] = []
        self.take(listener.sock)

    def take(self, sock: socket.socket) -> bool:
        """Accept what waits in ``sock``'s queue (non-blocking) to be served later; False if
        an error other than the empty queue stopped it (EMFILE: what stays is reset)."""
        while True:
            try:
                self._taken.insert(0, sock._accept())  # type: ignore[attr-defined]
            except ConnectionAbortedError:  # its client gave up while it waited: the next
                continue
            except BlockingIOError:
                return True
            except OSError:
                return False

    def __len__(self) -> int:
        return len(self._taken)

    def _accept(self) -> tuple[int, object]:
        if not self._taken:
            raise BlockingIOError
        return self._taken.pop()


def last_out(
    listener: Listener, stopping: bool, wait: float = HANDSHAKES_WAIT
) -> TakenQueue | None:
    """A worker's drain is done with ``listener`` (``stopping``: the whole server stops): if
    this process is the last to hold it, have the socket drop new connections, wait (up to
    ``wait`` seconds) for the handshakes under way and take what queued, to be served once it
    is closed (served first, a long request held up the refusal of new connections). None:
    close it as it is. Not where the socket outlives the server (systemd's ``fd://``; a binary
    upgrade's pair is no stop of the whole server: ``stopping`` is false), nor on unix sockets
    (the master removed their files: a connect finds none)."""
    if not stopping or not listener.is_tcp or listener.spec.startswith("fd://"):
        return None
    if not (listener.let_go() and refuse_new_connections(listener.sock)):
        return None
    deadline = time.monotonic() + wait
    listener.last_one_out = True
    port, local = listener.sock.getsockname()[1], _local_address(listener.sock)
    under_way = handshakes_under_way(port, local)
    taken = TakenQueue(listener)
    if under_way:
        poller = unpatched.poll()  # eventlet's monkey-patching removes select.poll
        poller.register(listener.sock.fileno(), select.POLLIN)
        left = under_way
        # Counted again when one queues, or after a while (a dump walks every socket of the
        # network namespace: tens of ms with 70,000 in TIME_WAIT).
        while left and (remaining := deadline - time.monotonic()) > 0:
            if poller.poll(min(remaining, _RECOUNT) * 1000) and not taken.take(listener.sock):
                break
            left = handshakes_under_way(port, local)
        taken.take(listener.sock)  # one queued since the last take
    log.debug(
        "the last out of %s: new connections dropped, %d taken (%d handshakes were under way)",
        listener.spec,
        len(taken),
        under_way,
    )
    return taken
