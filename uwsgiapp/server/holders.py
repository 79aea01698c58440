"""Who holds the TCP port a start cannot bind: the processes with that listening socket open,
found through /proc (the kernel's socket table and each process's descriptors). Most often a
worker of a master killed with SIGKILL, finishing its request: the start said "Address
already in use" beside "a stale pidfile", which read as a contradiction. Only what this user
may read of /proc is looked at; nothing found is "". (A unix socket's table names the path it
was bound by, ``/proc/self/fd/N/name`` for ours: not matched.)
"""

from __future__ import annotations

import os

__all__ = ["listening_inodes", "who_holds"]

_LISTEN = "0A"  # TCP_LISTEN in /proc/net/tcp's st column


def listening_inodes(table: str, port: int) -> set[int]:
    """The inodes of the sockets listening on ``port`` in ``table`` (the text of /proc/net/tcp
    or /proc/net/tcp6)."""
    found: set[int] = set()
    for line in table.splitlines()[1:]:
        fields = line.split()
        try:
            listening = len(fields) > 9 and fields[3] == _LISTEN
            if listening and int(fields[1].rpartition(":")[2], 16) == port:
                found.add(int(fields[9]))
        except ValueError:
            continue
    return found


def who_holds(port: int) -> str:
    """What a bind's error adds: the processes holding the socket listening on TCP ``port``,
    "" when none can be seen."""
    inodes: set[int] = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table, encoding="ascii", errors="replace") as fh:
                inodes |= listening_inodes(fh.read(), port)
        except OSError:
            continue
    holders = _holders({f"socket:[{inode}]" for inode in inodes}) if inodes else []
    if not holders:
        return ""
    pid, name, ppid = holders[0]
    said = f" (held by pid {pid}, {name!r}"
    if ppid == 1 and name.startswith("uwsgiapp worker"):
        return said + (
            ", whose master is gone: a worker of a master killed with SIGKILL, finishing its "
            "request; it exits after it, or stop it: kill "
            f"{' '.join(str(p) for p, _, _ in holders)})"
        )
    return said + ")"


def _holders(links: set[str]) -> list[tuple[int, str, int]]:
    """(pid, its command line, its parent's pid) of each process with one of ``links`` open."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
            if not any(os.readlink(f"/proc/{entry}/fd/{fd}") in links for fd in fds):
                continue
            with open(f"/proc/{entry}/cmdline", "rb") as fh:
                name = fh.read().replace(b"\0", b" ").decode(errors="replace").strip()
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rpartition(")")[2].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        found.append((int(entry), name, ppid))
    return sorted(found)
