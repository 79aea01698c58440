"""``--touch-reload``: files whose change reloads the server, as uWSGI's ``touch-reload``.

The master looks at each file once a second, while it is neither reloading nor stopping (a
change made during a reload is seen when it is over). A change is anything :func:`stamp`
tells apart: the file touched (its modification time), replaced (another inode: a deploy's
``mv``, or a symlink such as ``current`` moved to another release), created or removed. A
file missing at start-up (or out of the master's sight) is said once, then its creation
reloads, as in uWSGI. Only
``stat`` is used (the file is never opened), as the user the master runs as.
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Callable, Sequence

log = logging.getLogger("uwsgiapp.error")

#: What tells two states of a file apart: (device, inode, mtime in ns), or None when missing.
Stamp = tuple[int, int, int] | None
#: Seconds between two looks at the files.
INTERVAL = 1.0


def stamp(path: str) -> Stamp:
    """``path``'s state now (following links), or None if it cannot be looked at."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_mtime_ns)


def _why(path: str) -> str:
    try:
        os.stat(path)
    except OSError as exc:
        said = exc.strerror or str(exc)
        if exc.errno in (errno.ENOENT, errno.ENOTDIR):
            return f"{said}: its appearance reloads"
        # EACCES above all (the master looks as the --uid user): nothing it can see will change.
        return f"{said}: it cannot be looked at as the user the master runs as: it will not reload"
    return "it appeared meanwhile: its next change reloads"


class TouchWatch:
    """The ``--touch-reload`` files and the state each had when last looked at."""

    def __init__(self, paths: Sequence[str], look: Callable[[str], Stamp] = stamp) -> None:
        self._look = look
        self._seen = {path: look(path) for path in paths}
        self._next = 0.0
        for path, seen in self._seen.items():
            if seen is None:
                log.warning("--touch-reload: %s: %s", path, _why(path))

    def changed(self) -> list[str]:
        """The files that changed since the last look (their new state is kept)."""
        out = []
        for path, seen in self._seen.items():
            now = self._look(path)
            if now != seen:
                self._seen[path] = now
                out.append(path)
        return out

    def due(self, now: float, rebase: bool = False) -> list[str]:
        """At most once each :data:`INTERVAL` (``now``: monotonic seconds): the changed files,
        each logged; else nothing. ``rebase``: a HUP's reload is coming, which loads what the
        files hold now: their state is taken as seen (a deploy's HUP beside a touched
        ``current`` symlink reloaded twice)."""
        if rebase:
            self.changed()
            return []
        if now < self._next:
            return []
        self._next = now + INTERVAL
        touched = self.changed()
        for path in touched:
            log.info("--touch-reload: %s changed: graceful reload", path)
        return touched
