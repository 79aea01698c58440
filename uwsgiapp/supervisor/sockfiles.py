"""The master's look at its unix socket files, every few seconds: one removed while it serves
is said.

A cleaner of old files in ``/tmp`` (systemd-tmpfiles' ten days, tmpreaper), a deploy script's
``rm``, a second server started on the same path with its own "stale file" removal: the master
still listens, but nginx's connect finds no file (502, "No such file or directory" in nginx's
log) and this log said nothing. One WARNING line per socket says what happened and what to
do; :func:`socket_file_state` decides, pure but for its ``lstat``.
"""

from __future__ import annotations

import logging
import os

from uwsgiapp.server.listeners import Listener
from uwsgiapp.server.safefiles import UnsafeFileError, in_parent

__all__ = ["SOCKET_FILE_CHECK", "SocketFiles", "socket_file_state"]

log = logging.getLogger("uwsgiapp.error")

#: Seconds between two looks at the socket files.
SOCKET_FILE_CHECK = 5.0


def socket_file_state(listener: Listener) -> str:
    """``"ours"``, ``"gone"`` (no file at its path), ``"replaced"`` (another file there), or
    ``""`` for a listener without a file of ours (TCP, inherited, shared with another master,
    closed) or one that cannot be looked at now. The path is walked, as its bind walked it."""
    if not listener.path or listener.inode is None or listener.shared:
        return ""
    if listener.sock.fileno() < 0:  # closed by a stop, which removed its file
        return ""
    try:
        with in_parent(listener.path) as (parent, name):
            st = os.lstat(name, dir_fd=parent)
    except FileNotFoundError:
        return "gone"
    except (OSError, UnsafeFileError):  # a directory on the way gone or changed: say nothing
        return ""
    return "ours" if (st.st_dev, st.st_ino) == listener.inode else "replaced"


class SocketFiles:
    """Looks at ``listeners``' files once every :data:`SOCKET_FILE_CHECK` seconds; says each
    one that went, once."""

    def __init__(self, listeners: list[Listener]) -> None:
        self._listeners = listeners
        self._next = 0.0
        self._said: set[str] = set()

    def tick(self, now: float) -> None:
        """The master's loop came round (``now`` monotonic): look if it is time."""
        if now < self._next:
            return
        self._next = now + SOCKET_FILE_CHECK
        for listener in self._listeners:
            state = socket_file_state(listener)
            if state in ("gone", "replaced") and listener.path not in self._said:
                self._said.add(listener.path)
                log.warning("%s", _line(listener.path, state))


def _line(path: str, state: str) -> str:
    what = (
        "was removed (a cleaner of old files in /tmp, such as systemd-tmpfiles, or by hand?)"
        if state == "gone"
        else "was replaced by another file (removed, then bound by another server?)"
    )
    return (
        f"the socket file {path} {what}: this server still listens, but nginx cannot reach it "
        "there (502, 'No such file or directory' or 'Connection refused' in nginx's log); "
        "restart it to bind the file again (a HUP keeps the socket), and keep sockets out of "
        "/tmp (/run/app, systemd's RuntimeDirectory=)"
    )
