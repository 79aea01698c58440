"""systemd's notify protocol, for ``Type=notify`` units (uWSGI's packaged units use it).

Under such a unit systemd sets ``NOTIFY_SOCKET`` and waits for ``READY=1`` before it counts the
service as started (and starts what is ordered after it); without one it kills the service at
``TimeoutStartSec``. The master sends ``READY=1`` once its first worker serves, and
``STOPPING=1`` when it begins to stop. A HUP sends ``RELOADING=1`` and, once the new workers
serve (or the reload failed and the old ones go on), ``READY=1`` again: what
``Type=notify-reload`` units wait for. The socket is connected at start-up, before
``--uid/--gid`` (permission to send is checked then); nothing happens without the variable.
While two masters serve (a binary upgrade, ``USR2``), neither says ``STOPPING=1``: the one
that stops is not the service's end; a new master that stops gives ``MAINPID`` back to the old.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import time

__all__ = ["Notifier", "notify_address"]

log = logging.getLogger("uwsgiapp.error")


def notify_address(value: str | None) -> str | None:
    """The address ``NOTIFY_SOCKET`` names: a path, or ``@name`` for an abstract socket
    (None: unset, or a kind this does not speak, such as ``vsock:``)."""
    if not value:
        return None
    if value.startswith("@"):
        return "\0" + value[1:]
    return value if value.startswith("/") else None


class Notifier:
    """A datagram socket connected to the service manager's, or nothing."""

    def __init__(self, value: str | None) -> None:
        self._sock: socket.socket | None = None
        #: Another master serves on the same sockets (a binary upgrade): STOPPING=1 unsaid.
        self.paired = False
        #: The old master, alive, whose USR2 started this one: a stop gives it the main PID back.
        self.handback = 0
        address = notify_address(value)
        if address is None:
            if value:
                log.warning("NOTIFY_SOCKET=%s: not a unix socket address; not notifying", value)
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        try:
            sock.connect(address)
        except OSError as exc:
            sock.close()
            log.warning("NOTIFY_SOCKET=%s: cannot connect (%s); not notifying", value, exc)
            return
        self._sock = sock

    def send(self, state: str) -> None:
        """Send ``state`` (``READY=1`` also says the master's pid, ``MAINPID``)."""
        if self._sock is None:
            return
        if self.paired and state.startswith("STOPPING=1"):
            if not self.handback:
                return
            # A new master's READY=1 moved the main PID here: without this, its exit would be
            # the service's, and systemd would stop the old master that serves on.
            state = f"MAINPID={self.handback}\nSTATUS=the new master stops; the old one serves"
        if state.startswith("READY=1"):
            state += f"\nMAINPID={os.getpid()}"
        elif state.startswith("RELOADING=1"):  # systemd needs the time the reload began
            state += f"\nMONOTONIC_USEC={time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000}"
        try:
            self._sock.send(state.encode(), socket.MSG_DONTWAIT)  # never hold the master
        except OSError as exc:
            log.warning("NOTIFY_SOCKET: cannot send %s: %s", state.split("\n", 1)[0], exc)

    def close(self) -> None:
        """Close the socket (a forked worker has no use for it)."""
        if self._sock is not None:
            with contextlib.suppress(OSError):
                self._sock.close()
            self._sock = None
