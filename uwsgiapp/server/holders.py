"""Who holds the TCP port or the unix socket a start cannot bind: the processes with that
listening socket open, found through /proc (the kernel's TCP tables, each process's
descriptors) and, for a unix socket, netlink's sock_diag (which listener is bound to the file:
/proc/net/unix names the path it was bound by, ``/proc/self/fd/N/name`` for ours). Most often
a worker of a master killed with SIGKILL, finishing its request: the start said "Address
already in use" or "another server is listening on it" beside "a stale pidfile", which read as
a contradiction. Only what this user may read is looked at; nothing found is "".
"""

from __future__ import annotations

import os
import socket
import struct
import time

from uwsgiapp.server.sockdiag import (
    _NLMSGHDR,
    _RTATTR,
    _UNIX_DIAG_MSG,
    _UNIX_DIAG_REQ,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    SOCK_DIAG_BY_FAMILY,
    TCP_LISTEN,
    _message,
    diag_socket,
)

__all__ = ["listening_inodes", "unix_listeners", "who_holds", "who_holds_file"]

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column
_ANY = frozenset({"0.0.0.0", "::"})


def _address(hex_ip: str) -> str:
    """An address of /proc/net/tcp (8 hex digits) or tcp6 (32: four words, each in the host's
    byte order, little-endian here), as text."""
    raw = bytes.fromhex(hex_ip)
    if len(raw) == 4:
        return socket.inet_ntop(socket.AF_INET, raw[::-1])
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, 16, 4))
    return socket.inet_ntop(socket.AF_INET6, words)


def listening_inodes(table: str, port: int, host: str = "") -> set[int]:
    """The inodes of the sockets listening on ``port`` in ``table`` (the text of /proc/net/tcp
    or /proc/net/tcp6) that a bind to ``host`` meets: on that address or any ("" for every
    one)."""
    found: set[int] = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        try:
            if len(fields) <= 9 or fields[3] != _LISTEN:
                continue
            ip, _, hex_port = fields[1].rpartition(":")
            address = _address(ip).removeprefix("::ffff:")
            meets = not host or host in _ANY or address in _ANY or address == host
            if int(hex_port, 16) == port and meets:
                found.add(int(fields[9]))
        except ValueError:
            continue
    return found


def who_holds(port: int, host: str = "") -> str:
    """What a bind's error adds: the processes holding a socket listening on TCP ``port``
    where a bind to ``host`` meets it, "" when none can be seen."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii", errors="replace") as fh:
                inodes |= listening_inodes(fh.read(), port, host)
        except OSError:
            continue
    return _said(inodes)


UDIAG_SHOW_VFS = 0x02
UNIX_DIAG_VFS = 1
_VFS = struct.Struct("=II")  # struct unix_diag_vfs: the file's inode, its device


def unix_listeners(replies: bytes, file: tuple[int, int]) -> tuple[set[int], bool]:
    """The socket inodes of the unix listeners bound to ``file`` (its inode, and its device in
    the kernel's encoding: an inode number alone is another file's on another filesystem) in
    a sock_diag dump's ``replies`` (UDIAG_SHOW_VFS), and whether the dump ended there."""
    found: set[int] = set()
    offset = 0
    while offset + _NLMSGHDR.size <= len(replies):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(replies, offset)
        if length < _NLMSGHDR.size or kind in (NLMSG_DONE, NLMSG_ERROR):
            return found, True
        end, body = min(offset + length, len(replies)), offset + _NLMSGHDR.size
        if kind == SOCK_DIAG_BY_FAMILY and body + _UNIX_DIAG_MSG.size <= end:
            inode = _UNIX_DIAG_MSG.unpack_from(replies, body)[4]
            if _vfs(replies, body + _UNIX_DIAG_MSG.size, end) == file:
                found.add(inode)
        offset += (length + 3) & ~3
    return found, False


def _vfs(replies: bytes, at: int, end: int) -> tuple[int, int] | None:
    """The (inode, device) of a message's UNIX_DIAG_VFS attribute (from ``at`` to ``end``)."""
    while at + _RTATTR.size <= end:
        size, attr = _RTATTR.unpack_from(replies, at)
        if size < _RTATTR.size:
            return None
        if attr == UNIX_DIAG_VFS and at + _RTATTR.size + _VFS.size <= end:
            ino, dev = _VFS.unpack_from(replies, at + _RTATTR.size)
            return int(ino), int(dev)
        at += (size + 3) & ~3
    return None


def who_holds_file(st: os.stat_result) -> str:
    """What a bind's error adds: the processes holding the unix listener bound to the socket
    file ``st`` describes, "" when none can be seen."""
    file = (st.st_ino, (os.major(st.st_dev) << 20) | os.minor(st.st_dev))  # the kernel's dev_t
    request = _UNIX_DIAG_REQ.pack(socket.AF_UNIX, 0, 0, 1 << TCP_LISTEN, 0, UDIAG_SHOW_VFS, 0, 0)
    inodes: set[int] = set()
    try:
        with diag_socket() as diag:
            diag.send(_message(request, NLM_F_REQUEST | NLM_F_DUMP))
            done = False
            while not done:
                found, done = unix_listeners(diag.recv(65536), file)
                inodes |= found
    except (OSError, AttributeError):  # no netlink, no unix_diag: nothing to say
        return ""
    return _said(inodes)


def _said(inodes: set[int]) -> str:
    """The words for the processes holding one of the sockets ``inodes``."""
    holders = _holders({f"socket:[{inode}]" for inode in inodes}) if inodes else []
    if not holders:
        return ""
    orphans = [h for h in holders if _orphan(h)]
    pid, uid, name, _ = (orphans or holders)[0]
    said = f" (held by pid {pid}, uid {uid}, {name!r}"
    if orphans:  # only those: a live server's master and workers hold it too
        return said + (
            ", whose master is gone: a worker of a master killed with SIGKILL, finishing its "
            f"request; it exits after it, or stop it: kill {' '.join(str(h[0]) for h in orphans)})"
        )
    return said + ")"


def _orphan(holder: tuple[int, int, str, str]) -> bool:
    """A worker of ours whose parent is no master (a killed master's, finishing a request),
    running as this process's user or one it may have dropped to (root starting it)."""
    _, uid, name, parent = holder
    ours = uid == os.geteuid() or os.geteuid() == 0
    return ours and name.startswith("uwsgiapp worker") and not parent.startswith("uwsgiapp master")


#: The scan's bounds: a local user holding many descriptors must not stall a start.
SCAN_SECONDS = 1.0
TITLE_CHARS = 200


def _holders(links: set[str]) -> list[tuple[int, int, str, str]]:
    """(pid, its uid, its command line, its parent's) of each process with one of ``links``
    open, as many as :data:`SCAN_SECONDS` finds."""
    found = []
    deadline = time.monotonic() + SCAN_SECONDS
    for entry in os.listdir("/proc"):
        if time.monotonic() > deadline:
            break
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if not any(os.readlink(f"/proc/{entry}/fd/{fd}") in links for fd in fds):
                continue
            uid = os.stat(f"/proc/{entry}").st_uid
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rpartition(")")[2].split()[1])
            found.append((int(entry), uid, _command(int(entry)), _command(ppid)))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(found)


def _command(pid: int) -> str:
    """A process's command line (its title, for ours), "" if it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            title = fh.read(4 * TITLE_CHARS).replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""
    return title.strip()[:TITLE_CHARS]
