"""Who holds the TCP port a start cannot bind: the processes with that listening socket open,
found through /proc (the kernel's socket tables and each process's descriptors). Most often a
worker of a master killed with SIGKILL, finishing its request: the start said "Address
already in use" beside "a stale pidfile", which read as a contradiction. Only what this user
may read of /proc is looked at; nothing found is "". (A unix socket's table names the path it
was bound by, ``/proc/self/fd/N/name`` for ours: not matched.)
"""

from __future__ import annotations

import os
import socket

__all__ = ["listening_inodes", "who_holds"]

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
    holders = _holders({f"socket:[{inode}]" for inode in inodes}) if inodes else []
    if not holders:
        return ""
    pid, name, parent = holders[0]
    said = f" (held by pid {pid}, {name!r}"
    if name.startswith("uwsgiapp worker") and not parent.startswith("uwsgiapp master"):
        return said + (
            ", whose master is gone: a worker of a master killed with SIGKILL, finishing its "
            "request; it exits after it, or stop it: kill "
            f"{' '.join(str(p) for p, _, _ in holders)})"
        )
    return said + ")"


def _holders(links: set[str]) -> list[tuple[int, str, str]]:
    """(pid, its command line, its parent's) of each process with one of ``links`` open."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if not any(os.readlink(f"/proc/{entry}/fd/{fd}") in links for fd in fds):
                continue
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rpartition(")")[2].split()[1])
            found.append((int(entry), _command(int(entry)), _command(ppid)))
        except (OSError, ValueError, IndexError):
            continue
    return sorted(found)


def _command(pid: int) -> str:
    """A process's command line (its title, for ours), "" if it cannot be read."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as fh:
            return fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""
