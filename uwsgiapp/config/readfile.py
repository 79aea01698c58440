"""Reading a config file as start-up reads it: bounded in size, a pipe bounded in time, and,
as root, never through a link someone else could have made (an ini, its includes and
inherits, an ``@(file)``, a TOML); as root, a file others may change is noted, for a warning
(:func:`take_writable_notes`)."""

from __future__ import annotations

import errno
import grp
import os
import pwd
import select
import stat
import time
from collections.abc import Callable
from typing import Any

from uwsgiapp.server.safefiles import UnsafeFileError, open_read

__all__ = [
    "MAX_INI_BYTES",
    "PIPE_SECONDS",
    "others_may_change",
    "read_bounded",
    "take_writable_notes",
]


#: The most an ini file may hold, and how long a pipe's writer (``--ini <(envsubst ...)``) may
#: take: an include of /dev/zero read until memory ran out, a FIFO with no writer hung.
MAX_INI_BYTES = 4 << 20
PIPE_SECONDS = 10.0


def read_bounded(path: str) -> bytes:
    """The bytes of the file (or pipe) at ``path``; OSError (its strerror said) for what cannot
    be read, a device, more than :data:`MAX_INI_BYTES`, or, as root, a path through a link
    someone other than root could have made (:func:`~uwsgiapp.server.safefiles.open_read`)."""
    try:
        fd = open_read(path)  # as root, no link someone else could have made
    except UnsafeFileError as exc:  # said as an errno's text is: "path: why; refusing"
        raise OSError(errno.EPERM, f"{exc.why or exc}; refusing to use it", path) from None
    try:
        if os.geteuid() == 0:
            _note_if_writable(fd, path)
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise OSError(errno.EISDIR, "Is a directory")
        if not (stat.S_ISREG(mode) or stat.S_ISFIFO(mode)):
            raise OSError(errno.EINVAL, "not a file (a device?)")
        chunks: list[bytes] = []
        deadline, size = time.monotonic() + PIPE_SECONDS, 0
        while True:
            if (
                stat.S_ISFIFO(mode)
                and not select.select([fd], [], [], max(deadline - time.monotonic(), 0))[0]
            ):
                raise OSError(
                    errno.ETIMEDOUT, f"nothing more came through the pipe in {PIPE_SECONDS:g} s"
                )
            data = os.read(fd, 65536)
            if not data:
                return b"".join(chunks)
            size += len(data)
            if size > MAX_INI_BYTES:
                raise OSError(errno.EFBIG, f"over {MAX_INI_BYTES >> 20} MiB")
            chunks.append(data)
    finally:
        os.close(fd)


#: As root: what the files read since the last :func:`take_writable_notes` that someone other
#: than root may change were, by path.
_WRITABLE: dict[str, str] = {}


def take_writable_notes() -> list[str]:
    """A warning for each config file read as root (since the last call) that someone other
    than root may change, and forget them."""
    notes = [
        f"config file {path} may be changed by others than root ({why}): it chooses what the "
        "server started as root does (its uid, log files, the app); make it and every "
        "directory above it root's, not writable by group or others (chown root:root; chmod "
        "go-w)"
        for path, why in _WRITABLE.items()
    ]
    _WRITABLE.clear()
    return notes


def others_may_change(file: os.stat_result, directories: list[os.stat_result]) -> str | None:
    """Who other than root may change a file found as ``file`` in ``directories`` (its own
    first, then each one above it): writing it, or replacing it or a directory on its way
    (a directory without the sticky bit, or one above it, that they own or may write), as
    sshd's StrictModes judges; None when nobody but root may."""
    whats = ["it is", "its directory is", *["a directory above it is"] * len(directories)]
    for st, what in zip([file, *directories], whats[: 1 + len(directories)], strict=True):
        if st.st_uid != 0:
            return f"{what} owned by {_who(pwd.getpwuid, st.st_uid)}"
        if st is not file and st.st_mode & stat.S_ISVTX:
            break  # root's, in a sticky directory: only root may replace it
        if st.st_mode & 0o002:
            return f"{what} writable by everyone"
        if st.st_mode & 0o020 and st.st_gid != 0:
            return f"{what} writable by group {_who(grp.getgrgid, st.st_gid)}"
    return None


def _note_if_writable(fd: int, path: str) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        return  # a pipe (``<(envsubst ...)``) or /dev/null: nothing to change later
    try:
        real = os.readlink(f"/proc/self/fd/{fd}")  # where the links (root's) led
        directories, where = [], os.path.dirname(real)
        while True:
            directories.append(os.stat(where))
            if where == os.path.dirname(where):  # "/"
                break
            where = os.path.dirname(where)
    except OSError:
        return
    why = others_may_change(st, directories)
    if why:
        _WRITABLE[path] = why


def _who(lookup: Callable[[int], Any], number: int) -> str:
    try:
        return f"{lookup(number)[0]} ({number})"
    except KeyError:
        return str(number)
