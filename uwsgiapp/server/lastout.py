"""The first one out of a stopping TCP server (see :mod:`uwsgiapp.server.listeners`).

The first process (or request thread) whose drain finds a listening socket's queue empty ends
its listening for every process that holds it: one still in a long request (or a child the app
forked) kept the socket listening, and connections queued behind that request until it ended
or the drain's time did (then reset: a 502 that nginx does not retry for a POST). It closes
the window between its last ``accept`` and the end too, where a connection nginx had made (and
sent a request on) was reset: it has the socket drop new connections' SYNs, waits for the
handshakes under way to finish (their last ACK still passes), takes the queue, shuts the
socket down, then serves what it took. A connect dropped is tried again by the kernel a second
later, finds the socket shut and is refused: nginx passes it to its next server.

Not waited for: a handshake the kernel answered with a SYN cookie (its SYN queue overflowed)
leaves no socket to count, and one under way as the socket closes is reset, as before.
"""

from __future__ import annotations

import errno
import logging
import select
import socket
import struct
import time
from collections import deque
from collections.abc import Sequence

from uwsgiapp import unpatched
from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.sockdiag import handshakes_under_way

log = logging.getLogger("uwsgiapp.error")

_SO_ATTACH_FILTER = getattr(socket, "SO_ATTACH_FILTER", 26)
#: getsockopt's name for reading the filter back (the same number as the attach).
_SO_GET_FILTER = _SO_ATTACH_FILTER
_SO_ACCEPTCONN = getattr(socket, "SO_ACCEPTCONN", 30)
#: A classic BPF program, run on each packet to the listener with the TCP header at offset 0:
#: drop a packet with SYN set (a new connection); keep the rest (a handshake's last ACK, or the
#: data that carries it: a connection its client already counts as made).
_DROP_SYNS = (
    (0x30, 0, 0, 13),  # ldb [13]: the flags
    (0x45, 0, 1, 0x02),  # jset #SYN: to the next, else skip it
    (0x06, 0, 0, 0),  # ret #0: drop
    (0x06, 0, 0, 0xFFFFFFFF),  # ret #-1: keep all of it
)
#: The longest the first one out waits for handshakes under way, from the filter's attach. Their
#: last ACK comes within a round trip; one lost is sent again with the client's data within its
#: retransmission timeout (200 ms at first). Under the kernel's first SYN retry (1 s), so that
#: a connect dropped meanwhile is refused at that retry. What is still under way is reset.
HANDSHAKES_WAIT = 0.6
#: How often the handshakes are counted again while none finishes (one may end unqueued: a
#: client's reset).
_RECOUNT = 0.1


def refuse_new_connections(sock: socket.socket) -> bool:
    """Have a TCP listener drop new connections' SYNs; handshakes under way still finish and
    those queued can still be accepted. Its peers try again a second later (a SYN's first
    retransmission). False where the kernel takes no filter."""
    return attach_filter(sock, _DROP_SYNS)


def listening(sock: socket.socket) -> bool:
    """Whether ``sock`` still listens (no process shut it down; not closed)."""
    try:
        return bool(sock.getsockopt(socket.SOL_SOCKET, _SO_ACCEPTCONN))
    except OSError:
        return False


def being_taken(sock: socket.socket) -> bool:
    """Whether a process's :func:`last_out` is taking ``sock``'s queue: the filter that drops
    new connections is attached (nothing else filters our sockets), and it shuts the socket
    down in a moment."""
    import ctypes  # at a server's stop

    # Not socket.getsockopt: the kernel takes the buffer's length for a count of instructions,
    # and copies a longer program (another's) past the end of Python's buffer.
    getsockopt = ctypes.CDLL(None, use_errno=True).getsockopt
    fd, level = sock.fileno(), socket.SOL_SOCKET
    count = ctypes.c_uint(0)  # 0: the kernel gives the program's length, and copies nothing
    if fd < 0 or getsockopt(fd, level, _SO_GET_FILTER, None, ctypes.byref(count)) != 0:
        return False
    ours = _program(_DROP_SYNS)
    if count.value != len(_DROP_SYNS):
        return False
    buffer = ctypes.create_string_buffer(len(ours))
    # As many instructions as ours: a longer one attached meanwhile is refused (EINVAL).
    if getsockopt(fd, level, _SO_GET_FILTER, buffer, ctypes.byref(count)) != 0:
        return False
    return buffer.raw == ours


def _program(program: Sequence[tuple[int, int, int, int]]) -> bytes:
    """A classic BPF program's instructions as the kernel takes them (struct sock_filter)."""
    return b"".join(struct.pack("HBBI", *insn) for insn in program)


def attach_filter(sock: socket.socket, program: Sequence[tuple[int, int, int, int]]) -> bool:
    """Attach a classic BPF ``program`` (its instructions: code, jt, jf, k) to ``sock``,
    replacing any before it; False where the kernel takes no filter."""
    import ctypes  # once, at a server's stop

    code = _program(program)
    buffer = ctypes.create_string_buffer(code, len(code))
    fprog = struct.pack("HP", len(program), ctypes.addressof(buffer))
    try:  # struct sock_fprog: the program's length, then its address
        sock.setsockopt(socket.SOL_SOCKET, _SO_ATTACH_FILTER, fprog)
    except OSError:
        return False
    return True


def _local_address(sock: socket.socket) -> tuple[int, bytes]:
    """A TCP listener's port and address, packed; b"" for a wildcard one (every address)."""
    try:
        host, port = sock.getsockname()[:2]
    except OSError:  # no port to count for: nothing is waited for
        return 0, b""
    try:
        packed = socket.inet_pton(sock.family, host.partition("%")[0])  # a scope is no part
    except (OSError, ValueError, TypeError):  # unknown: any address (a longer wait at most)
        return port, b""
    return port, b"" if not packed.strip(b"\0") else packed


class TakenQueue:
    """What the first one out accepted from a listener's queue before shutting it down, served as
    the listener's queue would be (:func:`~uwsgiapp.server.burst.accept_run`)."""

    def __init__(self, listener: Listener) -> None:
        self.spec = listener.spec
        self.allow = listener.allow
        self.sock = self  # accept_run calls sock._accept()
        self._taken: deque[tuple[int, object]] = deque()
        self.error: OSError | None = None
        #: Another process shut the socket down meanwhile (its own last out took the rest).
        self.shut = False
        self.take(listener.sock)

    def take(self, sock: socket.socket) -> bool:
        """Accept what waits in ``sock``'s queue (non-blocking) to be served later; False if
        an error other than the empty queue stopped it (EMFILE: what stays is reset; EINVAL:
        another process shut the socket down, having taken what queued)."""
        while True:
            try:
                self._taken.appendleft(sock._accept())  # type: ignore[attr-defined]
            except ConnectionAbortedError:  # its client gave up while it waited: the next
                continue
            except BlockingIOError:
                return True
            except OSError as error:
                if error.errno == errno.EINVAL:
                    self.shut = True
                else:
                    self.error = error
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
    """A worker's (or request thread's) drain is done with ``listener`` (``stopping``: the
    whole server stops): unless another process did already, have the socket drop new
    connections, wait (up to ``wait`` seconds) for the handshakes under way, take what queued
    and shut the socket down for every process that holds it; what was taken is served next
    (served first, a long request held up the refusal of new connections). None: close this
    copy as it is. Not where the socket outlives the server (systemd's ``fd://``; a binary
    upgrade's pair is no stop of the whole server: ``stopping`` is false), nor on unix sockets
    (the master removed their files: a connect finds none)."""
    if not stopping or not listener.is_tcp or listener.spec.startswith("fd://"):
        return None
    sock = listener.sock
    if not listening(sock) or being_taken(sock):
        return None
    # Where the kernel takes no filter, new connections keep coming: none is waited for.
    dropping = refuse_new_connections(sock)
    deadline = time.monotonic() + wait
    port, local = _local_address(listener.sock)
    under_way = handshakes_under_way(port, local) if port and dropping else 0
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
        if left and not taken.shut:
            log.info(
                "%s closes for the stop: %d of %d handshakes still under way %s are reset as "
                "it is shut down (their clients, if nginx, get a 502 for a request sent on them)",
                listener.spec,
                left,
                under_way,
                f"after {wait:g} s" if taken.error is None else f"as accept failed ({taken.error})",
            )
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # by another process meanwhile, which says so
        return taken
    log.debug(
        "%s closes for the stop: new connections %s, %d taken (%d handshakes were under "
        "way), shut down for every process",
        listener.spec,
        "dropped" if dropping else "not dropped (no socket filter)",
        len(taken),
        under_way,
    )
    return taken
