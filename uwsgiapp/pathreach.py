"""Which ``sys.path`` entries the process cannot read: the cause behind a ``No module named
'subprocess'`` after ``--uid`` drops to a user that cannot reach the Python install (a pyenv
Python under ``/root``, mode 0700), the virtualenv or the app."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable

__all__ = ["unreachable_entries", "unreachable_hint"]


def unreachable_entries(
    paths: Iterable[str],
    *,
    stat_path: Callable[[str], os.stat_result] = os.stat,
    access: Callable[[str, int], bool] = os.access,
) -> list[str]:
    """The entries of ``paths`` that exist but cannot be read: a directory on the way
    refuses the search (``stat`` says EACCES), or the entry itself refuses reading (a
    directory: also searching). A missing entry (the usual ``python311.zip``) is not one."""
    found = []
    for entry in dict.fromkeys(paths):
        if not entry:  # the working directory, which the app's import already used
            continue
        try:
            st = stat_path(entry)
        except PermissionError:
            found.append(entry)
            continue
        except (OSError, ValueError):
            continue
        wanted = os.R_OK | (os.X_OK if stat.S_ISDIR(st.st_mode) else 0)
        if not access(entry, wanted):
            found.append(entry)
    return found


def unreachable_hint(
    paths: Iterable[str],
    uid: int,
    *,
    stat_path: Callable[[str], os.stat_result] = os.stat,
    access: Callable[[str, int], bool] = os.access,
) -> str:
    """A sentence naming the unreadable entries for an import that found no module, or ""."""
    found = unreachable_entries(paths, stat_path=stat_path, access=access)
    if not found:
        return ""
    return (
        f"\nthe user this process runs as (uid {uid}) cannot read {len(found)} sys.path"
        f" entr{'y' if len(found) == 1 else 'ies'}: {', '.join(found)}; with --uid, the"
        " Python install, the virtualenv and the app must be readable by that user (a"
        " Python under /root, such as pyenv's, is not)"
    )
