"""Files the master opens, hands over or removes while it may be root, without following links.

The directories that hold logs, the pidfile and the unix socket are often writable by the app's
user (the README recommends it, so the dropped master can remove its files at exit). That user
can plant ``error.log -> /etc/shadow`` or a hard link to a root-only file there; anything that
follows the path as root would then open, truncate or chown the target. So every operation here
acts on a file descriptor opened with ``O_NOFOLLOW``, checks what it got, and changes ownership
through the descriptor (``fchown``) or without following (``lchown`` after an inode check);
the pidfile is written beside its path and renamed over it.

The directories on the way are walked one at a time (:func:`_parent`): as root, a symbolic link
on the way is followed only where nobody but root could have made it, so ``logs -> /etc`` planted
in the app user's directory cannot send ``logs/app.log`` into ``/etc``.
"""

from __future__ import annotations

import contextlib
import errno
import os
import socket
import stat
from collections.abc import Iterator

__all__ = [
    "UnsafeFileError",
    "chown_file",
    "chown_socket",
    "file_refusal",
    "holds_pid",
    "in_parent",
    "open_append",
    "pinned_path",
    "refused",
    "remove_pidfile",
    "socket_answers",
    "write_pidfile",
]


class UnsafeFileError(OSError):
    """A path the server will not use: a symlink, not a regular file, or hard-linked as root."""

    #: Why, without the path.
    why = ""


_APPEND_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC


def _refuse(path: str, why: str) -> UnsafeFileError:
    refusal = UnsafeFileError(refused(path, why))
    refusal.why = why
    return refusal


def refused(path: str, why: str) -> str:
    """What is said of ``path``, refused for ``why`` (the text of :class:`UnsafeFileError`)."""
    return f"{path}: {why}; refusing to use it"


_DIR_FLAGS = os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC
_MAX_LINKS = 40  # as the kernel's path walk


def _may_follow(dir_fd: int, name: str) -> bool:
    """May root follow the link ``name`` in the directory ``dir_fd``: could only root have made it?

    A link root owns, in a directory only root can write, or in a sticky one (``/tmp``),
    where nobody else can replace it. A link another user owns was made by that user (in a
    root-only directory: before a non-recursive ``chown root``): followed, it led root where
    that user chose.
    """
    st = os.fstat(dir_fd)
    if st.st_uid != 0 or (st.st_mode & 0o022 and not st.st_mode & stat.S_ISVTX):
        return False
    return os.lstat(name, dir_fd=dir_fd).st_uid == 0


def _parent(path: str) -> tuple[int, str]:
    """An ``O_PATH`` fd of the directory that holds ``path``, and the name ``path`` has in it.

    The directories are opened one by one from ``/`` (or the working directory) without
    following links; as root a link is followed by reading it only where :func:`_may_follow`
    allows, otherwise :class:`UnsafeFileError`. The caller closes the fd.
    """
    head, name = os.path.split(path)
    todo = [part for part in head.split("/") if part not in ("", ".")]
    root = os.geteuid() == 0
    fd = os.open("/" if path.startswith("/") else ".", _DIR_FLAGS)
    links = 0
    try:
        while todo:
            part = todo.pop(0)
            try:
                nxt = os.open(part, _DIR_FLAGS | os.O_NOFOLLOW, dir_fd=fd)
            except OSError as exc:
                if exc.errno != errno.ENOTDIR or not stat.S_ISLNK(
                    os.lstat(part, dir_fd=fd).st_mode
                ):
                    raise type(exc)(exc.errno, exc.strerror, path) from None
                if _on_proc(fd):  # /proc/self: the kernel's link (65534's in a user namespace)
                    nxt = os.open(part, _DIR_FLAGS, dir_fd=fd)
                    os.close(fd)
                    fd = nxt
                    continue
                if root and not _may_follow(fd, part):
                    raise _refuse(
                        path,
                        f"{part!r} on the way is a symbolic link that someone other than root "
                        "could have made (in a directory others may write: name the real path)",
                    ) from None
                links += 1
                if links > _MAX_LINKS:
                    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path) from None
                target = os.readlink(part, dir_fd=fd)
                todo[:0] = [p for p in target.split("/") if p not in ("", ".")]
                if target.startswith("/"):
                    nxt = os.open("/", _DIR_FLAGS)
                else:
                    continue
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd, name


def file_refusal(st: os.stat_result, root: bool) -> str | None:
    """Why a log file found as ``st`` (``lstat``, or ``fstat`` of its ``O_NOFOLLOW`` open) is
    not used (``root``: as root), or None: the rules of :func:`open_append`, without the open."""
    if stat.S_ISLNK(st.st_mode):
        return "is a symbolic link"
    if stat.S_ISCHR(st.st_mode):
        return None  # /dev/null: only root makes device nodes, so nobody planted it
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_nlink > 1 and root:
        # A hard link planted in a directory the app user can write: O_NOFOLLOW does not see it.
        return f"has {st.st_nlink} hard links"
    return None


def _check_regular(fd: int, path: str) -> None:
    why = file_refusal(os.fstat(fd), os.geteuid() == 0)
    if why is not None:
        raise _refuse(path, why)


@contextlib.contextmanager
def in_parent(path: str) -> Iterator[tuple[int, str]]:
    """The walked directory that holds ``path`` (an ``O_PATH`` fd, see :func:`_parent`) and
    the name ``path`` has in it, for the ``with`` block."""
    fd, name = _parent(path)
    try:
        yield fd, name
    finally:
        os.close(fd)


def open_append(path: str, mode: int = 0o640) -> int:
    """Open ``path`` for appending (created with ``mode`` if missing); returns the fd. A log
    names clients and URLs, query strings with their tokens too: other users may not read a
    new one (uWSGI's mode; a log reader in the file's group may).

    Raises :class:`UnsafeFileError` (naming the path) for a symlink, a link on the way that
    someone other than root could have made (as root), what is neither a regular file nor a
    character device (a FIFO would block the open, so ``O_NONBLOCK`` is used and dropped
    afterwards), or, as root, a file with more than one hard link.
    """
    with in_parent(path) as (parent, name):
        try:
            fd = os.open(name, _APPEND_FLAGS | os.O_NONBLOCK, mode, dir_fd=parent)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the last component is a symlink
                raise _refuse(path, "is a symbolic link") from None
            raise type(exc)(exc.errno, exc.strerror, path) from None
    try:
        _check_regular(fd, path)
        os.set_blocking(fd, True)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_read(path: str) -> int:
    """Open ``path`` to read it (a config file: an ini, its includes, an ``@(file)``, a TOML)
    without blocking on a FIFO; returns the fd. As root, a link on the way or at the end is
    followed only where root alone could have made it (:func:`_may_follow`; /proc's, as
    ``/dev/stdin`` or ``<(...)`` name, by the kernel: their text names no file), and a file
    with more than one hard link only in a directory of root's alone: an app user's
    ``secret.key -> /root/secret`` led root's read of a root-only file into the app's
    environment. :class:`UnsafeFileError` (naming the path) for such a link."""
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC
    if os.geteuid() != 0:
        return os.open(path, flags)
    for _ in range(_MAX_LINKS):
        with in_parent(path) as (parent, name):
            follow = _on_proc(parent)
            try:
                fd = os.open(name, flags | (0 if follow else os.O_NOFOLLOW), dir_fd=parent)
            except OSError as exc:
                if exc.errno != errno.ELOOP:
                    raise type(exc)(exc.errno, exc.strerror, path) from None
            else:  # a file /proc's link names: its text names no directory to judge
                return fd if follow else _one_link_only(fd, parent, path)
            if not _may_follow(parent, name):
                raise _refuse(
                    path, "is a symbolic link that someone other than root could have made"
                ) from None
            target = os.readlink(name, dir_fd=parent)
        path = os.path.join(os.path.dirname(path), target)
    raise OSError(errno.ELOOP, os.strerror(errno.ELOOP), path)


def _one_link_only(fd: int, parent: int, path: str) -> int:
    """``fd``, unless it is a file hard-linked where someone else may write (a hard link the
    app user made to a root-only file: ``fs.protected_hardlinks`` is off in many containers)."""
    st = os.fstat(fd)
    where = os.fstat(parent)
    if stat.S_ISREG(st.st_mode) and st.st_nlink > 1 and (where.st_uid or where.st_mode & 0o022):
        os.close(fd)
        raise _refuse(path, f"has {st.st_nlink} hard links, in a directory others may write")
    return fd


def _on_proc(dir_fd: int) -> bool:
    """Whether ``dir_fd`` is a directory of /proc, whose links (``/proc/self``, its ``fd/N``)
    the kernel makes: their owner is the host's root in a user namespace (65534), and their
    text names a pipe or a deleted file that no path reaches again."""
    try:
        return os.fstat(dir_fd).st_dev == os.stat("/proc").st_dev
    except OSError:
        return False


def chown_file(path: str, uid: int, gid: int) -> None:
    """Create ``path`` if missing and give it to ``uid``/``gid`` through its fd (a device such
    as /dev/null stays root's)."""
    fd = open_append(path)
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fchown(fd, uid, gid)
    finally:
        os.close(fd)


def _through_proc(fd: int) -> str:
    """``/proc/self/fd/N``, which the kernel resolves to ``fd``'s own file whatever its name
    now is; "" where /proc is not mounted."""
    path = f"/proc/self/fd/{fd}"
    return path if os.path.exists(path) else ""


def pinned_path(dir_fd: int, name: str) -> str:
    """A path to ``name`` in the directory ``dir_fd`` that the kernel resolves through the fd
    (``/proc/self/fd/N/name``), so that a link swapped in on the way since the walk does not
    count; "" where /proc is not mounted or the path would not fit a unix socket address."""
    directory = _through_proc(dir_fd)
    pinned = f"{directory}/{name}"
    return pinned if directory and len(pinned.encode()) <= 107 else ""


def socket_answers(dir_fd: int, name: str, fallback: str) -> bool:
    """Whether a server listens on the unix socket file ``name`` in the directory ``dir_fd``
    (False: none there, or a stale file that refuses). It is connected to through an ``O_PATH``
    fd of the file, opened without following a link and checked to be a socket, so that a link
    swapped in since a check is not followed (``fallback``, its path, where /proc is not
    mounted). Never waits: a full queue is a server's. :class:`UnsafeFileError` if it is no
    socket; another :class:`OSError` where the connect cannot tell (no permission)."""
    try:
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=dir_fd)
    except FileNotFoundError:
        return False
    try:
        if not stat.S_ISSOCK(os.fstat(fd).st_mode):
            raise UnsafeFileError(
                "is no longer a socket (a link is not followed); not replacing it"
            )
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.setblocking(False)
            try:
                probe.connect(_through_proc(fd) or fallback)
            except (ConnectionRefusedError, FileNotFoundError):
                return False
            except BlockingIOError:  # its listen queue is full
                return True
    finally:
        os.close(fd)
    return True


def chown_socket(path: str, inode: tuple[int, int] | None, uid: int, gid: int) -> None:
    """Give our unix socket file to ``uid``/``gid``, if ``path`` is still the socket we bound.

    A socket's fd cannot change its file's owner: the file is opened ``O_PATH`` (without
    following a link), checked to be the inode we bound, and changed through that fd, so that
    a hard link swapped in after the check is never the one changed.
    """
    with in_parent(path) as (parent, name):
        fd = os.open(name, os.O_PATH | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
        try:
            st = os.fstat(fd)
            if not stat.S_ISSOCK(st.st_mode) or (
                inode is not None and (st.st_dev, st.st_ino) != inode
            ):
                raise _refuse(path, "is no longer the socket we bound")
            pinned = _through_proc(fd)
            if pinned:
                os.chown(pinned, uid, gid)  # the fd's inode, whatever the name
            else:
                os.chown(name, uid, gid, dir_fd=parent, follow_symlinks=False)
        finally:
            os.close(fd)


def write_pidfile(path: str, pid: int) -> None:
    """Write ``pid`` to ``path``: a new file beside it, renamed over it (a link is replaced,
    never followed)."""
    with in_parent(path) as (parent, name):
        tmp = f".pid-{os.urandom(6).hex()}"
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
        fd = os.open(tmp, flags, 0o644, dir_fd=parent)
        try:
            os.write(fd, f"{pid}\n".encode())
            os.fchmod(fd, 0o644)
            os.close(fd)
            fd = -1
            os.replace(tmp, name, src_dir_fd=parent, dst_dir_fd=parent)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=parent)
            raise


def _read_pid(parent: int, name: str) -> int | None:
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(name, flags, dir_fd=parent)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        held = os.read(fd, 64).strip()
    finally:
        os.close(fd)
    return int(held) if held.isdigit() and 0 < len(held) < 12 else None


def read_pid(path: str) -> int | None:
    """The pid ``path`` (not followed) holds, if it is a regular file holding one."""
    try:
        with in_parent(path) as (parent, name):
            return _read_pid(parent, name)
    except OSError:
        return None


def holds_pid(path: str, pid: int) -> bool:
    """Is ``path`` (not followed) a regular file that holds ``pid``?"""
    return read_pid(path) == pid


def remove_pidfile(path: str, pid: int) -> bool:
    """Remove ``path`` if it is a regular file that still holds ``pid``; True if removed.

    Another server started on the same pidfile since (ours was replaced) keeps its file.
    """
    try:
        with in_parent(path) as (parent, name):
            if _read_pid(parent, name) != pid:
                return False
            os.unlink(name, dir_fd=parent)
    except OSError:
        return False
    return True
