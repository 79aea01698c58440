"""Start-up's refusal to take over the pidfile of a uwsgiapp that is running."""

from __future__ import annotations

import logging
import os
import stat

from uwsgiapp.server import safefiles

log = logging.getLogger("uwsgiapp.error")

__all__ = ["server_in_pidfile", "unremovable_pidfile"]


def server_in_pidfile(path: str) -> int | None:
    """The pid in ``path`` if it is another uwsgiapp's, alive (a stale file's pid may have
    been reused by anything: that is not ours to refuse on)."""
    pid = safefiles.read_pid(path) if path else None
    if pid is None or pid == os.getpid():
        return None
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            args = f.read().split(b"\0")
    except OSError:
        args = [b""]
    # Its title once running; `uwsgiapp serve` or `python -m uwsgiapp serve` while it starts.
    started = any(a == b"uwsgiapp" or a.endswith(b"/uwsgiapp") for a in args) and b"serve" in args
    if args[0].startswith(b"uwsgiapp master") or started:
        return pid
    log.info("--pidfile: %s names pid %d, not a running uwsgiapp (a stale file)", path, pid)
    return None


def unremovable_pidfile(path: str) -> str | None:
    """Why this process (after ``--uid``) could not remove the pidfile ``path`` at stop, or
    None: unlinking needs its directory writable, which a root-owned /run is not (the next
    start replaces the stale file)."""
    if not path:
        return None
    parent = os.path.dirname(path) or "."
    if os.access(parent, os.W_OK | os.X_OK):
        try:  # a sticky directory (/tmp) lets only the file's owner (or the directory's) unlink
            where = os.stat(parent)
            owners = (where.st_uid, os.lstat(path).st_uid)
            sticky = where.st_mode & stat.S_ISVTX and os.geteuid() not in owners
        except OSError:
            return None
        if sticky:
            return (
                f"{parent} is a sticky directory (as /tmp) and the file is root's (written "
                f"before the --uid drop): uid {os.geteuid()} may not remove it; the next start "
                "replaces it"
            )
        return None
    return (
        f"{parent} is not writable by uid {os.geteuid()} (the --uid user); the next start "
        "replaces it (a directory that user owns, systemd's RuntimeDirectory=, lets it go)"
    )
