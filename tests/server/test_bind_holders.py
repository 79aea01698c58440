"""A start that cannot bind its TCP port names who holds it: after a master killed with
SIGKILL, its worker finishing a request held the port, and the start said "Address already
in use" beside "a stale pidfile", which read as a contradiction."""

from __future__ import annotations

import os
import signal
import socket
import struct
import threading
from pathlib import Path

import pytest
from support.procs import Server, free_port, short_tmpdir, wait_until, worker_pids

from uwsgiapp.client import parse_address, request
from uwsgiapp.server.holders import UNIX_DIAG_VFS, listening_inodes, unix_listeners
from uwsgiapp.server.sockdiag import (
    _NLMSGHDR,
    _RTATTR,
    _UNIX_DIAG_MSG,
    NLMSG_DONE,
    SOCK_DIAG_BY_FAMILY,
)

TCP_TABLE = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:2513 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4242 1
   1: 0100007F:2513 0100007F:9C40 01 00000000:00000000 00:00000000 00000000     0        0 4243 1
   2: 0100007F:2514 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 4244 1
"""


TCP6_TABLE = """\
  sl  local_address                         remote_address                        st tx rx
   0: 00000000000000000000000000000000:2513 00000000000000000000000000000000:0000 0A 0 0 0 0 0 77
"""


def _unix_dump(*sockets: tuple[int, int, int]) -> bytes:
    """A sock_diag dump's replies: a message per (socket inode, file inode, file device)."""
    out = b""
    for inode, ino, dev in sockets:
        body = _UNIX_DIAG_MSG.pack(socket.AF_UNIX, socket.SOCK_STREAM, 10, 0, inode, 0, 0)
        body += _RTATTR.pack(_RTATTR.size + 8, UNIX_DIAG_VFS) + struct.pack("=II", ino, dev)
        out += _NLMSGHDR.pack(_NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, 2, 1, 0) + body
    return out + _NLMSGHDR.pack(_NLMSGHDR.size, NLMSG_DONE, 2, 1, 0)


def test_a_unix_listener_is_the_files_by_inode_and_device() -> None:
    # The inode alone named a local user's listener on another filesystem (tmpfs inodes are
    # easy to predict) as the holder, and its "kill" advice the live server (review).
    found, done = unix_listeners(_unix_dump((70, 5007, 21), (71, 5007, 22)), (5007, 22))
    assert (found, done) == ({71}, True)


def test_the_listening_sockets_of_a_port_are_read_from_the_table() -> None:
    assert listening_inodes(TCP_TABLE, 0x2513) == {4242}  # not the connection on it
    assert listening_inodes(TCP_TABLE, 0x2513, "127.0.0.1") == {4242}
    assert listening_inodes(TCP_TABLE, 0x2513, "10.0.0.7") == set()  # another address's
    assert listening_inodes(TCP_TABLE, 0x2513, "0.0.0.0") == {4242}
    assert listening_inodes(TCP6_TABLE, 0x2513, "10.0.0.7") == {77}  # [::] meets any bind
    assert listening_inodes(TCP_TABLE, 80) == set()
    assert listening_inodes("header only\n  0: garbage", 0x2513) == set()


@pytest.mark.parametrize("transport", ["tcp", "unix"])
def test_a_socket_held_by_a_killed_masters_worker_is_said(tmp_path: Path, transport: str) -> None:
    # A unix socket's holder is found through sock_diag (the file's inode): /proc/net/unix
    # names the path it was bound by, /proc/self/fd/N/app.sock.
    address = f"127.0.0.1:{free_port()}" if transport == "tcp" else f"{short_tmpdir()}/app.sock"
    marker = tmp_path / "in-request"
    first = Server(tmp_path / "first", "supervisor_app:app", workers=1, socket=address).start()
    second = Server(tmp_path / "second", "supervisor_app:app", workers=1, socket=address)
    orphan = 0
    path = f"/sleep?4&{marker}"
    asking = threading.Thread(target=lambda: request(parse_address(address), path, timeout=10))
    try:
        wait_until(lambda: len(worker_pids(first.pid)) == 1, 10, "the worker")
        (orphan,) = worker_pids(first.pid)
        asking.start()
        wait_until(marker.exists, 10, "the worker in its request")
        first.signal(signal.SIGKILL)
        first.wait(5)
        second.start(wait=False)
        assert second.wait(15) == 3, second.log()
    finally:
        first.stop()  # killed already, unless the test failed before
        second.stop()
        if asking.is_alive():
            asking.join(10)
        if orphan and os.path.exists(f"/proc/{orphan}"):  # ours: the first server's worker
            os.kill(orphan, signal.SIGKILL)
    said = second.log()
    refused = "cannot bind: Address already in use" if transport == "tcp" else "listening on it"
    assert f"{refused} (held by pid " in said, said
    assert f"held by pid {orphan}, uid {os.geteuid()}, 'uwsgiapp worker 1" in said, said
    assert said.rstrip().endswith(f"or stop it: kill {orphan})"), said  # it alone
    assert "whose master is gone: a worker of a master killed with SIGKILL" in said, said
