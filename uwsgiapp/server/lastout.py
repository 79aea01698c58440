"""The last one out of a stopping TCP server (see :mod:`uwsgiapp.server.listeners`).

The last process to hold a listening socket closes the window between its last ``accept`` and
its ``close``, where a connection nginx had made (and sent a request on) was reset: a 502 that
nginx does not retry for a POST. It has the socket drop new connections' SYNs, waits for the
handshakes under way to finish (their last ACK still passes), takes the queue, closes the
socket, then serves what it took. A connect dropped is tried again by the kernel a second
later, finds the socket closed and is refused: nginx passes it to its next server.
"""

from __future__ import annotations

import contextlib
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
#: The longest the last one out waits for handshakes under way. Their last ACK comes within a
#: round trip; one lost is sent again with the client's data within its retransmission
#: timeout (200 ms at first). What is still under way then is reset, as before.
HANDSHAKES_WAIT = 1.0
_TABLES = ("/proc/net/tcp", "/proc/net/tcp6")
_SYN_RECV = "03"


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


def count_handshakes(table: str, port: int) -> int:
    """The handshakes under way to local ``port`` in a ``/proc/net/tcp`` or ``tcp6`` table:
    its rows in state SYN_RECV (a listener's whatever its address, and its peer's SYN answered,
    their last ACK not yet come)."""
    count = 0
    for row in table.splitlines()[1:]:
        fields = row.split()
        if len(fields) > 3 and fields[3] == _SYN_RECV and fields[1].endswith(f":{port:04X}"):
            count += 1
    return count


def handshakes_under_way(port: int) -> int:
    """:func:`count_handshakes` in this network namespace's tables (0 where they cannot be
    read: nothing is waited for)."""
    count = 0
    for path in _TABLES:
        with contextlib.suppress(OSError), open(path, encoding="ascii") as table:
            count += count_handshakes(table.read(), port)
    return count


class TakenQueue:
    """What the last one out accepted from a listener's queue before closing it, served as
    the listener's queue would be (:func:`~uwsgiapp.server.burst.accept_run`)."""

    def __init__(self, listener: Listener) -> None:
        self.spec = listener.spec
        self.allow = listener.allow
        self.sock = self  # accept_run calls sock._accept()
        self._taken: list[tuple[int, object]] = []
        self.take(listener.sock)

    def take(self, sock: socket.socket) -> None:
        """Accept what waits in ``sock``'s queue (non-blocking) to be served later."""
        while True:
            try:
                self._taken.insert(0, sock._accept())  # type: ignore[attr-defined]
            except ConnectionAbortedError:  # its client gave up while it waited: the next
                continue
            except OSError:  # empty (or EMFILE: what stays is reset, as before)
                break

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
    port = listener.sock.getsockname()[1]
    under_way = handshakes_under_way(port)
    taken = TakenQueue(listener)
    if under_way:
        poller = unpatched.poll()  # eventlet's monkey-patching removes select.poll
        poller.register(listener.sock.fileno(), select.POLLIN)
        deadline = time.monotonic() + wait
        while (left := deadline - time.monotonic()) > 0 and handshakes_under_way(port):
            poller.poll(min(left, 0.01) * 1000)
            taken.take(listener.sock)
        taken.take(listener.sock)  # one finished since the last take
    log.debug(
        "the last out of %s: new connections dropped, %d taken (%d handshakes were under way)",
        listener.spec,
        len(taken),
        under_way,
    )
    return taken
