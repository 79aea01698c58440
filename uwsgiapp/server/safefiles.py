"""Files the master opens, hands over or removes while it may be root, without following links.

The directories that hold logs, the pidfile and the unix socket are often writable by the app's
user (the README recommends it, so the dropped master can remove its files at exit). That user
can plant ``error.log -> /etc/shadow`` or a hard link to a root-only file there; anything that
follows the path as root would then open, truncate or chown the target. So every operation here
acts on a file descriptor opened with ``O_NOFOLLOW``, checks what it got, and changes ownership
through the descriptor (``fchown``) or without following (``lchown`` after an inode check);
the pidfile is written beside its path and renamed over it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
import tempfile

__all__ = [
    "UnsafeFileError",
    "chown_file",
    "chown_socket",
    "holds_pid",
    "open_append",
    "remove_pidfile",
    "write_pidfile",
]


class UnsafeFileError(OSError):
    """A path the server will not use: a symlink, not a regular file, or hard-linked as root."""


_APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


def _refuse(path: str, why: str) -> UnsafeFileError:
    return UnsafeFileError(f"{path}: {why}; refusing to use it")


def _check_regular(fd: int, path: str) -> None:
    st = os.fstat(fd)
    if not stat.S_ISREG(st.st_mode):
        raise _refuse(path, "not a regular file")
    if st.st_nlink > 1 and os.geteuid() == 0:
        # A hard link planted in a directory the app user can write: O_NOFOLLOW does not see it.
        raise _refuse(path, f"has {st.st_nlink} hard links")


def open_append(path: str, mode: int = 0o644) -> int:
    """Open ``path`` for appending (created with ``mode`` if missing); returns the fd.

    Raises :class:`UnsafeFileError` (naming the path) for a symlink, a non-regular file (a
    FIFO would block the open, so ``O_NONBLOCK`` is used and dropped afterwards), or, as root,
    a file with more than one hard link.
    """
    try:
        fd = os.open(path, _APPEND_FLAGS | os.O_NONBLOCK, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:  # the last component is a symlink
            raise _refuse(path, "is a symbolic link") from None
        raise
    try:
        _check_regular(fd, path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def chown_file(path: str, uid: int, gid: int) -> None:
    """Create ``path`` if missing and give it to ``uid``/``gid`` through its fd."""
    fd = open_append(path)
    try:
        os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


def chown_socket(path: str, inode: tuple[int, int] | None, uid: int, gid: int) -> None:
    """Give our unix socket file to ``uid``/``gid``, if ``path`` is still the socket we bound.

    A socket's fd cannot change its file's owner, so this checks the path's inode without
    following it and then changes the owner of the link itself if something swapped it since.
    """
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode) or (inode is not None and (st.st_dev, st.st_ino) != inode):
        raise _refuse(path, "is no longer the socket we bound")
    os.chown(path, uid, gid, follow_symlinks=False)


def write_pidfile(path: str, pid: int) -> None:
    """Write ``pid`` to ``path``: a new file beside it, renamed over it (a link is replaced,
    never followed)."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp = tempfile.mkstemp(prefix=".pid-", dir=directory)
    try:
        os.write(fd, f"{pid}\n".encode())
        os.fchmod(fd, 0o644)
        os.close(fd)
        fd = -1
        os.replace(tmp, path)
    except BaseException:
        if fd >= 0:
            os.close(fd)
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def read_pid(path: str) -> int | None:
    """The pid ``path`` (not followed) holds, if it is a regular file holding one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        held = os.read(fd, 64).strip()
    finally:
        os.close(fd)
    return int(held) if held.isdigit() and 0 < len(held) < 12 else None


def holds_pid(path: str, pid: int) -> bool:
    """Is ``path`` (not followed) a regular file that holds ``pid``?"""
    return read_pid(path) == pid


def remove_pidfile(path: str, pid: int) -> bool:
    """Remove ``path`` if it is a regular file that still holds ``pid``; True if removed.

    Another server started on the same pidfile since (ours was replaced) keeps its file.
    """
    if not holds_pid(path, pid):
        return False
    try:
        os.unlink(path)
    except OSError:
        return False
    return True
