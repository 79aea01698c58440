"""The first one out of a stopping TCP server (uwsgiapp.server.lastout): what the first
process done draining a socket does with its queue, and with the other processes' copies. Real
sockets on loopback."""

from __future__ import annotations

import logging
import os
import socket
import struct
import threading
from collections.abc import Iterator

import pytest

from uwsgiapp.server import lastout
from uwsgiapp.server.lastout import (
    TakenQueue,
    attach_filter,
    being_taken,
    last_out,
    listening,
    refuse_new_connections,
)
from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.sockdiag import count_handshakes, handshakes_under_way


@pytest.fixture
def listener() -> Iterator[Listener]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)  # as a worker's
    taken = Listener(sock, f"127.0.0.1:{sock.getsockname()[1]}")
    yield taken
    taken.close()


def _connects(address: tuple[str, int], within: float) -> bool:
    client = socket.socket()
    client.settimeout(within)
    try:
        client.connect(address)
    except TimeoutError:
        return False
    finally:
        client.close()
    return True


def test_the_first_one_out_ends_the_listening_of_every_copy(listener: Listener) -> None:
    # Another worker still in a long request holds a copy (or a child the app forked does):
    # it kept the socket listening, and connections queued behind that request, to be reset
    # at the drain's end. The first one out shuts it down for every holder: refused at once.
    other = listener.sock.dup()  # the busy worker's copy
    try:
        taken = last_out(listener, stopping=True)
        assert isinstance(taken, TakenQueue) and len(taken) == 0
        listener.close(unlink=False)
        assert not listening(other)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(other.getsockname(), timeout=5)
        with pytest.raises(OSError):  # the busy worker's next accept: EINVAL, the stop
            other.accept()
        # Another worker's drain done after: nothing more to do (its copy is just closed).
        assert last_out(Listener(other, listener.spec), stopping=True) is None
    finally:
        other.close()


def test_the_first_one_out_drops_new_connections_and_takes_what_queued(
    listener: Listener,
) -> None:
    address = listener.sock.getsockname()
    queued = socket.create_connection(address, timeout=5)
    queued.sendall(b"sent")
    try:
        taken = last_out(listener, stopping=True)
        assert isinstance(taken, TakenQueue)
        assert not listening(listener.sock)
        with pytest.raises(ConnectionRefusedError):  # shut down: nginx tries its next server
            socket.create_connection(address, timeout=5)
        fd, _ = taken._accept()
        with socket.socket(fileno=fd) as conn:
            conn.settimeout(5)
            assert conn.recv(4) == b"sent"
        with pytest.raises(BlockingIOError):
            taken._accept()
    finally:
        queued.close()


@pytest.mark.parametrize("case", ["no stop", "fd://", "unix", "being taken", "shut down"])
def test_no_first_one_out_before_a_stop_nor_where_the_socket_outlives_the_server(
    listener: Listener, tmp_path: os.PathLike[str], case: str
) -> None:
    # A TERM sent to one worker (or to a binary upgrade's old master: the master does not
    # call that the server's stop); systemd's socket (its copy serves the next start); a unix
    # socket (its file is gone: a connect finds none); another worker's last out under way
    # (its filter attached: it shuts the socket down in a moment), or done.
    if case == "fd://":
        listener.spec = "fd://3"
    elif case == "unix":
        unix = socket.socket(socket.AF_UNIX)
        unix.bind(os.path.join(tmp_path, "u.sock"))
        unix.listen(1)
        listener.sock.close()
        listener.sock, listener.spec = unix, os.path.join(tmp_path, "u.sock")
    elif case == "being taken":
        assert refuse_new_connections(listener.sock)
    elif case == "shut down":
        listener.sock.shutdown(socket.SHUT_RDWR)
    queued = socket.create_connection(listener.sock.getsockname()) if case == "no stop" else None
    assert last_out(listener, stopping=case != "no stop") is None
    assert listening(listener.sock) == (case != "shut down")
    if queued is not None:  # left to be served
        listener.sock.accept()[0].close()
        queued.close()
    if case in ("no stop", "fd://"):
        assert _connects(listener.sock.getsockname(), 5)


def test_a_last_out_under_way_is_known_by_its_filter(listener: Listener) -> None:
    # What a busy worker's late refusal leaves alone: the first one out's program attached,
    # not another one: as long, as it starts, or far longer (read back through Python's own
    # getsockopt, whose buffer the kernel takes for a count of instructions, one of 1024
    # overran it: the interpreter aborted).
    assert not being_taken(listener.sock)
    assert attach_filter(listener.sock, [(0x06, 0, 0, 0xFFFFFFFF)] * 4)  # as long: keep all
    assert not being_taken(listener.sock)
    assert attach_filter(listener.sock, HOLD_LAST_ACKS)  # starts as it does
    assert not being_taken(listener.sock)
    assert attach_filter(listener.sock, [(0x06, 0, 0, 0xFFFFFFFF)] * 1024)
    for _ in range(50):  # an overrun shows as a crash of the heap, sooner or later
        assert not being_taken(listener.sock)
    assert refuse_new_connections(listener.sock)
    assert being_taken(listener.sock) and listening(listener.sock)


def test_where_no_filter_can_be_attached_the_first_one_out_still_shuts_it_down(
    listener: Listener, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A kernel (a sandbox) that takes no socket filter: nothing is waited for, but a busy
    # worker's copy must not keep the socket listening (connections queued behind it).
    monkeypatch.setattr(lastout, "refuse_new_connections", lambda sock: False)
    queued = socket.create_connection(listener.sock.getsockname(), timeout=5)
    try:
        taken = last_out(listener, stopping=True)
        assert isinstance(taken, TakenQueue) and len(taken) == 1
        assert not listening(listener.sock)
        os.close(taken._accept()[0])
    finally:
        queued.close()


def test_a_connect_the_first_one_out_dropped_is_refused_once_it_closed(
    listener: Listener,
) -> None:
    # What nginx then meets: a refused connect, which it passes on to its next server.
    address = listener.sock.getsockname()
    assert refuse_new_connections(listener.sock)
    late = socket.socket()
    late.settimeout(10)
    closer = threading.Timer(0.2, listener.close)
    closer.start()
    try:
        with pytest.raises(ConnectionRefusedError):
            late.connect(address)
    finally:
        closer.join()
        late.close()


def test_a_socket_a_binary_upgrade_shared_has_a_first_one_out_once_the_pair_ended(
    listener: Listener,
) -> None:
    # The new master's workers forked while both masters ran keep the mark of the pair: their
    # stops had no first one out until they were replaced.
    listener.shared = True
    assert isinstance(last_out(listener, stopping=True), TakenQueue)


class _Queue:
    """A listening socket's accept() results in turn (ECONNABORTED cannot be had at will)."""

    def __init__(self, *results: object) -> None:
        self.results = list(results)

    def _accept(self) -> object:
        result = self.results.pop(0)
        if isinstance(result, BaseException):
            raise result
        return result


def test_taking_the_queue_skips_a_connection_its_client_gave_up() -> None:
    queue = _Queue((5, "a"), ConnectionAbortedError(), (6, "b"), BlockingIOError(), (7, "c"))
    taken = TakenQueue(Listener(queue, "127.0.0.1:1"))  # type: ignore[arg-type]
    assert len(taken) == 2 and [taken._accept(), taken._accept()] == [(5, "a"), (6, "b")]
    assert queue.results == [(7, "c")]  # it stops at an empty queue
    # EMFILE: the queue stays readable, so the wait for handshakes stops rather than spin.
    full = _Queue(BlockingIOError(), (8, "d"), OSError(24, "Too many open files"))
    taken = TakenQueue(Listener(full, "127.0.0.1:1"))  # type: ignore[arg-type]
    assert not taken.take(full) and len(taken) == 1  # type: ignore[arg-type]


#: Drop what is no SYN (ldb [13]; jset #SYN; ret #0; ret #-1): handshakes stay under way.
HOLD_LAST_ACKS = [(0x30, 0, 0, 13), (0x45, 1, 0, 0x02), (0x06, 0, 0, 0), (0x06, 0, 0, 0xFFFFFFFF)]


def _under_way(listener: Listener) -> socket.socket:
    """A client whose handshake with ``listener`` stays under way (its last ACK dropped)."""
    assert attach_filter(listener.sock, HOLD_LAST_ACKS)
    address = listener.sock.getsockname()
    client = socket.create_connection(address, timeout=5)
    assert handshakes_under_way(address[1]) == 1
    return client


def test_a_handshake_under_way_as_the_first_one_out_drops_new_connections_is_served(
    listener: Listener, caplog: pytest.LogCaptureFixture
) -> None:
    # A handshake's last ACK held back (the test's filter drops all but SYNs): the client counts
    # its connection made and sends its request, while the server still waits for that ACK.
    # It was reset after the close (a POST's 502 in nginx); its data sent again (within the
    # client's 200 ms retransmission timeout) now passes the first one out's filter, and is
    # taken before the close.
    caplog.set_level(logging.INFO, "uwsgiapp.error")
    under_way = _under_way(listener)
    under_way.sendall(b"sent")
    try:
        taken = last_out(listener, stopping=True)
        assert isinstance(taken, TakenQueue) and len(taken) == 1
        assert handshakes_under_way(under_way.getpeername()[1]) == 0
        assert "still under way" not in caplog.text
        listener.close()
        fd, _ = taken._accept()
        with socket.socket(fileno=fd) as conn:
            conn.settimeout(5)
            assert conn.recv(4) == b"sent"
            conn.sendall(b"answer")
        assert under_way.recv(6) == b"answer"
    finally:
        under_way.close()


def _last_out_as_it_sends(
    listener: Listener, under_way: socket.socket, wait: float
) -> TakenQueue | None:
    """The last one out of ``listener``, while ``under_way`` sends (50 ms in: its data ends
    its handshake); ``under_way`` closed after."""
    sends = threading.Timer(0.05, under_way.sendall, (b"sent",))
    sends.start()
    try:
        return last_out(listener, stopping=True, wait=wait)
    finally:
        sends.join()
        under_way.close()


def test_a_handshake_that_never_finishes_is_waited_for_no_longer_than_asked(
    listener: Listener, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # One that never finishes (its client gone silent; a real one is sent its SYN-ACK again
    # a second later, which a loaded machine may reach first): one is counted as under way
    # whatever comes. The wait still ends, with the one that finished meanwhile taken.
    caplog.set_level(logging.INFO, "uwsgiapp.error")
    under_way = _under_way(listener)  # this one finishes once it sends (its data passes)
    monkeypatch.setattr(lastout, "handshakes_under_way", lambda port, local: 1)
    taken = _last_out_as_it_sends(listener, under_way, wait=0.5)
    assert isinstance(taken, TakenQueue) and len(taken) == 1
    assert (
        f"{listener.spec} closes for the stop: 1 of 1 handshakes still under way after 0.5 s are "
        "reset as it is shut down"
    ) in caplog.text


def test_a_wait_that_accept_ended_says_so(
    listener: Listener, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    # EMFILE once a connection queued: the wait ends at once, and the line gives that cause,
    # not the whole wait's.
    caplog.set_level(logging.INFO, "uwsgiapp.error")
    under_way = _under_way(listener)
    monkeypatch.setattr(lastout, "handshakes_under_way", lambda port, local: 1)
    take = TakenQueue.take
    calls: list[int] = []

    def fails_once_queued(self: TakenQueue, sock: socket.socket) -> bool:
        calls.append(1)
        if len(calls) == 2:
            self.error = OSError(24, "Too many open files")
            return False
        return take(self, sock)

    monkeypatch.setattr(TakenQueue, "take", fails_once_queued)
    taken = _last_out_as_it_sends(listener, under_way, wait=5)
    assert len(calls) == 3  # the first take, the failed one, the final one: no wait after it
    assert isinstance(taken, TakenQueue) and len(taken) == 1
    assert (
        f"{listener.spec} closes for the stop: 1 of 1 handshakes still under way as accept "
        "failed ([Errno 24] Too many open files) are reset as it is shut down"
    ) in caplog.text


def _reply(state: int, sport: int, src: str = "127.0.0.1", kind: int = 20) -> bytes:
    """One message of a sock_diag dump: nlmsghdr, then inet_diag_msg (72 bytes; its first
    read: family, state, timer, retrans, the local port and the remote one in network order,
    the local address)."""
    family = socket.AF_INET6 if ":" in src else socket.AF_INET
    address = socket.inet_pton(family, src).ljust(16, b"\0")
    body = struct.pack(">BBBBHH16s", family, state, 0, 0, sport, 40000, address) + bytes(48)
    return struct.pack("=IHHII", 16 + len(body), kind, 2, 1, 0) + body


def test_the_handshakes_under_way_are_the_syn_recv_sockets_of_the_listeners_address() -> None:
    # Port 3035: two under way; not one in another state, nor another port's. The dump goes
    # on until its DONE message.
    dump = _reply(3, 3035) + _reply(3, 3035, "10.0.0.2") + _reply(1, 3035) + _reply(3, 7131)
    assert count_handshakes(dump, 3035) == (2, False)  # a wildcard listener: any address
    done = struct.pack("=IHHIIi", 20, 3, 2, 1, 0, 0)
    assert count_handshakes(dump + done, 7131) == (1, True)
    # A listener on one address: another's handshakes on the same port are not waited for.
    assert count_handshakes(dump, 3035, socket.inet_aton("10.0.0.2")) == (1, False)
    # To a v4-mapped IPv6 listener: the kernel says it in IPv6 terms.
    v4_mapped = socket.inet_pton(socket.AF_INET6, "::ffff:10.0.0.2")
    mapped = _reply(3, 3035, "::ffff:10.0.0.2") + _reply(3, 3035, "::ffff:10.0.0.3")
    assert count_handshakes(dump + mapped, 3035, v4_mapped) == (1, False)
    # An IPv4 one is no IPv6 listener's, whatever its first bytes.
    assert count_handshakes(dump, 3035, socket.inet_aton("10.0.0.2") + bytes(12)) == (0, False)
    six = _reply(3, 3035, "::1") + _reply(3, 3035, "fe80::1")
    assert count_handshakes(six, 3035, socket.inet_pton(socket.AF_INET6, "::1")) == (1, False)
    assert count_handshakes(b"", 3035) == (0, False)
    with pytest.raises(OSError):
        count_handshakes(_reply(3, 3035, kind=2), 3035)


def test_a_handshake_to_another_address_on_the_same_port_is_not_waited_for(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Another server's on 127.0.0.2:P under way: the last out of 127.0.0.1:P waited its whole
    # second for it.
    other = socket.socket()
    other.bind(("127.0.0.2", 0))
    other.listen(8)
    port = other.getsockname()[1]
    ours = socket.socket()
    ours.bind(("127.0.0.1", port))
    ours.listen(8)
    ours.setblocking(False)
    listener = Listener(ours, f"127.0.0.1:{port}")
    held = Listener(other, f"127.0.0.2:{port}")
    try:
        client = _under_way(held)
        assert handshakes_under_way(port, socket.inet_aton("127.0.0.1")) == 0
        counted: list[int] = []
        real = lastout.handshakes_under_way

        def counting(port: int, local: bytes) -> int:
            counted.append(real(port, local))
            return counted[-1]

        monkeypatch.setattr(lastout, "handshakes_under_way", counting)
        assert isinstance(last_out(listener, stopping=True), TakenQueue)
        assert counted == [0]  # counted once: none of ours, so no wait
        client.close()
    finally:
        listener.close()
        held.close()
