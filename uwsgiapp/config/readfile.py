"""Reading a config file as start-up reads it: bounded in size, a pipe bounded in time, and,
as root, never through a link someone else could have made (an ini, its includes and
inherits, an ``@(file)``, a TOML)."""

from __future__ import annotations

import errno
import os
import select
import stat
import time

from uwsgiapp.server.safefiles import UnsafeFileError, open_read

__all__ = ["MAX_INI_BYTES", "PIPE_SECONDS", "read_bounded"]


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
