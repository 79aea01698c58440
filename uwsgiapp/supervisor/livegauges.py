"""A reaped worker's live gauges in prometheus_client's multiprocess mode, taken out.

With ``PROMETHEUS_MULTIPROC_DIR`` set, prometheus_client keeps each process's metrics in files
of that directory named by its pid; a gauge in one of the ``live*`` modes (``livesum``,
``liveall``...) counts only processes alive, which its ``mark_process_dead(pid)`` enforces by
removing the dead process's ``gauge_live*_<pid>.db`` files. gunicorn users call it from their
``child_exit`` hook; uWSGI has none. The master does it for each worker it reaps, so a killed or
crashed worker's in-flight gauge does not stay up forever. Nothing is read or imported from
prometheus_client; counters and histograms (kept after a process ends) are not touched.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterable, Mapping

from uwsgiapp.server.safefiles import in_parent

__all__ = ["forget_live_gauges", "live_gauge_files", "multiproc_dir"]

log = logging.getLogger("uwsgiapp.error")


def multiproc_dir(environ: Mapping[str, str]) -> str:
    """The directory prometheus_client's multiprocess mode writes to ('' when off); the
    lower-case name is its older spelling."""
    return environ.get("PROMETHEUS_MULTIPROC_DIR") or environ.get("prometheus_multiproc_dir", "")


def live_gauge_files(names: Iterable[str], pid: int) -> list[str]:
    """Of the file ``names`` of that directory, the live gauges of process ``pid``."""
    tail = f"_{pid}.db"
    return [name for name in names if name.startswith("gauge_live") and name.endswith(tail)]


def forget_live_gauges(pid: int, environ: Mapping[str, str] = os.environ) -> int:
    """Remove reaped process ``pid``'s live-gauge files, as ``mark_process_dead`` does; how
    many. The directory is walked without following a link root could not trust (the app's
    user owns it), and a name is only ever unlinked, never followed."""
    directory = multiproc_dir(environ)
    if not directory:
        return 0
    removed = 0
    try:
        with in_parent(os.path.abspath(directory)) as (parent, name):
            fd = os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=parent)
            try:
                for found in live_gauge_files(os.listdir(fd), pid):
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(found, dir_fd=fd)
                        removed += 1
            finally:
                os.close(fd)
    except OSError as exc:
        log.warning(
            "cannot remove the live gauges of the worker with pid %d from %s "
            "(PROMETHEUS_MULTIPROC_DIR): %s",
            pid,
            directory,
            exc,
        )
    return removed
