"""Log targets that name the process's own output rather than a file.

``-`` (or empty) is the log's usual stream (stderr for the error log, stdout for the access
log); ``/dev/stdout`` and ``/dev/stderr``, as Docker set-ups and uWSGI ini files write them
(``logto = /dev/stdout``), name that stream directly. They are links into ``/proc``: opened as
files, they would be refused as links (see :mod:`uwsgiapp.server.safefiles`), and a worker
reopening them at USR1 would gain nothing. A leaf module: the configuration and the servers
both ask it; the log files a USR1 or HUP reopens are found here too.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
from typing import Any, TextIO

__all__ = ["FUNNELED", "is_pipe", "is_stream", "moved", "open_file_handlers", "stream_for"]

_STD = ((1, "stdout"), (2, "stderr"))
_NAMED = {
    "/dev/stdout": "stdout",
    "/dev/stderr": "stderr",
    # The same streams by their descriptors (links too: never followed as paths), as a uWSGI
    # ini in Docker names them (logto = /proc/1/fd/1: the master is PID 1 there).
    **{f"{fds}/{fd}": name for fds in ("/dev/fd", "/proc/self/fd") for fd, name in _STD},
    **({f"/proc/1/fd/{fd}": name for fd, name in _STD} if os.getpid() == 1 else {}),
}
#: Log handlers whose file this process does not write (``--log-master``: the master's thread
#: holds it and reopens it): a reopen leaves them alone.
FUNNELED: set[logging.Handler] = set()


def is_stream(target: str) -> bool:
    """Is the log ``target`` a stream of the process (``-``, empty, /dev/stdout, /dev/stderr)?"""
    return target in ("", "-") or target in _NAMED


def stream_for(target: str, default: TextIO) -> TextIO:
    """The stream ``target`` names: ``default`` for ``-``; ``target`` must be a stream."""
    name = _NAMED.get(target)
    return default if name is None else getattr(sys, name)


def is_pipe(target: str, default_fd: int) -> bool:
    """Whether the stream ``target`` names (``default_fd`` for ``-``) is a pipe or a socket,
    where a write over 4 KiB (PIPE_BUF) may interleave with another process's. A file's path
    is not looked at (as root, a path is never followed here)."""
    if not is_stream(target):
        return False
    name = _NAMED.get(target)
    fd = default_fd if name is None else 1 if name == "stdout" else 2
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISSOCK(mode)


def moved(path: str, stream: Any) -> bool:
    """Is the file open as ``stream`` (a file object, or a descriptor) no longer the one at
    ``path`` (logrotate moved it; gone, or not to be told: True)?"""
    try:
        now, held = os.stat(path), os.fstat(stream if isinstance(stream, int) else stream.fileno())
    except (OSError, ValueError, AttributeError):
        return True
    return (now.st_dev, now.st_ino) != (held.st_dev, held.st_ino)


def open_file_handlers(moved_only: bool) -> list[logging.FileHandler]:
    """Every open file handler of every logger, once each: ours, and the app's (Django's
    ``LOGGING`` files), as gunicorn's USR1 reopens them all; those whose file moved only if
    ``moved_only``, and for one of mode "w" (a reopen would empty its file)."""
    loggers = [logging.getLogger(), *logging.root.manager.loggerDict.values()]
    found: dict[int, logging.FileHandler] = {}
    for logger in loggers:
        for handler in getattr(logger, "handlers", ()):  # a PlaceHolder has none
            if isinstance(handler, logging.FileHandler) and handler.stream is not None:
                found[id(handler)] = handler
    for handler in FUNNELED:
        found.pop(id(handler), None)
    return [
        h
        for h in found.values()
        if not (moved_only or "w" in h.mode) or moved(h.baseFilename, h.stream)
    ]
